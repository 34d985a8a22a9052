"""
Master-side view and operations of a CraneSched cluster deployed by the crane formula.

``status`` prints the cluster as the control node's cinfo sees it, each node's craned version
and whether every node runs the control node's config.yaml. ``upgrade`` and ``restart`` drive a
rolling (or all-at-once) upgrade or restart; the planning logic lives in the ``crane_upgrade``
utility, this module talks to the minions.
"""

import logging
import re
import sys
import time

import salt.client
import salt.utils.event
import salt.utils.yaml

log = logging.getLogger(__name__)

__virtualname__ = "crane"

CONTROL_GRAIN = "crane:roles:control"
CALL_TIMEOUT = 60
APPLY_TIMEOUT = 900
POLL = 2
PARAMETERS = "salt://crane/parameters/os_family/{}.yaml"
# journal and log lines that are not a daemon's reason for failing
NOISE = re.compile(
    r"\.service|^(Started|Stopped|Stopping|Starting) |^\[[ID] |^(journal|log file):$"
)
PACKAGE_KEYS = {"control": "cranectld", "compute": "craned", "login": "frontend"}


def __virtual__():
    if "crane_upgrade.build_plan" not in __utils__:
        return (
            False,
            "crane: the crane_upgrade utility is not synced (salt-run saltutil.sync_all)",
        )
    return __virtualname__


class StepError(Exception):
    """A step of a run failed; the message says what and where."""


# --- talking to minions ----------------------------------------------------------------------


def _client():
    return salt.client.get_local_client(__opts__["conf_file"])


def _cmd(tgt, fun, arg=(), *, kwarg=None, tgt_type="list", timeout=CALL_TIMEOUT):
    """``{minion: {"ret", "retcode"}}`` for the minions that answered."""
    if isinstance(tgt, (list, tuple)):
        tgt = ",".join(tgt)
    client = _client()
    try:
        result = client.cmd(
            tgt,
            fun,
            arg=list(arg),
            kwarg=kwarg,
            tgt_type=tgt_type,
            timeout=timeout,
            full_return=True,
        )
    finally:
        client.destroy()
    return {m: r if isinstance(r, dict) else {"ret": r, "retcode": 1} for m, r in result.items()}


def _one(minion, fun, arg=(), *, kwarg=None, timeout=CALL_TIMEOUT, check=True):
    """The return of one call on one minion; StepError when it does not answer or fails."""
    answer = _cmd([minion], fun, arg, kwarg=kwarg, timeout=timeout).get(minion)
    if answer is None:
        raise StepError(f"{minion} did not answer {fun}")
    ret = answer.get("ret")
    if check and (answer.get("retcode") or (isinstance(ret, str) and ret.startswith("ERROR"))):
        raise StepError(f"{fun} on {minion}: {ret}")
    return ret


def _progress(message):
    """A progress line on stderr (stdout stays the result) and an event for watchers."""
    line = f"[{time.strftime('%H:%M:%S')}] {message}"
    print(line, file=sys.stderr, flush=True)
    log.info("crane: %s", message)
    try:
        with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as ev:
            ev.fire_event({"message": message}, "crane/run/progress")
    except Exception:  # pylint: disable=broad-except
        log.debug("crane: could not fire a progress event", exc_info=True)


def _roles():
    """{minion: [roles]} of every minion that answers (roles come from the pillar config)."""
    answers = _cmd("*", "crane.roles", tgt_type="glob")
    return {m: a["ret"] for m, a in answers.items() if isinstance(a.get("ret"), list)}


def _control_minion(roles=None):
    """The control minion: grain crane:roles:control, else the pillar's ControlMachine."""
    answers = _cmd(CONTROL_GRAIN, "test.ping", tgt_type="grain")
    found = sorted(m for m, a in answers.items() if a.get("ret") is True)
    if not found:
        roles = _roles() if roles is None else roles
        found = sorted(m for m, r in roles.items() if "control" in r)
    if not found:
        raise StepError(
            "no control minion: no minion has the grain crane:roles:control and none "
            "matches ControlMachine of the pillar (run saltutil.sync_all first?)"
        )
    return found[0]


