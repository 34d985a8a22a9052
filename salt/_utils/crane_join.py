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
"""

# Salt's loader (3006 and 3008) puts this folder on sys.path while it loads a module;
# the tests put it there too.
import crane_engine
import crane_hostlist
from crane_engine import Controller, Minions, StepError

LEAVE_REASON = "crane-formula: node left the cluster"
DEFAULTS = {"lock_wait": 900, "drain_timeout": 600, "register_timeout": 180, "batch": None}
BATCH = "25%"  # crane:elastic:batch when the pillar has none


def _wait_lock(cluster, action, wait):
    """The engine's run lock, waiting up to ``wait`` seconds for another run to end."""
    deadline = cluster.now() + float(wait)
    noted = None
    while True:
        try:
            return crane_engine.acquire_lock(cluster.state_dir, action, cluster.now())
        except StepError as exc:
            if cluster.now() >= deadline:
                raise StepError(f"gave up waiting after {wait}s: {exc}") from exc
            if str(exc) != noted:
                cluster.progress(f"waiting: {exc}")
                noted = str(exc)
            cluster.sleep(crane_engine.POLL)


class _Step:
    """One join or leave: the report, progress lines and the config step they share."""

    def __init__(self, cluster, action, minion, options):
        self.cluster, self.action, self.minion = cluster, action, minion
        self.minions = Minions(cluster)
        self.opts = {**DEFAULTS, **{k: v for k, v in (options or {}).items() if v is not None}}
        self.report = {"ok": False, "action": action, "minion": minion, "failed": {}}

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

    def restart_options(self, control):
        """The engine's options for the closing restart, checked before anything changes:
        craned only, no drain, the compute nodes whose restart is due, ``batch`` from the
        runner or ``crane:elastic:batch`` on the control node."""
        batch = self.opts["batch"]
        key = "batch"
        if batch is None:
            settings = self.minions.one(control, "crane.settings")
            batch = (settings.get("elastic") or {}).get("batch") or BATCH
            key = "crane:elastic:batch"
        options = {"batch": batch, "drain": False, "only_due": True,
                   "register_timeout": self.opts["register_timeout"]}  # fmt: skip
        try:
            crane_engine.check_options("restart", None, options)
        except ValueError as exc:
            raise StepError(f"{key}: {exc}") from exc
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
    def run(self):
        self.progress("syncing modules, pillar and mine facts")
        self.minions.one(self.minion, "saltutil.sync_all", timeout=crane_engine.SYNC_TIMEOUT)
        self.minions.one(self.minion, "saltutil.refresh_pillar", kwarg={"wait": True})
        self.minions.one(self.minion, "mine.update")
        groups = self.minions.one(self.minion, "crane.selector_groups")
        if not groups:
            self.progress("matches no node group by selector: nothing to do")
            self.report.update(ok=True, groups=[])
            return
        self.report["groups"] = groups
        options = self.restart_options(self.control()[0])
        self.progress(f"matches {', '.join(groups)}: applying crane on it alone")
        failed = self.apply([self.minion], {"elastic": {"candidate": self.minion}})
        if failed:
            self.report["failed"].update(failed)
            raise StepError(f"not added, its own apply failed: {failed[self.minion]}")
        self.minions.one(self.minion, "crane.joined", [True])
        self.minions.one(self.minion, "mine.update")
        host = self.minions.one(self.minion, "grains.get", ["host"])
        self.progress(f"passed its gates; marked joined as {host}")
        self.reconfigure(skip=(self.minion,))
        self.wait_registered(host)
        self.restart_due(options)
        self.report.update(ok=True, node=host)

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
        options = self.restart_options(control)
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
    step = (Join if action == "join" else Leave)(cluster, action, minion, options)
    lock = None
    try:
        lock = _wait_lock(cluster, action, step.opts["lock_wait"])
        step.run()
    except StepError as exc:
        step.report["error"] = str(exc)
        step.progress(f"FAILED: {exc}")
    finally:
        if lock:
            crane_engine.release_lock(lock)
    step.report["retcode"] = 0 if step.report["ok"] else 1
    if not step.report["ok"]:
        step.report["Error"] = step.report["error"]
    return step.report
