"""
States for CraneSched clusters deployed by the crane formula.

Every state reads the current state first, honours ``test=True`` (result None and the planned
change) and reports old/new in ``changes``. Checks that change nothing return no changes, so a
second apply of the formula reports zero changes.
"""

import difflib
import logging
import os
import re
import stat
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "crane"


def __virtual__():
    if "crane.validate_config" not in __salt__:
        return (False, "crane: the crane execution module is not synced (run saltutil.sync_all)")
    return __virtualname__


def _ret(name, result=True, comment="", changes=None):
    return __utils__["crane_state.ret"](name, result, comment, changes)


def _bullets(lines):
    return "\n".join(f"  - {line}" for line in lines)


def _gate(name, report, passed, refusal):
    """A gate's return. ``report`` is what a ``crane.*_check`` function found
    (``{'valid': bool, 'errors': [...], …}``); ``passed`` the comment when it is valid,
    ``refusal`` the sentence before the errors when not. A gate changes nothing, and the
    real run would fail the same way, so ``test=True`` gives the same result."""
    if report["valid"]:
        return _ret(name, True, passed)
    return _ret(name, False, f"{refusal}:\n{_bullets(report['errors'])}")


def config_valid(name, database=None):
    """
    Fail, before anything changes, when the cluster config breaks a CraneSched rule or the
    pillar ``crane`` a rule of the formula. Checks the config as ``crane.settings`` works it
    out for this run (the one the formula writes).

    name
        The config file the checked data is for (used in messages).
    database
        ``True``: check the pillar's ``crane:database`` too (control nodes; keeps the secrets
        out of the SLS).
    """
    result = __salt__["crane.validate_config"](database=True if database else None)
    notes = __salt__["crane.settings"]()["config_notes"]
    lines = []
    if result["errors"]:
        lines.append(f"{len(result['errors'])} error(s) in the CraneSched config for {name}:")
        lines.append(_bullets(result["errors"]))
    else:
        lines.append(f"The CraneSched config for {name} passes CraneSched's rules")
    if result["warnings"]:
        lines.append("Warnings:")
        lines.append(_bullets(result["warnings"]))
    if notes:
        lines.append("Enforced by the formula:")
        lines.append(_bullets(notes))
    return _ret(name, result["valid"], "\n".join(lines))


def gres_valid(name, dev_root="/dev"):
    """
    Fail when craned on this node would refuse its gres config (a device file missing, an
    invalid injector or CDI setting) as ``crane.settings`` works it out (with ``gres:auto``,
    filled from the mine). Put it before config.yaml is written and before craned is
    restarted: on failure the node keeps its previous config and its running craned.

    name
        The node name (its entry in Nodes).
    """
    config = __salt__["crane.settings"]()["config"]
    return _gate(
        name,
        __salt__["crane.gres_validate"](node=name, config=config, dev_root=dev_root),
        f"The gres config of {name} matches its devices",
        f"craned on {name} would refuse this config; config.yaml and craned are left as they are",
    )


_ERROR_LINE = re.compile(r"^\[(?:[EC] \S+ \S+ \S+\]|\S+ \S+\] \[(?:error|critical)\])")


def _error_line(report):
    """The daemon's own last error line (spdlog ``[E …]``/``[C …]`` or, before its logger
    exists, ``[…] [error]``), from its log file, else its journal."""
    for text in (report["log"], report["journal"]):
        errors = [line for line in text.splitlines() if _ERROR_LINE.match(line)]
        if errors:
            return errors[-1]
    return ""


_EXIT_LOGGED = re.compile(r"Main process exited|Failed with result|Deactivated successfully")


def _with_exit_logged(name, log_file, report, poll, wait=5):
    """The report once the journal holds the daemon's exit (journald can lag behind a busy
    node by seconds, and the daemon's reason is the line before it), waiting ``wait`` s."""
    deadline = time.monotonic() + wait
    while not report["active"] and not _EXIT_LOGGED.search(report["journal"]):
        if time.monotonic() >= deadline:
            break
        time.sleep(poll)
        report = __salt__["crane.daemon_report"](name, log_file=log_file)
    return report


