"""The simulated craned: start-up checks, the registration handshake, pings and fake jobs."""

import contextlib
import json
import os
import resource
import socket
import threading
import time
import uuid

from cranesim import VERSION, craned_config, daemon
from cranesim.common import (
    RpcError,
    create_folders_for_file,
    die,
    die_silent,
    resolve,
    rpc_call,
    serve_forever,
    serve_unix,
)

CGROUP_ROOT_ENV = "CRANESIM_CGROUP_ROOT"  # test hook: where the cgroup root is read
NOFILE_ENV = "CRANESIM_NOFILE"  # test hook: RLIMIT_NOFILE target for unprivileged test runs
STEPS_FILE = "craned/cranesim_steps.json"  # stands in for surviving csupervisor processes


class StepStore:
    """Jobs running on this node; they outlive a craned restart like csupervisor does."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.jobs = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as stream:
                self.jobs = {int(k): v for k, v in json.load(stream).items()}

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as stream:
            json.dump(self.jobs, stream)
        os.replace(tmp, self.path)

    def add(self, job):
        with self.lock:
            self.jobs[int(job["job_id"])] = job
            self.save()

    def remove(self, job_id):
        with self.lock:
            self.jobs.pop(int(job_id), None)
            self.save()

    def keep_only(self, job_ids):
        """Drop jobs cranectld no longer expects; return the expected ones we lost."""
        wanted = {int(j) for j in job_ids}
        with self.lock:
            lost = sorted(wanted - set(self.jobs))
            self.jobs = {k: v for k, v in self.jobs.items() if k in wanted}
            self.save()
        return lost

    def running_of(self, uid):
        """Ids of ``uid``'s jobs still running here, oldest first."""
        now = time.time()
        with self.lock:
            return sorted(
                job_id
                for job_id, job in self.jobs.items()
                if job.get("uid") == uid and job["start_time"] + job["seconds"] > now
            )

    def finished(self):
        now = time.time()
        with self.lock:
            return [j for j in self.jobs.values() if j["start_time"] + j["seconds"] <= now]


