"""A scale cluster: one control node and compute nodes ``cn01``..``cnNN`` of light weight, grown
a batch at a time.

The nodes are the test cluster's nodes with what a compute node in a test never uses cut away:

* the salt-minion runs without Salt's keepalive parent (``--disable-keepalive``): that parent
  only restarts the minion process, which systemd's ``Restart=always`` already does, and costs
  a second Python interpreter (about a quarter of a bare node's memory);
* ``ssh.service`` and ``systemd-logind.service`` are masked (a bind of ``/dev/null`` over the
  unit name): no SSH logins or seats in a node driven through ``nsenter`` and Salt.

The cluster knows every address from the start (``/etc/hosts`` lists all of them, as a site's
DNS would), boots only the first nodes, and boots the others when it grows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import time

import crane_hostlist

from . import harness, pillar, procs
from .spec import ClusterSpec, NodeSpec, env_spec

CONTROL = "cranectl"
MASKED_UNITS = ("ssh.service", "systemd-logind.service")
BOOT_BATCH = 8
# inotify instances one booted node holds (systemd, journald, networkd, dbus, the minion): all
# run as root, whose instances the host caps at fs.inotify.max_user_instances (128 by default)
INOTIFY_PER_NODE = 6
INOTIFY_LIMIT = pathlib.Path("/proc/sys/fs/inotify/max_user_instances")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def compute_names(count: int) -> list[str]:
    """``cn01``..``cnNN`` (two digits at least, so the host list stays ``cn[01-32]``)."""
    return [f"cn{number:02d}" for number in range(1, count + 1)]


def scale_spec(size: int, variable: str, default: str) -> ClusterSpec:
    """The control node and ``size`` compute nodes on the bridge and subnet ``variable`` names
    (``name:subnet``; ``default`` when unset)."""
    nodes = (NodeSpec(CONTROL, "control"), *(NodeSpec(name) for name in compute_names(size)))
    return env_spec(variable, default, nodes)


def scale_pillar(spec: ClusterSpec, repo_root: pathlib.Path) -> tuple[dict, dict]:
    """The test cluster's pillar with one node group and one partition holding the spec's
    compute nodes as a host list (``cn[01-32]``), and no login node."""
    sls, top = pillar.cluster_pillar(spec, repo_root)
    crane = sls["crane.cluster"]["crane"]
    hosts = crane_hostlist.compress(spec.hostnames("compute"))
    crane["login_nodes"] = []
    crane["config"]["Nodes"] = [{"name": hosts, "cpu": 2, "memory": "2G"}]
    crane["config"]["Partitions"] = [{"name": "CPU", "nodes": hosts, "priority": 5}]
    crane["config"]["DefaultPartition"] = "CPU"
    return sls, top


def first(spec: ClusterSpec, size: int) -> ClusterSpec:
    """The control node and the first ``size`` compute nodes of ``spec`` (same addresses:
    a node's address is its place in the spec)."""
    return dataclasses.replace(spec, nodes=spec.nodes[: size + 1])


class ScaleCluster(harness.Cluster):
    """A cluster of light nodes that starts with the first ``size`` compute nodes of
    ``full_spec`` and grows with :meth:`boot_nodes`."""

    def __init__(self, full_spec: ClusterSpec, size: int, light: bool = True, **kwargs):
        super().__init__(first(full_spec, size), **kwargs)
        self.full_spec = full_spec
        self.light = light  # False: the test cluster's usual nodes, to compare with

    # --- what makes a node light --------------------------------------------------------------

    def _write_node_files(self) -> None:
        super()._write_node_files()
        if not self.light:
            return
        unit = harness.MINION_UNIT.format(venv=self.venv)
        light = unit.replace("bin/salt-minion\n", "bin/salt-minion --disable-keepalive\n")
        if light == unit:
            raise harness.ClusterError("the minion unit has no salt-minion command line to extend")
        (self.run_dir / "etc" / "salt-minion.service").write_text(light)

    def _nspawn_command(self, hostname: str) -> list[str]:
        masks = [f"--bind-ro=/dev/null:/etc/systemd/system/{unit}" for unit in MASKED_UNITS]
        if not self.light:
            masks = []
        return [*super()._nspawn_command(hostname), *masks]

    def _hosts_file(self) -> str:
        """Every node of the full cluster, booted or not."""
        current, self.spec = self.spec, self.full_spec
        try:
            return super()._hosts_file()
        finally:
            self.spec = current

    def _start_master(self) -> None:
        self.write_pillar(*scale_pillar(self.spec, self.repo_root), refresh=False)
        super()._start_master()

    # --- growing, rebooting ---------------------------------------------------------------------

    def extend(self, size: int) -> list[str]:
        """Take the first ``size`` compute nodes of the full spec into the cluster (node files
        and pillar written, nothing booted); returns the new host names."""
        old = set(self.spec.hostnames())
        self.spec = first(self.full_spec, size)
        self._write_node_files()
        self.write_pillar(*scale_pillar(self.spec, self.repo_root), refresh=False)
        return [name for name in self.spec.hostnames() if name not in old]

    def boot_nodes(self, hostnames: list[str], batch: int = BOOT_BATCH) -> None:
        """Boot nodes ``batch`` at a time; each batch's minions answer before the next boots.
        Their custom modules are synced and the pillar refreshed."""
        check_inotify(len(hostnames))
        for start in range(0, len(hostnames), batch):
            chunk = hostnames[start : start + batch]
            for hostname in chunk:
                self._boot(hostname)
            try:
                self.wait_for_minions(chunk)
            except harness.ClusterError as exc:
                silent = [name for name in chunk if f"'{name}'" in str(exc)]
                raise harness.ClusterError(f"{exc}\n{self.minion_report(silent)}") from None
        self._record_bridge_ports()
        if hostnames:
            self.salt(",".join(hostnames), "saltutil.sync_all", tgt_type="list", timeout=300)

    def minion_report(self, hostnames: list[str]) -> str:
        """The salt-minion unit's state and last journal lines on each node."""
        command = "systemctl is-active salt-minion; journalctl -u salt-minion -n 12 --no-pager"
        return "\n".join(
            f"--- {name}:\n{self.sh(name, command, timeout=60).stdout.strip()}"
            for name in hostnames
        )

    def node_inotify(self, hostname: str) -> int:
        """inotify instances the node's processes hold."""
        return sum(inotify_instances(pid) for pid in self.node_pids(hostname))

    def stop_nodes(self, hostnames: list[str]) -> None:
        """Shut nodes down together (their overlays, hence all their changes, are discarded)."""
        entries = [self._state["nodes"].pop(name) for name in hostnames]
        self._save_state()
        procs.stop([e["nspawn"] for e in entries], harness.NODE_STOP_WAIT)
        procs.stop([e["leader"] for e in entries], 5)
        for name in hostnames:
            for path in procs.node_cgroups(self.spec.machine_name(name)):
                procs.remove_cgroup(path)

    def reboot_bare(self, batch: int = BOOT_BATCH) -> None:
        """Every node rebooted from the clean image with a new minion key."""
        names = self.spec.hostnames()
        self.stop_nodes(names)
        self._salt_key("-y", "-D")
        self.boot_nodes(names, batch)

    # --- measuring ------------------------------------------------------------------------------

    def node_pids(self, hostname: str) -> list[int]:
        """Every process of a node (systemd-nspawn included), from its cgroup."""
        found = []
        for base in procs.node_cgroups(self.spec.machine_name(hostname))[:1]:
            for procs_file in base.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found += [int(pid) for pid in procs_file.read_text().split()]
        return found

    def node_memory(self, hostname: str) -> dict[str, float]:
        """A node's memory in MiB: ``pss`` (its processes, shared pages split between their
        users), ``rss``, and ``tmpfs`` (its volatile overlay, /run and /tmp, which are RAM)."""
        totals = {"rss": 0, "pss": 0}
        for pid in self.node_pids(hostname):
            rollup = smaps_rollup(pid)
            totals["rss"] += rollup.get("Rss", 0)
            totals["pss"] += rollup.get("Pss", 0)
        memory = {key: kib / 1024 for key, kib in totals.items()}
        memory["tmpfs"] = self.tmpfs_used(hostname)
        return memory

    def tmpfs_used(self, hostname: str) -> float:
        """MiB used on the node's RAM-backed file systems (overlay upper dir, /run, /tmp)."""
        out = self.sh(hostname, "df -k --output=used / /run /tmp", timeout=30).stdout
        return sum(int(v) for v in out.split()[1:] if v.isdigit()) / 1024


def inotify_instances(pid: int) -> int:
    """inotify instances among a process's open files."""
    count = 0
    with contextlib.suppress(OSError):
        for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                count += os.readlink(fd) == "anon_inode:inotify"
    return count


def check_inotify(nodes: int, limit_file: pathlib.Path = INOTIFY_LIMIT) -> None:
    """ClusterError before booting ``nodes`` more nodes when root's inotify instances would
    run out: a node's systemd then exits at once ("Failed to allocate manager object: Too many
    open files") and its minion never answers."""
    limit = int(limit_file.read_text())
    used = sum(inotify_instances(int(p.name)) for p in pathlib.Path("/proc").glob("[0-9]*"))
    needed = nodes * INOTIFY_PER_NODE
    if used + needed > limit:
        raise harness.ClusterError(
            f"{nodes} more nodes need about {needed} inotify instances and {used} of "
            f"fs.inotify.max_user_instances={limit} are in use: raise it first, e.g. "
            f"sysctl -w fs.inotify.max_user_instances={max(1024, 2 * (used + needed))}"
        )


def smaps_rollup(pid: int) -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` as ``{field: kiB}`` (empty when the process is gone)."""
    try:
        lines = pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    fields = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[key] = int(parts[0])
    return fields


def tree_cpu_seconds(root: int, proc: pathlib.Path = pathlib.Path("/proc")) -> float:
    """CPU seconds (user + system, children reaped included) of a process and every live
    descendant."""
    parents, cpu = {}, {}
    for entry in proc.glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = sum(int(f) for f in fields[11:15])
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in cpu and pid not in tree:
            tree.add(pid)
            todo += [child for child, parent in parents.items() if parent == pid]
    return sum(cpu[pid] for pid in tree) / CLK_TCK


def master_pid(cluster: harness.Cluster) -> int:
    """The salt-master the cluster started."""
    for record in cluster.state["services"]:
        if record["kind"] == "master" and procs.is_running(record):
            return record["pid"]
    raise harness.ClusterError("the cluster's salt-master is not running")


def timed(func, *args, **kwargs):
    """``(seconds, result)`` of one call."""
    began = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - began, result
