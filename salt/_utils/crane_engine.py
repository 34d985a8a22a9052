"""
The upgrade/restart engine of the crane formula: preflight, plan and the steps of a run.

It talks to the cluster only through a ``Cluster`` (see the class): the ``crane`` runner gives
it one built on Salt's LocalClient, tests give it a fake cluster. Everything it asks a minion
goes through ``Minions``, the one place that decides what counts as an answer: a minion that
does not return (``Minion did not return. [Not connected]``, no entry, a non-dict return) is a
failure naming the minion, never an answer. Planning and text live in ``crane_upgrade``.

Bounds: every call, ``state.apply`` included, uses ``CALL_TIMEOUT``: Salt waits that long for
a return, then asks the minion whether the job still runs (``saltutil.find_job``) and keeps
waiting only while it answers that it does. A minion that died mid-run therefore ends the call
after at most ``CALL_TIMEOUT`` plus the master's ``gather_job_timeout`` (10 s by default).
"""

import contextlib
import json
import os
import re
import socket
import sys
import threading
import time

# Siblings by name; the folder stays on sys.path (README, "How the utilities load").
_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
if _FOLDER not in sys.path:
    sys.path.append(_FOLDER)

import crane_ha  # noqa: E402
import crane_hostlist  # noqa: E402
import crane_upgrade  # noqa: E402

CALL_TIMEOUT = 15
SYNC_TIMEOUT = 120  # saltutil.sync_all and pkg.refresh_db answer only when done
POLL = 2
CONTROL_GRAIN = "crane:roles:control"
LOCK_FILE = "crane-run.lock"
RECORD_FILE = "crane-run.json"
RECORDS_KEPT = 8  # unfinished runs remembered at most (the newest)
LOCK_MAX_AGE = 24 * 3600  # a lock older than this is stale whoever holds it
# journal and log lines that are not a daemon's reason for failing
NOISE = re.compile(
    r"\.service|^(Started|Stopped|Stopping|Starting) |^\[[ID] |^(journal|log file):$"
)
DEFAULTS = {
    "batch": 1,
    "canary": 1,
    "strategy": "rolling",
    "drain_timeout": 600,
    "skip_busy": False,
    "allow_down": None,
    "keep_backups": 5,
    "register_timeout": 180,
    "allow_downgrade": False,
    "drain": True,
    "only_due": False,
}
NOT_ANSWERED = "Minion did not return"


class StepError(Exception):
    """A step of a run failed; the message says what and where."""


class Fatal(StepError):
    """A failure that ends a wait at once (a daemon that exited)."""


class GapFailed(StepError):
    """What had to happen while no cranectld ran failed; the old master serves again."""


class SwitchTimeout(StepError):
    """The new master did not serve every node in time."""


class Cluster:
    """What the engine needs from the cluster and the master. The runner's implementation
    calls Salt; the tests' fake keeps a cluster in memory.

    ``call`` returns Salt's raw per-minion returns (``{minion: {"ret", "retcode"}}``, or
    whatever Salt gave for a minion that did not return); ``Minions`` interprets them.
    ``state_dir`` is a directory on the master for the run lock and the run record."""

    state_dir = None

    def call(self, tgt, fun, arg=(), kwarg=None, *, tgt_type="list", timeout=CALL_TIMEOUT):
        raise NotImplementedError

    def progress(self, message):
        raise NotImplementedError

    def now(self):
        return time.time()

    def sleep(self, seconds):
        time.sleep(seconds)


# --- calling minions -------------------------------------------------------------------------


def sort_answers(targets, raw):
    """``(answers, silent)`` from Salt's returns for ``targets``: ``answers`` holds
    ``{minion: {"ret", "retcode"}}`` of the minions that really answered, ``silent`` names
    each minion that did not, with why."""
    answers, silent = {}, {}
    for minion in sorted(set(targets) | set(raw)):
        got = raw.get(minion)
        ret = got.get("ret") if isinstance(got, dict) else got
        if not isinstance(got, dict) or "ret" not in got or got.get("failed"):
            silent[minion] = "no answer" + (f" ({ret})" if isinstance(ret, str) else "")
        elif isinstance(ret, str) and ret.startswith(NOT_ANSWERED):
            silent[minion] = f"no answer ({ret})"
        else:
            answers[minion] = {"ret": ret, "retcode": got.get("retcode") or 0}
    return answers, silent


def failure_text(fun, ret):
    """One line for a function that failed on a minion (a traceback's last line)."""
    lines = [line.strip() for line in str(ret).strip().splitlines() if line.strip()]
    return f"{fun}: {lines[-1] if lines else 'failed'}"


class Minions:
    """The one way the engine and the runner call minions."""

    def __init__(self, cluster):
        self.cluster = cluster

    def call(self, minions, fun, arg=(), kwarg=None, *, timeout=CALL_TIMEOUT):
        """``(answers, failed)``: returns of the minions that answered and succeeded, and
        ``{minion: why}`` for those that did not answer or failed (non-zero retcode)."""
        minions = sorted(set(minions))
        if not minions:
            return {}, {}
        raw = self.cluster.call(minions, fun, arg, kwarg, timeout=timeout)
        answers, failed = sort_answers(minions, {m: r for m, r in raw.items() if m in minions})
        for minion, answer in list(answers.items()):
            if answer["retcode"]:
                failed[minion] = failure_text(fun, answers.pop(minion)["ret"])
        return {m: a["ret"] for m, a in answers.items()}, failed

    def target(self, tgt, tgt_type, fun):
        """``(answers, silent)`` of a glob or grain target: ``{minion: ret}`` (retcode
        ignored) and the minions Salt expected that did not answer."""
        raw = self.cluster.call(tgt, fun, tgt_type=tgt_type, timeout=CALL_TIMEOUT)
        answers, silent = sort_answers([], raw)
        return {m: a["ret"] for m, a in answers.items()}, silent

    def one(self, minion, fun, arg=(), kwarg=None, *, check=True, timeout=CALL_TIMEOUT):
        """The return of ``fun`` on ``minion``; StepError when it does not answer (or, with
        ``check``, fails)."""
        raw = self.cluster.call([minion], fun, arg, kwarg, timeout=timeout)
        answers, silent = sort_answers([minion], {minion: raw.get(minion)})
        if minion in silent:
            raise StepError(f"{minion} did not answer {fun}: {silent[minion]}")
        answer = answers[minion]
        if check and answer["retcode"]:
            raise StepError(f"{minion}: {failure_text(fun, answer['ret'])}")
        return answer["ret"]


def roles(minions):
    """``({minion: [roles]}, silent)`` over every minion the master knows."""
    answers, silent = minions.target("*", "glob", "crane.roles")
    return {m: r for m, r in answers.items() if isinstance(r, list)}, silent


def control_minion(minions, known_roles):
    """The control minion: grain crane:roles:control, else the pillar's ControlMachine."""
    answers, _ = minions.target(CONTROL_GRAIN, "grain", "test.ping")
    found = sorted(m for m, r in answers.items() if r is True)
    found = found or sorted(m for m, r in known_roles.items() if "control" in r)
    if not found:
        raise StepError(
            "no control minion: no minion has the grain crane:roles:control and none "
            "matches ControlMachine of the pillar (run saltutil.sync_all first?)"
        )
    return found[0]


def expand_hosts(expr, key):
    """Names of a host list given as an option; a clear error naming ``key`` otherwise."""
    if not expr:
        return []
    if isinstance(expr, (list, tuple)):
        expr = ",".join(str(e) for e in expr)
    try:
        return crane_hostlist.expand(str(expr))
    except (ValueError, TypeError, MemoryError) as exc:
        raise StepError(f"{key}={expr!r} is not a host list CraneSched accepts: {exc}") from exc


# --- state.apply returns ---------------------------------------------------------------------


def state_failures(ret):
    """Short texts of the states that failed in a state.apply return (empty when it passed)."""
    if not isinstance(ret, dict):
        return [f"state.apply did not run: {ret}"]
    failures = []
    for key, state in ret.items():
        if not isinstance(state, dict) or state.get("result") is not False:
            continue
        comment = str(state.get("comment") or "").strip()
        if comment.startswith("One or more requisite failed"):
            continue
        lines = [line.strip() for line in comment.splitlines() if line.strip()]
        text = re.sub(r" \(.*\)$", "", lines[0]) if lines else "failed"
        evidence = _evidence(lines[1:])
        if evidence:
            text += f": {evidence}"
        failures.append(f"{state.get('__id__') or key.split('_|-')[1]}: {text}")
    return failures or ([] if ret else ["state.apply returned nothing"])