# --- status ----------------------------------------------------------------------------------


def _status_data():
    roles = _roles()
    control = _control_minion(roles)
    data = {"control": control, "problems": []}
    partitions = _one(control, "crane.cinfo")
    health = _one(control, "crane.health", kwarg={"allow_drained": False}, check=False)
    details = _one(control, "crane.show_node", check=False)
    details = details if isinstance(details, dict) else {}
    hashes = {m: a.get("ret") for m, a in _cmd(sorted(roles), "crane.config_hash").items()}
    expected = hashes.get(control)
    data["rows"] = [
        {
            "partition": p["name"] + ("*" if p.get("default") else ""),
            "nodes": len(g["nodes"]),
            "state": g["state"],
            "nodelist": g.get("nodelist") or ",".join(g["nodes"]),
            "reason": g.get("reason", ""),
        }
        for p in partitions
        for g in p["groups"]
    ]
    data["nodes"] = {
        name: {
            "state": info.get("state"),
            "version": info.get("version"),
            "running_jobs": info.get("running_jobs"),
        }
        for name, info in details.items()
    }
    data["config_hash"] = {
        "control": expected,
        "differs": sorted(m for m, h in hashes.items() if h != expected),
        "no_answer": sorted(set(roles) - set(hashes)),
    }
    data["health"] = health if isinstance(health, dict) else {"healthy": False, "summary": health}
    return data


def _judge_status(data):
    problems = []
    if not data["health"].get("healthy"):
        problems.append(f"cluster unhealthy: {data['health'].get('summary')}")
    if data["config_hash"]["differs"]:
        problems.append(
            "config.yaml differs from the control node's on "
            + ", ".join(data["config_hash"]["differs"])
        )
    if data["config_hash"]["no_answer"]:
        problems.append("no answer from " + ", ".join(data["config_hash"]["no_answer"]))
    data["problems"] = problems
    data["healthy"] = not problems
    data["retcode"] = 0 if not problems else 1
    return data


def _table(rows, headers):
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        " ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, *rows]
    )


def _status_text(data):
    rows = [
        [r["partition"], r["state"], r["nodes"], r["nodelist"], r["reason"]] for r in data["rows"]
    ]
    text = [_table(rows, ["PARTITION", "STATE", "NODES", "NODELIST", "REASON"]), ""]
    differs = set(data["config_hash"]["differs"])
    nodes = [
        [n, i["state"], i["version"] or "unknown", "differs" if n in differs else "ok"]
        for n, i in sorted(
            data["nodes"].items(), key=lambda x: __utils__["crane_upgrade.natural_key"](x[0])
        )
    ]
    text.append(_table(nodes, ["NODE", "STATE", "VERSION", "CONFIG"]))
    text.append("")
    text += data["problems"] or ["healthy; config.yaml identical on every node"]
    return "\n".join(text)


def status():
    """
    The cluster as the control node's ``cinfo`` sees it (partition, state, nodes, reason),
    each node's craned version (``ccontrol show node``) and whether every node's config.yaml
    hash equals the control node's. Prints a table (``--out=json`` gives the data) and exits
    non-zero when the cluster is unhealthy (a node missing, down or drained) or a config
    differs.

    CLI Example:

    .. code-block:: bash

        salt-run crane.status
        salt-run crane.status --out=json
    """
    try:
        data = _judge_status(_status_data())
    except StepError as exc:
        return {"healthy": False, "problems": [str(exc)], "retcode": 1}
    if not __opts__.get("output"):
        # the table is the human view; the default outputter then only adds the verdict
        print(_status_text(data), flush=True)
        return {k: data[k] for k in ("healthy", "problems", "retcode")}
    return data


# --- upgrade / restart engine ----------------------------------------------------------------


def _u(name):
    return __utils__[f"crane_upgrade.{name}"]


def _state_failures(ret):
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


