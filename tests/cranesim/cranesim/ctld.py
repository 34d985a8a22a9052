"""The simulated cranectld: node registry, drain state, cluster queries, persistent jobs."""

import errno
import json
import os
import resource
import sys
import threading
import time
import zlib
from dataclasses import dataclass

from cranesim import ctld_config, daemon
from cranesim.common import (
    RpcError,
    create_folders_for_file,
    die,
    dispatch,
    gethostname,
    knob_seconds,
    rpc_call,
    serve_forever,
)
from cranesim.config import compress, expand, tls_enabled

RESOURCE_STATES = ["CRANE_IDLE", "CRANE_MIX", "CRANE_ALLOC", "CRANE_DOWN"]
CONTROL_STATES = [
    "CRANE_NONE",
    "CRANE_DRAIN",
    "CRANE_POWEROFF",
    "CRANE_SLEEP",
    "CRANE_WAKE",
    "CRANE_POWERON",
    "CRANE_UNREGISTER_POWER",
]
POWER_STATES = [
    "CRANE_POWER_ACTIVE",
    "CRANE_POWER_IDLE",
    "CRANE_POWER_SLEEPING",
    "CRANE_POWER_POWEREDOFF",
    "CRANE_POWER_TO_SLEEPING",
    "CRANE_POWER_WAKING_UP",
    "CRANE_POWER_POWERING_ON",
    "CRANE_POWER_POWERING_OFF",
]
LOST_STEP_REASON = "Craned re-registered but step lost."


@dataclass
class NodeMeta:
    """cranectld's in-memory view of one craned (nothing here is persisted)."""

    spec: object
    alive: bool = False
    drain: bool = False
    reason: str = ""
    power: str = "CRANE_POWER_IDLE"
    version: str = ""
    sysname: str = "unknown"
    release: str = ""
    sysver: str = ""
    boot_time: float = 0
    start_time: float = 0
    last_busy: float = 0
    last_ping: float = 0
    token: str = ""
    channel: int = 0


class JobStore:
    """Jobs kept in the embedded DB so they survive a cranectld restart.

    ``CraneCtldDbPath`` is a prefix: CraneSched opens ``<prefix>var``, ``<prefix>fix``,
    ``<prefix>resv``, ``<prefix>step_var`` and ``<prefix>step_fix`` (BerkeleyDB also a
    ``<file>Env/`` directory next to each); nothing is ever written at the prefix itself.
    Here ``var`` holds the jobs and ``fix`` the next job id (JSON); the others stay empty."""

    FILES = ("var", "fix", "resv", "step_var", "step_fix")

    def __init__(self, prefix, backend="Unqlite"):
        self.prefix = prefix
        self.backend = backend
        self.jobs = {}
        self.next_id = 1

    def _path(self, name):
        return self.prefix + name

    def load(self):
        for name in self.FILES:
            if self.backend == "BerkeleyDB":
                os.makedirs(self._path(name) + "Env", exist_ok=True)
            if not os.path.exists(self._path(name)):
                _write_json(self._path(name), {})
        self.jobs = {int(k): v for k, v in _read_json(self._path("var")).items()}
        self.next_id = _read_json(self._path("fix")).get("next_id", 1)

    def save(self):
        _write_json(self._path("var"), self.jobs)
        _write_json(self._path("fix"), {"next_id": self.next_id})

    def running_on(self, node):
        return [j for j in self.jobs.values() if j["node"] == node and j["status"] == "Running"]


def _read_json(path):
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def _write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as stream:
        json.dump(data, stream)
    os.replace(tmp, path)