def _evidence(lines):
    """The line most likely to be a daemon's reason for failing: its last error log line,
    else the last plain line (messages printed before its logger exists), else a warning."""
    lines = [line for line in lines if not NOISE.search(line)]
    for wanted in (r"^\[[EC] ", r"^[^\[]", r"^\[W "):
        found = [line for line in lines if re.search(wanted, line)]
        if found:
            return found[-1]
    return ""


# --- options ---------------------------------------------------------------------------------


def check_options(action, version, options):
    """The run's options with defaults; ValueError naming the first bad one."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown argument(s): {', '.join(unknown)}")
    opts = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    if action == "upgrade" and not crane_upgrade.release(version):
        raise ValueError(f"version must be a release like 1.1.3: {version!r}")
    if opts["strategy"] not in crane_upgrade.STRATEGIES:
        raise ValueError(
            f"strategy must be one of {', '.join(crane_upgrade.STRATEGIES)}: {opts['strategy']!r}"
        )
    crane_upgrade.batch_size(opts["batch"], 1)
    _check_no_drain(action, opts)
    for key in ("canary", "keep_backups"):
        if not str(opts[key]).isdigit():
            raise ValueError(f"{key} must be a count (0 or more): {opts[key]!r}")
    for key in ("drain_timeout", "register_timeout"):
        try:
            if float(opts[key]) < 0:
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be seconds (0 or more): {opts[key]!r}") from None
    return opts


def _check_no_drain(action, opts):
    """``drain=False`` (craned only, jobs keep running) and ``only_due`` are restart options;
    without a drain nothing waits for jobs and never are all craned restarted at once."""
    for key in ("drain", "only_due"):
        if not isinstance(opts[key], bool):
            raise ValueError(f"{key} must be True or False: {opts[key]!r}")
    if action != "restart" and (opts["only_due"] or not opts["drain"]):
        raise ValueError("drain=False and only_due=True are options of crane.restart")
    if not opts["drain"] and opts["strategy"] != "rolling":
        raise ValueError("drain=False restarts craned in batches: strategy must be rolling")
    if not opts["drain"] and opts["skip_busy"]:
        raise ValueError(
            "drain=False restarts busy nodes too (their jobs keep running): "
            "skip_busy does not apply"
        )


# --- one run at a time -----------------------------------------------------------------------


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


def acquire_lock(state_dir, action, now):
    """Take the run lock (a file with pid, host and start); StepError naming the holder when
    another live run has it. A lock whose process is gone (same host) or older than
    LOCK_MAX_AGE is taken over, so a killed run never blocks the next one for good."""
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, LOCK_FILE)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "action": action, "started": now}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            holder = read_json(path)
            if _lock_is_live(holder, mine["host"], now):
                raise StepError(
                    f"another crane.{holder.get('action', 'run')} is in progress (pid "
                    f"{holder.get('pid')} on {holder.get('host')}, started "
                    f"{time.strftime('%H:%M:%S', time.gmtime(holder.get('started', 0)))} UTC): "
                    f"one run at a time; if it is gone, remove {path}"
                ) from None
            os.remove(path)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(mine, handle)
        return path
    raise StepError(f"could not take the run lock {path}")


def _lock_is_live(holder, host, now):
    if not holder:
        return False
    if now - float(holder.get("started") or 0) > LOCK_MAX_AGE:
        return False
    return holder.get("host") != host or _alive(holder.get("pid"))


def lock_holder(state_dir, now):
    """The holder of a live run lock (``pid``, ``host``, ``action``, ``started``), or None."""
    holder = read_json(os.path.join(state_dir, LOCK_FILE))
    return holder if _lock_is_live(holder, socket.gethostname(), now) else None


def release_lock(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def read_json(path):
    """A JSON object from ``path``; {} when it is missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path, data):
    """Replace ``path`` atomically (a crash never leaves half a file), readable by root only."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.new"  # writers of one path never share it
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


# --- the run record: what an unfinished run has done -----------------------------------------


def _records(state_dir):
    """The records of unfinished runs, one per key (a file of earlier releases held one)."""
    data = read_json(os.path.join(state_dir, RECORD_FILE))
    runs = [data] if "key" in data else data.get("runs") or []
    return [r for r in runs if isinstance(r, dict) and "key" in r]


def _write_records(state_dir, runs):
    path = os.path.join(state_dir, RECORD_FILE)
    if not runs:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return
    newest = sorted(runs, key=lambda r: r.get("started", 0))[-RECORDS_KEPT:]
    write_json(path, {"runs": newest})


def load_record(state_dir, key):
    """``{node or minion: why}`` done by an unfinished earlier run with the same ``key``
    (command, version, config hash): a restart has no version to tell done nodes by."""
    record = next((r for r in _records(state_dir) if r["key"] == key), {})
    if not record:
        return {}
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.get("started", 0)))
    return {n: f"done by the unfinished run started {started} UTC" for n in record.get("done", [])}


def save_record(state_dir, key, started, done):
    """Add ``done`` to the record of the runs with ``key``; other runs' records stay."""
    runs = _records(state_dir)
    old = next((r for r in runs if r["key"] == key), None)
    if old:
        started = old.get("started", started)
        done = set(old.get("done", [])) | set(done)
    others = [r for r in runs if r["key"] != key]
    _write_records(state_dir, [*others, {"key": key, "started": started, "done": sorted(done)}])


def clear_record(state_dir, key):
    """A run with ``key`` finished: its record goes, an unfinished other run's stays."""
    _write_records(state_dir, [r for r in _records(state_dir) if r["key"] != key])


# --- the control node's view -----------------------------------------------------------------


class Controller:
    """cinfo, ccontrol and the drain record, through the control minion."""

    def __init__(self, minions, minion):
        self.minions, self.minion = minions, minion

    def nodes(self):
        return self.minions.one(self.minion, "crane.nodes")

    def show(self):
        return self.minions.one(self.minion, "crane.show_node")

    def drain(self, nodes, reason):
        if nodes:
            self.minions.one(self.minion, "crane.drain", [",".join(nodes)], {"reason": reason})

    def resume(self, nodes):
        if nodes:
            self.minions.one(self.minion, "crane.resume", [",".join(nodes)])

    def drains_save(self):
        """Record every drain (and its reason) where a cranectld restart cannot lose it."""
        return self.minions.one(self.minion, "crane.drains_save")

    def drains_restore(self, timeout):
        """Drain again what the record holds: ``{"restored", "pending"}``."""
        return self.minions.one(
            self.minion, "crane.drains_restore", kwarg={"timeout": int(timeout)},
            timeout=CALL_TIMEOUT + int(timeout),
        )  # fmt: skip


def busy_nodes(ctl, nodes):
    """``{node: running jobs}`` of the ``nodes`` that still run jobs (ccontrol show node)."""
    details = ctl.show()
    jobs = {n: (details.get(n) or {}).get("running_jobs") or 0 for n in nodes}
    return {n: j for n, j in jobs.items() if j}


def is_down(state):
    return (state or {}).get("resource", "down") == "down"


def is_drained(state):
    return (state or {}).get("control") == "drain"


def admin_drained(states, nodes):
    return [n for n in nodes if is_drained(states.get(n))
            and not crane_upgrade.is_ours(states[n].get("reason"))]  # fmt: skip


# --- status ----------------------------------------------------------------------------------


def status(cluster):
    """The cluster as the control node's cinfo sees it, each node's craned version and state,
    and each node's config.yaml hash against the one most nodes have: ``CONFIG`` is ``ok``,
    ``differs`` or ``no answer`` (a minion that did not return, named, not taken as ok).
    Without an answer from the control node: ``{"healthy": False, "problems", "retcode"}``."""
    try:
        return _status(Minions(cluster))
    except StepError as exc:
        return {"healthy": False, "problems": [str(exc)], "retcode": 1}