class _Run:
    """One upgrade or restart run: preflight, plan, then the steps; stops at the first failure."""

    def __init__(self, action, version, **opts):
        self.action = action
        self.version = None if version is None else str(version)
        self.opts = opts
        self.report = {"ok": False, "done": [], "failed": {}, "skipped": {}, "not_reached": []}
        self.plan = None
        self.control = None
        self.minion = {}  # node (host name) -> minion id

    # -- small helpers
    def _nodes(self):
        return _one(self.control, "crane.nodes")

    def _show(self):
        return _one(self.control, "crane.show_node")

    def _override(self):
        crane = {"verify": {"enabled": False}, "restart": "on_change"}
        if self.action == "upgrade":
            crane["version"] = self.version
        return {"crane": crane}

    def _apply(self, minions):
        """state.apply crane (with the run's pillar override) on ``minions`` in parallel.
        Returns ``{minion: failure text}`` for the minions it failed on."""
        answers = _cmd(
            minions,
            "state.apply",
            ["crane"],
            kwarg={"pillar": self._override()},
            timeout=self.opts["apply_timeout"],
        )
        failed = {}
        for minion in minions:
            if minion not in answers:
                failed[minion] = "state.apply crane: no answer"
                continue
            problems = _state_failures(answers[minion]["ret"])
            if problems or answers[minion].get("retcode"):
                failed[minion] = "state.apply crane: " + "; ".join(problems or ["failed"])
        return failed

    def _drain(self, nodes, reason):
        if nodes:
            _one(self.control, "crane.drain", [",".join(nodes)], kwarg={"reason": reason})

    def _resume_ours(self, nodes):
        """Resume the nodes among ``nodes`` that carry the formula's drain reason."""
        states = self._nodes()
        ours = [n for n in nodes if states.get(n, {}).get("control") == "drain"
                and _u("is_ours")(states[n].get("reason"))]  # fmt: skip
        if ours:
            _one(self.control, "crane.resume", [",".join(ours)])
            _progress(f"resumed {', '.join(ours)}")

    def _mark_failed(self, nodes, step, detail):
        """Leave failed nodes drained with a reason naming the step; say so in the report."""
        reason = _u("failure_reason")(self.plan["reason"], step, detail)
        for node in nodes:
            self.report["failed"][node] = f"{step}: {detail}" if detail else step
            try:
                self._drain([node], reason)
            except StepError as exc:
                self.report["failed"][node] += f" (could not set the drain reason: {exc})"

    def _poll(self, what, check, timeout):
        """Call ``check()`` until it returns a falsy 'still waiting' value or time runs out;
        returns the last value (truthy = still waiting)."""
        deadline = time.monotonic() + float(timeout)
        last_note = 0.0
        while True:
            try:
                waiting = check()
            except StepError as exc:
                waiting = str(exc)
            if not waiting or time.monotonic() >= deadline:
                return waiting
            if time.monotonic() - last_note > 30:
                _progress(f"waiting for {what}: {waiting}")
                last_note = time.monotonic()
            time.sleep(POLL)

    # -- preflight
    def preflight(self):
        roles = _roles()
        self.control = _control_minion(roles)
        hosts = {m: a["ret"] for m, a in _cmd(sorted(roles), "grains.get", ["host"]).items()}
        self.minion = {host: minion for minion, host in hosts.items() if host}
        settings = _one(self.control, "crane.settings")
        self.report["pillar_version"] = str(settings.get("version") or "")
        allow_down = self._hostlist(self.opts["allow_down"])
        states = self._nodes()
        compute = self._compute_nodes(states, allow_down)
        login = [self.minion.get(h, h) for h in settings.get("login_nodes") or []]
        involved = sorted({self.control, *login, *(self.minion.get(n, n) for n in compute)})
        down_ok = {
            self.minion.get(n, n) for n, i in compute.items() if i["down"] and n in allow_down
        }
        self._check_answers(involved, down_ok)
        live = [m for m in involved if m not in down_ok]
        self._check_hashes(live)
        versions = self._installed_versions(live, roles, settings)
        self._check_versions(versions, compute)
        if self.action == "upgrade":
            self._check_installable(live, roles, settings)
        login_versions = {m: versions.get(m, {}).get("frontend") for m in login if m in live}
        control_version = versions.get(self.control, {}).get("cranectld")
        self.plan = _u("build_plan")(
            self.action,
            self.version,
            self.opts["strategy"],
            self.control,
            control_version,
            compute=compute,
            login=login_versions,
            batch=self.opts["batch"],
            canary=self.opts["canary"],
            allow_down=allow_down,
        )

    def _hostlist(self, expr):
        if not expr:
            return []
        if isinstance(expr, (list, tuple)):
            expr = ",".join(expr)
        try:
            return __utils__["crane_hostlist.expand"](str(expr))
        except ValueError as exc:  # a bad or unbounded host list, named in the message
            raise StepError(f"allow_down: {exc}") from exc

    def _compute_nodes(self, states, allow_down):
        """{node: {version, down, reason}}; StepError when the cluster is not healthy."""
        ours_down = [
            n
            for n, s in states.items()
            if s["resource"] == "down" and s["control"] == "drain" and _u("is_ours")(s["reason"])
        ]
        health = _one(
            self.control,
            "crane.health",
            kwarg={"allow_drained": True, "allow_down": ",".join(allow_down + ours_down) or None},
            check=False,
        )
        if not isinstance(health, dict) or not health.get("healthy"):
            summary = health.get("summary") if isinstance(health, dict) else health
            raise StepError(
                f"cluster not healthy: {summary} (nodes that may be down: allow_down=<hostlist>)"
            )
        details = self._show()
        expected = health["up"] + [n for n in health["down"] if n not in health["up"]]
        return {
            node: {
                "version": details.get(node, {}).get("version"),
                "down": states.get(node, {}).get("resource", "down") == "down",
                "reason": states.get(node, {}).get("reason", "")
                if states.get(node, {}).get("control") == "drain"
                else "",
            }
            for node in expected
        }

    def _check_answers(self, involved, down_ok):
        answers = _cmd(involved, "saltutil.sync_all", timeout=120)
        silent = [m for m in involved if m not in answers and m not in down_ok]
        if silent:
            raise StepError(f"minions do not answer: {', '.join(silent)}")
        _progress(f"preflight: {len(answers)} minion(s) answer; custom modules synced")

    def _check_hashes(self, minions):
        hashes = {m: a.get("ret") for m, a in _cmd(minions, "crane.config_hash").items()}
        expected = hashes.get(self.control)
        differ = sorted(m for m, h in hashes.items() if h != expected)
        if differ:
            raise StepError(
                f"config.yaml differs from {self.control}'s on {', '.join(differ)}: run "
                "`salt '*' state.apply crane` (with the current version) first"
            )

    def _package_names(self, minions, settings):
        """{minion: {package key: package name}} from the formula's os_family parameters."""
        families = {m: a.get("ret") for m, a in _cmd(minions, "grains.get", ["os_family"]).items()}
        names = {}
        for family in set(families.values()):
            text = _one(self.control, "cp.get_file_str", [PARAMETERS.format(family)])
            values = (salt.utils.yaml.safe_load(text or "") or {}).get("values", {})
            names[family] = {
                **values.get("package_names", {}),
                **(settings.get("package_names") or {}),
            }
        return {m: names.get(f, {}) for m, f in families.items()}

    def _installed_versions(self, minions, roles, settings):
        """{minion: {package key: installed version}} for the packages of each minion's roles."""
        names = self._package_names(minions, settings)
        versions = {}
        for minion in minions:
            keys = [PACKAGE_KEYS[r] for r in roles.get(minion, []) if r in PACKAGE_KEYS]
            wanted = {k: names[minion].get(k, k) for k in keys}
            ret = _one(minion, "pkg.version", list(wanted.values())) if wanted else {}
            if len(wanted) == 1:
                ret = {next(iter(wanted.values())): ret}
            versions[minion] = {k: (ret or {}).get(n) or None for k, n in wanted.items()}
        self.names = names
        return versions

    def _check_versions(self, versions, compute):
        newest = [v for pkgs in versions.values() for v in pkgs.values() if v]
        newest += [i["version"] for i in compute.values() if i["version"]]
        if self.action == "restart":
            pillar = self.report["pillar_version"]
            same = __utils__["crane_version.matches"]
            shown = __utils__["crane_version.registered_as"]
            differ = sorted({v for v in newest if not (same(pillar, v) or shown(pillar, v))})
            if pillar and differ:
                raise StepError(
                    f"nodes run {', '.join(differ)} but the pillar pins crane:version "
                    f"'{pillar}': a restart applies the formula, which would change packages. "
                    "Set crane:version to the running version first."
                )
            return
        older = [v for v in newest if _u("is_downgrade")(v, self.version)]
        if older and not self.opts["allow_downgrade"]:
            raise StepError(
                f"refusing a downgrade to {self.version}: nodes run "
                f"{max(older, key=_u('version_key'))}"
                " (allow_downgrade=True if you really mean it)"
            )

    def _check_installable(self, minions, roles, settings):
        _cmd(minions, "pkg.refresh_db", timeout=300)
        missing = []
        for minion in minions:
            keys = [PACKAGE_KEYS[r] for r in roles.get(minion, []) if r in PACKAGE_KEYS]
            names = [self.names[minion].get(k, k) for k in keys]
            available = _one(minion, "pkg.list_repo_pkgs", names, check=False)
            available = available if isinstance(available, dict) else {}
            in_repo = __utils__["crane_version.in_repository"]
            missing += [
                f"{n} on {minion}" for n in names if not in_repo(self.version, available.get(n))
            ]
        if missing:
            raise StepError(f"version {self.version} is not installable: {', '.join(missing)}")

    # -- control and login nodes
    def _record_drains(self):
        states = self._nodes()
        drains = {n: s["reason"] for n, s in states.items() if s["control"] == "drain"}
        up = [n for n, s in states.items() if s["resource"] != "down"]
        return drains, up

    def _restore_drains(self, drains):
        """Drain again what was drained before cranectld restarted (it keeps drains in memory)."""
        states = self._nodes()
        by_reason = {}
        for node, reason in drains.items():
            state = states.get(node, {})
            if state.get("resource") == "down":
                self.report.setdefault("drains_lost", {})[node] = reason
            elif state.get("control") != "drain" or state.get("reason") != reason:
                by_reason.setdefault(reason, []).append(node)
        for reason, nodes in by_reason.items():
            self._drain(nodes, reason)
            _progress(f"restored drain of {', '.join(nodes)}: '{reason}'")

    def _control_step(self, drains=None):
        """Upgrade (or restart) the control node. ``drains``: the drains to restore, recorded
        by the caller (all-at-once records them before stopping craned everywhere)."""
        self._step("control")
        try:
            self._control_steps(drains)
        finally:
            self._end_step()

    def _control_steps(self, drains):
        control = self.control
        if drains is None:
            drains, up = self._record_drains()
        else:
            up = []  # craned is stopped everywhere: wait for cranectld alone
        _progress(f"{control}: {len(drains)} drain(s) recorded; stopping cranectld")
        _one(control, "service.stop", ["cranectld"])
        backup = _one(control, "crane.backup_db", kwarg={"keep": self.opts["keep_backups"]})
        self.report["backup"] = backup
        _progress(f"{control}: cranectld's DB backed up to {backup.get('backup')}")
        failed = self._apply([control])
        if failed:
            self.report["failed"][control] = failed[control]
            raise StepError(f"control node {control}: {failed[control]}")

        def waiting():
            states = self._nodes()
            back = [n for n in up if states.get(n, {}).get("resource", "down") == "down"]
            return f"nodes not registered again: {', '.join(back)}" if back else None

        still = self._poll("cranectld and the nodes", waiting, self.opts["register_timeout"])
        if still:
            self.report["failed"][control] = still
            raise StepError(f"control node {control}: {still}")
        self._restore_drains(drains)
        self.report["done"].append(control)
        _progress(f"{control}: cranectld is back and every node registered again")

    def _login_step(self):
        for minion in self.plan["login"]:
            failed = self._apply([minion])
            if failed:
                self.report["failed"][minion] = failed[minion]
                raise StepError(f"login node {minion}: {failed[minion]}")
            self.report["done"].append(minion)
            _progress(f"{minion}: done")

    # -- compute nodes
    def _drain_batch(self, nodes):
        """Drain the batch with the formula's reason; returns the nodes that are ours to resume
        (not drained by an admin). Down nodes cannot be drained and are left as they are."""
        states = self._nodes()
        admin = [n for n in nodes if states.get(n, {}).get("control") == "drain"
                 and not _u("is_ours")(states[n].get("reason"))]  # fmt: skip
        to_drain = [
            n for n in nodes if n not in admin and states.get(n, {}).get("resource") != "down"
        ]
        try:
            self._drain(to_drain, self.plan["reason"])
        except StepError:
            # CraneSched refuses to drain a node that went down meanwhile; that one is fine
            states = self._nodes()
            if any(states.get(n, {}).get("resource") != "down" for n in to_drain
                   if states.get(n, {}).get("control") != "drain"):  # fmt: skip
                raise
        if admin:
            _progress(f"{', '.join(admin)}: drained by an admin; stays drained")
        return [n for n in nodes if n not in admin]

    def _wait_jobs(self, nodes):
        def busy():
            details = self._show()
            jobs = {n: details.get(n, {}).get("running_jobs") or 0 for n in nodes}
            return {n: j for n, j in jobs.items() if j}

        return self._poll("running jobs to end", busy, self.opts["drain_timeout"]) or {}

    def _handle_busy(self, nodes, ours, busy):
        """Busy nodes after drain_timeout: skip them (skip_busy) or stop the run."""
        text = f"{', '.join(f'{n} ({j} job(s))' for n, j in busy.items())}"
        if self.opts["skip_busy"]:
            self._resume_ours([n for n in busy if n in ours])
            for node in busy:
                self.report["skipped"][node] = (
                    f"jobs still running after {self.opts['drain_timeout']}s"
                )
            _progress(f"skipping busy nodes: {text}")
            return [n for n in nodes if n not in busy]
        self._resume_ours([n for n in nodes if n not in busy])
        self._mark_failed(
            list(busy), "drain", f"jobs still running after {self.opts['drain_timeout']}s"
        )
        raise StepError(
            f"jobs still running after drain_timeout={self.opts['drain_timeout']}s: {text}"
        )

    def _restart_nodes(self, nodes):
        """Stop craned, apply the formula, wait until registered (at the target version).
        Returns {node: failure}."""
        before = {n: d.get("craned_start_time") for n, d in self._show().items()}
        minions = [self.minion.get(n, n) for n in nodes]
        stopped = _cmd(minions, "service.stop", ["craned"])
        failed = {
            n: "stop craned: no answer" for n in nodes if self.minion.get(n, n) not in stopped
        }
        todo = [n for n in nodes if n not in failed]
        applied = self._apply([self.minion.get(n, n) for n in todo])
        failed.update(
            {n: applied[self.minion.get(n, n)] for n in todo if self.minion.get(n, n) in applied}
        )
        todo = [n for n in todo if n not in failed]

        def waiting():
            details = self._show()
            return [n for n in todo if not self._registered(details.get(n, {}), before.get(n))]

        late = (
            self._poll(f"{', '.join(todo)} to register", waiting, self.opts["register_timeout"])
            if todo
            else []
        )
        for node in late if isinstance(late, list) else todo:
            failed[node] = (
                f"not registered{' at ' + self.version if self.version else ''} after "
                f"{self.opts['register_timeout']}s"
            )
        return failed

    def _registered(self, detail, started_before):
        if detail.get("resource", "down") == "down":
            return False
        if self.action == "upgrade":
            return __utils__["crane_version.registered_as"](self.version, detail.get("version"))
        return detail.get("craned_start_time") not in (None, started_before)

    def _step(self, name):
        """Record when a step started (epoch seconds); ``_end_step`` closes it."""
        self.report.setdefault("steps", []).append({"step": name, "start": time.time()})

    def _end_step(self):
        self.report["steps"][-1]["end"] = time.time()

    def _compute_batch(self, nodes, label):
        self._step(label)
        try:
            self._compute_batch_steps(nodes, label)
        finally:
            self._end_step()

    def _compute_batch_steps(self, nodes, label):
        _progress(f"{label}: {', '.join(nodes)}: draining")
        ours = self._drain_batch(nodes)
        busy = self._wait_jobs(nodes)
        if busy:
            nodes = self._handle_busy(nodes, ours, busy)
        if not nodes:
            return
        _progress(f"{label}: {', '.join(nodes)}: stopping craned, applying the formula")
        failed = self._restart_nodes(nodes)
        good = [n for n in nodes if n not in failed]
        self._resume_ours([n for n in good if n in ours])
        self.report["done"] += good
        for node, text in failed.items():
            step, _, detail = text.partition(": ")
            self._mark_failed([node], step or "upgrade", detail)
        if failed:
            raise StepError(f"{label} failed on {', '.join(failed)}")
        _progress(f"{label}: {', '.join(good)}: done")

    # -- strategies
    def _rolling(self):
        if self.plan["control"]["todo"]:
            self._control_step()
        self._login_step()
        batches = self.plan["batches"]
        for index, nodes in enumerate(batches):
            label = "canary" if index == 0 and self.plan["canary"] else f"batch {index + 1}"
            try:
                self._compute_batch(nodes, label)
            except StepError:
                self.report["not_reached"] = [n for b in batches[index + 1 :] for n in b]
                raise

    def _all_at_once(self):
        """CraneSched's guide: every daemon stopped, every package upgraded, all started."""
        nodes = self.plan["batches"][0] if self.plan["batches"] else []
        admin = {n: r for n, r in self._record_drains()[0].items() if not _u("is_ours")(r)}
        ours = self._drain_batch(nodes) if nodes else []
        busy = self._wait_jobs(nodes) if nodes else {}
        if busy:
            self.report["not_reached"] = [n for n in nodes if n not in busy]
            self._handle_busy(nodes, ours, busy)  # all-at-once never skips: stop here
        _progress(f"stopping craned on {len(nodes)} node(s)")
        _cmd([self.minion.get(n, n) for n in nodes], "service.stop", ["craned"])
        if self.plan["control"]["todo"]:
            self._control_step(drains=admin)
        self._login_step()
        if not nodes:
            return
        _progress(f"{', '.join(nodes)}: applying the formula")
        failed = self._restart_nodes(nodes)
        good = [n for n in nodes if n not in failed]
        self._restore_drains(admin)
        self._resume_ours([n for n in good if n in ours])
        self.report["done"] += good
        for node, text in failed.items():
            step, _, detail = text.partition(": ")
            self._mark_failed([node], step, detail)
        if failed:
            raise StepError(f"failed on {', '.join(failed)}")

    def run(self, dry_run=False):
        began = time.monotonic()
        try:
            self.preflight()
            self.report["plan"] = self.plan
            self.report["plan_text"] = _u("render_plan")(self.plan)
            _progress(self.report["plan_text"])
            if dry_run:
                self.report.update(ok=True, dry_run=True)
            else:
                self.report["skipped"].update(self.plan["skipped"])
                strategy = (
                    self._all_at_once if self.plan["strategy"] == "all-at-once" else self._rolling
                )
                strategy()
                self.report["ok"] = True
        except StepError as exc:
            self.report["error"] = str(exc)
            if self.plan is None:
                self.report["failed"]["preflight"] = str(exc)
        self.report["seconds"] = round(time.monotonic() - began, 1)
        return self._finish()

    def _finish(self):
        report = self.report
        if report.get("plan"):
            report["summary"] = _u("summary")(report)
        else:
            report["summary"] = f"FAILED before touching any node: {report.get('error')}"
        _progress(report["summary"])
        report["retcode"] = 0 if report["ok"] else 1
        if not report["ok"]:
            report["Error"] = report.get("error", "failed")  # salt.runner states fail on it
            __context__["retcode"] = 1
        return report