def _daemon_failure(report):
    headline = (
        f"{report['unit']} is not running ({report['state']}, exit status "
        f"{report['exit_status'] or '?'}, {report['restarts']} restart(s))"
    )
    error = _error_line(report)
    parts = [f"{headline}: {error}" if error else headline]
    if report["journal"]:
        parts.append(f"journal:\n{report['journal']}")
    if report["log"]:
        parts.append(f"log file:\n{report['log']}")
    return "\n".join(parts)


UNREACHABLE_MARK = "(cinfo exit 3)"  # crane.cinfo's error while cranectld does not answer


def _wait_until_answering(name, log_file, pid, timeout, poll):
    """cranectld answers clients only once its databases are initialised, and exits when
    MongoDB cannot be reached (after the driver's server-selection timeout) while systemd
    shows it running: wait for an answer to ``cinfo``, an exit, or ``timeout`` seconds."""
    deadline = time.monotonic() + float(timeout)
    while True:
        try:
            __salt__["crane.cinfo"]()
            return _ret(name, True, f"{name} is running (pid {pid}) and answers client requests")
        except CommandExecutionError as exc:
            refusal = str(exc)
            if UNREACHABLE_MARK not in refusal:  # cinfo itself fails: waiting will not help
                return _ret(name, False, f"{name} is running (pid {pid}) but {refusal}")
        report = __salt__["crane.daemon_report"](name, log_file=log_file)
        if not report["active"] or report["main_pid"] != pid:
            return _ret(name, False, _daemon_failure(report))
        if time.monotonic() >= deadline:
            return _ret(
                name,
                False,
                f"{name} is running (pid {pid}) but answered no client request within "
                f"{timeout} s: {refusal}",
            )
        time.sleep(poll)


def daemon_healthy(name, log_file=None, settle=3, poll=0.5, ready_timeout=0):
    """
    Check that a CraneSched daemon stays up after a (re)start. Under ``Type=simple`` systemd
    reports a start as done before the daemon has read its config; CraneSched exits a moment
    later when it rejects it. This waits until the running process is ``settle`` seconds old
    (no wait for a daemon that has been up longer). With ``ready_timeout`` (cranectld) it then
    waits, at most that many seconds, until the daemon answers a client request (``cinfo``)
    or exits. On failure the comment names the daemon's own error line and carries the last
    lines of the journal and the log file. Changes nothing.

    name
        The systemd unit (cranectld, craned, cfored).
    log_file
        The daemon's log file (under CraneBaseDir).
    settle
        Seconds the daemon must have been running.
    ready_timeout
        Seconds to wait for an answer to a client request after ``settle``; 0 does not ask.
    """
    # the unit's state alone while all is well; journal and log only to explain a failure
    report = __salt__["crane.daemon_report"](name, lines=0)
    if __opts__["test"] and not report["active"]:
        return _ret(name, None, f"{name} is not running; it would be checked after it is started")
    pid = report["main_pid"]
    while report["active"] and report["main_pid"] == pid and report["uptime"] < settle:
        time.sleep(poll)
        report = __salt__["crane.daemon_report"](name, lines=0)
    if not report["active"] or report["main_pid"] != pid:
        report = __salt__["crane.daemon_report"](name, log_file=log_file)
        return _ret(name, False, _daemon_failure(_with_exit_logged(name, log_file, report, poll)))
    if ready_timeout:
        return _wait_until_answering(name, log_file, pid, ready_timeout, poll)
    return _ret(name, True, f"{name} is running (pid {pid})")


# --- cluster state (run on the control node) ---------------------------------------------


def _hosts(name):
    if isinstance(name, (list, tuple)):
        return list(name)
    return __salt__["crane.expand_hostlist"](name)


def _node_states(hosts):
    """{host: cinfo state or None when cinfo does not list it}."""
    known = __salt__["crane.nodes"]()
    return {host: known.get(host) for host in hosts}