def _status(minions):
    known, silent = roles(minions)
    ha = ha_settings(minions, known)
    pair = pair_view(minions, ha) if ha else None
    control = via_minion(pair) if pair else control_minion(minions, known)
    try:
        partitions = minions.one(control, "crane.cinfo")
    except StepError as exc:
        if not pair:
            raise
        text = f"cranectld does not answer through the virtual IP's name {ha.get('vip_name')}"
        return {"healthy": False, "problems": [*pair["problems"], f"{text}: {exc}"],
                "warnings": pair["warnings"], "ha": pair, "retcode": 1}  # fmt: skip
    health = minions.one(control, "crane.health", kwarg={"allow_drained": False}, check=False)
    details = minions.one(control, "crane.show_node", check=False)
    hashes, failed = minions.call(sorted(known), "crane.config_hash")
    expected, differs = crane_upgrade.odd_hashes(hashes, prefer=control)
    no_answer = {**silent, **failed}
    for name in crane_ha.pair(ha):  # the pair view judges its members
        no_answer.pop(name, None)
    data = {
        "control": control,
        "rows": [
            {
                "partition": p["name"] + ("*" if p.get("default") else ""),
                "nodes": len(g["nodes"]),
                "state": g["state"],
                "nodelist": g.get("nodelist") or ",".join(g["nodes"]),
                "reason": g.get("reason", ""),
            }
            for p in partitions
            for g in p["groups"]
        ],
        "nodes": {
            name: {
                "state": info.get("state"),
                "version": info.get("version"),
                "running_jobs": info.get("running_jobs"),
                "config": _config_column(name, differs, no_answer),
            }
            for name, info in (details if isinstance(details, dict) else {}).items()
        },
        "config_hash": {"expected": expected, "differs": differs, "no_answer": sorted(no_answer)},
        "health": health if isinstance(health, dict) else {"healthy": False, "summary": health},
        "ha": pair,
    }
    return judge_status(data)


def _config_column(node, differs, no_answer):
    if node in no_answer:
        return "no answer"
    return "differs" if node in differs else "ok"


def judge_status(data):
    pair = data.get("ha") or {"problems": [], "warnings": []}
    problems = list(pair["problems"])
    if not data["health"].get("healthy"):
        problems.append(f"cluster unhealthy: {data['health'].get('summary')}")
    if data["config_hash"]["differs"]:
        problems.append(
            "config.yaml differs from the other nodes' on "
            + ", ".join(data["config_hash"]["differs"])
        )
    if data["config_hash"]["no_answer"]:
        problems.append("no answer from " + ", ".join(data["config_hash"]["no_answer"]))
    data.update(problems=problems, warnings=pair["warnings"], healthy=not problems,
                retcode=1 if problems else 0)  # fmt: skip
    return data


def table(rows, headers):
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        " ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, *rows]
    )


def status_text(data):
    """The status as tables: partitions, then nodes; then the problems or the verdict."""
    rows = [
        [r["partition"], r["state"], r["nodes"], r["nodelist"], r["reason"]] for r in data["rows"]
    ]
    nodes = [
        [n, i["state"], i["version"] or "unknown", i["config"]]
        for n, i in sorted(data["nodes"].items(), key=lambda x: crane_hostlist.natural_key(x[0]))
    ]
    text = [
        table(rows, ["PARTITION", "STATE", "NODES", "NODELIST", "REASON"]),
        "",
        table(nodes, ["NODE", "STATE", "VERSION", "CONFIG"]),
        "",
    ]
    if data.get("ha"):
        headers = ["CONTROL", "ROLE", "KEEPALIVED", "CRANECTLD", "READY"]
        text += [table(pair_rows(data["ha"]), headers), ""]
    text += data["problems"] or ["healthy; config.yaml identical on every node"]
    text += [f"warning: {w}" for w in data.get("warnings", [])]
    return "\n".join(text)


# --- the run ---------------------------------------------------------------------------------


def running_version(info, installed):
    """The release a compute node runs: none while it is down (its package may be at the
    target while craned failed to start), else the ``X.Y.Z`` of craned's ``Version=``, else
    (a build reporting a git hash) what the package manager reports."""
    if info["down"]:
        return None
    if crane_upgrade.release(info["version"]):
        return info["version"]
    return installed.get("craned") or info["version"]


class Facts:
    """What preflight found; read-only for the steps."""

    def __init__(self, control, minion_of, plan, pillar_version, config_hash, *, ha=None):
        self.control = control
        self.ha = ha  # crane:ha when the control nodes are a Keepalived pair
        self.config_hash = config_hash
        self.minion_of = minion_of  # node (host name) -> minion id
        self.plan = plan
        self.pillar_version = pillar_version

    def minion(self, node):
        return self.minion_of.get(node, node)