class Ctld:
    """State and RPC handlers of the simulated cranectld."""

    def __init__(self, cfg, log, store):
        self.cfg = cfg
        self.log = log
        self.store = store
        self.lock = threading.RLock()
        self.nodes = {name: NodeMeta(spec) for name, spec in cfg.nodes.items()}
        self.channel_seq = 0

    # ----------------------------------------------------------- resources
    def _in_use(self, name):
        jobs = self.store.running_on(name)
        return sum(j["cpu"] for j in jobs), sum(j["mem"] for j in jobs)

    def _resource_state(self, meta):
        if not meta.alive:
            return "CRANE_DOWN"
        cpu, mem = self._in_use(meta.spec.name)
        if cpu == 0 and mem == 0:
            return "CRANE_IDLE"
        if cpu >= meta.spec.cpu or mem >= meta.spec.memory:
            return "CRANE_ALLOC"
        return "CRANE_MIX"

    def _control_state(self, meta):
        return "CRANE_DRAIN" if meta.drain else "CRANE_NONE"

    # ----------------------------------------------------------- internal service
    def handle_internal(self, req):
        handlers = {
            "trigger_reverse_conn": self.trigger_reverse_conn,
            "register": self.register,
            "ping": self.ping,
            "step_finished": self.step_finished,
            "update_node_drain_state": self.update_node_drain_state,
            "channel": self.channel,
        }
        return dispatch(handlers, req)

    def channel(self, req):
        """craned's long-lived connection, standing in for the gRPC channel cranectld watches
        (``CranedKeeper``): when it drops (craned stopped, crashed or restarted) the node is
        down at once; only a silent node waits for ``CranedTimeout``."""
        craned_id = req.get("craned_id", "")
        with self.lock:
            meta = self.nodes.get(craned_id)
            if meta is None:
                return {"ok": True}
            self.channel_seq += 1
            meta.channel = seq = self.channel_seq
        return {"ok": True, "on_close": lambda: self._channel_closed(craned_id, seq)}

    def _channel_closed(self, craned_id, seq):
        with self.lock:
            if self.nodes[craned_id].channel == seq:
                self._craned_down(craned_id)

    def trigger_reverse_conn(self, req):
        """craned asks cranectld to connect back to its CranedListenPort."""
        craned_id = req.get("craned_id", "")
        self.log.trace(f"Craned {craned_id} requires Ctld to connect.", src="CtldGrpcServer.cpp:60")
        with self.lock:
            meta = self.nodes.get(craned_id)
            if meta is None:
                self.log.warn(
                    f"Reject register request from unknown node {craned_id}",
                    src="CtldGrpcServer.cpp:62",
                )
                return {"ok": True}
            if meta.alive:
                self._craned_down(craned_id)
            meta.token = req.get("token", "")
            expected = [j["job_id"] for j in self.store.running_on(craned_id)]
        threading.Thread(
            target=self._configure, args=(craned_id, meta.token, expected), daemon=True
        ).start()
        return {"ok": True}

    def _configure(self, craned_id, token, expected):
        request = {"op": "configure", "craned_id": craned_id, "token": token, "job_ids": expected}
        try:
            rpc_call(craned_id, self.cfg.craned_port, request, timeout=5)
        except RpcError as exc:
            self.log.debug(
                f"Failed to connect to craned {craned_id}: {exc}", "CranedKeeper.cpp:800"
            )

    def register(self, req):
        craned_id = req.get("craned_id", "")
        with self.lock:
            meta = self.nodes.get(craned_id)
            if meta is None:
                return {"ok": False}
            if meta.alive:
                self.log.warn(
                    f"Reject register request from already online node {craned_id}",
                    src="CtldGrpcServer.cpp:98",
                )
                return {"ok": False}
            if not self.cfg.ignore_inconsistency and req.get("config_crc") != self.cfg.crc:
                self.log.error(
                    f"CranedNode #{craned_id} appears to have a diffrent config.yaml than the "
                    "CraneCtld.",
                    src="CtldGrpcServer.cpp:107",
                )
            if req.get("token") != meta.token:
                self.log.warn(
                    f"Reject register request from node {craned_id} with invalid token.",
                    src="CtldGrpcServer.cpp:120",
                )
                return {"ok": False}
            self._fail_lost_jobs(craned_id, req.get("lost_jobs", []))
            self._craned_up(meta, req)
        return {"ok": True}

    def _fail_lost_jobs(self, craned_id, lost):
        if lost:
            self.log.info(
                f"Craned {craned_id} lost job allocation:[{','.join(map(str, lost))}].",
                src="CtldGrpcServer.cpp:131",
            )
        for job_id in lost:
            job = self.store.jobs.get(int(job_id))
            if job and job["status"] == "Running":
                job.update(status="Failed", reason=LOST_STEP_REASON, end_time=time.time())
        if lost:
            self.store.save()

    def _craned_up(self, meta, req):
        remote = req.get("remote_meta", {})
        meta.alive = True
        meta.last_ping = time.monotonic()
        meta.version = remote.get("craned_version", "")
        meta.sysname = remote.get("sysname", "unknown")
        meta.release = remote.get("release", "")
        meta.sysver = remote.get("sysver", "")
        meta.boot_time = remote.get("system_boot_time", 0)
        meta.start_time = remote.get("craned_start_time", 0)
        self.log.info(f"Craned {meta.spec.name} is up now.", src="CranedMetaContainer.cpp:80")

    def _craned_down(self, craned_id):
        meta = self.nodes[craned_id]
        if not meta.alive:
            return
        meta.alive = False
        self.log.info(f"Craned {craned_id} is down now.", src="CranedMetaContainer.cpp:121")

    def ping(self, req):
        craned_id = req.get("craned_id", "")
        with self.lock:
            meta = self.nodes.get(craned_id)
            if meta is None or not meta.alive:
                self.log.warn(
                    f"Reject ping from offline node {craned_id}", "CtldGrpcServer.cpp:177"
                )
                return {"ok": False}
            meta.last_ping = time.monotonic()
        return {"ok": True}

    def step_finished(self, req):
        """craned reports that a job ended on it."""
        with self.lock:
            job = self.store.jobs.get(int(req.get("job_id", 0)))
            if job and job["status"] == "Running":
                job.update(status=req.get("status", "Completed"), end_time=time.time())
                self.store.save()
                meta = self.nodes.get(job["node"])
                if meta is not None:
                    meta.last_busy = time.time()
        return {"ok": True}

    def update_node_drain_state(self, req):
        """craned drains its own node (health check); ``UpdateNodeDrainState``."""
        craned_id, drain = req.get("craned_id", ""), bool(req.get("drain"))
        with self.lock:
            meta = self.nodes.get(craned_id)
            if meta is None:
                self.log.error(
                    f"Unknown craned_id '{craned_id}', cannot update drain state.",
                    src="CranedMetaContainer.cpp:917",
                )
                return {"ok": False}
            if not meta.alive:
                self.log.error(
                    f"craned '{craned_id}' is DOWN; refuse to change drain state.",
                    src="CranedMetaContainer.cpp:926",
                )
                return {"ok": False}
            if meta.drain != drain:
                meta.drain, meta.reason = drain, req.get("reason", "")
        return {"ok": True}

    def check_timeouts(self):
        """``CranedKeeper::CheckNodeTimeoutAndClean``: silent nodes become down."""
        with self.lock:
            now = time.monotonic()
            for name, meta in self.nodes.items():
                if meta.alive and now - meta.last_ping > self.cfg.craned_timeout:
                    self._craned_down(name)

    # ----------------------------------------------------------- external service
    def handle_external(self, req):
        handlers = {
            "query_cluster_info": self.query_cluster_info,
            "query_craned_info": self.query_craned_info,
            "modify_node": self.modify_node,
            "submit_sim_job": self.submit_sim_job,
            "query_sim_jobs": self.query_sim_jobs,
        }
        return dispatch(handlers, req)

    def query_cluster_info(self, req):
        """``CranedMetaContainer::QueryClusterInfo`` as a protojson-shaped dict."""
        reply = {"ok": True, "partitions": []}
        states = (
            req.get("filter_craned_control_states") or [],
            req.get("filter_craned_resource_states") or [],
            req.get("filter_craned_power_states") or [],
        )
        if not all(states):
            return reply
        wanted_parts = set(req.get("filter_partitions") or [])
        wanted_nodes = _requested_nodes(req.get("filter_nodes") or [])
        with self.lock:
            for part, members in sorted(self.cfg.partitions.items(), key=_hash_order):
                if wanted_parts and part not in wanted_parts:
                    continue
                reply["partitions"].append(
                    self._partition_info(part, members, wanted_nodes, states)
                )
        return reply

    def _partition_info(self, part, members, wanted_nodes, states):
        controls, resources, powers = states
        alive = any(self.nodes[n].alive for n in members)
        groups = {}
        for name in members:
            if wanted_nodes is not None and name not in wanted_nodes:
                continue
            meta = self.nodes[name]
            ctl, res = self._control_state(meta), self._resource_state(meta)
            if ctl in controls and res in resources and meta.power in powers:
                key = (
                    CONTROL_STATES.index(ctl),
                    RESOURCE_STATES.index(res),
                    POWER_STATES.index(meta.power),
                    meta.reason,
                )
                groups.setdefault(key, []).append(name)
        lists = [_trimmed(key, names) for key, names in sorted(groups.items())]
        display = part + "*" if part == self.cfg.default_partition else part
        state = "PARTITION_UP" if alive else "PARTITION_DOWN"
        return {"name": display, "state": state, "craned_lists": lists}

    def query_craned_info(self, req):
        name = req.get("craned_name", "")
        with self.lock:
            names = [name] if name else list(self.nodes)
            infos = [self._craned_info(n) for n in names if n in self.nodes]
        return {"craned_info_list": infos}

    def _craned_info(self, name):
        meta = self.nodes[name]
        spec = meta.spec
        cpu, mem = self._in_use(name)
        gres_total = [[g[0], g[1], len(g[2])] for g in spec.gres]
        return {
            "hostname": name,
            "resource_state": self._resource_state(meta),
            "control_state": self._control_state(meta),
            "power_state": meta.power,
            "state_reason": meta.reason,
            "res_total": {"cpu_count": spec.cpu, "memory_bytes": spec.memory, "gres": gres_total},
            "res_alloc": {"cpu_count": cpu, "memory_bytes": mem, "gres": []},
            "res_avail": {
                "cpu_count": spec.cpu - cpu,
                "memory_bytes": spec.memory - mem,
                "gres": gres_total,
            },
            "partition_names": list(spec.partitions),
            "running_job_num": len(self.store.running_on(name)),
            "craned_version": meta.version,
            "system_desc": f"{meta.sysname} {meta.release} {meta.sysver}",
            "system_boot_time": meta.boot_time,
            "craned_start_time": meta.start_time,
            "last_busy_time": meta.last_busy,
            "sockets": spec.sockets,
        }

    def modify_node(self, req):
        """``CranedMetaContainer::ChangeNodeState`` for drain and resume."""
        reply = {"modified_nodes": [], "not_modified_nodes": [], "not_modified_reasons": []}
        new_state = req.get("new_state")
        with self.lock:
            for craned_id in req.get("craned_ids", []):
                reason = self._change_state(craned_id, new_state, req.get("reason", ""))
                if reason is None:
                    reply["modified_nodes"].append(craned_id)
                else:
                    reply["not_modified_nodes"].append(craned_id)
                    reply["not_modified_reasons"].append(reason)
        return reply

    def _change_state(self, craned_id, new_state, reason):
        meta = self.nodes.get(craned_id)
        if meta is None:
            return "Invalid node name specified."
        if new_state not in ("CRANE_DRAIN", "CRANE_NONE"):
            return "Plugin system not available for update state"
        if not meta.alive:
            return "Can't change the state of a DOWN node!"
        if new_state == "CRANE_DRAIN":
            meta.drain, meta.reason = True, reason
        else:
            meta.drain, meta.reason = False, ""
        return None

    # ----------------------------------------------------------- simulator-only jobs
    def submit_sim_job(self, req):
        """Test hook: run a fake job that occupies ``cpu`` CPUs of ``node`` for ``seconds``."""
        name = req.get("node", "")
        with self.lock:
            error = self._job_refusal(name, req)
            if error:
                return {"ok": False, "error": error}
            spec = self.nodes[name].spec
            cpu = int(req.get("cpu") or spec.cpu)
            job = {
                "job_id": self.store.next_id,
                "node": name,
                "uid": req.get("uid"),
                "cpu": cpu,
                "mem": spec.memory * cpu // max(spec.cpu, 1),
                "seconds": float(req["seconds"]),
                "start_time": time.time(),
                "status": "Running",
                "reason": "",
                "end_time": 0,
            }
            self.store.next_id += 1
            self.store.jobs[job["job_id"]] = job
            self.store.save()
        try:
            rpc_call(name, self.cfg.craned_port, {"op": "execute", "job": job}, timeout=5)
        except RpcError as exc:
            with self.lock:
                job.update(status="Failed", reason=f"dispatch failed: {exc}", end_time=time.time())
                self.store.save()
            return {"ok": False, "error": f"Failed to dispatch the job to {name}."}
        self.log.info(f"Job #{job['job_id']} started on {name}.", src="JobScheduler.cpp:0")
        return {"ok": True, "job_id": job["job_id"]}

    def _job_refusal(self, name, req):
        meta = self.nodes.get(name)
        if meta is None:
            return f"Node {name} not found."
        if not meta.alive or meta.drain:
            return f"Node {name} is not available."
        cpu = int(req.get("cpu") or meta.spec.cpu)
        used, _ = self._in_use(name)
        if cpu <= 0 or used + cpu > meta.spec.cpu:
            return "Resource not enough."
        return None

    def query_sim_jobs(self, req):
        with self.lock:
            return {"ok": True, "jobs": sorted(self.store.jobs.values(), key=lambda j: j["job_id"])}