def _run(action, version, dry_run, **opts):
    opts.setdefault("strategy", "rolling")
    defaults = {"batch": 1, "canary": 1, "drain_timeout": 600, "skip_busy": False,
                "allow_down": None, "keep_backups": 5, "register_timeout": 180,
                "apply_timeout": APPLY_TIMEOUT, "allow_downgrade": False}  # fmt: skip
    unknown = set(opts) - set(defaults) - {"strategy"}
    if unknown:
        return {
            "ok": False,
            "retcode": 1,
            "Error": f"unknown argument(s): {', '.join(sorted(unknown))}",
        }
    for key, value in defaults.items():
        opts.setdefault(key, value)
    try:
        _u("split_batches")(["x"], opts["batch"], opts["canary"])
        _u("build_plan")(action, version, opts["strategy"], "", "", compute={})
    except ValueError as exc:
        __context__["retcode"] = 1
        return {"ok": False, "retcode": 1, "Error": str(exc)}
    return _Run(action, version, **opts).run(dry_run=dry_run)


def _public(kwargs):
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def upgrade(version, batch=1, dry_run=False, **kwargs):
    """
    Upgrade CraneSched to ``version``: preflight (minions answer, modules synced, cluster
    healthy, version installable everywhere, config hashes equal), back up cranectld's DB,
    upgrade the control node, then compute nodes (a canary, then batches): drain with the
    formula's reason, wait for jobs, stop craned, apply the formula at the new version, wait
    until registered at it, resume what the formula drained. Stops at the first failure
    (exit code non-zero); a re-run skips nodes already at ``version``.

    version
        Target version (the packages' version, as ``crane:version``).
    batch
        Compute nodes per batch: a count or a percentage (``25%``).
    canary
        Nodes upgraded alone first (default 1; 0 for none).
    drain_timeout
        Seconds to wait for running jobs on drained nodes (default 600).
    skip_busy
        True: skip nodes still busy after drain_timeout instead of stopping.
    strategy
        ``rolling`` (default) or ``all-at-once`` (CraneSched's stop-everything procedure).
    allow_down
        Host list of nodes that may be down; they are skipped.
    keep_backups
        DB backups to keep (default 5).
    register_timeout
        Seconds for cranectld to answer and nodes to register (default 180).
    allow_downgrade
        Allow a target older than what runs.
    dry_run
        Print the plan and change nothing.

    CLI Example:

    .. code-block:: bash

        salt-run crane.upgrade version=1.1.3 batch=2 dry_run=True
        salt-run crane.upgrade version=1.1.3 batch=25% canary=1 drain_timeout=1800
        salt-run crane.upgrade version=1.1.3 strategy=all-at-once
    """
    return _run("upgrade", str(version), dry_run, batch=batch, **_public(kwargs))


def restart(batch=1, dry_run=False, **kwargs):
    """
    Rolling restart after a config change: the same preflight, DB backup, control step and
    compute batches as ``upgrade`` (drain, wait for jobs, restart through the formula, wait
    until registered again, resume) without changing packages. Refuses when the pillar's
    ``crane:version`` differs from what runs (applying the formula would change packages).

    CLI Example:

    .. code-block:: bash

        salt-run crane.restart batch=2
        salt-run crane.restart batch=50% dry_run=True
    """
    return _run("restart", None, dry_run, batch=batch, **_public(kwargs))
