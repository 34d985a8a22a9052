"""A CraneSched cluster in memory behind the engine's ``Cluster`` interface.

It answers the execution-module functions the engine calls the way the formula and CraneSched
do where the engine can see it: a stopped craned is DOWN at once, a DOWN node cannot be
drained ("Can't change the state of a DOWN node!"), cranectld keeps drains in memory only,
``crane.drains_save``/``crane.drains_restore`` keep them in a record, a dead minion does not
return (Salt's ``False`` or "Minion did not return. [Not connected]"), craned's ``Version=``
can differ from the package version. Time is a fake clock: a run takes milliseconds.
"""

import crane_engine

PACKAGES = {"control": "cranesched-cranectld", "compute": "cranesched-craned",
            "login": "cranesched-frontend"}  # fmt: skip
DOWN_REFUSED = "Failed to modify node: {}. Reason: Can't change the state of a DOWN node!"


class FakeCluster(crane_engine.Cluster):
    def __init__(self, state_dir, compute=("cn01", "cn02", "cn03", "cn04"), login=("login01",)):
        self.state_dir = str(state_dir)
        self.clock = 1_000_000.0
        self.messages, self.log = [], []
        self.roles = {"cranectl": ["control"], **{n: ["compute"] for n in compute}}
        self.roles.update({m: ["login"] for m in login})
        self.login = list(login)
        self.installed = dict.fromkeys(self.roles, "1.1.2")
        self.repo = {"1.1.2", "1.1.3"}
        self.broken = set()  # versions whose craned refuses to start
        self.reports = {}  # package version -> craned's Version= (default: the same)
        self.pillar_version = "1.1.2"
        self.hashes = dict.fromkeys(self.roles, "h1")
        self.dead = {}  # minion -> how Salt shows it: False or the "did not return" text
        self.ctld_running = True
        self.ctld_answers_at = 0.0  # cranectld answers from this (fake) time on
        self.ctld_exits = False  # cranectld's unit exits after the start (failed DB connect)
        self.register_delay = 0.0  # seconds craned takes to register after cranectld answers
        self.registered_at = 0.0
        self.stale = set()  # nodes whose craned stopped silently: up until cranectld restarts
        self.backup_fails = False
        self.craned = dict.fromkeys(compute, True)
        self.started = dict.fromkeys(compute, 1.0)
        self.jobs = dict.fromkeys(compute, 0)
        self.due = set()  # minions whose craned restart is due (crane.restart_pending)
        self.drained = {}  # node -> reason (cranectld's memory)
        self.record = None  # the drain record file: {node: reason} or None
        self.hooks = {}  # (fun, minion) -> callable run before answering

    # -- the interface
    def call(self, tgt, fun, arg=(), kwarg=None, *, tgt_type="list", timeout=15):
        if tgt_type == "glob":
            targets = sorted(self.roles)
        elif tgt_type == "grain":
            targets = [m for m, r in self.roles.items() if "control" in r]
        else:
            targets = list(tgt)
        out = {}
        for minion in targets:
            if minion not in self.roles:
                continue
            if minion in self.dead:
                out[minion] = self.dead[minion]
                continue
            self.log.append((fun, minion, list(arg), dict(kwarg or {})))
            hook = self.hooks.get((fun, minion))
            if hook:
                hook()
            if minion in self.dead:  # the hook stopped this minion: no return
                out[minion] = self.dead[minion]
                continue
            try:
                out[minion] = {"ret": self.answer(minion, fun, list(arg), kwarg or {}),
                               "retcode": 0}  # fmt: skip
            except Failed as exc:
                out[minion] = {"ret": exc.ret, "retcode": 1}
        return out

    def progress(self, message):
        self.messages.append(message)

    def now(self):
        return self.clock

    def sleep(self, seconds):
        self.clock += seconds

    # -- what the minions answer
    def answer(self, minion, fun, arg, kwarg):
        handler = getattr(self, "_" + fun.replace(".", "_"))
        return handler(minion, *arg, **kwarg)

    def _crane_roles(self, minion):
        return self.roles[minion]

    def _test_ping(self, minion):
        return True

    def _grains_get(self, minion, key):
        return {"host": minion, "os_family": "Debian"}[key]

    def _crane_settings(self, minion):
        return {"version": self.pillar_version, "login_nodes": self.login}

    def _saltutil_sync_all(self, minion):
        return {}

    def _crane_config_hash(self, minion):
        return self.hashes[minion]

    def _crane_package_names(self, minion):
        keys = {"control": ["cranectld", "frontend"], "compute": ["craned"], "login": ["frontend"]}
        names = dict(zip(("cranectld", "craned", "frontend"), PACKAGES.values(), strict=True))
        return {key: names[key] for role in self.roles[minion] for key in keys[role]}

    def _pkg_version(self, minion, *names):
        if len(names) == 1:
            return self.installed[minion]
        return dict.fromkeys(names, self.installed[minion])

    def _pkg_refresh_db(self, minion):
        return True

    def _pkg_list_repo_pkgs(self, minion, *names):
        return {name: sorted(self.repo) for name in names}

    def _need_ctld(self):
        if not self.ctld_running or self.clock < self.ctld_answers_at:
            raise Failed("CommandExecutionError: cinfo: cannot connect to cranectld")

    def node_state(self, node):
        up = self.ctld_running and (self.craned[node] or node in self.stale)
        up = up and self.clock >= self.registered_at
        return {
            "resource": ("alloc" if self.jobs[node] else "idle") if up else "down",
            "control": "drain" if node in self.drained else "none",
            "reason": self.drained.get(node, ""),
        }

    def _crane_nodes(self, minion):
        self._need_ctld()
        return {node: self.node_state(node) for node in self.craned}

    def _crane_health(self, minion, allow_drained=None, allow_down=None):
        self._need_ctld()
        allowed = crane_engine.crane_hostlist.expand(allow_down or "")
        down = [n for n in self.craned if self.node_state(n)["resource"] == "down"]
        up = [n for n in self.craned if n not in down]
        healthy = all(n in allowed for n in down)
        return {"healthy": healthy, "up": up, "down": down, "summary": f"down: {down}"}

    def _crane_cinfo(self, minion):
        self._need_ctld()
        groups = [{"state": "idle", "nodes": sorted(self.craned), "nodelist": "", "reason": ""}]
        return [{"name": "CPU", "default": True, "groups": groups}]

    def _crane_show_node(self, minion):
        self._need_ctld()
        return {
            node: {
                "version": self.reports.get(self.installed[node], self.installed[node])
                if self.craned[node] else None,
                "running_jobs": self.jobs[node],
                "craned_start_time": self.started[node],
                "resource": self.node_state(node)["resource"],
            }
            for node in self.craned
        }  # fmt: skip

    def _crane_drain(self, minion, nodes, reason):
        self._need_ctld()
        names = nodes.split(",")
        down = [n for n in names if self.node_state(n)["resource"] == "down"]
        if down:
            raise Failed(f"ccontrol drain failed (exit 2): {DOWN_REFUSED.format(','.join(down))}")
        self.drained.update(dict.fromkeys(names, reason))
        return {"modified": names, "failed": {}}

    def _crane_resume(self, minion, nodes):
        self._need_ctld()
        for node in nodes.split(","):
            self.drained.pop(node, None)
        return {"modified": nodes.split(","), "failed": {}}

    def _crane_drains_save(self, minion):
        self._need_ctld()
        self.record = {**(self.record or {}), **self.drained}
        return dict(self.record)

    def _crane_drains_restore(self, minion, timeout=60):
        self.clock = max(self.clock, self.ctld_answers_at)
        self._need_ctld()
        restored, pending = {}, {}
        for node, reason in (self.record or {}).items():
            if self.node_state(node)["resource"] == "down":
                pending[node] = reason
            elif self.drained.get(node) != reason:
                self.drained[node] = reason
                restored[node] = reason
        self.record = pending or None
        return {"restored": restored, "pending": pending}

    def _service_stop(self, minion, unit):
        if unit == "cranectld":
            self.ctld_running = False
            self.drained = {}  # cranectld keeps drains in memory only
        else:
            self.craned[minion] = False
        return True

    def _service_start(self, minion, unit):
        if unit == "cranectld":
            self.start_ctld()
        return True

    def _service_status(self, minion, unit):
        return self.ctld_running if unit == "cranectld" else self.craned[minion]

    def _crane_restart_pending(self, minion, unit=None):
        return {"craned": {"since": "-", "why": "config"}} if minion in self.due else {}

    def _crane_restart_mark(self, minion, unit, why=""):
        self.due.add(minion)
        return f"/var/lib/crane-formula/restart-{unit}"

    def _crane_backup_db(self, minion, keep=5):
        if self.backup_fails:
            raise Failed(
                "Traceback (most recent call last):\n  ...\n"
                "FileExistsError: [Errno 17] File exists: '/var/crane/backup'"
            )
        return {"source": "/var/crane/cranectld/embedded.db", "backup": "/var/crane/backup/x"}

    def start_ctld(self):
        self.stale.clear()
        self.ctld_running = not self.ctld_exits
        self.ctld_answers_at = max(self.ctld_answers_at, self.clock)
        self.registered_at = self.ctld_answers_at + self.register_delay

    def apply_version(self, pillar):
        """The version an apply installs, and the failed state when the repository lacks it."""
        version = (pillar or {}).get("crane", {}).get("version") or self.pillar_version
        if version in self.repo:
            return version, None
        return version, {"pkg_|-crane-package_|-x_|-installed": {
            "__id__": "crane-package-installed", "result": False,
            "comment": f"Version {version} not found"}}  # fmt: skip

    def _state_apply(self, minion, sls, pillar=None):
        version, missing = self.apply_version(pillar)
        if missing:
            return missing
        changed = self.installed[minion] != version
        self.installed[minion] = version
        role = self.roles[minion][0]
        if role == "control":
            self.start_ctld()
            return {"service_|-a_|-cranectld_|-running": {"__id__": "a", "result": True}}
        if role == "login":
            return {"service_|-a_|-cfored_|-running": {"__id__": "a", "result": True}}
        if version in self.broken:
            return {"crane_|-crane-service-craned_|-craned_|-daemon_healthy": {
                "__id__": "crane-service-craned", "result": False,
                "comment": "craned is not running (failed)\njournal:\n"
                           "csupervisor /usr/libexec/csupervisor does not exist"}}  # fmt: skip
        if changed or minion in self.due or not self.craned[minion]:
            # restart: on_change, as every engine run asks; a running craned with no restart
            # due keeps its process
            self.craned[minion] = True
            self.started[minion] = self.clock
            self.due.discard(minion)
        return {"service_|-a_|-craned_|-running": {"__id__": "a", "result": True}}

    # -- what a test looks at
    def calls(self, fun, minion=None):
        return [c for c in self.log if c[0] == fun and (minion is None or c[1] == minion)]

    def order(self, node):
        """The changing calls that concerned ``node``, in order."""
        seen = []
        for fun, minion, arg, _ in self.log:
            drain = fun in ("crane.drain", "crane.resume") and node in arg[0].split(",")
            if drain or (fun in ("service.stop", "state.apply") and minion == node):
                seen.append(fun)
        return seen


class Failed(Exception):
    """A function failed on a minion (Salt: the error text as the return, retcode 1)."""

    def __init__(self, ret):
        super().__init__(ret)
        self.ret = ret