def _hash_order(item):
    """cranectld lists partitions in ``absl::flat_hash_map`` order: unspecified, and not the
    config's. The simulator orders them by CRC32 of the name: stable, but unrelated to the
    order in config.yaml, so nothing can rely on the config order."""
    return zlib.crc32(item[0].encode())


def _requested_nodes(filter_nodes):
    if not filter_nodes:
        return None
    return set(expand(",".join(filter_nodes)) or [])


def _trimmed(key, names):
    control, res, power, reason = key
    return {
        "resource_state": RESOURCE_STATES[res],
        "control_state": CONTROL_STATES[control],
        "power_state": POWER_STATES[power],
        "count": len(names),
        "craned_list_regex": compress(names),
        "reason": reason,
    }


# --------------------------------------------------------------------------- start-up
def _raise_nofile(log):
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (640000, 640000))
    except (ValueError, OSError):
        log.warn(
            "Unable to set file descriptor limits to 640000. Please increase the hard limit if "
            "needed.",
            src="CraneCtld.cpp:1169",
        )


def _create_folders(cfg, log):
    if not create_folders_for_file(cfg.log_file):
        die(log, "Failed to create folders for CraneCtld log files!", "CraneCtld.cpp:1145")
    if not create_folders_for_file(cfg.db_path):
        die(log, "Failed to create folders for CraneCtld db files!", "CraneCtld.cpp:1151")
    if cfg.alive_file and not create_folders_for_file(cfg.alive_file):
        die(log, "Failed to create folders for CraneCtld alive file!", "CraneCtld.cpp:1159")


