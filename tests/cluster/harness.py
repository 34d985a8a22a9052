"""A multi-node CraneSched test cluster: systemd-nspawn nodes on a private bridge, a salt-master
on the host's bridge address, and a local apt repository served over HTTP.

Typical use::

    with Cluster(demo_spec()) as cluster:
        cluster.salt("*", "test.ping")
        cluster.sh("cn01", "hostname")

Everything the cluster creates is recorded in ``<run dir>/state.json`` as it is created, so a
later ``teardown(run_dir)`` (``demo down``) can clean up after a crashed or killed run.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pathlib
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from . import pillar, procs, rootfs
from .spec import RPM_REPO_DIR, ClusterSpec

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
RUN_ENV = "CRANE_FORMULA_RUN"
DEFAULT_RUN_ROOT = "/run/crane-formula"
NVIDIA_MAJOR = 195
CAP_SYS_RESOURCE = 24
CRANED_NOFILE = 640000
NSPAWN_PROPAGATE = "/run/systemd/nspawn/propagate"
NO_MINIONS_MATCHED = "No minions matched the target."  # plain text, even with --out=json
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MINION_WAIT = 240
NODE_STOP_WAIT = 30
CLI_HANG_LIMIT = 1800  # a salt CLI call still running after this is hung (master gone)

MINION_UNIT = """\
[Unit]
Description=Salt minion (test cluster)
After=network.target

[Service]
ExecStart={venv}/bin/python {venv}/bin/salt-minion
Restart=always
RestartSec=2
# The minion takes ~10s to exit on SIGTERM; nodes are throw-away, so do not wait for it.
KillMode=mixed
TimeoutStopSec=2

