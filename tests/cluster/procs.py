"""Host-side helpers: processes we start (identified by pid + start time), cgroups, links."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import time

CGROUP_PREFIX = "crane-formula-"


def start_time(pid: int) -> int | None:
    """Kernel start time of a process (field 22 of stat), None when it does not exist."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_running(record: dict) -> bool:
    """True when the recorded process still exists and is the same process (not a reused pid)."""
    started = start_time(record["pid"])
    return started is not None and started == record["start"] and not _is_zombie(record["pid"])


def _is_zombie(pid: int) -> bool:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def record(proc: subprocess.Popen, kind: str, name: str) -> dict:
    """What the state file keeps about a started process."""
    return {"kind": kind, "name": name, "pid": proc.pid, "start": start_time(proc.pid)}


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    result = []
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*"):
        try:
            result += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return result


def signal_record(rec: dict, sig: int, group: bool = False) -> None:
    """Send a signal to a recorded process (or its process group) if it is still ours."""
    if not is_running(rec):
        return
    try:
        if group:
            os.killpg(rec["pid"], sig)
        else:
            os.kill(rec["pid"], sig)
    except ProcessLookupError:
        pass


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for entry in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def wait_gone(records: list[dict], timeout: float, group: bool = False) -> bool:
    """Wait until none of the recorded processes (or their groups) runs; reap our children."""
    deadline = time.monotonic() + timeout
    while True:
        for rec in records:
            _reap(rec["pid"])
        running = [r for r in records if is_running(r)]
        if group:
            running += [r for r in records if group_members(r["pid"])]
        if not running:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect the exit status of a process we started (no-op for others)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(records: list[dict], timeout: float, group: bool = False) -> None:
    """SIGTERM, wait, then SIGKILL what is left (whole process groups when ``group``)."""
    for rec in records:
        signal_record(rec, signal.SIGTERM, group)
    if not wait_gone(records, timeout, group):
        for rec in records:
            signal_record(rec, signal.SIGKILL, group)
            if group:
                _kill_group(rec["pid"])
        wait_gone(records, 10, group)


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of a group whose leader (our recorded process) already exited."""
    if group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


# --- cgroups ---------------------------------------------------------------------------------
# With --keep-unit, systemd-nspawn puts the container in "payload" below its own cgroup.  Two
# containers started from one cgroup would share it (and kill each other's services), so each
# node's nspawn runs in a cgroup of its own, created in every hierarchy nspawn uses.


def cgroup_bases() -> list[pathlib.Path]:
    """Our current cgroup in the named systemd hierarchy and in the unified one."""
    mounts = _cgroup_mounts()
    bases = []
    for line in pathlib.Path("/proc/self/cgroup").read_text().splitlines():
        hid, controllers, path = line.split(":", 2)
        key = "unified" if hid == "0" else controllers
        if key in mounts:
            bases.append(pathlib.Path(mounts[key] + path))
    return bases


def _cgroup_mounts() -> dict[str, str]:
    mounts = {}
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        left, right = line.split(" - ", 1)
        fstype, _source, options = right.split()[:3]
        point = left.split()[4]
        if fstype == "cgroup2":
            mounts["unified"] = point
        elif fstype == "cgroup" and "name=systemd" in options.split(","):
            mounts["name=systemd"] = point
    return mounts


def node_cgroups(machine: str) -> list[pathlib.Path]:
    return [base / f"{CGROUP_PREFIX}{machine}" for base in cgroup_bases()]


# Moves itself into each cgroup given before "--", then execs the rest of the arguments.
_ENTER_CGROUPS = (
    'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 1; shift; done; shift; exec "$@"'
)


def in_new_cgroups(paths: list[pathlib.Path], command: list[str]) -> list[str]:
    """Wrap a command so that it starts inside freshly made cgroups."""
    for path in paths:
        path.mkdir(exist_ok=True)
    return ["/bin/sh", "-c", _ENTER_CGROUPS, "sh", *map(str, paths), "--", *command]


def remove_cgroup(path: pathlib.Path) -> bool:
    """Remove a cgroup tree bottom-up; False if something still lives in it."""
    if not path.exists():
        return True
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            sub.rmdir()
        except OSError:
            return False
    try:
        path.rmdir()
    except OSError:
        return False
    return True


# --- links -------------------------------------------------------------------------------------


def link_exists(name: str) -> bool:
    return pathlib.Path(f"/sys/class/net/{name}").exists()


def bridge_ports(bridge: str) -> list[str]:
    brif = pathlib.Path(f"/sys/class/net/{bridge}/brif")
    return sorted(p.name for p in brif.iterdir()) if brif.exists() else []


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def remove_links(names: list[str], timeout: float = 10) -> None:
    """Delete links that outlived their node and wait until they are gone.

    A node's veth goes with its network namespace, which the kernel frees later (and later
    still under load) when the node was killed: deleting the host side removes both ends now.
    """
    for name in names:
        if link_exists(name):
            with contextlib.suppress(subprocess.CalledProcessError):
                ip("link", "del", name)
    deadline = time.monotonic() + timeout
    while any(link_exists(n) for n in names) and time.monotonic() < deadline:
        time.sleep(0.1)