def nodes_ready(name, states=("idle", "mix", "alloc"), timeout=120, interval=5):
    """
    Wait until every node of the host list ``name`` is in one of ``states`` (cinfo tokens:
    idle, mix, alloc, down, drain, … with ``cinfo -t`` semantics). Fails with the cinfo evidence
    naming the nodes that are not.
    """
    hosts = _hosts(name)
    wanted = __utils__["crane_cinfo.normalize_state_filter"](states)
    matches = __utils__["crane_cinfo.state_matches"]
    deadline = time.monotonic() + float(timeout)
    while True:
        try:
            seen, error = _node_states(hosts), None
        except CommandExecutionError as exc:
            seen, error = {}, str(exc)
        not_ready = {h: s for h, s in seen.items() if s is None or not matches(s, wanted)}
        if seen and not not_ready:
            return _ret(name, True, f"{len(hosts)} node(s) ready: {', '.join(wanted)}")
        if __opts__["test"] or time.monotonic() >= deadline:
            break
        time.sleep(float(interval))
    evidence = error or ", ".join(
        f"{h}: {s['state'] if s else 'not listed'}" for h, s in sorted(not_ready.items())
    )
    result = None if __opts__["test"] else False
    verb = "are not ready yet" if __opts__["test"] else f"not ready after {timeout}s"
    return _ret(name, result, f"Nodes {verb} (wanted {', '.join(wanted)}): {evidence}")


def _drain_states(hosts):
    known = __salt__["crane.nodes"]()
    missing = [h for h in hosts if h not in known]
    if missing:
        raise CommandExecutionError(f"cinfo does not list {', '.join(missing)}")
    return {h: known[h] for h in hosts}


def _running_jobs(hosts):
    details = __salt__["crane.show_node"]()
    return {h: int(details.get(h, {}).get("running_jobs") or 0) for h in hosts}


def _wait_jobs(hosts, timeout, interval):
    deadline = time.monotonic() + float(timeout)
    while True:
        busy = {h: n for h, n in _running_jobs(hosts).items() if n}
        if not busy or time.monotonic() >= deadline:
            return busy
        time.sleep(float(interval))


def node_drained(name, reason, wait_jobs=True, timeout=600, interval=5):
    """
    Drain the nodes of host list ``name`` with ``reason`` and, with ``wait_jobs``, wait until
    their running jobs have ended. Nodes already drained keep their (the admin's) reason.
    """
    ret = _ret(name)
    try:
        hosts = _hosts(name)
        current = _drain_states(hosts)
        to_drain = [h for h, s in current.items() if s.get("control") != "drain"]
        if __opts__["test"]:
            ret["result"] = None if to_drain else True
            ret["comment"] = (
                f"Would drain {', '.join(to_drain)}" if to_drain else "All nodes already drained"
            )
            return ret
        if to_drain:
            __salt__["crane.drain"](to_drain, reason)
            ret["changes"] = {h: {"old": "none", "new": f"drain ({reason})"} for h in to_drain}
        busy = _wait_jobs(hosts, timeout, interval) if wait_jobs else {}
    except CommandExecutionError as exc:
        return _ret(name, False, str(exc), ret["changes"])
    if busy:
        ret["result"] = False
        ret["comment"] = "Drained, but jobs still run after {}s: {}".format(
            timeout, ", ".join(f"{h} ({n})" for h, n in busy.items())
        )
        return ret
    ret["comment"] = f"Drained {', '.join(to_drain)}" if to_drain else "All nodes already drained"
    return ret


def node_resumed(name):
    """Resume the drained nodes of host list ``name``."""
    ret = _ret(name)
    try:
        current = _drain_states(_hosts(name))
        drained = [h for h, s in current.items() if s.get("control") == "drain"]
        if not drained:
            ret["comment"] = "No node is drained"
            return ret
        if __opts__["test"]:
            return _ret(name, None, f"Would resume {', '.join(drained)}")
        __salt__["crane.resume"](drained)
    except CommandExecutionError as exc:
        return _ret(name, False, str(exc))
    ret["changes"] = {
        h: {"old": f"drain ({current[h].get('reason', '')})", "new": "none"} for h in drained
    }
    ret["comment"] = f"Resumed {', '.join(drained)}"
    return ret


# --- restarts that are due (the service step) -------------------------------------------


def restart_marked(name, why="its package, config or drop-in changed", pending=True):
    """
    Remember that the daemon ``name`` must restart, until it has. Watch the states whose
    change requires the restart: a change writes the marker (``mod_watch``). Without a
    change this reports a restart still due from an earlier run as a change (so the service
    state that watches this one restarts the daemon), and forgets one that has happened.
    Outside the watch a failed package step leaves the marker in place for the next run.

    pending
        Report a restart due from earlier (false for a daemon's second marker state, so
        the restart is reported once).
    """
    if not pending:
        return _ret(name, True, f"Nothing changed here that restarts {name} ({why})")
    pending = __salt__["crane.restart_pending"](name).get(name)
    if pending:
        comment = f"A restart of {name} is due since {pending['since']} ({pending['why']})"
        return _ret(name, None if __opts__["test"] else True, comment, {"restart": "due"})
    if not __opts__["test"] and __salt__["crane.restart_clear"](name):
        return _ret(name, True, f"{name} has restarted since its restart was due")
    return _ret(name, True, f"No restart of {name} is due")