[Install]
WantedBy=multi-user.target
"""


# An RPM node's minion reports Rocky 9, so Salt loads its yum/dnf package module and the
# formula its RedHat parameters (static grains in the minion config win over detected ones).
ROCKY_GRAINS = {
    "os_family": "RedHat",
    "os": "Rocky",
    "osmajorrelease": 9,
    "osrelease": "9.4",
    "osarch": "x86_64",  # rpm's name for it; Debian's dpkg says amd64
}


def run_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get(RUN_ENV, DEFAULT_RUN_ROOT))


def run_dir_for(name: str) -> pathlib.Path:
    """Where a cluster keeps its generated files, logs and state."""
    return run_root() / name


class ClusterError(RuntimeError):
    """The cluster could not be brought up or driven."""


class Cluster:
    """A running test cluster built from a :class:`ClusterSpec`.

    ``start()``/``stop()`` or use it as a context manager.  ``detach()`` after ``start()`` keeps
    the cluster running when this process exits (the demo does that).
    """

    def __init__(self, spec: ClusterSpec, repo_root: pathlib.Path = REPO_ROOT, log=print):
        self.spec = spec
        self.repo_root = pathlib.Path(repo_root)
        self.run_dir = run_dir_for(spec.name)
        self.log = log
        self.venv = _current_venv()
        self.rootfs: pathlib.Path | None = None
        self.rootfs_by_family: dict[str, pathlib.Path] = {}
        self.timings: dict[str, float | None] = {}
        self.repo_is_simulator = False
        self._state: dict = {}
        self._atexit_registered = False
        self._old_sigterm = None

    @classmethod
    def attach(cls, spec: ClusterSpec, repo_root: pathlib.Path = REPO_ROOT, log=print) -> Cluster:
        """A handle on a cluster started by another process (from its state file)."""
        cluster = cls(spec, repo_root, log)
        state = load_state(cluster.run_dir)
        if state is None:
            raise ClusterError(f"cluster {spec.name} is not running (no {cluster.run_dir})")
        cluster._state = state
        cluster.rootfs = pathlib.Path(state["rootfs"])
        cluster.rootfs_by_family = {
            family: pathlib.Path(path)
            for family, path in state.get("rootfs_by_family", {"Debian": state["rootfs"]}).items()
        }
        return cluster

    @property
    def state(self) -> dict:
        """A copy of what the cluster has recorded about itself (pids, bridge, cgroups...)."""
        return json.loads(json.dumps(self._state))

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> Cluster:
        """Bring the whole cluster up; on any failure (or Ctrl-C) tear down what was made."""
        self._install_guards()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        left = teardown(self.run_dir)
        if left:
            raise ClusterError(f"a previous run left things behind: {left}")
        if left is not None:
            self.log(f"cleaned up a previous run in {self.run_dir}")
        self._ensure_rootfs()
        self._check_interpreter()
        self._new_state()
        self._write_node_files()
        self._create_bridge()
        self._make_gpu_devices()
        self._serve_repo()
        self.write_pillar(*pillar.cluster_pillar(self.spec, self.repo_root), refresh=False)
        self._start_master()
        began = time.monotonic()
        booted = [node.hostname for node in self.spec.nodes if node.boot]
        for hostname in booted:
            self._boot(hostname)
        self.wait_for_minions(booted)
        self.timings["boot_to_minions"] = time.monotonic() - began
        self._record_bridge_ports()
        self.sync_all()

    def stop(self) -> list[str]:
        """Tear everything down; returns what could not be removed (empty when clean)."""
        began = time.monotonic()
        with _signals_blocked():
            left = teardown(self.run_dir) or []
        self.timings["teardown"] = time.monotonic() - began
        self._remove_guards()
        self._state = {}
        return left

    def detach(self) -> None:
        """Leave the cluster running after this process exits."""
        self._remove_guards()

    def _install_guards(self) -> None:
        atexit.register(self.stop)
        self._atexit_registered = True
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_system_exit)

    def _remove_guards(self) -> None:
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # --- state file --------------------------------------------------------------------------

    def _new_state(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._state = {
            "name": self.spec.name,
            "run_dir": str(self.run_dir),
            "bridge": self.spec.bridge,
            "host_address": self.spec.host_address,
            "rootfs": str(self.rootfs),
            "rootfs_by_family": {f: str(p) for f, p in self.rootfs_by_family.items()},
            "nodes": {},
            "services": [],
            "cgroups": [],
            "bridge_ports": [],
            "links": {},  # hostname -> the host side of its veth
        }
        self._save_state()

    def _save_state(self) -> None:
        tmp = self.run_dir / "state.json.tmp"
        tmp.write_text(json.dumps(self._state, indent=1))
        os.replace(tmp, self.run_dir / "state.json")

    # --- preparation -------------------------------------------------------------------------

    def _ensure_rootfs(self) -> None:
        """The cached tree of each OS family the cluster's nodes use (RedHat: rpm + dnf)."""
        built = []
        for family in sorted(self.spec.families()):
            tree, seconds = rootfs.ensure_rootfs(rootfs.RECIPES[family], log=self.log)
            self.rootfs_by_family[family] = tree
            built.append(seconds)
        self.rootfs = self.rootfs_by_family.get("Debian") or next(
            iter(self.rootfs_by_family.values())
        )
        done = [b for b in built if b is not None]
        self.timings["rootfs_build"] = sum(done) if done else None

    def _check_interpreter(self) -> None:
        """The venv is bound into the nodes: the interpreter it points at must exist there."""
        target = pathlib.Path(os.path.realpath(self.venv / "bin" / "python"))
        for tree in self.rootfs_by_family.values():
            if not (tree / target.relative_to("/")).exists():
                raise ClusterError(f"node rootfs has no {target}, which {self.venv} needs")

    def _write_node_files(self) -> None:
        etc = self.run_dir / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(self._hosts_file())
        (etc / "resolv.conf").write_text("# names come from /etc/hosts\n")
        (etc / "salt-minion.service").write_text(MINION_UNIT.format(venv=self.venv))
        (etc / "minion-wants.conf").write_text("[Unit]\nWants=salt-minion.service\n")
        (etc / "system.conf").write_text(self._manager_config())
        for node in self.spec.nodes:
            ndir = self.run_dir / "nodes" / node.hostname
            ndir.mkdir(parents=True, exist_ok=True)
            (ndir / "hostname").write_text(node.hostname + "\n")
            (ndir / "host0.network").write_text(self._network_file(node.hostname))
            (ndir / "minion.conf").write_text(self._minion_config(node.hostname))

    def _manager_config(self) -> str:
        """systemd manager defaults for the nodes: environment every service inherits."""
        env = simulator_environment()
        for key, value in env.items():
            self.log(f"nodes' services get {key}={value} (this host's limit)")
        lines = ["[Manager]"] + [f"DefaultEnvironment={k}={v}" for k, v in env.items()]
        return "\n".join(lines) + "\n"

    def _hosts_file(self) -> str:
        lines = ["127.0.0.1\tlocalhost", f"{self.spec.host_address}\tsalt {self.spec.name}-host"]
        lines += [f"{self.spec.address(h)}\t{h}" for h in self.spec.hostnames()]
        lines += [f"{self.spec.alias_address(name)}\t{name}" for name, _ in self.spec.aliases]
        return "\n".join(lines) + "\n"

    def _network_file(self, hostname: str) -> str:
        return (
            "[Match]\nName=host0\n\n[Network]\n"
            f"Address={self.spec.address(hostname)}/24\n"
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
        )

    def _minion_config(self, hostname: str) -> str:
        publish, ret = self.spec.salt_ports
        grains = ROCKY_GRAINS if self.spec.node(hostname).family == "RedHat" else {}
        grains = {**grains, **dict(self.spec.node(hostname).grains)}
        return json.dumps(
            {
                **({"grains": grains} if grains else {}),
                "id": hostname,
                "master": self.spec.host_address,
                "publish_port": publish,
                "master_port": ret,
                "ipv6": False,
                "enable_fqdns_grains": False,
                "acceptance_wait_time": 1,
                "acceptance_wait_time_max": 5,
                "random_reauth_delay": 0,
                "recon_default": 500,
                "recon_max": 3000,
                "log_level_logfile": "info",
            },
            indent=1,
        )

    def _create_bridge(self) -> None:
        bridge = self.spec.bridge
        if procs.link_exists(bridge):
            raise ClusterError(f"network interface {bridge} already exists")
        self._state["bridge_created"] = True  # recorded first: a kill right after leaves no trace
        self._save_state()
        procs.ip("link", "add", bridge, "type", "bridge")
        procs.ip("addr", "add", f"{self.spec.host_address}/24", "dev", bridge)
        procs.ip("link", "set", bridge, "up")

    def _make_gpu_devices(self) -> None:
        for node in self.spec.nodes:
            ddir = self.run_dir / "dev" / node.hostname
            ddir.mkdir(parents=True, exist_ok=True)
            for minor in range(node.gpus):
                device = ddir / f"nvidia{minor}"
                os.mknod(device, stat.S_IFCHR, os.makedev(NVIDIA_MAJOR, minor))
                device.chmod(0o666)

    def rebuild_repo(self, broken: tuple[str, ...] = ()) -> None:
        """Rebuild the served repository in place, with ``broken`` simulator versions (their
        craned lacks csupervisor) besides the spec's versions; ``()`` removes them again."""
        build_apt_repo(self.run_dir / "repo", self.spec.repo_versions, broken)
        self._build_rpm_repo(broken)

    def _build_rpm_repo(self, broken: tuple[str, ...] = ()) -> None:
        """The yum repository of RedHat nodes, beside the apt one (only when a node needs it)."""
        if "RedHat" in self.spec.families():
            from tests.cranesim.rpm import build_rpm_repo  # noqa: PLC0415 - needs rpmbuild

            out = self.run_dir / "repo" / RPM_REPO_DIR
            build_rpm_repo(out, list(self.spec.repo_versions), list(broken))

    def _serve_repo(self) -> None:
        """Build the apt repository (simulator packages when available) and serve it."""
        repo = self.run_dir / "repo"
        repo, self.repo_is_simulator = build_apt_repo(repo, self.spec.repo_versions)
        self._build_rpm_repo()
        if not self.repo_is_simulator:
            self.log("tests/cranesim/build.py not found: serving an empty apt repository")
        cmd = [sys.executable, "-m", "http.server", "--bind", self.spec.host_address]
        cmd += ["--directory", str(repo), str(self.spec.http_port)]
        self._spawn("http", "repo", cmd, self.run_dir / "logs" / "http.log")
        _wait_port(self.spec.host_address, self.spec.http_port, 30)

    # --- salt-master -------------------------------------------------------------------------

    @property
    def master_dir(self) -> pathlib.Path:
        return self.run_dir / "master"

    @property
    def fileserver_dir(self) -> pathlib.Path:
        """Served as ``salt://`` after the formula: see :meth:`publish_install_files`."""
        return self.run_dir / "fileserver"

    def publish_install_files(self, version: str) -> dict[str, str]:
        """Put one version's package files and single-file binaries under ``salt://``, for the
        ``files`` and ``binaries`` install methods: ``salt://crane-packages/{deb,rpm}/<file>``
        and ``salt://crane-binaries/<program>``.  Returns {"deb"|"rpm"|"binaries": salt URL}."""
        from tests.cranesim import build  # noqa: PLC0415 - the simulator, built elsewhere

        packages = self.fileserver_dir / "crane-packages"
        for kind, pattern in (("deb", f"*{version}*.deb"), ("rpm", f"*{version}*.rpm")):
            source = self.run_dir / "repo" / (RPM_REPO_DIR if kind == "rpm" else "")
            (packages / kind).mkdir(parents=True, exist_ok=True)
            for path in source.glob(pattern):
                shutil.copyfile(path, packages / kind / path.name)
        build.build_binaries(self.fileserver_dir / "crane-binaries", version)
        return {
            "deb": "salt://crane-packages/deb",
            "rpm": "salt://crane-packages/rpm",
            "binaries": "salt://crane-binaries",
        }

    def _start_master(self) -> None:
        self.fileserver_dir.mkdir(parents=True, exist_ok=True)
        root = self.master_dir / "root"
        publish, ret = self.spec.salt_ports
        config = {
            "interface": self.spec.host_address,
            "publish_port": publish,
            "ret_port": ret,
            "ipv6": False,
            "user": "root",
            "root_dir": str(root),
            "pki_dir": str(root / "pki"),
            "cachedir": str(root / "cache"),
            "sock_dir": str(root / "sock"),
            "pidfile": str(root / "salt-master.pid"),
            "log_file": str(self.run_dir / "logs" / "master.log"),
            "key_logfile": str(self.run_dir / "logs" / "key.log"),
            "auto_accept": True,
            "worker_threads": 4,
            "file_roots": {
                "base": [
                    str(self.repo_root / "salt" / "states"),
                    str(self.repo_root / "salt"),
                    str(self.fileserver_dir),
                ]
            },
            "pillar_roots": {"base": [str(self.run_dir / "pillar")]},
            "ext_pillar": [],
            "reactor": [{tag: [sls]} for tag, sls in self.spec.reactors],
        }
        self.master_dir.mkdir(parents=True, exist_ok=True)
        (self.master_dir / "master").write_text(json.dumps(config, indent=1))
        cmd = [sys.executable, str(self.venv / "bin" / "salt-master"), "-c", str(self.master_dir)]
        self._spawn("master", "salt-master", cmd, self.run_dir / "logs" / "master.out")
        _wait_port(self.spec.host_address, ret, 60)

    # --- nodes -------------------------------------------------------------------------------

    def _boot(self, hostname: str) -> None:
        """Start one node's systemd-nspawn in a cgroup of its own and find its leader."""
        machine = self.spec.machine_name(hostname)
        cgroups = procs.node_cgroups(machine)
        self._state["cgroups"] = sorted(set(self._state["cgroups"]) | set(map(str, cgroups)))
        log = self.run_dir / "nodes" / hostname / "console.log"
        proc = subprocess.Popen(
            procs.in_new_cgroups(cgroups, self._nspawn_command(hostname)),
            stdin=subprocess.DEVNULL,
            stdout=open(log, "ab"),  # noqa: SIM115 - handed to the child
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ports_before = set(procs.bridge_ports(self.spec.bridge))
        self._state["nodes"][hostname] = {"nspawn": procs.record(proc, "nspawn", hostname)}
        self._save_state()
        leader = self._find_leader(proc, log)
        entry = self._state["nodes"][hostname]
        entry["leader"] = {
            "kind": "leader",
            "name": hostname,
            "pid": leader,
            "start": procs.start_time(leader),
        }
        link = self._new_port(ports_before)
        if link:
            self._state["links"][hostname] = link
        self._save_state()

    def _new_port(self, before: set[str], timeout: float = 10) -> str | None:
        """The veth systemd-nspawn adds to the bridge for the node just started (it may shorten
        a long name with a hash, so it is looked up, not derived)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            added = set(procs.bridge_ports(self.spec.bridge)) - before
            if added:
                return added.pop()
            time.sleep(0.05)
        return None

    def _nspawn_command(self, hostname: str) -> list[str]:
        run, node = self.run_dir, self.run_dir / "nodes" / hostname
        binds = {
            node / "hostname": "/etc/hostname",
            run / "etc" / "hosts": "/etc/hosts",
            run / "etc" / "resolv.conf": "/etc/resolv.conf",
            node / "host0.network": "/etc/systemd/network/10-test-cluster.network",
            node / "minion.conf": "/etc/salt/minion.d/10-test-cluster.conf",
            run / "etc" / "salt-minion.service": "/etc/systemd/system/salt-minion.service",
            run / "etc" / "system.conf": "/etc/systemd/system.conf.d/10-test-cluster.conf",
            run / "etc" / "minion-wants.conf": (
                "/etc/systemd/system/multi-user.target.d/50-salt-minion.conf"
            ),
        }
        cmd = [
            "systemd-nspawn",
            "--quiet",
            f"--directory={self.rootfs_by_family[self.spec.node(hostname).family]}",
            f"--machine={self.spec.machine_name(hostname)}",
            f"--hostname={hostname}",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--volatile=overlay",
            f"--network-bridge={self.spec.bridge}",
            "--console=read-only",
            "--link-journal=no",
            "--resolv-conf=off",
            # As on a real host, root may raise its limits (craned sets RLIMIT_NOFILE to 640000).
            "--capability=CAP_SYS_RESOURCE",
            f"--bind-ro={self.venv}",
        ]
        cmd += [f"--bind-ro={src}:{dst}" for src, dst in binds.items()]
        for dev in sorted((run / "dev" / hostname).glob("nvidia*")):
            cmd.append(f"--bind={dev}:/dev/{dev.name}")
        for folder, target in self.spec.node(hostname).binds:
            source = run / "binds" / folder
            source.mkdir(parents=True, exist_ok=True)
            source.chmod(0o777)  # like an export every node's service users may write
            cmd.append(f"--bind={source}:{target}")
        return cmd

    def _find_leader(self, proc: subprocess.Popen, log: pathlib.Path) -> int:
        """The container's init: the child of systemd-nspawn in another PID namespace."""
        own_ns = os.readlink("/proc/self/ns/pid")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise ClusterError(f"systemd-nspawn exited ({proc.returncode}):\n{tail}")
            for child in procs.children(proc.pid):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{child}/ns/pid") != own_ns:
                        return child
            time.sleep(0.05)
        raise ClusterError(f"no container leader under systemd-nspawn pid {proc.pid}")

    def leader(self, hostname: str) -> int:
        """PID (on the host) of a node's init."""
        try:
            return self._state["nodes"][hostname]["leader"]["pid"]
        except KeyError:
            raise ClusterError(f"node {hostname} is not running") from None

    def stop_node(self, hostname: str) -> None:
        """Shut a node down (its overlay, hence all its changes, is discarded)."""
        entry = self._state["nodes"].pop(hostname)
        procs.stop([entry["nspawn"]], NODE_STOP_WAIT)
        procs.stop([entry["leader"]], 5)
        self._save_state()
        for path in procs.node_cgroups(self.spec.machine_name(hostname)):
            procs.remove_cgroup(path)
        link = self._state.get("links", {}).get(hostname)
        procs.remove_links([link] if link else [])

    def boot_node(self, hostname: str) -> None:
        """Boot a node that was not booted with the cluster (``NodeSpec.boot=False``); its
        minion starts on its own (auto-accepted key), the test waits for what it needs."""
        if hostname in self._state["nodes"]:
            raise ClusterError(f"node {hostname} is already running")
        self._boot(hostname)
        self._record_bridge_ports()

    def start_node(self, hostname: str) -> None:
        """Boot a node again from the clean image; its new minion key replaces the old one."""
        self._salt_key("-y", "-d", hostname)
        self._boot(hostname)
        self.wait_for_minions([hostname])
        self.salt(hostname, "saltutil.sync_all")

    # --- driving the cluster -----------------------------------------------------------------

    def sh(self, hostname: str, command: str, check: bool = False, timeout: float | None = None):
        """Run a shell command inside a node; returns the CompletedProcess (text)."""
        return subprocess.run(
            [*self.nsenter_command(hostname), "/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def nsenter_command(self, hostname: str) -> list[str]:
        """Command prefix that enters a node's namespaces with a clean environment."""
        return [
            "nsenter",
            f"--target={self.leader(hostname)}",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--root",
            "--wd",
            "--",
            "/usr/bin/env",
            "-i",
            f"PATH={NODE_PATH}",
            "HOME=/root",
            "LANG=C.UTF-8",
            "TERM=" + os.environ.get("TERM", "dumb"),
        ]

    def salt_cli(self, *args: str, timeout: float = CLI_HANG_LIMIT, capture: bool = True):
        """Run the ``salt`` CLI against this cluster's master (killed if it hangs)."""
        cmd = [sys.executable, str(self.venv / "bin" / "salt"), "-c", str(self.master_dir)]
        return subprocess.run(
            [*cmd, *args], capture_output=capture, text=True, check=False, timeout=timeout
        )

    def salt(self, target: str, fun: str, *args, tgt_type: str = "glob", timeout: int = 120, **kw):
        """``salt TARGET FUN ARGS`` → parsed ``{minion: return}``."""
        argv = ["--out=json", "--static", f"--timeout={timeout}", *_TARGET_FLAGS[tgt_type]]
        argv += [target, fun, *_cli_args(args, kw)]
        proc = self.salt_cli(*argv)
        if proc.stdout.startswith(NO_MINIONS_MATCHED):
            return {}
        return _parse_json(proc, "salt " + " ".join(argv))

    def salt_run(self, fun: str, *args, timeout: int = 300, **kw):
        """``salt-run FUN ARGS`` → parsed return."""
        cmd = [sys.executable, str(self.venv / "bin" / "salt-run"), "-c", str(self.master_dir)]
        # salt-run has no --static: it rejects the flag and prints nothing.
        argv = ["--out=json", f"--timeout={timeout}", fun, *_cli_args(args, kw)]
        proc = subprocess.run(
            [*cmd, *argv], capture_output=True, text=True, check=False, timeout=CLI_HANG_LIMIT
        )
        if proc.returncode and not proc.stdout.strip():
            raise ClusterError(f"salt-run {' '.join(argv)} failed: {proc.stderr.strip()[-2000:]}")
        return _parse_json(proc, "salt-run " + " ".join(argv))

    def _salt_key(self, *args: str) -> None:
        cmd = [sys.executable, str(self.venv / "bin" / "salt-key"), "-c", str(self.master_dir)]
        subprocess.run([*cmd, *args], capture_output=True, check=False, timeout=CLI_HANG_LIMIT)

    def wait_for_minions(self, hostnames: list[str], timeout: float = MINION_WAIT) -> None:
        """Block until every named minion answers ``test.ping``."""
        deadline = time.monotonic() + timeout
        missing = set(hostnames)
        while missing:
            answers = self.salt(",".join(sorted(missing)), "test.ping", tgt_type="list", timeout=5)
            missing -= {m for m, ok in answers.items() if ok is True}
            if missing and time.monotonic() > deadline:
                raise ClusterError(f"minions not answering after {timeout}s: {sorted(missing)}")
            if missing:
                time.sleep(1)

    def sync_all(self) -> None:
        """Push the formula's custom modules to minions and the master."""
        self.salt("*", "saltutil.sync_all")
        self.salt_run("saltutil.sync_all")

    def write_pillar(self, sls: dict[str, dict], top: dict, refresh: bool = True) -> None:
        """Replace the served pillar tree (``{"crane.cluster": data}``, top) and refresh it."""
        pillar.write_tree(self.run_dir / "pillar", sls, top)
        if refresh:
            self.salt("*", "saltutil.refresh_pillar", wait=True)

    def _record_bridge_ports(self) -> None:
        ports = set(self._state["bridge_ports"]) | set(procs.bridge_ports(self.spec.bridge))
        self._state["bridge_ports"] = sorted(ports)
        self._save_state()

    def _spawn(self, kind: str, name: str, cmd: list[str], log: pathlib.Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=open(log, "ab"),  # noqa: SIM115 - handed to the child
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._state["services"].append(procs.record(proc, kind, name))
        self._save_state()


# --- teardown, usable without a Cluster object (demo down, crashed runs) -----------------------


def load_state(run_dir: pathlib.Path) -> dict | None:
    try:
        return json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return None


def teardown(run_dir: pathlib.Path) -> list[str] | None:
    """Stop and remove everything recorded in ``run_dir``; None when there was nothing.

    Returns what is still left afterwards (an empty list when the host is clean).
    """
    state = load_state(run_dir)
    if state is None:
        if run_dir.exists():
            shutil.rmtree(run_dir)
            return []
        return None
    nodes = state.get("nodes", {}).values()
    procs.stop([n["nspawn"] for n in nodes if "nspawn" in n], NODE_STOP_WAIT)
    procs.stop([n["leader"] for n in nodes if "leader" in n], 5)
    procs.stop(state.get("services", []), 15, group=True)
    _stop_strays(state)
    for path in state.get("cgroups", []):
        procs.remove_cgroup(pathlib.Path(path))
    procs.remove_links(_node_links(state))
    if state.get("bridge_created") and procs.link_exists(state["bridge"]):
        procs.ip("link", "del", state["bridge"])
    for directory in _propagate_dirs(state):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty: nspawn's own, left when /run is not tmpfs
    shutil.rmtree(run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        run_dir.parent.rmdir()  # the shared run root, once no cluster uses it
    return leftovers_of(state)


def _node_links(state: dict) -> list[str]:
    """The nodes' host-side veths: those recorded, and those on a bridge of our own now."""
    links = set(state.get("bridge_ports", []))
    links |= set(state.get("links", {}).values())
    if state.get("bridge_created"):
        links |= set(procs.bridge_ports(state["bridge"]))
    return sorted(links)


def leftovers_of(state: dict) -> list[str]:
    """Anything of a torn-down cluster still present on the host, described in words."""
    left = []
    records = [r for n in state.get("nodes", {}).values() for r in n.values()]
    records += state.get("services", [])
    left += [f"process {r['kind']} {r['name']} pid {r['pid']}" for r in records if _alive(r)]
    left += [f"process {pid} refers to {state['run_dir']}" for pid in _pids_using(state)]
    if state.get("bridge_created") and procs.link_exists(state["bridge"]):
        left.append(f"bridge {state['bridge']}")
    left += [f"link {port}" for port in _node_links(state) if procs.link_exists(port)]
    left += [f"mount {m}" for m in _mounts_under(state["run_dir"])]
    left += [f"cgroup {c}" for c in state.get("cgroups", []) if pathlib.Path(c).exists()]
    left += [f"directory {d}" for d in _propagate_dirs(state) if d.exists()]
    if pathlib.Path(state["run_dir"]).exists():
        left.append(f"directory {state['run_dir']}")
    return left


def _stop_strays(state: dict) -> None:
    """Stop CLI calls a killed run left waiting on its (now gone) master.

    Only processes whose command line names this cluster's own run directory are touched.
    """
    strays = []
    for pid in _pids_using(state):
        started = procs.start_time(pid)
        if started is not None:
            strays.append({"kind": "stray", "name": str(pid), "pid": pid, "start": started})
    procs.stop(strays, 5)


def _propagate_dirs(state: dict) -> list[pathlib.Path]:
    """Per-machine directories systemd-nspawn makes on the host for mount propagation."""
    base = pathlib.Path(NSPAWN_PROPAGATE)
    return [base / f"{state['name']}-{hostname}" for hostname in state.get("nodes", {})]


def _alive(rec: dict) -> bool:
    return procs.is_running(rec)


def _pids_using(state: dict) -> list[int]:
    """Processes whose command line mentions the run directory (ours excluded)."""
    marker = state["run_dir"].encode()
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def _mounts_under(path: str) -> list[str]:
    mounts = pathlib.Path("/proc/self/mountinfo").read_text().splitlines()
    return [line.split()[4] for line in mounts if line.split()[4].startswith(path)]


# --- small helpers -------------------------------------------------------------------------------

_TARGET_FLAGS = {
    "glob": [],
    "list": ["-L"],
    "grain": ["-G"],
    "pcre": ["-E"],
    "pillar": ["-I"],
    "compound": ["-C"],
}


def _cli_args(args: tuple, kwargs: dict) -> list[str]:
    """Salt CLI arguments; non-strings as JSON (which Salt's YAML parser reads back)."""

    def render(value):
        return value if isinstance(value, str) else json.dumps(value)

    return [render(a) for a in args] + [f"{k}={render(v)}" for k, v in kwargs.items()]


def _parse_json(proc: subprocess.CompletedProcess, what: str):
    text = proc.stdout.strip()
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        raise ClusterError(f"{what}: output is not JSON:\n{text[-2000:]}\n{proc.stderr}") from None


def build_apt_repo(out_dir: pathlib.Path, versions, broken=()) -> tuple[pathlib.Path, bool]:
    """Build the simulator's apt repository; an empty one when the simulator is absent."""
    try:
        from tests.cranesim.build import build_repo  # noqa: PLC0415 - optional, built elsewhere
    except ModuleNotFoundError as exc:
        if exc.name not in ("tests.cranesim", "tests.cranesim.build"):
            raise
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "Packages").write_text("")
        return out_dir, False
    return pathlib.Path(build_repo(out_dir, list(versions), list(broken))), True


def simulator_environment() -> dict[str, str]:
    """Tell the simulated craned about host limits it cannot exceed, as on a real host it could.

    craned raises RLIMIT_NOFILE to 640000 and exits when that fails.  Nodes get
    CAP_SYS_RESOURCE only if this host has it; otherwise the host's hard limit is the ceiling.
    """
    if _has_capability(CAP_SYS_RESOURCE):
        return {}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return {} if hard >= CRANED_NOFILE else {"CRANESIM_NOFILE": str(hard)}


def _has_capability(bit: int) -> bool:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def _current_venv() -> pathlib.Path:
    if sys.prefix == sys.base_prefix:
        raise ClusterError("run from the project's virtualenv: it is bound into the nodes")
    return pathlib.Path(sys.prefix)


def _wait_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"nothing listens on {host}:{port} after {timeout}s")
        time.sleep(0.2)


def _raise_system_exit(signum, _frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _signals_blocked():
    """Let teardown finish even if Ctrl-C or SIGTERM arrives meanwhile."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
