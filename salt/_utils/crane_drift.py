"""
Drift of a node from what the crane formula last applied there, and the master's record of it.

On the node, ``state.apply crane`` (with ``crane:heal:enabled``) writes a *baseline*: the hash
of the config.yaml it rendered, the services and binaries the node's roles need, the healing
mode and a fingerprint of the settings it applied. The ``crane_drift`` beacon compares the
node with that baseline (never with the pillar: a pillar change not applied yet is not drift)
and sends one event per drift, once: a drift is known by a key that changes when the drift
happens again (the file's hash and modification time, the time the unit went inactive).

On the master the reactor hands each event to ``salt-run crane.drift``: it records the event
and, in mode ``heal``, re-applies the node through the normal ``state.apply crane`` (with its
validation), one apply per node at a time; events arriving meanwhile are folded into one more
round. Pure functions and a small store; the execution module, the runner and the tests call
them.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time

# Siblings by name; the folder stays on sys.path (README, "How the utilities load").
_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
if _FOLDER not in sys.path:
    sys.path.append(_FOLDER)

import crane_engine  # noqa: E402
import crane_hostlist  # noqa: E402

MODES = ("heal", "report")
STATE_DIR = "/var/lib/crane-formula"  # on the node, beside the restart markers
NODE_FILES = {"baseline": "drift-baseline.json", "seen": "drift-seen.json"}
RECORD_FILE = "crane-drift.json"  # on the master, in the runner's state directory
HISTORY = 20  # events kept per node on the master
MAX_ROUNDS = 3  # heal rounds one runner call runs for events that arrived during a heal
DOWN_STATES = ("inactive", "failed")  # systemd ActiveState of a unit that does not run


# --- the node: baseline, facts, drifts -------------------------------------------------------


def node_path(name, state_dir=None):
    """Where the node keeps its ``baseline`` or the drifts it has ``seen`` (reported)."""
    return os.path.join(state_dir or STATE_DIR, NODE_FILES[name])


def newline_terminated(text):
    """What ``file.managed`` writes for ``contents: text`` (it adds a final newline)."""
    return text if text.endswith("\n") else text + "\n"


def sha256(data):
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def fingerprint(settings):
    """A hash of the settings an apply works from: differs when the pillar (or anything the
    settings derive from) changed since."""
    return sha256(json.dumps(settings, sort_keys=True, default=str))


def watched_services(settings):
    """The node's CraneSched services the beacon watches. A ``crane:ha`` control node's
    cranectld is left to keepalived: the backup's is stopped on purpose, and a planned
    failover stops the master's before keepalived moves the virtual IP."""
    services = list(settings.get("services") or [])
    if settings.get("ha_facts") and "control" in (settings.get("roles") or []):
        services = [unit for unit in services if unit != "cranectld"]
    return services


def watched_binaries(settings):
    """``{program: path}`` of the binaries the node's packages provide (a deleted
    ``csupervisor`` stops every job start; the package step reinstalls it)."""
    programs = settings.get("binaries") or {}
    found = {}
    for key in settings.get("packages") or {}:
        found.update(programs.get(key) or {})
    supervisor = ((settings.get("config") or {}).get("Supervisor") or {}).get("Path")
    if "csupervisor" in found and supervisor:
        found["csupervisor"] = str(supervisor)  # craned execs the configured one
    return dict(sorted(found.items()))


def baseline(settings, config_path):
    """What an apply writes for the beacon: no time stamp, so a second apply changes nothing."""
    heal = settings.get("heal") or {}
    return {
        "config_path": config_path,
        "config_hash": sha256(newline_terminated(settings.get("config_text") or "")),
        "services": watched_services(settings),
        "binaries": watched_binaries(settings),
        "mode": heal.get("mode") if heal.get("mode") in MODES else "report",
        "fingerprint": fingerprint(settings),
    }