def mod_watch(name, sfun=None, **kwargs):
    """A watched state changed: for ``restart_marked``, the daemon must restart."""
    if sfun != "restart_marked":
        return _ret(name, False, f"crane.{sfun} does not support watch")
    why = kwargs.get("why") or "its package, config or drop-in changed"
    if __opts__["test"]:
        return _ret(name, None, f"A restart of {name} would be due: {why}", {"restart": "due"})
    __salt__["crane.restart_mark"](name, why)
    return _ret(name, True, f"A restart of {name} is due: {why}", {"restart": "due"})


# --- drains kept across a cranectld restart (control node) -------------------------------


def _drains_text(drains):
    return ", ".join(f"{node} ('{reason}')" for node, reason in sorted(drains.items()))


def drains_saved(name):
    """
    Record the drained nodes before cranectld restarts (it keeps drains only in memory).
    Run it only when a restart is due (``onchanges`` the restart marker) and before it
    (``require_in`` the service). When cranectld does not answer, its drains are already
    gone: the record stays as it is.
    """
    try:
        current = {
            node: state.get("reason") or ""
            for node, state in __salt__["crane.nodes"]().items()
            if state.get("control") == "drain"
        }
    except CommandExecutionError as exc:
        kept = __salt__["crane.drains_record"]()
        text = f"; recorded earlier: {_drains_text(kept)}" if kept else ""
        return _ret(name, True, f"cranectld does not answer, nothing to record ({exc}){text}")
    if __opts__["test"]:
        if not current:
            return _ret(name, True, "No node is drained: nothing to record")
        return _ret(name, None, f"Would record the drains of {_drains_text(current)}")
    record = __salt__["crane.drains_save"]()
    if not record:
        return _ret(name, True, "No node is drained: nothing to record")
    return _ret(
        name,
        True,
        f"Recorded the drains of {_drains_text(record)} before cranectld restarts",
        {"recorded": record},
    )


def drains_restored(name, timeout=60):
    """
    Drain again the nodes recorded before cranectld restarted, with their reasons. A node
    that is down or not registered yet stays recorded as pending (CraneSched refuses to
    drain a DOWN node); a later run (the verify step, the next apply) retries it.
    """
    record = __salt__["crane.drains_record"]()
    if not record:
        return _ret(name, True, "No recorded drain to restore")
    if __opts__["test"]:
        return _ret(name, None, f"Would drain again {_drains_text(record)} once they are up")
    try:
        outcome = __salt__["crane.drains_restore"](timeout=timeout)
    except CommandExecutionError as exc:
        return _ret(name, False, f"Cannot restore the drains of {_drains_text(record)}: {exc}")
    lines = []
    if outcome["restored"]:
        lines.append(f"Drained again {_drains_text(outcome['restored'])}")
    if outcome["pending"]:
        lines.append(
            f"Not up yet, drained when they are (next run): {_drains_text(outcome['pending'])}"
        )
    changes = {"restored": outcome["restored"]} if outcome["restored"] else {}
    return _ret(name, True, "\n".join(lines) or "The recorded drains are in place", changes)


# --- package versions (the package step) -------------------------------------------------


def _comparable(installed, pinned):
    return __utils__["crane_upgrade.as_pinned"](installed, pinned)


def _in_repository(package, pinned):
    """True/False when the repository lists ``package`` (pinned version there or not), None
    when it does not list the package at all (e.g. the repository is set up by this run)."""
    available = __salt__["pkg.list_repo_pkgs"](package).get(package) or []
    if not available:
        return None, available
    return any(_comparable(v, pinned) == str(pinned) for v in available), available


