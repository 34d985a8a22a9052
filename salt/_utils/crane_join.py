"""Nodes that join and leave by themselves: the steps behind ``crane.orch.join`` / ``leave``.

A join brings in a minion that matches a node group by selector (``Nodes`` entries with
``match``, see ``crane_elastic``): its modules, pillar and mine facts first; then the formula
on the node alone, counting it as joined (``crane:elastic:candidate``) so its own gates (names,
cgroups, gres, daemons) run before any other node hears of it; only when that passes does it
get marked joined (``crane.joined``) and its facts say so. Then config.yaml everywhere: the other
nodes with ``crane:restart: never`` (a craned keeps running on the old file; CraneSched only
logs the CRC difference, and the restart stays due for the next rolling restart), the control
node last with ``crane:restart: on_change``, since cranectld reads ``Nodes`` only at start (the
formula records and restores the drains around that restart, and its verify step waits for
every node). Last, the craned whose restart is now due are restarted through the engine, a
batch at a time (``crane:elastic:batch``) and without a drain: CraneSched keeps running jobs
across a craned restart (csupervisor lives on in the job's cgroup), so no restart is left due
and never are all craned down at once. A leave drains the node that is gone from the config,
waits for its jobs, then does the same config and restart steps.

Runs hold the engine's run lock (one join, leave, upgrade or restart at a time) and wait for it;
every step is idempotent, so a join repeated by a second start event, or after the minion
restarted mid-join, finishes what the first one began.

Nodes racked together join together: each join queues its minion first (a file per minion in
the master's state directory), and the run that gets the lock takes every minion queued by
then, and those queued while it gates them: each applied and gated alone, then one config
step, one cranectld restart and one rolling restart of craned for all of them. The runs
still waiting find their minion's report there and return it; a minion queued again
meanwhile (it restarted) is left for its own run.
So the cost of k new nodes is k node applies plus one cluster-wide step, not k of them.
"""

import contextlib
import os
import sys
import urllib.parse
import uuid

# Siblings by name; the folder stays on sys.path (README, "How the utilities load").
_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
if _FOLDER not in sys.path:
    sys.path.append(_FOLDER)

import crane_engine  # noqa: E402
import crane_hostlist  # noqa: E402
from crane_engine import Controller, Minions, StepError  # noqa: E402

LEAVE_REASON = "crane-formula: node left the cluster"
DEFAULTS = {"lock_wait": 900, "drain_timeout": 600, "register_timeout": 180, "batch": "25%"}
PILLAR_OPTIONS = ("lock_wait", "drain_timeout", "batch")  # crane:elastic:<key> when not given


QUEUE_DIR = "join-queue"


class _Queue:
    """The minions waiting to join: ``<state_dir>/join-queue/<minion>.json`` holds the token
    of the run that queued it and, once a run has joined it, that run's report for it."""

    def __init__(self, cluster):
        self.dir = os.path.join(cluster.state_dir, QUEUE_DIR)

    def path(self, minion):
        return os.path.join(self.dir, urllib.parse.quote(minion, safe="") + ".json")

    def add(self, minion):
        token = uuid.uuid4().hex
        crane_engine.write_json(self.path(minion), {"token": token})
        return token

    def waiting(self):
        """``{minion: token}`` of the minions queued and not joined yet."""
        try:
            names = sorted(n for n in os.listdir(self.dir) if n.endswith(".json"))
        except OSError:
            return {}
        found = {}
        for name in names:
            entry = crane_engine.read_json(os.path.join(self.dir, name))
            if entry.get("token") and "report" not in entry:
                found[urllib.parse.unquote(name[: -len(".json")])] = entry["token"]
        return found

    def settle(self, minion, token, report):
        """Leave ``report`` for the run that queued ``minion`` with ``token``, unless the
        minion was queued again since (that run joins it itself)."""
        if crane_engine.read_json(self.path(minion)).get("token") == token:
            crane_engine.write_json(self.path(minion), {"token": token, "report": report})

    def report(self, minion, token):
        """The report another run left for this run's ``minion`` (taken off the queue)."""
        entry = crane_engine.read_json(self.path(minion))
        if entry.get("token") != token or "report" not in entry:
            return None
        self.remove(minion)
        return entry["report"]

    def remove(self, minion):
        with contextlib.suppress(OSError):
            os.remove(self.path(minion))

    def drop(self, minion, token):
        """Take ``minion`` off the queue unless it was queued again since."""
        if crane_engine.read_json(self.path(minion)).get("token") == token:
            self.remove(minion)


