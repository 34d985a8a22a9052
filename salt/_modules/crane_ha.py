"""
Execution module for a Keepalived control pair of CraneSched (pillar ``crane:ha``): where
the master role is, and whether the shared directory cranectld needs is usable.
"""

import os

from salt.exceptions import CommandExecutionError

__virtualname__ = "crane_ha"


def __virtual__():
    if "crane_ha.paths" not in __utils__:
        return (False, "crane_ha: the crane_ha utility is not synced (run saltutil.sync_all)")
    return __virtualname__


def _local_addresses():
    result = __salt__["cmd.run_all"](["ip", "-o", "addr", "show"], python_shell=False)
    if result["retcode"] != 0:
        raise CommandExecutionError(f"ip addr show failed: {result['stderr'].strip()}")
    addresses = set()
    for line in result["stdout"].splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[2] in ("inet", "inet6"):
            addresses.add(fields[3].split("/")[0])
    return addresses


def _active(unit):
    result = __salt__["cmd.run_all"](
        ["systemctl", "is-active", "--quiet", unit], python_shell=False, ignore_retcode=True
    )
    return result["retcode"] == 0


def status(vip=None, alive_file=None):
    """
    This control node's part in the pair: ``{'master': holds the virtual IP, 'keepalived':
    active, 'cranectld': active, 'alive_file': it exists}``. The virtual IP and the alive
    file default to what ``crane:ha`` and ``crane:config`` give.

    CLI Example:

    .. code-block:: bash

        salt -G 'crane:roles:control' crane_ha.status
    """
    settings = __salt__["crane.settings"]()
    facts = settings.get("ha_facts") or {}
    vip = vip or facts.get("vip_address")
    alive_file = alive_file or facts.get("alive_file")
    if not vip:
        raise CommandExecutionError("crane_ha: crane:ha is not enabled (no virtual IP)")
    return {
        "master": vip in _local_addresses(),
        "keepalived": _active(settings.get("ha", {}).get("keepalived_service", "keepalived")),
        "cranectld": _active("cranectld"),
        "alive_file": bool(alive_file) and os.path.exists(alive_file),
    }


def _mount_points():
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        return {line.split()[4].replace("\\040", " ") for line in handle if line.strip()}


def _writable_by(path, user):
    result = __salt__["cmd.run_all"](
        ["test", "-w", path], runas=user, python_shell=False, ignore_retcode=True
    )
    return result["retcode"] == 0


def shared_dir_check(path, user="crane", require_mount=True):
    """
    Problems of ``Keepalived.CraneSharedBaseDir`` (cranectld's lock and embedded DB) on this
    node, as a list of messages (empty when it is usable): it must exist as a directory, be a
    mount point (with ``require_mount``; the site mounts it, the formula does not) and be
    writable by ``user``, and so must the ``cranectld`` folder under it when it exists.

    CLI Example:

    .. code-block:: bash

        salt ctl1 crane_ha.shared_dir_check /shared/crane/ crane
    """
    path = str(path or "")
    name = "Keepalived.CraneSharedBaseDir"
    if not os.path.isdir(path):
        return [f"{name} '{path}' does not exist here (mount the shared storage first)"]
    problems = []
    if require_mount and os.path.normpath(path) not in _mount_points():
        problems.append(
            f"{name} '{path}' is not a mount point: both control nodes must see the same "
            "shared directory (crane:ha:require_mount: false to accept a plain directory)"
        )
    folder = os.path.join(path, "cranectld")
    for target in [path] + ([folder] if os.path.isdir(folder) else []):
        if not _writable_by(target, user):
            problems.append(f"{name}: '{target}' is not writable by {user}")
    return problems