def _version_problem(node, package, installed, pinned, switches):
    current = _comparable(installed, pinned)
    if not installed or current == str(pinned):
        return None
    downgrade = __utils__["crane_upgrade.is_downgrade"](current, str(pinned))
    if downgrade and not switches.get("allow_downgrade"):
        return (
            f"{node}: {package} {installed} is installed and the pillar crane:version pins "
            f"{pinned}: that is a downgrade, refused (set crane:allow_downgrade: true to do it)"
        )
    if package in switches["running"] and not switches.get("restart_on_version"):
        return (
            f"{node}: {package} {installed} is installed and running, the pillar pins {pinned}: "
            f"applying it would restart craned on every targeted node at once. Upgrade rolling "
            f"with `salt-run crane.upgrade version={pinned}`, or set "
            f"crane:restart_on_version: true to change it here"
        )
    return None


def package_versions(name, packages, guarded=None, switches=None, repository=True):
    """
    Check the pinned versions before any package changes: refuse a downgrade unless the
    switch ``allow_downgrade``; refuse a version change of a package in ``guarded`` (craned)
    while its daemon runs unless ``restart_on_version`` (a plain apply would restart every
    craned at once; the upgrade engine stops craned first); under ``test=True``, fail when a
    pinned version is not in the repository, as the real run would.

    name
        The node (used in messages).
    packages
        ``{package name: pinned version}``.
    guarded
        ``{package name: systemd unit}`` whose running daemon must not restart here.
    switches
        The pillar switches ``{allow_downgrade: bool, restart_on_version: bool}``.
    repository
        Whether the packages come from a repository (install method ``repo``).
    """
    switches = dict(switches or {})
    switches["running"] = [
        package for package, unit in (guarded or {}).items() if __salt__["service.status"](unit)
    ]
    errors, notes = [], []
    for package, pinned in sorted((packages or {}).items()):
        if not pinned:
            continue
        installed = __salt__["pkg.version"](package)
        problem = _version_problem(name, package, installed, pinned, switches)
        if problem:
            errors.append(problem)
        elif repository and __opts__["test"] and _comparable(installed, pinned) != str(pinned):
            found, available = _in_repository(package, pinned)
            if found is False:
                errors.append(
                    f"{name}: version {pinned} of {package} is not in the repository "
                    f"(it has {', '.join(available)})"
                )
            elif found is None:
                notes.append(f"{package} {pinned}: the repository does not list it yet")
        notes.append(f"{package}: installed {installed or 'none'}, pinned {pinned}")
    if errors:
        return _ret(name, False, "\n".join(errors))
    return _ret(name, True, "\n".join(notes) or "No version pinned")


def package_restored(name, binaries, **installed):
    """
    Reinstall the package ``name`` when one of its ``binaries`` is gone: ``pkg.installed``
    does not see a deleted file of an installed package (an rm of /usr/libexec/csupervisor).

    The check is a plain file test.  ``pkg.installed`` with ``unless`` costs seconds per run
    on every node: Salt looks for ``pkg.mod_run_check``, which no module has, by loading
    every state module.

    name
        The package.
    binaries
        Paths the package installs.
    installed
        Further arguments of ``pkg.installed`` (``version``, ``sources``).
    """
    missing = [path for path in binaries if not __salt__["file.file_exists"](path)]
    if not missing:
        return _ret(name, True, f"{name}: {', '.join(binaries)} present")
    ret = __states__["pkg.installed"](name=name, reinstall=True, **installed)
    ret["comment"] = f"{name}: {', '.join(missing)} missing\n{ret['comment']}"
    return ret


# --- database.yaml (control node) --------------------------------------------------------

DATABASE_HEADER = (
    "# Managed by Salt (crane formula): edit the pillar crane:database, not this file."
)


def database_file(name, user="crane", group="crane", mode="0600"):
    """
    Write database.yaml from the pillar ``crane:database``, read here on the control node:
    the MongoDB credentials never travel through SLS data, state arguments, returns or
    logs (no diff is shown). The redacted text is ``crane.database_text``.
    """
    database = (__pillar__.get("crane") or {}).get("database") or {}
    text = __utils__["crane_config.dump"](database, header=DATABASE_HEADER)
    return __states__["file.managed"](
        name=name, contents=text, user=user, group=group, mode=mode, show_changes=False
    )