class Run:
    """One upgrade or restart: preflight, plan, then the steps; stops at the first failure
    and leaves the cluster no worse (cranectld running, drains restored, failed nodes named)."""

    def __init__(self, cluster, action, version, opts):
        self.cluster = cluster
        self.minions = Minions(cluster)
        self.action = action
        self.version = None if version is None else str(version)
        self.opts = opts
        self.report = {"ok": False, "done": [], "failed": {}, "skipped": {}, "not_reached": []}
        self.started = cluster.now()

    def progress(self, message):
        self.cluster.progress(message)

    # -- preflight
    def preflight(self, dry_run):
        known, silent = roles(self.minions)
        ha = ha_settings(self.minions, known)
        pair = self._pair(ha) if ha else None
        control = pair["master"] if pair else control_minion(self.minions, known)
        ctl = Controller(self.minions, control)
        hosts, _ = self.minions.call(sorted(known), "grains.get", ["host"])
        minion_of = {host: minion for minion, host in hosts.items() if host}
        settings = self.minions.one(control, "crane.settings")
        pillar_version = str(settings.get("version") or "")
        allow_down = expand_hosts(self.opts["allow_down"], "allow_down")
        compute = self._compute_nodes(ctl, allow_down)
        login = [minion_of.get(h, h) for h in settings.get("login_nodes") or []]
        down_ok = {minion_of.get(n, n) for n, i in compute.items() if i["down"]}
        involved = sorted({control, *crane_ha.pair(ha), *login,
                           *(minion_of.get(n, n) for n in compute)})  # fmt: skip
        live = self._check_answers(involved, down_ok, silent, dry_run)
        config_hash = self._check_hashes(live, control)
        names = self._package_names(live)
        versions = self._installed_versions(names)
        for node, info in compute.items():
            info["version"] = running_version(info, versions.get(minion_of.get(node, node), {}))
        self._check_versions(versions, compute, pillar_version)
        if self.action == "upgrade":
            self._check_installable(names, dry_run)
        done = self._record(config_hash)
        done.update(self._not_due(compute, minion_of))
        plan = crane_upgrade.build_plan(
            self.action,
            self.version,
            self.opts["strategy"],
            control,
            versions.get(control, {}).get("cranectld"),
            compute=compute,
            login={m: versions.get(m, {}).get("frontend") for m in login if m in live},
            batch=self.opts["batch"],
            canary=self.opts["canary"],
            allow_down=allow_down,
            done=done,
            drain=self.opts["drain"],
        )
        if pair and self.opts["drain"]:
            plan["ha"] = self._pair_plan(pair, versions, done)
            plan["control"]["todo"] = any(plan["ha"]["todo"].values())
            if pair["preempts"] and plan["ha"]["todo"][pair["master"]]:
                raise StepError(
                    f"{pair['backup']}'s keepalived is stopped and its priority is higher than "
                    f"{pair['master']}'s: applying the formula there would take the master role "
                    "before cranectld's DB is backed up. Hand the role back first: salt-run "
                    f"crane.failover to={pair['backup']}"
                )
        return Facts(control, minion_of, plan, pillar_version, config_hash, ha=ha)

    def _record(self, config_hash):
        if not self.cluster.state_dir:
            return {}
        return load_record(self.cluster.state_dir, self.record_key(config_hash))

    def _not_due(self, compute, minion_of):
        """With ``only_due``: ``{node: why}`` of the compute nodes whose craned restart is not
        due (``crane.restart_pending``); a node that does not answer is a failure."""
        if not self.opts["only_due"]:
            return {}
        by_minion = {minion_of.get(n, n): n for n in compute}
        due, failed = self.minions.call(by_minion, "crane.restart_pending", ["craned"])
        if failed:
            raise StepError(
                "crane.restart_pending: " + ", ".join(f"{m}: {w}" for m, w in failed.items())
            )
        return {by_minion[m]: "no craned restart due" for m, d in due.items()
                if not (isinstance(d, dict) and d.get("craned"))}  # fmt: skip

    def _pair(self, ha):
        """The Keepalived pair as it stands: ``{"master", "backup", "priorities"}``; StepError
        (nothing changed) when it does not serve, its backup cannot take over, or the run
        could not keep a controller up."""
        if self.opts["strategy"] != "rolling":
            raise StepError(
                f"strategy={self.opts['strategy']} with crane:ha: only the rolling strategy "
                "(backup first, failover, then the old master) keeps a controller running"
            )
        view = pair_view(self.minions, ha)
        if view["problems"]:
            raise StepError("crane:ha: " + "; ".join(view["problems"]))
        backup = view["backup"]
        found = Failover.unready(backup, view["nodes"][backup])
        if found:
            raise StepError(
                f"the backup control node is not ready to take over: {'; '.join(found)}"
            )
        priorities = {n: (ha.get("priorities") or {}).get(n, 0) for n in crane_ha.pair(ha)}
        return {"master": view["master"], "backup": backup, "priorities": priorities,
                "preempts": not view["nodes"][backup].get("keepalived")
                and priorities[backup] > priorities[view["master"]]}  # fmt: skip

    def _pair_plan(self, pair, versions, done):
        """The pair's part of the plan: the backup first, then (after a failover) the old
        master; ``todo`` per member, ``handback`` when the old master's higher priority takes
        the role back once its keepalived runs again. For an upgrade a member is done when its
        package is at the target and so is its ``crane:version`` grain, which the formula sets
        only once the whole package step passed (a run cut short after the package landed is
        not done)."""
        members = (pair["backup"], pair["master"])
        grains, _ = self.minions.call(members, "grains.get", ["crane:version"])
        todo, current = {}, {}
        for minion in members:
            current[minion] = versions.get(minion, {}).get("cranectld")
            if self.action == "upgrade":
                todo[minion] = not all(
                    crane_upgrade.same_release(v, self.version)
                    for v in (current[minion], grains.get(minion))
                )
            else:
                todo[minion] = minion not in done
        master, backup = pair["master"], pair["backup"]
        return {
            "master": master,
            "backup": backup,
            "todo": todo,
            "from": current,
            "handback": pair["priorities"][master] > pair["priorities"][backup],
        }

    def _compute_nodes(self, ctl, allow_down):
        """{node: {version, down, reason}}; StepError when the cluster is not healthy. A node
        down and drained (by an earlier failed run, or an admin) is out of service already: it
        may be down, and the run tries it like any other."""
        states = ctl.nodes()
        drained_down = [n for n, s in states.items() if is_down(s) and is_drained(s)]
        health = self.minions.one(
            ctl.minion,
            "crane.health",
            kwarg={
                "allow_drained": True,
                "allow_down": ",".join(allow_down + drained_down) or None,
            },
            check=False,
        )
        if not isinstance(health, dict) or not health.get("healthy"):
            summary = health.get("summary") if isinstance(health, dict) else health
            raise StepError(
                f"cluster not healthy: {summary} (nodes that may be down: allow_down=<hostlist>)"
            )
        details = ctl.show()
        expected = health["up"] + [n for n in health["down"] if n not in health["up"]]
        return {
            node: {
                "version": (details.get(node) or {}).get("version"),
                "down": is_down(states.get(node)),
                "reason": states[node].get("reason", "") if is_drained(states.get(node)) else "",
            }
            for node in expected
        }

    def _check_answers(self, involved, down_ok, silent, dry_run):
        """The minions that answer; StepError naming those that do not (but may not be down).
        A real run syncs the custom modules; a dry run only pings."""
        fun, timeout = (
            ("test.ping", CALL_TIMEOUT) if dry_run else ("saltutil.sync_all", SYNC_TIMEOUT)
        )
        answers, failed = self.minions.call(involved, fun, timeout=timeout)
        failed.update({m: why for m, why in silent.items() if m in involved and m not in answers})
        bad = {m: why for m, why in failed.items() if m not in down_ok}
        if bad:
            raise StepError(
                "minions do not answer: "
                + ", ".join(f"{m} ({why})" for m, why in sorted(bad.items()))
            )
        done = "custom modules synced" if not dry_run else "dry run: modules not synced"
        self.progress(f"preflight: {len(answers)} minion(s) answer; {done}")
        return sorted(answers)

    def _check_hashes(self, minions, control):
        hashes, failed = self.minions.call(minions, "crane.config_hash")
        if failed:
            raise StepError("config_hash: " + ", ".join(f"{m}: {w}" for m, w in failed.items()))
        expected, differ = crane_upgrade.odd_hashes(hashes, prefer=control)
        if differ:
            raise StepError(
                f"config.yaml differs from the other nodes' on {', '.join(differ)}: run "
                "`salt '*' state.apply crane` (with the current version) first"
            )
        return expected

    def _package_names(self, minions):
        """{minion: {package key: package name}} of each minion's roles, as the formula's
        settings on that minion name them (``crane.package_names``)."""
        names, failed = self.minions.call(minions, "crane.package_names")
        if failed:
            raise StepError(
                "crane.package_names: " + ", ".join(f"{m}: {w}" for m, w in failed.items())
            )
        return names

    def _installed_versions(self, names):
        """{minion: {package key: installed version}} for the packages of each minion's roles
        (what the package manager reports: that, not craned's Version=, is the release)."""
        versions = {}
        for minion, wanted in names.items():
            ret = self.minions.one(minion, "pkg.version", list(wanted.values())) if wanted else {}
            if len(wanted) == 1:
                ret = {next(iter(wanted.values())): ret}
            versions[minion] = {k: (ret or {}).get(n) or None for k, n in wanted.items()}
        return versions

    def _check_versions(self, versions, compute, pillar_version):
        running = [v for pkgs in versions.values() for v in pkgs.values() if v]
        running += [i["version"] for i in compute.values() if i["version"]]
        if self.action == "restart":
            differ = sorted({v for v in running if not crane_upgrade.same_release(v, pillar_version)
                             and crane_upgrade.release(v)})  # fmt: skip
            if pillar_version and differ:
                raise StepError(
                    f"nodes run {', '.join(differ)} but the pillar pins crane:version "
                    f"'{pillar_version}': a restart applies the formula, which would change "
                    "packages. Set crane:version to the running version first."
                )
            return
        older = [v for v in running if crane_upgrade.is_downgrade(v, self.version)]
        if older and not self.opts["allow_downgrade"]:
            raise StepError(
                f"refusing a downgrade to {self.version}: nodes run "
                f"{max(older, key=crane_upgrade.version_key)}"
                " (allow_downgrade=True if you really mean it)"
            )

    def _check_installable(self, names, dry_run):
        if not dry_run:
            _, failed = self.minions.call(sorted(names), "pkg.refresh_db", timeout=SYNC_TIMEOUT)
            if failed:
                raise StepError(
                    "pkg.refresh_db: " + ", ".join(f"{m}: {w}" for m, w in failed.items())
                )
        missing = []
        for minion in sorted(names):
            wanted = list(names[minion].values())
            available = self.minions.one(minion, "pkg.list_repo_pkgs", wanted, check=False)
            available = available if isinstance(available, dict) else {}
            missing += [f"{n} on {minion}" for n in wanted if not self._offered(available.get(n))]
        if missing:
            raise StepError(f"version {self.version} is not installable: {', '.join(missing)}")

    def _offered(self, versions):
        return any(crane_upgrade.same_release(v, self.version) for v in versions or [])

    # -- applying the formula
    def _override(self):
        crane = {"verify": {"enabled": False}, "restart": "on_change"}
        if self.action == "upgrade":
            crane["version"] = self.version
        if self.opts["allow_downgrade"]:
            crane["allow_downgrade"] = True  # the package step refuses a downgrade otherwise
        return {"crane": crane}

    def apply(self, minions):
        """state.apply crane (with the run's pillar override) on ``minions`` in parallel;
        ``{minion: failure text}`` for those it failed on or that did not answer."""
        raw = self.cluster.call(
            sorted(minions), "state.apply", ["crane"], {"pillar": self._override()},
            timeout=CALL_TIMEOUT,
        )  # fmt: skip
        answers, failed = sort_answers(minions, {m: r for m, r in raw.items() if m in minions})
        failed = {m: f"state.apply crane: {why}" for m, why in failed.items()}
        for minion, answer in answers.items():
            problems = state_failures(answer["ret"])
            if problems or answer["retcode"]:
                failed[minion] = "state.apply crane: " + "; ".join(problems or ["failed"])
        return failed

    def poll(self, what, check, timeout):
        """Call ``check()`` until it returns a falsy 'done' value or time runs out; returns
        the last value (truthy = still waiting). ``check`` may raise StepError to stop."""
        deadline = self.cluster.now() + float(timeout)
        last_note = self.cluster.now()
        while True:
            try:
                waiting = check()
            except Fatal:
                raise
            except StepError as exc:
                waiting = str(exc)
            if not waiting or self.cluster.now() >= deadline:
                return waiting
            if self.cluster.now() - last_note >= 30:
                self.progress(f"waiting for {what}: {waiting}")
                last_note = self.cluster.now()
            self.cluster.sleep(POLL)

    # -- steps
    def step(self, name):
        self.report.setdefault("steps", []).append({"step": name, "start": self.cluster.now()})

    def end_step(self):
        self.report["steps"][-1]["end"] = self.cluster.now()

    def serving(self, facts, ctl):
        """Nodes up in cinfo whose craned runs: those must register again after cranectld's
        restart. (A craned that stopped silently still shows up until CranedTimeout.)"""
        up = [n for n, s in ctl.nodes().items() if not is_down(s)]
        running, _ = self.minions.call([facts.minion(n) for n in up], "service.status", ["craned"])
        return [n for n in up if running.get(facts.minion(n)) is True]

    def control_step(self, facts, ctl, up):
        """Restart (upgrade) cranectld: record the drains, stop, back up the DB, apply, wait
        for cranectld and for ``up`` nodes to register again. Whatever fails, cranectld is
        started again and the recorded drains are restored before the run stops."""
        self.step("control")
        stopped = False
        try:
            recorded = ctl.drains_save()
            self.progress(f"{ctl.minion}: {len(recorded)} drain(s) recorded; stopping cranectld")
            self.minions.one(ctl.minion, "service.stop", ["cranectld"])
            stopped = True
            self._backup(ctl)
            failed = self.apply([ctl.minion])
            if failed:
                raise StepError(failed[ctl.minion])
            self._wait_cranectld(ctl)
            self._wait_registered_again(ctl, up, recorded)
            self.done(facts, [ctl.minion])
            self.progress(f"{ctl.minion}: cranectld is back and every node registered again")
        except StepError as exc:
            self.report["failed"].setdefault(ctl.minion, str(exc))
            if stopped:
                self._start_cranectld(ctl, up)
            raise StepError(f"control node {ctl.minion}: {exc}") from exc
        finally:
            self._restore_drains(ctl)
            self.end_step()

    # -- the Keepalived pair (crane:ha)
    def pair_steps(self, facts):
        """The backup first (package and config; keepalived keeps its cranectld stopped),
        then a failover to it with cranectld's DB backed up in the gap, then the old master.
        Returns the master at the end (cinfo goes there)."""
        plan = facts.plan["ha"]
        master, backup = plan["master"], plan["backup"]
        mover = Failover(self.minions, self.cluster)
        if plan["todo"][backup]:
            master = self.pair_member(facts, mover, backup, "backup")
        if plan["todo"][plan["master"]]:
            if master == plan["master"]:
                self.failover_step(facts, mover, plan["master"], backup)
            master = self.pair_member(facts, mover, plan["master"], "old master")
        return master

    def pair_member(self, facts, mover, minion, label):
        """Apply the formula on one member of the pair, then wait until the pair serves
        every node again (its keepalived may take the role back) and drain again what
        cranectld forgot."""
        self.step(f"control {label} {minion}")
        try:
            via = next(n for n in crane_ha.pair(facts.ha) if n != minion)
            before = mover.nodes_before(via)
            self.progress(f"{label} control node {minion}: applying the formula")
            failed = self.apply([minion])
            if failed:
                raise StepError(failed[minion])
            master = mover.settle(facts.ha, before, float(self.opts["register_timeout"]))
            self.done(facts, [minion])
            self.progress(f"{label} control node {minion}: done; {master} is master")
            return master
        except StepError as exc:
            self.report["failed"].setdefault(minion, str(exc))
            raise StepError(f"{label} control node {minion}: {exc}") from exc
        finally:
            self.end_step()

    def failover_step(self, facts, mover, old, target):
        """Move the role to the (done) backup; cranectld's DB is backed up once, from the
        shared directory, while no cranectld runs. A failover that does not serve in time
        fails back to ``old``."""
        self.step("failover")
        view = pair_view(self.minions, facts.ha)
        timeout = float(self.opts["register_timeout"])
        try:
            if view["master"] != old:
                raise StepError(f"{old} is no longer master: {'; '.join(view['problems'])}")
            self.report["failover"] = mover.move(
                facts.ha, view, target, timeout, in_gap=lambda: self._backup_minion(old)
            )
        except SwitchTimeout as exc:
            self.report["failed"]["failover"] = str(exc)
            mover.fail_back(facts.ha, old, target, mover.last_before, timeout)
            self.report["failed"]["failover"] += f"; failed back: {old} is master again"
            raise StepError(f"failover to {target}: {exc}; {old} is master again") from exc
        except StepError as exc:
            self.report["failed"]["failover"] = str(exc)
            raise StepError(f"failover to {target}: {exc}") from exc
        finally:
            self.end_step()

    def _backup_minion(self, minion):
        try:
            backup = self.minions.one(
                minion, "crane.backup_db", kwarg={"keep": int(self.opts["keep_backups"])}
            )
        except StepError as exc:
            raise StepError(f"backup of cranectld's DB failed: {exc}") from exc
        self.report["backup"] = {**backup, "minion": minion} if isinstance(backup, dict) else backup
        self.progress(f"{minion}: cranectld's DB backed up to {backup.get('backup')}")

    def _backup(self, ctl):
        self._backup_minion(ctl.minion)

    def _wait_cranectld(self, ctl):
        """Until cranectld answers (it may take seconds: it connects to its database first);
        StepError at once when the unit is no longer running (a failed database connection
        makes it exit after the driver's timeout), or after register_timeout."""

        def waiting():
            try:
                ctl.nodes()
            except StepError as exc:
                if not self.minions.one(ctl.minion, "service.status", ["cranectld"]):
                    raise Fatal(f"cranectld exited after its start: {exc}") from exc
                return str(exc)
            return None

        still = self.poll("cranectld to answer", waiting, self.opts["register_timeout"])
        if still:
            raise StepError(
                f"cranectld does not answer {self.opts['register_timeout']}s after its start: "
                f"{still}"
            )

    def _wait_up(self, ctl, up):
        """The nodes of ``up`` still down after register_timeout (none: all registered)."""

        def waiting():
            states = ctl.nodes()
            return [n for n in up if is_down(states.get(n))]

        late = self.poll("nodes to register again", waiting, self.opts["register_timeout"])
        return (late if isinstance(late, list) else up) if late else []

    def _wait_registered_again(self, ctl, up, recorded):
        """StepError naming the nodes of ``up`` still down after register_timeout; those
        without a recorded drain cannot be drained now (DOWN) and are named so."""
        late = self._wait_up(ctl, up)
        if late:
            for node in late:
                self.report["failed"][node] = (
                    f"did not register again within {self.opts['register_timeout']}s of "
                    "cranectld's restart"
                )
                if node not in recorded:
                    self.report.setdefault("not_drained", {})[node] = (
                        "down: CraneSched refuses to drain a DOWN node"
                    )
            raise StepError(f"nodes not registered again: {', '.join(late)}")

    def _start_cranectld(self, ctl, up):
        """After a failure: cranectld started again and the nodes registered (so that their
        recorded drains can be restored: CraneSched refuses to drain a DOWN node)."""
        try:
            if self.minions.one(ctl.minion, "service.status", ["cranectld"]):
                return  # it runs: the failure was elsewhere
            self.minions.one(ctl.minion, "service.start", ["cranectld"])
            self._wait_cranectld(ctl)
        except StepError as exc:
            self.report["cranectld"] = f"NOT running after the failure: {exc}"
            return
        self.report["cranectld"] = "started again after the failure"
        self.progress(f"{ctl.minion}: cranectld started again after the failure")
        late = self._wait_up(ctl, up)
        if late:
            self.report["cranectld"] += f"; not registered again: {', '.join(late)}"

    def _restore_drains(self, ctl):
        try:
            result = ctl.drains_restore(self.opts["register_timeout"])
        except StepError as exc:
            self.report["drains_error"] = str(exc)
            return
        self.report.pop("drains_error", None)
        if result.get("restored"):
            self.progress(f"restored drains: {', '.join(sorted(result['restored']))}")
        self.report["drains_pending"] = dict(result.get("pending") or {})
        if not self.report["drains_pending"]:
            del self.report["drains_pending"]

    def login_step(self, facts):
        for minion in facts.plan["login"]:
            failed = self.apply([minion])
            if failed:
                self.report["failed"][minion] = failed[minion]
                raise StepError(f"login node {minion}: {failed[minion]}")
            self.done(facts, [minion])
            self.progress(f"{minion}: done")

    def drain_batch(self, facts, ctl, nodes):
        """Drain the batch with the formula's reason before anything stops. Returns the nodes
        that are ours to resume (not an admin's drain). A node already down cannot be drained
        (CraneSched refuses): it is named in the report, not pretended drained."""
        states = ctl.nodes()
        admin = admin_drained(states, nodes)
        ours = [n for n in nodes if n not in admin]
        to_drain = [n for n in ours if not is_down(states.get(n))]
        try:
            ctl.drain(to_drain, facts.plan["reason"])
        except StepError:
            states = ctl.nodes()
            if any(not is_down(states.get(n)) for n in to_drain):
                raise
        for node in ours:
            if is_down(states.get(node)) and not is_drained(states.get(node)):
                self.report.setdefault("not_drained", {})[node] = (
                    "down: CraneSched refuses to drain a DOWN node"
                )
        if admin:
            self.progress(f"{', '.join(admin)}: drained by an admin; stays drained")
        return ours

    def wait_jobs(self, ctl, nodes):
        busy = self.poll(
            "running jobs to end", lambda: busy_nodes(ctl, nodes), self.opts["drain_timeout"]
        )
        return busy or {}

    def start_times(self, ctl):
        return {n: d.get("craned_start_time") for n, d in ctl.show().items()}

    def stop_craned(self, facts, nodes):
        """{node: ("stop craned", why)} for the nodes where craned could not be stopped."""
        by_minion = {facts.minion(n): n for n in nodes}
        _, failed = self.minions.call(by_minion, "service.stop", ["craned"])
        return {by_minion[m]: ("stop craned", why) for m, why in failed.items()}

    def restart_nodes(self, facts, ctl, nodes, before=None):
        """Stop craned (unless ``before``, the start times taken before the caller stopped
        it), apply the formula, wait until registered (at the target version).
        Returns {node: (step, detail)} for the nodes it failed on."""
        by_minion = {facts.minion(n): n for n in nodes}
        failed = {}
        if before is None:
            before = self.start_times(ctl)
            failed = self.stop_craned(facts, nodes)
        todo = [n for n in nodes if n not in failed]
        applied = self.apply([facts.minion(n) for n in todo])
        failed.update(
            {by_minion[m]: ("state.apply crane", t.partition(": ")[2]) for m, t in applied.items()}
        )
        todo = [n for n in todo if n not in failed]

        def waiting():
            details = ctl.show()
            return [n for n in todo if not self.registered(details.get(n) or {}, before.get(n))]

        late = self.poll(f"{', '.join(todo)} to register", waiting, self.opts["register_timeout"])
        late = (late if isinstance(late, list) else todo) if late and todo else []
        target = f" at {self.version}" if self.version else ""
        for node in late:
            failed[node] = (
                "register",
                f"not registered{target} after {self.opts['register_timeout']}s",
            )
        return failed

    def registered(self, detail, started_before):
        """Up with a new craned process (and, for an upgrade, at the target release, when its
        Version= names one: a build without a VERSION file reports a git hash)."""
        if is_down(detail):
            return False
        if detail.get("craned_start_time") in (None, started_before):
            return False
        reported = detail.get("version")
        if self.action == "upgrade" and crane_upgrade.release(reported):
            return crane_upgrade.same_release(reported, self.version)
        return True

    def done(self, facts, names):
        """Nodes (or minions) finished: in the report and in the run record a re-run skips."""
        self.report["done"] += [n for n in names if n not in self.report["done"]]
        if self.cluster.state_dir and names:
            save_record(self.cluster.state_dir, self.key(facts), self.started, names)

    def key(self, facts):
        return self.record_key(facts.config_hash)

    def record_key(self, config_hash):
        """What makes a run record apply to this run: the same command, version, config and
        way (with or without drain)."""
        key = {"action": self.action, "version": self.version, "config": config_hash}
        if not self.opts["drain"]:
            key["drain"] = False
        return key

    def batch_tail(self, facts, ctl, nodes, *, ours, failed, label):
        """End of a batch (every strategy): resume what we drained on the good nodes, record
        them done, leave failed nodes drained with why (never overwriting an admin's reason,
        never pretending a DOWN node was drained), and stop the run if anything failed."""
        good = [n for n in nodes if n not in failed]
        if self.report.get("drains_pending"):
            self._restore_drains(ctl)  # nodes down at cranectld's restart are up again
        states = ctl.nodes()
        ctl.resume([n for n in good if n in ours and is_drained(states.get(n))
                    and crane_upgrade.is_ours(states[n].get("reason"))])  # fmt: skip
        if good:
            self.progress(f"{label}: {', '.join(good)}: done")
        self.done(facts, good)
        for node, (step, detail) in failed.items():
            self.mark_failed(facts, ctl, node, step=step, detail=detail, admin=node not in ours)
        if failed:
            raise StepError(f"{label} failed on {', '.join(failed)}")

    def mark_failed(self, facts, ctl, node, *, step, detail, admin):
        self.report["failed"][node] = f"{step}: {detail}" if detail else step
        if admin:
            self.report["failed"][node] += " (keeps the admin's drain and reason)"
            return
        reason = crane_upgrade.failure_reason(facts.plan["reason"], step, detail)
        try:
            ctl.drain([node], reason)
        except StepError:
            state = ctl.nodes().get(node)
            if is_drained(state):
                self.report["failed"][node] += (
                    f" (down: stays drained as '{state.get('reason')}', CraneSched does not "
                    "change a DOWN node)"
                )
            else:
                self.report.setdefault("not_drained", {})[node] = (
                    "down: CraneSched refuses to drain a DOWN node"
                )

    def handle_busy(self, facts, ctl, nodes, *, ours, busy, can_skip):
        """Busy nodes after drain_timeout: skipped (skip_busy) or the run stops."""
        after = f"jobs still running after {self.opts['drain_timeout']}s"
        text = ", ".join(f"{n} ({j} job(s))" for n, j in busy.items())
        if can_skip and self.opts["skip_busy"]:
            ctl.resume([n for n in busy if n in ours])
            self.report["skipped"].update(dict.fromkeys(busy, after))
            self.progress(f"skipping busy nodes: {text}")
            return [n for n in nodes if n not in busy]
        ctl.resume([n for n in nodes if n not in busy and n in ours])
        for node in busy:
            self.mark_failed(facts, ctl, node, step="drain", detail=after, admin=node not in ours)
        raise StepError(
            f"jobs still running after drain_timeout={self.opts['drain_timeout']}s: {text}"
        )

    def compute_batch(self, facts, ctl, nodes, label):
        if not self.opts["drain"]:
            return self.live_batch(facts, ctl, nodes, label)
        self.step(label)
        try:
            self.progress(f"{label}: {', '.join(nodes)}: draining")
            ours = self.drain_batch(facts, ctl, nodes)
            busy = self.wait_jobs(ctl, nodes)
            if busy:
                nodes = self.handle_busy(facts, ctl, nodes, ours=ours, busy=busy, can_skip=True)
            if nodes:
                self.progress(f"{label}: {', '.join(nodes)}: stopping craned, applying the formula")
                failed = self.restart_nodes(facts, ctl, nodes)
                self.batch_tail(facts, ctl, nodes, ours=ours, failed=failed, label=label)
        finally:
            self.end_step()

    def live_batch(self, facts, ctl, nodes, label):
        """A batch restarted without a drain (``drain=False``): busy nodes too, their jobs keep
        running (csupervisor lives on in the job's cgroup and craned recovers it). Each
        node's craned restart is marked due and the formula restarts it (``on_change``), then
        the batch must register again with new craned processes."""
        self.step(label)
        try:
            states = ctl.nodes()
            ours = [n for n in nodes if n not in admin_drained(states, nodes)]
            self.progress(f"{label}: {', '.join(nodes)}: restarting craned, no drain")
            before = self.start_times(ctl)
            by_minion = {facts.minion(n): n for n in nodes}
            _, marked = self.minions.call(
                by_minion, "crane.restart_mark", ["craned"], {"why": "rolling restart"}
            )
            failed = {by_minion[m]: ("mark restart", why) for m, why in marked.items()}
            todo = [n for n in nodes if n not in failed]
            failed.update(self.restart_nodes(facts, ctl, todo, before=before))
            self.batch_tail(facts, ctl, nodes, ours=ours, failed=failed, label=label)
        finally:
            self.end_step()

    # -- strategies
    def rolling(self, facts, ctl):
        self.report["not_reached"] = [n for batch in facts.plan["batches"] for n in batch]
        if facts.plan["control"]["todo"] and facts.ha:
            ctl = Controller(self.minions, self.pair_steps(facts))
        elif facts.plan["control"]["todo"]:
            self.control_step(facts, ctl, self.serving(facts, ctl))
        self.login_step(facts)
        batches = facts.plan["batches"]
        for index, nodes in enumerate(batches):
            label = "canary" if index == 0 and facts.plan["canary"] else f"batch {index + 1}"
            self.report["not_reached"] = [n for b in batches[index + 1 :] for n in b]
            self.compute_batch(facts, ctl, nodes, label)
        self.report["not_reached"] = []

    def all_at_once(self, facts, ctl):
        """CraneSched's guide: every daemon stopped, every package upgraded, all started."""
        nodes = facts.plan["batches"][0] if facts.plan["batches"] else []
        self.report["not_reached"] = list(nodes)
        if facts.plan["control"]["todo"]:
            ctl.drains_save()  # while every node is up: a DOWN node's drain may not show
        ours = self.drain_batch(facts, ctl, nodes) if nodes else []
        busy = self.wait_jobs(ctl, nodes) if nodes else {}
        if busy:
            self.report["not_reached"] = [n for n in nodes if n not in busy]
            self.handle_busy(facts, ctl, nodes, ours=ours, busy=busy, can_skip=False)
        self.progress(f"stopping craned on {len(nodes)} node(s)")
        before = self.start_times(ctl)
        failed = self.stop_craned(facts, nodes)
        if failed:
            for node, (step, detail) in failed.items():
                self.mark_failed(facts, ctl, node, step=step, detail=detail, admin=node not in ours)
            raise StepError(f"stop craned failed on {', '.join(failed)}")
        if facts.plan["control"]["todo"]:
            self.control_step(facts, ctl, up=[])
        self.login_step(facts)
        if nodes:
            self.report["not_reached"] = []
            self.progress(f"{', '.join(nodes)}: applying the formula")
            failed = self.restart_nodes(facts, ctl, nodes, before=before)
            self.batch_tail(facts, ctl, nodes, ours=ours, failed=failed, label="all-at-once")

    # -- the whole run
    def run(self, dry_run=False, locked=False):
        """The run; ``locked``: the caller already holds the run lock (a join)."""
        lock = None
        try:
            if not (dry_run or locked) and self.cluster.state_dir:
                lock = acquire_lock(self.cluster.state_dir, self.action, self.cluster.now())
            facts = self.preflight(dry_run)
            self.report["pillar_version"] = facts.pillar_version
            self.report["plan"] = facts.plan
            self.report["plan_text"] = crane_upgrade.render_plan(facts.plan)
            self.progress(self.report["plan_text"])
            if dry_run:
                self.report.update(ok=True, dry_run=True)
            else:
                self.report["skipped"].update(facts.plan["skipped"])
                ctl = Controller(self.minions, facts.control)
                if facts.plan["strategy"] == "all-at-once":
                    self.all_at_once(facts, ctl)
                else:
                    self.rolling(facts, ctl)
                self.report["ok"] = True
                if self.cluster.state_dir:
                    clear_record(self.cluster.state_dir, self.key(facts))
        except StepError as exc:
            self.report["error"] = str(exc)
            if "plan" not in self.report:
                self.report["failed"]["preflight"] = str(exc)
        finally:
            if lock:
                release_lock(lock)
        self.report["seconds"] = round(self.cluster.now() - self.started, 1)
        return self.finish()

    def finish(self):
        report = self.report
        if report.get("plan"):
            report["summary"] = crane_upgrade.summary(report)
        else:
            report["summary"] = f"FAILED before touching any node: {report.get('error')}"
        self.progress(report["summary"])
        report["retcode"] = 0 if report["ok"] else 1
        if not report["ok"]:
            report["Error"] = report.get("error", "failed")  # salt.runner states fail on it
        return report


