"""
States for CraneSched clusters deployed by the crane formula.

Every state reads the current state first, honours ``test=True`` (result None and the planned
change) and reports old/new in ``changes``. Checks that change nothing return no changes, so a
second apply of the formula reports zero changes.
"""

import logging
import re
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "crane"


def __virtual__():
    if "crane.validate_config" not in __salt__:
        return (False, "crane: the crane execution module is not synced (run saltutil.sync_all)")
    return __virtualname__


def _ret(name, result=True, comment="", changes=None):
    return {"name": name, "result": result, "comment": comment, "changes": changes or {}}


def _bullets(lines):
    return "\n".join(f"  - {line}" for line in lines)


def config_valid(name, config=None, database=None, notes=None, settings=None):
    """
    Fail, before anything changes, when the cluster config breaks a CraneSched rule.

    name
        The config file the checked data is for (used in messages).
    config
        The cluster config (default: the pillar's ``crane:config``).
    database
        database.yaml data to check too, or ``True`` for the pillar's ``crane:database``
        (control nodes; keeps the secrets out of the SLS).
    notes
        What the formula enforced in the config (shown in the comment).
    settings
        ``{'errors': [...], 'warnings': [...]}`` about the formula's own pillar settings
        (``crane.settings`` works them out), reported with the config's.
    """
    result = __salt__["crane.validate_config"](config=config, database=database)
    settings = settings or {}
    result["errors"] = [*(settings.get("errors") or []), *result["errors"]]
    result["warnings"] = [*(settings.get("warnings") or []), *result["warnings"]]
    result["valid"] = result["valid"] and not settings.get("errors")
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


def gres_valid(name, config=None, dev_root="/dev"):
    """
    Fail when craned on this node would refuse its gres config (a device file missing, an
    invalid injector or CDI setting). Put it before config.yaml is written and before craned
    is restarted: on failure the node keeps its previous config and its running craned.

    name
        The node name (its entry in Nodes).
    """
    result = __salt__["crane.gres_validate"](node=name, config=config, dev_root=dev_root)
    if result["valid"]:
        return _ret(name, True, f"The gres config of {name} matches its devices")
    comment = (
        f"craned on {name} would refuse this config; config.yaml and craned are left as they "
        f"are:\n{_bullets(result['errors'])}"
    )
    return _ret(name, False, comment)


_ERROR_LINE = re.compile(r"^\[(?:[EC] \S+ \S+ \S+\]|\S+ \S+\] \[(?:error|critical)\])")


def _error_line(report):
    """The daemon's own last error line (spdlog ``[E …]``/``[C …]`` or, before its logger
    exists, ``[…] [error]``), from its log file, else its journal."""
    for text in (report["log"], report["journal"]):
        errors = [line for line in text.splitlines() if _ERROR_LINE.match(line)]
        if errors:
            return errors[-1]
    return ""


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
    report = __salt__["crane.daemon_report"](name, log_file=log_file)
    if __opts__["test"] and not report["active"]:
        return _ret(name, None, f"{name} is not running; it would be checked after it is started")
    pid = report["main_pid"]
    while report["active"] and report["main_pid"] == pid and report["uptime"] < settle:
        time.sleep(poll)
        report = __salt__["crane.daemon_report"](name, log_file=log_file)
    if not report["active"] or report["main_pid"] != pid:
        return _ret(name, False, _daemon_failure(report))
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
    if report["valid"]:
        return _ret(
            name, True, f"{name} has the cgroup ({report['mode']}) controllers craned needs"
        )
    only_disabled = report["mode"] == "v2" and not report["unavailable"]
    if __opts__["test"] and enabled_by and only_disabled:
        return _ret(
            name,
            None,
            f"{enabled_by} would enable {', '.join(report['disabled'])} on {name}",
        )
    comment = (
        f"craned on {name} would not start; craned is left as it is:\n{_bullets(report['errors'])}"
    )
    return _ret(name, False, comment)


def names_resolve(name, config=None, login_nodes=None):
    """
    Fail when this node cannot resolve a name CraneSched connects to, or when its
    ``gethostname()`` is not its ``Nodes`` entry. Put it before any daemon is restarted.

    name
        The node name (its host name).
    """
    report = __salt__["crane.names_check"](node=name, config=config, login_nodes=login_nodes)
    if report["valid"]:
        return _ret(name, True, f"{name} resolves {len(report['names'])} CraneSched host name(s)")
    comment = (
        f"CraneSched on {name} would fail to reach its peers; no daemon is restarted:\n"
        f"{_bullets(report['errors'])}"
    )
    return _ret(name, False, comment)


def mongodb_reachable(name, timeout=5):
    """
    Fail when cranectld on this node would not reach MongoDB (it exits after the driver's
    timeout): DbHost does not resolve, DbPort does not answer, or the server is not in the
    configured replica set. Put it before cranectld is (re)started.

    name
        The control node's name.
    """
    report = __salt__["crane.mongodb_check"](node=name, timeout=timeout)
    where = f"{report['host']}:{report['port']}"
    if report["valid"]:
        how = "answers hello as the configured replica set" if report["hello"] else "answers"
        return _ret(name, True, f"MongoDB at {where} {how}")
    comment = (
        f"cranectld on {name} would not reach MongoDB at {where}; cranectld is left as it "
        f"is:\n{_bullets(report['errors'])}"
    )
    return _ret(name, False, comment)


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
    if report["valid"]:
        return _ret(name, True, f"{name} has its {len(report['files'])} TLS file(s)")
    comment = (
        f"CraneSched's daemons on {name} would refuse TLS; config.yaml and the daemons are "
        f"left as they are:\n{_bullets(report['errors'])}"
    )
    return _ret(name, False, comment)