class CtldClient:
    """craned's side of registration: ``CranedTriggerReverseConn`` to cranectld's internal port,
    wait for the ``Configure`` cranectld sends over its channel to craned, then ``CranedRegister``
    and periodic ``CranedPing``."""

    def __init__(self, cfg, log, steps):
        self.cfg = cfg
        self.log = log
        self.steps = steps
        self.token = ""
        self.configured = threading.Event()
        self.lost_jobs = []
        self.registered = False
        self.channel = None
        self.start_time = time.time()

    def call(self, request):
        return rpc_call(self.cfg.control_machine, self.cfg.internal_port, request, timeout=5)

    # ------------------------------------------------------------ handlers for cranectld
    def handle(self, req):
        op = req.get("op")
        if op == "configure":
            return self.on_configure(req)
        if op == "execute":
            self.steps.add(req["job"])
            self.log.info(f"Job #{req['job']['job_id']} started.", src="JobManager.cpp:0")
            return {"ok": True}
        return {"ok": False, "error": "unknown op"}

    def on_configure(self, req):
        if req.get("token") != self.token:
            return {"ok": False}
        self.lost_jobs = self.steps.keep_only(req.get("job_ids", []))
        self.configured.set()
        return {"ok": True}

    # ------------------------------------------------------------ state machine
    def run(self, stop):
        while not stop.is_set():
            if not self.registered:
                self.registered = self._handshake(stop)
                if not self.registered:
                    stop.wait(1)
                continue
            if self._wait_ping_due(stop):
                self._ping()

    def _wait_ping_due(self, stop):
        """Sleep until the next ping; False if stopping or the channel broke meanwhile."""
        deadline = time.monotonic() + self.cfg.ping_interval
        while time.monotonic() < deadline:
            if stop.wait(min(0.2, max(deadline - time.monotonic(), 0))) or not self.registered:
                return False
        return True

    def _handshake(self, stop):
        self.token = uuid.uuid4().hex
        self.configured.clear()
        if self._open_channel() is None:
            return False
        try:
            self.call(
                {"op": "trigger_reverse_conn", "craned_id": self.cfg.hostname, "token": self.token}
            )
        except RpcError as exc:
            self.log.debug(f"Failed to connect to CraneCtld: {exc}", src="CtldClient.cpp:0")
            return False
        if not self._wait_configured(stop):
            return False
        return self._register()

    def _wait_configured(self, stop):
        deadline = time.monotonic() + self.cfg.ctld_timeout
        while time.monotonic() < deadline and not stop.is_set():
            if self.configured.wait(0.2):
                return True
        return False

    def _register(self):
        uname = os.uname()
        remote = {
            "craned_version": VERSION,
            "sysname": uname.sysname,
            "release": uname.release,
            "sysver": uname.version,
            "system_boot_time": _boot_time(),
            "craned_start_time": self.start_time,
        }
        request = {
            "op": "register",
            "craned_id": self.cfg.hostname,
            "token": self.token,
            "config_crc": self.cfg.crc,
            "lost_jobs": self.lost_jobs,
            "remote_meta": remote,
        }
        try:
            ok = self.call(request).get("ok", False)
        except RpcError:
            return False
        if ok:
            self.log.info("Craned registered to CraneCtld.", src="CtldClient.cpp:0")
        return ok

    def _ping(self):
        try:
            ok = self.call({"op": "ping", "craned_id": self.cfg.hostname}).get("ok", False)
        except RpcError:
            ok = False
        if not ok:
            self.log.warn(
                "Lost connection to CraneCtld, registering again.", src="CtldClient.cpp:0"
            )
            self.registered = False

    def watch_channel(self, stop):
        """Like gRPC channel-state watching: the connection opened at registration stays
        open; when cranectld goes away the handshake starts again without waiting for a ping."""
        while not stop.wait(0.2):
            channel = self.channel
            if channel is None:
                continue
            _wait_for_eof(channel)
            if channel is self.channel and self.registered:
                self.log.warn(
                    "Channel to CraneCtld is broken, registering again.", src="CtldClient.cpp:0"
                )
                self.registered = False

    def _open_channel(self):
        """A long-lived connection to cranectld's internal port, or None."""
        self._close_channel()
        address = resolve(self.cfg.control_machine)
        try:
            conn = socket.create_connection((address, int(self.cfg.internal_port)), timeout=5)
            hello = {"op": "channel", "craned_id": self.cfg.hostname}
            conn.sendall(json.dumps(hello).encode() + b"\n")
            conn.settimeout(None)
        except (OSError, TypeError, ValueError):
            return None
        self.channel = conn
        return conn

    def _close_channel(self):
        channel, self.channel = self.channel, None
        if channel is not None:
            with contextlib.suppress(OSError):
                channel.shutdown(socket.SHUT_RDWR)
            channel.close()

    def health_check(self, stop):
        """``NodeHealthCheck_``: CPUs, memory (0.01 GiB tolerance) and device files."""
        while not stop.wait(self.cfg.health_interval):
            if self.registered:
                reason = _health_failure(self.cfg.node)
                if reason:
                    self.log.warn(f"Node health check fail: {reason}.", src="CtldClient.cpp:1340")
                    self._drain_self(reason)

    def _drain_self(self, reason):
        request = {"op": "update_node_drain_state", "craned_id": self.cfg.hostname,
                   "drain": True, "reason": reason}  # fmt: skip
        with contextlib.suppress(RpcError):
            self.call(request)

    def report_finished(self, stop):
        """Tell cranectld about jobs whose time is up; retry while it is unreachable."""
        while not stop.wait(0.2):
            for job in self.steps.finished():
                request = {"op": "step_finished", "job_id": job["job_id"], "status": "Completed"}
                try:
                    self.call(request)
                except RpcError:
                    continue
                self.steps.remove(job["job_id"])
                self.log.info(f"Job #{job['job_id']} completed.", src="JobManager.cpp:0")


class PamServer:
    """``CranedForPamServer`` on ``CranedForPamUnixSockPath`` (0600: pam_crane runs as root
    inside sshd). CraneSched first asks the SSH client's host (its craned, or cfored on
    10012) which job owns the client's port; the simulator skips that and goes straight to
    CraneSched's fallback, the user's first job on this node."""

    def __init__(self, steps, log):
        self.steps = steps
        self.log = log

    def handle(self, req):
        op = req.get("op")
        if op == "query_step_from_port":
            jobs = self.steps.running_of(req.get("uid"))
            if not jobs:
                self.log.debug(
                    f"This uid {req.get('uid')} has no job on this node. Reject this ssh request.",
                    src="CranedForPamServer.cpp:0",
                )
                return {"ok": False}
            return {"ok": True, "job_id": jobs[0]}
        if op == "migrate_ssh_proc":
            return {"ok": int(req.get("job_id", 0)) in self.steps.jobs}
        return {"ok": False, "error": "unknown op"}