def run(cluster, action, version, options, *, dry_run=False, locked=False):
    """An upgrade or restart run; the report (``retcode`` 1 and ``Error`` on failure).
    ``locked``: the caller holds the run lock already."""
    try:
        opts = check_options(action, version, options)
    except ValueError as exc:
        return {"ok": False, "retcode": 1, "Error": str(exc)}
    return Run(cluster, action, version, opts).run(dry_run=dry_run, locked=locked)


# --- the Keepalived control pair (crane:ha) --------------------------------------------------


def ha_settings(minions, known):
    """``crane:ha`` as the control minions' pillar gives it (None when HA is off)."""
    controls = sorted(m for m, r in known.items() if "control" in r)
    settings, _ = minions.call(controls, "crane.settings")
    for minion in controls:
        found = settings.get(minion)
        ha = found.get("ha") if isinstance(found, dict) else None
        if crane_ha.enabled(ha):
            return ha
    return None


def backup_problems(name, state):
    """Why the control node ``name`` could not take the master role now (empty: ready)."""
    if not isinstance(state, dict):
        return [f"{name}: {state}"]
    found = []
    if not state.get("keepalived"):
        found.append(f"{name}: keepalived is not running")
    if state.get("cranectld") and not state.get("master"):
        found.append(f"{name}: cranectld runs although {name} is not master")
    if state.get("alive_file") and not state.get("cranectld"):
        found.append(
            f"{name}: its alive file exists while cranectld is stopped (an unclean stop): its "
            "check fails; delete the file once the node is repaired"
        )
    return found