def find_drifts(base, facts):
    """The node's drifts from ``base``, each ``{"key", "kind", "what"}``. ``facts``:
    ``{"config": {"hash", "mtime"} or None, "units": {unit: {"state", "sub", "since"}},
    "missing": [program]}``."""
    drifts = []
    config = facts.get("config")
    if config is None:
        drifts.append({"key": "config:missing", "kind": "config",
                       "what": f"{base['config_path']} is missing"})  # fmt: skip
    elif config["hash"] != base["config_hash"]:
        drifts.append({
            "key": f"config:{config['hash']}:{config['mtime']}",
            "kind": "config",
            "what": f"{base['config_path']} differs from the one last applied",
        })  # fmt: skip
    for unit in base.get("services") or []:
        unit_facts = (facts.get("units") or {}).get(unit) or {}
        state = unit_facts.get("state") or "unknown"
        if state in DOWN_STATES:
            sub = unit_facts.get("sub")
            drifts.append({
                "key": f"service:{unit}:{unit_facts.get('since')}",
                "kind": "service",
                "what": f"{unit} is {state}" + (f" ({sub})" if sub and sub != "dead" else ""),
            })  # fmt: skip
    for program in facts.get("missing") or []:
        path = (base.get("binaries") or {}).get(program, program)
        drifts.append({"key": f"binary:{path}", "kind": "binary",
                       "what": f"{program} is missing ({path})"})  # fmt: skip
    return drifts


def new_events(drifts, seen, mode, now):
    """``(events, seen)``: an event for each drift not seen before, and the drifts to remember
    (only those still there, so a drift that comes back is new again)."""
    fields = ("kind", "what", "key")
    events = [
        {"tag": d["kind"], **{f: d[f] for f in fields}, "mode": mode, "time": now}
        for d in drifts
        if d["key"] not in seen
    ]
    return events, {d["key"]: seen.get(d["key"], now) for d in drifts}


# --- the master: the record ------------------------------------------------------------------


def clock(seconds):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