def _real_memory_gib():
    with open("/proc/meminfo", encoding="utf-8") as stream:
        kib = next(int(line.split()[1]) for line in stream if line.startswith("MemTotal:"))
    return kib / (1 << 20)


def _health_failure(node):
    """The drain reason of a failed health check, or None."""
    if os.sysconf("SC_NPROCESSORS_ONLN") < node["cpu"]:
        return "CPU count mismatch"
    if abs(_real_memory_gib() - node["memory"] / (1 << 30)) > 0.01:
        return "Mem mismatch"
    for _name, _type, devices, _injector, _cdi in node["gres"]:
        if not all(os.path.exists(path) for paths in devices for path in paths):
            return "Device not found"
    return None


def _wait_for_eof(conn):
    """Block until the peer closes ``conn`` (or it is shut down locally)."""
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


def _boot_time():
    try:
        with open("/proc/stat", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("btime "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------- start-up
def _nofile_target():
    """640000, or the test hook's value ("hard" = the current hard limit)."""
    value = os.environ.get(NOFILE_ENV) or "640000"
    if value == "hard":
        return resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return int(value)


def _set_nofile(log):
    """``SetMaxFileDescriptorNumber(640000)``; craned exits when it fails."""
    target = _nofile_target()
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
    except (ValueError, OSError):
        die(log, f"Unable to set file descriptor limits to {target}", "Craned.cpp:1599")


def _check_cgroups(log):
    """cgroup v2 needs cpu, memory and io on the root; v1 needs cpu, memory, devices and blkio
    all mounted. Read from the cgroup root (CRANESIM_CGROUP_ROOT for tests)."""
    root = os.environ.get(CGROUP_ROOT_ENV, "/sys/fs/cgroup")
    controllers_file = os.path.join(root, "cgroup.controllers")
    if os.path.exists(controllers_file):
        with open(controllers_file, encoding="utf-8") as stream:
            present = set(stream.read().split())
        if not {"cpu", "memory", "io"} <= present:
            die(log, "Failed to initialize cpu,memory,IO cgroups controller.", "Craned.cpp:1488")
        return
    v1 = ("cpu", "memory", "devices", "blkio")
    mounted = [os.path.isdir(os.path.join(root, c)) for c in v1]
    if any(mounted) and not all(mounted):
        die(
            log,
            "Failed to initialize cpu,memory,devices,block cgroups controller.",
            src="Craned.cpp:1480",
        )


def start_server(cfg, log):
    """``StartServer()`` and the main loop until SIGTERM/SIGINT."""
    _set_nofile(log)
    _check_cgroups(log)
    for path in (cfg.log_file, os.path.join(cfg.script_dir, "x")):
        if not create_folders_for_file(path):
            die_silent()
    steps = StepStore(os.path.join(cfg.base_dir, STEPS_FILE))
    client = CtldClient(cfg, log, steps)
    try:
        serve_forever(cfg.listen_addr, cfg.listen_port, client.handle, "craned")
    except OSError as exc:
        die(
            log,
            f"Cannot start gRPC server on {cfg.listen_addr}:{cfg.listen_port}: {exc.strerror}",
            src="CranedServer.cpp:0",
        )
    log.info(
        f"Craned is listening on {cfg.listen_addr}:{cfg.listen_port}", src="CranedServer.cpp:0"
    )
    serve_unix(cfg.pam_socket, PamServer(steps, log).handle, "craned-pam")
    log.info(
        f"Craned for pam unix socket is listening on {cfg.pam_socket}",
        src="CranedForPamServer.cpp:0",
    )
    stop = daemon.stop_event()
    threading.Thread(target=client.report_finished, args=(stop,), daemon=True).start()
    threading.Thread(target=client.watch_channel, args=(stop,), daemon=True).start()
    if cfg.health_interval > 0:
        threading.Thread(target=client.health_check, args=(stop,), daemon=True).start()
    client.run(stop)
    log.info("Craned is ending.", src="Craned.cpp:0")


def main(argv=None):
    """Entry point of /usr/bin/craned."""
    return daemon.run("Craned", craned_config, start_server, argv)