def cgroup_ready(name, root="/sys/fs/cgroup", enabled_by=None):
    """
    Fail when craned on this node would not find its cgroup controllers (hybrid cgroup tree,
    a v1 hierarchy or v2 controller missing). Put it before craned is (re)started: on failure
    the running craned is left alone.

    name
        The node name (its entry in Nodes).
    enabled_by
        The unit that enables the v2 controllers: with ``test=True`` controllers it would
        still enable are a planned change, not a failure.
    """
    report = __salt__["crane.cgroup_check"](node=name, root=root)
    only_disabled = report["mode"] == "v2" and not report["unavailable"]
    if not report["valid"] and __opts__["test"] and enabled_by and only_disabled:
        return _ret(
            name,
            None,
            f"{enabled_by} would enable {', '.join(report['disabled'])} on {name}",
        )
    return _gate(
        name,
        report,
        f"{name} has the cgroup ({report['mode']}) controllers craned needs",
        f"craned on {name} would not start; craned is left as it is",
    )


def names_resolve(name):
    """
    Fail when this node cannot resolve a name CraneSched connects to (in the config and login
    nodes of ``crane.settings``), or when its ``gethostname()`` is not its ``Nodes`` entry. Put
    it before any daemon is restarted.

    name
        The node name (its host name).
    """
    data = __salt__["crane.settings"]()
    report = __salt__["crane.names_check"](
        node=name, config=data["config"], login_nodes=data.get("login_nodes") or []
    )
    return _gate(
        name,
        report,
        f"{name} resolves {len(report['names'])} CraneSched host name(s)",
        f"CraneSched on {name} would fail to reach its peers; no daemon is restarted",
    )


def mongodb_reachable(name, timeout=5, managed=False):
    """
    Fail when cranectld on this node would not reach MongoDB (it exits after the driver's
    timeout): DbHost does not resolve, DbPort does not answer, or the server is not in the
    configured replica set. Put it before cranectld is (re)started.

    name
        The control node's name.
    managed
        MongoDB is set up by this run (crane:mongodb:manage): with ``test=True`` a server
        that does not answer yet is a planned change, not a failure.
    """
    report = __salt__["crane.mongodb_check"](node=name, timeout=timeout)
    where = f"{report['host']}:{report['port']}"
    if managed and __opts__["test"] and not report["valid"]:
        comment = f"MongoDB at {where} does not answer yet; this run would set it up first"
        return _ret(name, None, comment)
    how = "answers hello as the configured replica set" if report.get("hello") else "answers"
    return _gate(
        name,
        report,
        f"MongoDB at {where} {how}",
        f"cranectld on {name} would not reach MongoDB at {where}; cranectld is left as it is",
    )


def mongodb_replica_set(name, timeout=60, mongosh="mongosh"):
    """
    The MongoDB replica set cranectld needs, on a mongod whose authorization is still off
    (crane:mongodb:manage): ``rs.initiate`` once, wait until the member is primary, create
    the admin user ``DbUser`` of crane:database; nothing when ``DbUser`` already
    authenticates and the set is up. Put it after mongod runs with ``replSetName`` and
    before authorization is turned on.

    name
        The member's host name (the set is ``DbReplSetName`` of crane:database).
    """
    result = __salt__["crane.mongodb_replica_set"](
        member=name, timeout=timeout, mongosh=mongosh, test=__opts__["test"]
    )
    return _ret(name, result["result"], result["comment"], result["changes"])


def plugins_ready(name, plugin=None):
    """
    Fail when a plugin that plugin.yaml enables has no ``.so`` file on this node (cplugind
    would warn and run without it). Put it before cplugind is (re)started.

    name
        The node name.
    plugin
        plugin.yaml's data.
    """
    errors = __utils__["crane_prereq.plugin_file_problems"](name, plugin or {})
    if errors:
        return _ret(name, False, f"cplugind is left as it is:\n{_bullets(errors)}")
    return _ret(name, True, f"Every enabled plugin's file is on {name}")


def tls_ready(name, files=None):
    """
    Fail when a TLS file this node's daemons read is unset, missing or empty (CraneSched's
    daemons exit at start then). Put it before config.yaml is written and any daemon
    restarted: on failure the running daemons keep their previous config.

    name
        The node name.
    files
        ``{TLS key: path}`` to check (default: ``crane.tls_files``).
    """
    report = __salt__["crane.tls_check"](node=name, files=files)
    return _gate(
        name,
        report,
        f"{name} has its {len(report.get('files') or [])} TLS file(s)",
        f"CraneSched's daemons on {name} would refuse TLS; config.yaml and the daemons are "
        "left as they are",
    )
    return _ret(name, False, comment)