def pair_view(minions, ha):
    """The pair as its members report it: ``{"nodes": {name: crane_ha.status or why not},
    "master", "backup", "problems", "warnings"}``. No master, or two, is a problem; a backup
    that is missing or not ready is a warning."""
    nodes = crane_ha.pair(ha)
    answers, failed = minions.call(nodes, "crane_ha.status")
    states = {n: answers.get(n, failed.get(n, "no answer")) for n in nodes}
    masters = [n for n in nodes if isinstance(states[n], dict) and states[n].get("master")]
    view = {"nodes": states, "master": masters[0] if len(masters) == 1 else None,
            "problems": [], "warnings": []}  # fmt: skip
    if not masters:
        view["problems"].append(f"no control node holds the virtual IP {ha.get('vip')}")
    elif len(masters) > 1:
        view["problems"].append(f"both control nodes hold the virtual IP: {', '.join(masters)}")
    elif not states[masters[0]].get("cranectld"):
        view["problems"].append(f"{masters[0]} holds the virtual IP but cranectld is not running")
    view["backup"] = next((n for n in nodes if n not in masters), None) if masters else None
    if view["backup"]:
        found = backup_problems(view["backup"], states[view["backup"]])
        view["warnings"] += [f"backup not ready: {text}" for text in found]
    return view