def _wait_lock(cluster, action, wait, settled=lambda: False):
    """The engine's run lock, waiting up to ``wait()`` seconds (asked when the lock is taken)
    for another run to end; None as soon as ``settled()`` is true (another run has done this
    one's work meanwhile)."""
    began, deadline = cluster.now(), None
    noted = None
    while not settled():
        try:
            lock = crane_engine.acquire_lock(cluster.state_dir, action, cluster.now())
        except StepError as exc:
            if deadline is None:
                deadline = began + float(wait())
            if cluster.now() >= deadline:
                raise StepError(f"gave up waiting after {deadline - began:g}s: {exc}") from exc
            if str(exc) != noted:
                cluster.progress(f"waiting: {exc}")
                noted = str(exc)
            cluster.sleep(crane_engine.POLL)
            continue
        if not settled():  # the run that held the lock may have settled it just before
            return lock
        crane_engine.release_lock(lock)
    return None


class _Step:
    """One join or leave: the report, progress lines and the config step they share."""

    def __init__(self, cluster, action, minion, options):
        self.cluster, self.action, self.minion = cluster, action, minion
        self.minions = Minions(cluster)
        self.given = {k: v for k, v in (options or {}).items() if v is not None}
        self.opts = {**DEFAULTS, **self.given}
        self.loaded = False  # the options not given read from the pillar (load_options)
        self.report = {"ok": False, "action": action, "minion": minion, "failed": {}}

    def load_options(self):
        """The options the runner was not given, from ``crane:elastic`` as the control node
        has it (its settings leave out a value of the wrong type: the default stays); then
        the waits checked, naming the option, before anything waits or changes."""
        if self.loaded:
            return
        self.loaded = True
        if any(key not in self.given for key in PILLAR_OPTIONS):
            settings = self.minions.one(self.control()[0], "crane.settings")
            elastic = settings.get("elastic") or {}
            for key in PILLAR_OPTIONS:
                if key not in self.given and elastic.get(key) not in (None, ""):
                    self.opts[key] = elastic[key]
        for key in ("lock_wait", "drain_timeout", "register_timeout"):
            self.seconds(key)

    def seconds(self, key):
        """The option ``key``, a number of seconds; StepError naming it when it is not."""
        value = self.opts[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise StepError(f"{self.option_name(key)}: seconds, 0 or more: {value!r}")
        return value

    def lock_wait(self):
        if "lock_wait" not in self.given:
            self.load_options()
        return self.seconds("lock_wait")

    def option_name(self, key):
        return key if key in self.given else f"crane:elastic:{key}"

    def progress(self, message):
        self.cluster.progress(f"{self.action} {self.minion}: {message}")

    def apply(self, minions, crane):
        """state.apply crane with ``crane`` merged into the pillar; ``{minion: why}``."""
        if not minions:
            return {}
        raw = self.cluster.call(
            sorted(minions), "state.apply", ["crane"], {"pillar": {"crane": crane}},
            timeout=crane_engine.CALL_TIMEOUT,
        )  # fmt: skip
        answers, failed = crane_engine.sort_answers(minions, raw)
        for minion, answer in answers.items():
            problems = crane_engine.state_failures(answer["ret"])
            if problems or answer["retcode"]:
                failed[minion] = "; ".join(problems or ["failed"])
        return failed

    def control(self):
        known, _silent = crane_engine.roles(self.minions)
        return crane_engine.control_minion(self.minions, known), known

    def restart_options(self):
        """The engine's options for the closing restart, checked before anything changes:
        craned only, no drain, the compute nodes whose restart is due, ``batch`` from the
        runner or ``crane:elastic:batch``."""
        options = {"batch": self.opts["batch"], "drain": False, "only_due": True,
                   "register_timeout": self.opts["register_timeout"]}  # fmt: skip
        try:
            crane_engine.check_options("restart", None, options)
        except ValueError as exc:
            raise StepError(f"{self.option_name('batch')}: {exc}") from exc
        return options

    def restart_due(self, options):
        """The craned whose restart the config step left due, restarted a batch at a time
        without a drain (running jobs keep running); the run's report under ``restart``."""
        self.progress(f"restarting the craned whose restart is due, batch {options['batch']}")
        report = crane_engine.run(self.cluster, "restart", None, options, locked=True)
        self.report["restart"] = {k: report.get(k) for k in ("done", "skipped", "failed")}
        if not report["ok"]:
            raise StepError(f"rolling restart of craned: {report.get('Error')}")

    def reconfigure(self, skip=()):
        """config.yaml on every node with a role, without restarting a craned; then the
        control node, whose cranectld restarts to read the new ``Nodes``."""
        control, known = self.control()
        others = sorted(m for m, r in known.items() if r and m != control and m not in skip)
        self.progress(f"config.yaml on {len(others)} node(s), no craned restarted")
        failed = self.apply(others, {"restart": "never", "verify": {"enabled": False}})
        self.progress(f"config.yaml and cranectld on {control}")
        failed.update(self.apply([control], {"restart": "on_change"}))
        self.report["failed"].update(failed)
        if failed:
            raise StepError(
                "config step failed on " + "; ".join(f"{m}: {w}" for m, w in sorted(failed.items()))
            )


class Join(_Step):
    """Joins ``minion`` and the minions queued with it (``batch``): each prepared and gated
    alone (one failing is not added; the others go on), minions queued while that goes on
    taken in too (``more``), then one config step, cranectld's restart and the closing
    rolling restart for all that passed."""

    def __init__(self, cluster, action, minion, options, more=list):
        super().__init__(cluster, action, minion, options)
        self.batch = [minion]  # then the minions queued with it, see _join
        self.more = more  # the minions queued since the last call, see _join
        self.groups = {}  # minion -> the node groups by selector it matches
        self.hosts = {}  # minion -> its host name, once it passed its gates and joined
        self.errors = {}  # minion -> why it was not joined
        self.common_error = None  # why the cluster-wide step failed, for every minion
        self.options = None  # the closing restart's, checked before the first gate

    def run(self):
        try:
            self.gate_all()
            joined = [m for m in self.batch if m in self.hosts]
            if joined:
                self.join(joined)
        except StepError as exc:
            self.common_error = str(exc)
            raise
        self.conclude()

    def gate_all(self):
        """Prepare and gate every minion of the batch, taking in the ones queued meanwhile."""
        new = list(self.batch)
        while new:
            others = [m for m in new if m != self.minion]
            if others:
                self.progress(f"joining together with {', '.join(others)} (queued meanwhile)")
            for minion in new:
                self.attempt(minion, self.prepare)
            for minion in (m for m in new if self.groups.get(m)):
                if self.options is None:
                    self.options = self.restart_options()
                self.attempt(minion, self.gate)
            new = [m for m in self.more() if m not in self.batch]
            self.batch.extend(new)

    def join(self, joined):
        # the last one's own apply already counted every other one as joined
        self.reconfigure(skip=joined[-1:])
        for minion in joined:
            self.wait_registered(self.hosts[minion])
        self.restart_due(self.options)

    def attempt(self, minion, step):
        """``step(minion)``; a StepError leaves that minion out, with the reason."""
        try:
            step(minion)
        except StepError as exc:
            self.errors[minion] = str(exc)
            if minion != self.minion:
                self.progress(f"{minion} not joined: {exc}")

    def prepare(self, minion):
        """Its modules, pillar and mine facts; the node groups whose selector it matches."""
        self.progress(f"syncing modules, pillar and mine facts of {minion}")
        self.minions.one(minion, "saltutil.sync_all", timeout=crane_engine.SYNC_TIMEOUT)
        self.minions.one(minion, "saltutil.refresh_pillar", kwarg={"wait": True})
        self.minions.one(minion, "mine.update")
        self.groups[minion] = self.minions.one(minion, "crane.selector_groups")
        if not self.groups[minion]:
            self.progress(f"{minion} matches no node group by selector: nothing to do")

    def gate(self, minion):
        """crane on the minion alone, counted as joined; marked joined when that passes."""
        self.progress(
            f"{minion} matches {', '.join(self.groups[minion])}: applying crane on it alone"
        )
        failed = self.apply([minion], {"elastic": {"candidate": minion}})
        if failed:
            self.report["failed"].update(failed)
            raise StepError(f"not added, its own apply failed: {failed[minion]}")
        self.minions.one(minion, "crane.joined", [True])
        self.minions.one(minion, "mine.update")
        host = self.minions.one(minion, "grains.get", ["host"])
        self.progress(f"{minion} passed its gates; marked joined as {host}")
        self.hosts[minion] = host

    def conclude(self):
        own = self.report_of(self.minion)
        self.report.update({k: own[k] for k in ("ok", "groups", "node") if k in own})
        if len(self.batch) > 1:
            self.report["batch"] = self.batch
        if "error" in own:
            raise StepError(own["error"])

    def report_of(self, minion):
        """What the join of ``minion`` came to, as its own run reports it."""
        error = self.errors.get(minion) or self.common_error
        report = {"ok": error is None, "action": "join", "minion": minion}
        report["groups"] = self.groups.get(minion, [])
        if minion in self.hosts:
            report["node"] = self.hosts[minion]
        if minion != self.minion:
            report["joined_with"] = self.minion
        if error:
            report["error"] = error
        return report

    def wait_registered(self, host):
        """Until cranectld lists ``host`` up (its craned runs since its own apply)."""
        ctl = Controller(self.minions, self.control()[0])
        deadline = self.cluster.now() + float(self.opts["register_timeout"])
        while True:
            state = ctl.nodes().get(host)
            if state and not crane_engine.is_down(state):
                self.progress(f"{host} is up in cinfo: {state}")
                return
            if self.cluster.now() >= deadline:
                raise StepError(f"{host} not up in cinfo after {self.opts['register_timeout']}s")
            self.cluster.sleep(crane_engine.POLL)


class Leave(_Step):
    def run(self):
        control, _known = self.control()
        ctl = Controller(self.minions, control)
        options = self.restart_options()
        self.wait_forgotten(control)
        config = self.minions.one(control, "crane.settings").get("config") or {}
        wanted = {h for g in _names(config) for h in crane_hostlist.expand(g)}
        states = ctl.nodes()
        leaving = sorted(n for n in states if n not in wanted)
        self.report["nodes"] = leaving
        if not leaving:
            self.progress("no node of cranectld's is gone from the config: nothing to do")
            self.report["ok"] = True
            return
        up = [n for n in leaving if not crane_engine.is_down(states[n])]
        self.progress(f"leaving: {', '.join(leaving)}; draining those up: {', '.join(up)}")
        ctl.drain(up, LEAVE_REASON)
        busy = self.wait_jobs(ctl, up)
        if busy:
            raise StepError(
                f"jobs still running after {self.opts['drain_timeout']}s on "
                + ", ".join(f"{n} ({j} job(s))" for n, j in busy.items())
                + ": left drained and in the config"
            )
        self.reconfigure()
        self.restart_due(options)
        self.report["ok"] = True

    def wait_forgotten(self, control):
        """Salt fires the key's delete event before it drops the minion's cached grains
        and mine data: wait until the master no longer serves them."""
        deadline = self.cluster.now() + 60
        while self.minions.one(control, "mine.get", [self.minion, "crane_facts"]):
            if self.cluster.now() >= deadline:
                raise StepError("the master still serves its mine data after 60s")
            self.cluster.sleep(crane_engine.POLL)

    def wait_jobs(self, ctl, nodes):
        deadline = self.cluster.now() + float(self.opts["drain_timeout"])
        while nodes:
            busy = crane_engine.busy_nodes(ctl, nodes)
            if not busy or self.cluster.now() >= deadline:
                return busy
            self.cluster.sleep(crane_engine.POLL)
        return {}


def _names(config):
    return [
        str(g["name"]) for g in config.get("Nodes") or [] if isinstance(g, dict) and g.get("name")
    ]


def run(cluster, action, minion, options=None):
    """A join or leave of ``minion``; the report (``retcode`` 1 and ``Error`` on failure)."""
    if action == "join":
        return _join(cluster, minion, options)
    step = Leave(cluster, action, minion, options)
    lock = None
    try:
        lock = _wait_lock(cluster, action, step.lock_wait)
        step.load_options()
        step.run()
    except StepError as exc:
        step.report["error"] = str(exc)
        step.progress(f"FAILED: {exc}")
    finally:
        if lock:
            crane_engine.release_lock(lock)
    return _finished(step.report)


def _join(cluster, minion, options):
    """Queue ``minion``, then join it with whatever is queued once the lock is ours, or
    return the report a run that held the lock meanwhile left for it."""
    queue = _Queue(cluster)
    token = queue.add(minion)
    others = {}  # minion -> token, of the queued minions this run takes in

    def more():
        found = {m: t for m, t in queue.waiting().items() if m != minion and m not in others}
        others.update(found)
        return sorted(found)

    step = Join(cluster, "join", minion, options, more)
    taken = {}

    def settled():
        taken["report"] = queue.report(minion, token)
        return taken["report"] is not None

    lock = None
    try:
        lock = _wait_lock(cluster, "join", step.lock_wait, settled)
        if lock is None:
            step.progress(f"joined by the run of {taken['report'].get('joined_with')}")
            return _finished(taken["report"])
        step.load_options()
        step.batch.extend(more())
        step.run()
    except StepError as exc:
        step.report["error"] = str(exc)
        step.progress(f"FAILED: {exc}")
    finally:
        for other, other_token in others.items():
            queue.settle(other, other_token, _finished(step.report_of(other)))
        queue.drop(minion, token)
        if lock:
            crane_engine.release_lock(lock)
    return _finished(step.report)


def _finished(report):
    report["retcode"] = 0 if report["ok"] else 1
    if not report["ok"]:
        report["Error"] = report["error"]
    return report