class Store:
    """The master's record of drifts and heals (``<state dir>/crane-drift.json``), changed
    only under a lock (the reactor runs events in threads; ``salt-run`` in processes)."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, RECORD_FILE)

    def read(self):
        return crane_engine.read_json(self.path).get("nodes") or {}

    @contextlib.contextmanager
    def changing(self):
        """The record's nodes to change in place; written back on leaving."""
        os.makedirs(self.state_dir, exist_ok=True)
        with open(self.path + ".lock", "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            nodes = self.read()
            yield nodes
            crane_engine.write_json(self.path, {"nodes": nodes})

    def heal_lock(self, minion):
        """An open file holding this minion's heal lock, or None while another heal of it
        runs. A lock dies with its process, so a killed run never blocks the next."""
        handle = open(os.path.join(self.state_dir, f"crane-heal-{minion}.lock"), "a")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle


def note_event(node, event, now):
    """Add a drift event to a node's record; its last drift."""
    drift = {
        "time": float(event.get("time") or now),
        "kind": str(event.get("kind") or "unknown"),
        "what": str(event.get("what") or "unknown drift"),
        "mode": event.get("mode") if event.get("mode") in MODES else "report",
    }
    node["drift"] = drift
    node["events"] = ([*node.get("events", []), drift])[-HISTORY:]
    return drift


def outcome(result, comment, now, **extra):
    return {"time": now, "result": result, "comment": comment, **extra}


def status_rows(nodes):
    """``{node: {"drift", "drift_at", "heal", "heal_at", "comment"}}`` of the last drift and
    heal of every node in the record."""
    rows = {}
    for name, node in nodes.items():
        drift, heal = node.get("drift") or {}, node.get("heal") or {}
        rows[name] = {
            "drift": drift.get("what", ""),
            "drift_at": clock(drift["time"]) if "time" in drift else "",
            "heal": heal.get("result", ""),
            "heal_at": clock(heal["time"]) if "time" in heal else "",
            "comment": heal.get("comment", ""),
        }
    return rows


def recorded(state_dir):
    """:func:`status_rows` of the record in ``state_dir`` (empty when there is none)."""
    return status_rows(Store(state_dir).read())


def status_text(rows):
    """The DRIFT table ``crane.status`` prints after its own (nothing without a record)."""
    if not rows:
        return ""
    lines = [
        [name, r["drift_at"], r["drift"], r["heal"] or "-", r["heal_at"], r["comment"]]
        for name, r in sorted(rows.items(), key=lambda x: crane_hostlist.natural_key(x[0]))
    ]
    headers = ["NODE", "DRIFT AT (UTC)", "DRIFT", "HEAL", "HEAL AT (UTC)", "COMMENT"]
    return "\n\n" + crane_engine.table(lines, headers)


# --- the master: handling one event -----------------------------------------------------------


def handle(cluster, minion, event):
    """Record ``event`` (a drift the beacon on ``minion`` reported) and, in mode heal,
    re-apply the node; the outcome recorded as the node's last heal."""
    store = Store(cluster.state_dir)
    now = cluster.now()
    with store.changing() as nodes:
        node = nodes.setdefault(minion, {})
        drift = note_event(node, event, now)
        if drift["mode"] != "heal":
            node["heal"] = outcome("reported", "crane:heal:mode is report: not healed", now)
            return node["heal"]
        holder = crane_engine.lock_holder(cluster.state_dir, now)
        if holder:
            node["heal"] = outcome(
                "skipped", f"not healed: crane.{holder.get('action', 'run')} is running", now
            )
            return node["heal"]
        lock = store.heal_lock(minion)
        if lock is None:
            node["pending"] = True  # the running heal takes one more round
            return outcome("queued", "a heal of this node is running: one more round", now)
    try:
        return _heal_rounds(cluster, store, minion, drift, lock)
    finally:
        lock.close()  # already released after the last round, unless that raised


def _heal_rounds(cluster, store, minion, drift, lock):
    """Heal until no event arrived meanwhile (at most MAX_ROUNDS). The lock is released under
    the record's lock, so an event that finds it held always leaves a round to a holder."""
    minions = crane_engine.Minions(cluster)
    for round_ in range(1, MAX_ROUNDS + 1):
        cluster.progress(f"healing {minion}: {drift['what']}")
        result = heal_once(cluster, minions, minion, drift)
        with store.changing() as nodes:
            node = nodes.setdefault(minion, {})
            node["heal"] = result
            # an event arrived meanwhile (an edit during the apply, say): one more round,
            # whatever this one gave; a node that keeps failing is not retried on its own
            again = node.pop("pending", False)
            if not again or round_ == MAX_ROUNDS:
                lock.close()
        cluster.progress(f"{minion}: {result['result']}: {result['comment']}")
        if not again:
            break
    return result


def heal_once(cluster, minions, minion, drift):
    """One heal of ``minion``: ask it what drifts now, re-apply, ask again."""
    began = cluster.now()
    try:
        before = minions.one(minion, "crane_drift.check")
    except crane_engine.StepError as exc:
        return outcome("failed", f"not healed: {exc}", cluster.now())
    if before.get("pending_change"):
        return outcome(
            "skipped",
            "not healed: the pillar differs from what was last applied here (a change not "
            "applied yet); apply it to the cluster",
            cluster.now(),
        )
    if not before.get("drifts"):
        return outcome("gone", "nothing to heal: the node is as last applied", cluster.now())
    try:
        ret = minions.one(minion, "state.apply", ["crane"], {"queue": True}, check=False)
        after = minions.one(minion, "crane_drift.check")
    except crane_engine.StepError as exc:
        return outcome("failed", str(exc), cluster.now())
    failures = crane_engine.state_failures(ret)
    if failures:
        return outcome("failed", "state.apply crane: " + "; ".join(failures[:3]), cluster.now())
    if after.get("drifts"):
        left = "; ".join(d["what"] for d in after["drifts"])
        return outcome("failed", f"still drifted after the apply: {left}", cluster.now())
    now = cluster.now()
    healed = "; ".join(d["what"] for d in before["drifts"])
    return outcome("healed", healed, now, seconds=round(now - began, 1),
                   since_drift=round(now - drift["time"], 1))  # fmt: skip