def via_minion(view):
    """The pair member to run cinfo on (through the VIP name): the master, else one that
    answered."""
    answered = [n for n, s in view["nodes"].items() if isinstance(s, dict)]
    if view["master"] in answered:
        return view["master"]
    if not answered:
        raise StepError("no control node of crane:ha answered: " + str(view["nodes"]))
    return answered[0]


def pair_rows(view):
    rows = []
    for name, state in view["nodes"].items():
        if not isinstance(state, dict):
            rows.append([name, "?", "no answer", "-", "no"])
            continue
        role = "master" if name == view["master"] else "backup"
        ready = "-" if role == "master" else ("no" if backup_problems(name, state) else "yes")
        rows.append([name, role, _active_text(state.get("keepalived")),
                     _active_text(state.get("cranectld")), ready])  # fmt: skip
    return rows


def _active_text(flag):
    return "active" if flag else "inactive"


def failover(cluster, to=None, timeout=180):
    """Move the master role of the pair on purpose: see ``Failover``."""
    try:
        return Failover(Minions(cluster), cluster).run(to, float(timeout))
    except StepError as exc:
        return {"result": False, "comment": str(exc), "retcode": 1}


class Failover:
    """A planned failover: cranectld stopped cleanly on the master (its lock frees and its
    alive file goes), keepalived stopped there (the backup takes the virtual IP and its
    notify_master starts cranectld), then a wait until every compute node that was up has
    registered with the new master (cinfo through the VIP name). keepalived starts again on
    the old master only when its priority is lower (it would take the role back at once)."""

    def __init__(self, minions, cluster):
        self.minions, self.cluster = minions, cluster
        self.allowed = {}
        self.last_before = {}

    def run(self, to, timeout):
        known, _ = roles(self.minions)
        ha = ha_settings(self.minions, known)
        if not ha:
            raise StepError("crane:ha is not enabled: there is no pair to fail over")
        view = pair_view(self.minions, ha)
        if not view["master"]:
            raise StepError("refusing to fail over: " + "; ".join(view["problems"]))
        old = view["master"]
        target = self.target(ha, old, to)
        if target == old:
            return {"result": True, "master": old, "comment": f"{old} is already master",
                    "retcode": 0}  # fmt: skip
        return self.move(ha, view, target, timeout)

    def move(self, ha, view, target, timeout, in_gap=None):
        """Fail over from ``view``'s master to ``target``; ``in_gap`` (optional) runs while
        no cranectld runs (the master's stopped, the VIP not moved yet): when it raises, the
        master's cranectld starts again and nothing moves (``GapFailed``)."""
        old = view["master"]
        self.check_ready(target, view["nodes"][target])
        before = self.nodes_before(target)
        try:
            report = self.switch(ha, old, target, timeout, in_gap)
        except GapFailed:
            self.redrain(old, before)
            raise
        report["drains"] = self.redrain(target, before)
        return report

    def nodes_before(self, via):
        """Every node's state now (cinfo through the VIP name), and what may stay down or
        drained in the waits that follow."""
        try:
            before = Controller(self.minions, via).nodes()
        except StepError as exc:
            raise StepError(f"refusing to fail over: cranectld does not answer: {exc}") from exc
        self.last_before = before
        self.allowed = {
            "allow_down": ",".join(n for n, s in before.items() if is_down(s)) or None,
            "allow_drained": ",".join(n for n, s in before.items() if is_drained(s)) or None,
        }
        return before

    @staticmethod
    def target(ha, old, to):
        nodes = crane_ha.pair(ha)
        if to is not None and str(to) not in nodes:
            raise StepError(f"to={to}: not one of crane:ha:nodes {nodes}")
        return str(to) if to is not None else next(n for n in nodes if n != old)

    @staticmethod
    def unready(target, state):
        """Why ``target`` cannot take over (a stopped keepalived is started by the failover
        itself)."""
        found = backup_problems(target, state)
        return [f for f in found if not f.endswith("keepalived is not running")]

    @classmethod
    def check_ready(cls, target, state):
        found = cls.unready(target, state)
        if found:
            raise StepError(f"refusing to fail over to {target}: " + "; ".join(found))

    def redrain(self, target, before):
        """Drain again what was drained (cranectld keeps drains in memory only): ``{"restored":
        {node: reason}, "lost": {node: why}}`` (a node down now cannot be drained)."""
        drained = {n: s.get("reason") or "" for n, s in before.items() if is_drained(s)}
        by_reason = {}
        for node, reason in drained.items():
            by_reason.setdefault(reason, []).append(node)
        ctl, lost = Controller(self.minions, target), {}
        for reason, nodes in sorted(by_reason.items()):
            try:
                ctl.drain(sorted(nodes), reason)
            except StepError as exc:
                lost.update(dict.fromkeys(nodes, str(exc)))
        return {"restored": {n: r for n, r in drained.items() if n not in lost}, "lost": lost}

    def health(self, via):
        """crane.health on ``via`` (cinfo through the VIP name) allowing what was down or
        drained before, or why it did not answer."""
        try:
            return self.minions.one(via, "crane.health", kwarg=self.allowed, check=False)
        except StepError as exc:
            return str(exc)

    def switch(self, ha, old, target, timeout, in_gap=None):
        unit = ha.get("keepalived_service") or "keepalived"
        began = self.cluster.now()
        self.cluster.progress(f"stopping cranectld on {old} (its lock frees)")
        self.minions.one(old, "service.stop", ["cranectld"])
        if in_gap:
            self.gap(old, in_gap, began + timeout)
        self.cluster.progress(f"stopping {unit} on {old}: {target} takes the virtual IP")
        self.minions.one(old, "service.stop", [unit])
        try:
            self.minions.one(target, "service.start", [unit])
        except StepError as exc:
            self.target_lost(old, unit, exc, timeout)
        waiting = self.wait(target, began + timeout)
        if waiting:
            raise SwitchTimeout(
                f"after {timeout:.0f} s {target} is not serving every node: {waiting} "
                f"({unit} stays stopped on {old})"
            )
        seconds = round(self.cluster.now() - began, 1)
        report = {"result": True, "from": old, "to": target, "seconds": seconds, "retcode": 0}
        priorities = ha.get("priorities") or {}
        if priorities.get(old, 0) < priorities.get(target, 0):
            self.minions.one(old, "service.start", [unit])
            report["comment"] = f"{target} is master; {old} is its backup again"
        else:
            report["comment"] = (
                f"{target} is master; {unit} stays stopped on {old} (its higher priority would "
                f"take the role back): salt-run crane.failover to={old} hands it back, and so "
                f"does state.apply crane on {old}"
            )
        self.cluster.progress(f"failover done in {seconds} s: {report['comment']}")
        return report

    def gap(self, old, in_gap, deadline):
        """Run ``in_gap`` while no cranectld runs; on failure start ``old``'s again (it still
        holds the VIP and its lock is free), wait until it serves, raise ``GapFailed``."""
        try:
            in_gap()
        except StepError as exc:
            self.minions.one(old, "service.start", ["cranectld"])
            waiting = self.wait(old, deadline)
            state = f"not serving every node yet: {waiting}" if waiting else "serving again"
            raise GapFailed(
                f"{exc}; no failover: cranectld started again on {old}, {state}"
            ) from exc

    def target_lost(self, old, unit, exc, timeout):
        """The target did not answer as it was told to take over. Its keepalived, running as
        the backup, may have taken the VIP all the same: when cinfo through the VIP (asked on
        ``old``) shows every node within ``timeout``, the cluster is left serving there;
        otherwise ``old``'s keepalived starts again and takes the role back (``GapFailed``).
        Either way the run stops: the target cannot be checked."""
        deadline = self.cluster.now() + timeout
        while True:
            health = self.health(old)
            if isinstance(health, dict) and health.get("healthy"):
                lost = self.redrain(old, self.last_before)["lost"]
                raise StepError(
                    f"{exc}; the virtual IP serves every node all the same (its {unit} took "
                    f"over; drains not restored: {lost or 'none'}): repair its minion, then "
                    "run again"
                ) from exc
            if self.cluster.now() >= deadline:
                break
            self.cluster.sleep(POLL)
        self.minions.one(old, "service.start", [unit])
        waiting = self.wait(old, self.cluster.now() + timeout)
        state = f", not serving every node yet: {waiting}" if waiting else ""
        raise GapFailed(f"{exc}; no failover: {old} is master again{state}") from exc

    def fail_back(self, ha, old, target, before, timeout):
        """After a failover that did not serve in time: cranectld and keepalived stopped on
        ``target``, keepalived started on ``old`` (alone, it takes the VIP and its
        notify_master starts cranectld), a wait until it serves, drains restored. keepalived
        stays stopped on ``target`` until it is repaired."""
        unit = ha.get("keepalived_service") or "keepalived"
        self.cluster.progress(f"failing back to {old}: stopping cranectld and {unit} on {target}")
        self.minions.one(target, "service.stop", ["cranectld"])
        self.minions.one(target, "service.stop", [unit])
        self.minions.one(old, "service.start", [unit])
        waiting = self.wait(old, self.cluster.now() + timeout)
        if waiting:
            raise StepError(f"fail back to {old}: not serving after {timeout:.0f} s: {waiting}")
        return self.redrain(old, before)

    def settle(self, ha, before, timeout):
        """Wait until one member of the pair holds the VIP, runs cranectld and serves every
        node that was up ``before`` (after a change on a member that may move the role), and
        the other runs no cranectld; drain again what was drained. Returns the master."""
        deadline = self.cluster.now() + timeout
        while True:
            view = pair_view(self.minions, ha)
            master = view["master"]
            waiting = (
                "; ".join(view["problems"])
                or self.preempting(ha, view)
                or self.missing(master)
                or self.second(view)
            )
            if not waiting:
                break
            if self.cluster.now() >= deadline:
                raise StepError(f"after {timeout:.0f} s the pair does not serve: {waiting}")
            self.cluster.sleep(POLL)
        self.redrain(master, before)
        return master

    @staticmethod
    def preempting(ha, view):
        """The backup will take the VIP (its keepalived runs with the higher priority and no
        stale alive file lowers it): the role is about to move, so the pair has not settled."""
        backup, master = view["backup"], view["master"]
        state = view["nodes"].get(backup)
        if not isinstance(state, dict) or not state.get("keepalived") or state.get("alive_file"):
            return ""
        priorities = ha.get("priorities") or {}
        if priorities.get(backup, 0) > priorities.get(master, 0):
            return f"{backup} (higher priority) has not taken the virtual IP back yet"
        return ""

    @staticmethod
    def second(view):
        """A cranectld on the backup (two would share the DB), or nothing."""
        state = view["nodes"].get(view["backup"])
        if isinstance(state, dict) and state.get("cranectld"):
            return f"cranectld runs on the backup {view['backup']}"
        return ""

    def wait(self, target, deadline):
        """Poll until ``target`` holds the VIP, runs cranectld and cinfo through the VIP
        shows every node up that was up before; returns what is missing (empty: done)."""
        while True:
            waiting = self.missing(target)
            if not waiting or self.cluster.now() >= deadline:
                return waiting
            self.cluster.sleep(POLL)

    def missing(self, target):
        try:
            state = self.minions.one(target, "crane_ha.status")
        except StepError as exc:
            return str(exc)
        if not state.get("master"):
            return f"{target} does not hold the virtual IP"
        if not state.get("cranectld"):
            return f"cranectld is not running on {target}"
        health = self.health(target)
        if not isinstance(health, dict):
            return f"cinfo through the VIP: {health}"
        return "" if health.get("healthy") else f"cinfo: {health.get('summary')}"
