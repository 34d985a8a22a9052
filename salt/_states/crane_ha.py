"""
States for a Keepalived control pair of CraneSched (pillar ``crane:ha``).

keepalived decides where cranectld runs: its ``notify_master`` script starts cranectld on the
node that holds the virtual IP, ``notify_backup`` stops it. These states never start cranectld
on the backup, and read the current state first and honour ``test=True``.
"""

import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "crane_ha"


def __virtual__():
    if "crane_ha.status" not in __salt__:
        return (False, "crane_ha: the crane_ha execution module is not synced (saltutil.sync_all)")
    return __virtualname__


def _ret(name, result=True, comment="", changes=None):
    return __utils__["crane_state.ret"](name, result, comment, changes)


def shared_dir_ready(name, user="crane", require_mount=True):
    """
    Gate: ``name`` (``Keepalived.CraneSharedBaseDir``) exists, is a mount point (with
    ``require_mount``) and is writable by ``user``; otherwise fail naming the key and the
    path, before keepalived or cranectld are touched. The formula does not mount it.
    Changes nothing.
    """
    if __opts__["test"] and not __salt__["user.info"](user):
        return _ret(name, None, f"{name} would be checked once user {user} exists")
    problems = __salt__["crane_ha.shared_dir_check"](name, user, require_mount)
    if problems:
        return _ret(name, False, "\n".join(problems))
    return _ret(name, True, f"shared directory {name} is mounted and writable by {user}")


def _plan(status, enabled, due, restart):
    """What the formula does to cranectld on this node, as (action, text) pairs."""
    plan = []
    if enabled:
        plan.append(("disable", "disable at boot: keepalived starts cranectld on the master"))
    if status["master"] and not status["cranectld"]:
        plan.append(("on_master", "start through the notify_master script (lock check first)"))
    elif status["master"] and due and restart:
        plan.append(("restart", "restart: its package, config or drop-in changed"))
    return plan


def cranectld_role(name, vip, on_master, alive_file=None, restart=True):
    """
    cranectld where keepalived wants it: not enabled at boot; on the master (the node holding
    ``vip``) running, started through ``on_master`` (the notify_master script, which checks
    the shared lock first) when it is not, restarted when a restart is due and ``restart``;
    on the backup never started (a running one is reported, not stopped: keepalived's
    notify_backup does that).

    name
        The cranectld unit.
    vip
        The virtual IP without prefix length.
    on_master
        Path of the formula's notify_master script.
    """
    status = __salt__["crane_ha.status"](vip=vip, alive_file=alive_file)
    enabled = __salt__["service.enabled"](name)
    due = name in __salt__["crane.restart_pending"](name)
    plan = _plan(status, enabled, due, restart)
    role = "master" if status["master"] else "backup"
    if due and not status["cranectld"] and not __opts__["test"]:
        # Not running here: whoever starts it next (keepalived) starts it on the new config.
        __salt__["crane.restart_clear"](name, force=True)
    note = ""
    if not status["master"] and status["cranectld"]:
        note = f"; {name} runs on this backup node: keepalived's notify_backup should stop it"
    if not plan:
        state = "running" if status["cranectld"] else "not running"
        return _ret(name, True, f"{role}: {name} is {state}, as keepalived wants{note}")
    changes = {action: text for action, text in plan}
    if __opts__["test"]:
        return _ret(name, None, f"{role}: would " + "; ".join(changes.values()) + note, changes)
    for action, _text in plan:
        failure = _apply(name, action, on_master)
        if failure:
            return _ret(name, False, f"{role}: {failure}", changes)
    return _ret(name, True, f"{role}: " + "; ".join(changes.values()) + note, changes)


def _apply(name, action, on_master):
    """Carry out one planned action; the failure's text, or None."""
    if action == "disable":
        return None if __salt__["service.disable"](name) else f"could not disable {name}"
    if action == "restart":
        return None if __salt__["service.restart"](name) else f"could not restart {name}"
    result = __salt__["cmd.run_all"]([on_master], python_shell=False, ignore_retcode=True)
    if result["retcode"] != 0:
        return f"{on_master} failed: {(result['stdout'] + result['stderr']).strip()}"
    return None


def cranectld_answering(name, timeout=120, interval=1):
    """
    Wait until cranectld answers ``cinfo`` through ``ControlMachine`` (the virtual IP's name),
    whichever node of the pair is master: at most ``timeout`` seconds. Changes nothing.
    """
    if __opts__["test"]:
        try:
            __salt__["crane.cinfo"]()
        except CommandExecutionError:
            return _ret(name, None, f"{name} does not answer yet; it would be waited for")
        return _ret(name, True, f"{name} answers through the virtual IP")
    deadline = time.monotonic() + float(timeout)
    while True:
        try:
            __salt__["crane.cinfo"]()
            return _ret(name, True, f"{name} answers through the virtual IP")
        except CommandExecutionError as exc:
            if time.monotonic() >= deadline:
                return _ret(name, False, f"{name} answered no request within {timeout} s: {exc}")
        time.sleep(interval)