def _read_text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _write_text(path, text):
    """Replace ``path`` atomically (sshd reads it at every login), keeping its mode and owner;
    a symlink stays a symlink (its target is replaced)."""
    path = os.path.realpath(path)
    info = os.stat(path)
    tmp = f"{path}.crane-formula.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(text)
    os.chown(tmp, info.st_uid, info.st_gid)
    os.chmod(tmp, stat.S_IMODE(info.st_mode))
    os.replace(tmp, path)


def _diff(path, old, new):
    return "".join(
        difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), fromfile=path, tofile=path, n=1
        )
    )


def _pam_ready(node, module_path, timeout, interval):
    """Poll crane.pam_check until the node is ready for pam_crane or ``timeout`` passes;
    the last report."""
    deadline = time.monotonic() + timeout
    while True:
        report = __salt__["crane.pam_check"](node=node, module_path=module_path)
        if report["valid"] or time.monotonic() >= deadline:
            return report
        time.sleep(interval)


# Salt passes state arguments by keyword but reads only positional-or-keyword parameters.
def pam_configured(  # noqa: PLR0917
    name,
    node,
    module_path,
    absolute=False,
    account_include="password-auth",
    session_include="password-auth",
    config_path=None,
    timeout=120,
    interval=5,
):
    """
    pam_crane.so in sshd's PAM stack where CraneSched's guide puts it (account before the
    account include, session after the session include), each preceded by a
    ``pam_succeed_if uid eq 0`` line that lets root skip it. The lines are added only while
    this node is up in cinfo and craned serves PAM (``crane.pam_check``, waited for up to
    ``timeout`` seconds): before that, pam_crane would refuse every user. Lines already in
    place change nothing and need no check.

    name
        The PAM file, ``/etc/pam.d/sshd``.
    node
        This node's name (its entry in Nodes).
    module_path
        Where CraneSched's craned package installs pam_crane.so.
    absolute
        Name the module by its absolute path (Debian: PAM's own directory is elsewhere).
    """
    module = __utils__["crane_pam.module_arg"](module_path, absolute, config_path)
    try:
        current = _read_text(name)
        wanted = __utils__["crane_pam.place"](
            current, module, account_include, session_include, path=name
        )
    except FileNotFoundError:
        return _ret(name, False, f"{name} does not exist on {node} (is sshd installed?)")
    except ValueError as exc:
        return _ret(name, False, f"{exc}; {name} is left as it is")
    if wanted == current:
        return _ret(name, True, f"pam_crane.so is in {name} on {node}")
    changes = {"diff": _diff(name, current, wanted)}
    wait = 0 if __opts__["test"] else timeout
    report = _pam_ready(node, module_path, wait, interval)
    if not report["valid"]:
        why = _bullets(report["errors"])
        if __opts__["test"]:
            comment = f"pam_crane.so would be added to {name} once {node} is ready; now:\n{why}"
            return _ret(name, None, comment, changes)
        comment = (
            f"pam_crane.so not added to {name}: it would refuse every user's SSH on {node}; "
            f"{name} is left as it is:\n{why}"
        )
        return _ret(name, False, comment)
    if __opts__["test"]:
        return _ret(name, None, f"pam_crane.so would be added to {name}", changes)
    _write_text(name, wanted)
    return _ret(name, True, f"pam_crane.so added to {name}", changes)


def pam_absent(name, module_path, absolute=False, config_path=None):
    """
    Remove exactly the lines ``pam_configured`` adds from ``name`` (``/etc/pam.d/sshd``);
    every other line stays. A missing file is fine.
    """
    module = __utils__["crane_pam.module_arg"](module_path, absolute, config_path)
    try:
        current = _read_text(name)
    except FileNotFoundError:
        return _ret(name, True, f"{name} does not exist")
    wanted = __utils__["crane_pam.remove"](current, module)
    if wanted == current:
        return _ret(name, True, f"{name} has no pam_crane.so lines of the formula")
    changes = {"diff": _diff(name, current, wanted)}
    if __opts__["test"]:
        return _ret(name, None, f"pam_crane.so would be removed from {name}", changes)
    _write_text(name, wanted)
    return _ret(name, True, f"pam_crane.so removed from {name}", changes)