def _create_alive_file(path, log):
    """``util::os::CreateFile``: an existing (stale) file is fine, as in CraneSched."""
    if os.path.exists(path):
        return True
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    except OSError as exc:
        log.error(f"Create file {path} failed: {os.strerror(exc.errno)}", src="OS.cpp:110")
        return False
    return True


def _delete_alive_file(path, log):
    """``DestroyCtldGlobalVariables``: remove the alive file, logging when it is gone."""
    try:
        os.unlink(path)
    except OSError as exc:
        reason = "Success" if exc.errno == errno.ENOENT else os.strerror(exc.errno)
        log.error(f"Failed to remove file {path}: {reason}", src="OS.cpp:89")
        log.error("Failed to delete folders for CraneCtld alive file!", src="CraneCtld.cpp:1015")


START_DELAY = 1.0  # seconds before cranectld answers: a MongoDB connect on the same host


def _connect_mongodb(log):
    """``MongodbClient::Connect`` stand-in. Until it returns nothing listens, so the CLIs get
    UNAVAILABLE ("Connection to CraneCtld is broken.", cinfo exit 3) while systemd already
    shows the unit running. Knobs: ``CRANESIM_CTLD_START_DELAY`` (seconds, default 1) and
    ``CRANESIM_CTLD_EXIT_AFTER`` (exit after that many seconds, as an unreachable MongoDB does
    after the driver's server-selection timeout)."""
    exit_after = knob_seconds("CRANESIM_CTLD_EXIT_AFTER")
    if exit_after is not None:
        time.sleep(exit_after)
        die(log, "Error: MongoDb client connect fail", "CraneCtld.cpp:1047")
    time.sleep(knob_seconds("CRANESIM_CTLD_START_DELAY", START_DELAY))


def _open_store(cfg, log):
    if cfg.db_backend not in ("Unqlite", "BerkeleyDB"):
        log.error(
            f"Invalid embedded database backend: {cfg.db_backend}", "EmbeddedDbClient.cpp:547"
        )
        die(log, "Failed to initialize g_embedded_db_client.", "CraneCtld.cpp:1093")
    store = JobStore(cfg.db_path, cfg.db_backend)
    try:
        store.load()
    except (OSError, ValueError, AttributeError) as exc:
        log.error(f"Failed to open embedded db {cfg.db_path}: {exc}", src="EmbeddedDbClient.cpp:0")
        die(log, "Failed to initialize g_embedded_db_client.", "CraneCtld.cpp:1093")
    return store


def _start_servers(ctld, cfg, log):
    try:
        serve_forever(cfg.listen_addr, cfg.internal_port, ctld.handle_internal, "internal")
    except OSError:
        die(log, "Cannot start internal gRPC server!", "CtldGrpcServer.cpp:0")
    try:
        serve_forever(cfg.listen_addr, cfg.listen_port, ctld.handle_external, "external")
    except OSError:
        die(log, "Cannot start gRPC server!", "CtldGrpcServer.cpp:0")
    log.info(
        f"CraneCtld is listening on {cfg.listen_addr}:{cfg.listen_port} and Internal Port "
        f"{cfg.internal_port}",
        src="CtldGrpcServer.cpp:0",
    )


def start_server(cfg, log):
    """``StartServer()``: folders, DB, servers; then serve until SIGTERM/SIGINT."""
    _raise_nofile(log)
    _create_folders(cfg, log)
    log.info(f"Hostname of CraneCtld: {gethostname()}", src="CraneCtld.cpp:1032")
    _connect_mongodb(log)
    if tls_enabled(cfg.raw) and not cfg.vault_enabled:
        die(log, "[Security] TLS is enabled but Vault is not enabled.", "CraneCtld.cpp:1061")
    ctld = Ctld(cfg, log, _open_store(cfg, log))
    _start_servers(ctld, cfg, log)
    log.info("CraneCtld service ready.", src="CraneCtld.cpp:1176")
    if cfg.alive_file and not _create_alive_file(cfg.alive_file, log):
        _delete_alive_file(cfg.alive_file, log)
        sys.exit(1)
    _serve(ctld, cfg.alive_file)


def _serve(ctld, alive_file):
    stop = daemon.stop_event()
    while not stop.wait(0.2):
        ctld.check_timeouts()
    if alive_file:
        _delete_alive_file(alive_file, ctld.log)
    ctld.log.info("CraneCtld is ending.", src="CraneCtld.cpp:0")


def main(argv=None):
    """Entry point of /usr/bin/cranectld."""
    return daemon.run("CraneCtld", ctld_config, start_server, argv)
