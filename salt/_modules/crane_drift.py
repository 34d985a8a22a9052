"""
Execution module for drift healing (pillar ``crane:heal``): how this node differs from what
``state.apply crane`` last applied here. The ``crane_drift`` beacon calls ``scan``; the
``crane.drift`` runner calls ``check`` before and after it re-applies the node.
"""

import os
import time

__virtualname__ = "crane_drift"

CONFIG_PATH = "/etc/crane/config.yaml"


def __virtual__():
    if "crane_drift.find_drifts" not in __utils__:
        return (False, "crane_drift: the crane_drift utility is not synced (run saltutil.sync_all)")
    return __virtualname__


def path(name):
    """
    Where this node keeps its ``baseline`` or the drifts the beacon has reported (``seen``).

    CLI Example:

    .. code-block:: bash

        salt cn01 crane_drift.path baseline
    """
    return __utils__["crane_drift.node_path"](name)


def baseline():
    """
    What ``state.apply crane`` writes as this node's baseline (``crane:heal:enabled``): the
    hash of the config.yaml it renders, the services and binaries the node's roles need, the
    healing mode and a fingerprint of the settings.

    CLI Example:

    .. code-block:: bash

        salt cn01 crane_drift.baseline
    """
    settings = __salt__["crane.settings"]()
    path = os.path.join(settings.get("config_dir") or "/etc/crane", "config.yaml")
    return __utils__["crane_drift.baseline"](settings, path)


def _unit_facts(unit):
    result = __salt__["cmd.run_all"](
        ["systemctl", "show", "-p", "ActiveState,SubState,InactiveEnterTimestampMonotonic", unit],
        python_shell=False,
        ignore_retcode=True,
    )
    props = dict(line.split("=", 1) for line in result["stdout"].splitlines() if "=" in line)
    return {
        "state": props.get("ActiveState") or "unknown",
        "sub": props.get("SubState") or "",
        "since": props.get("InactiveEnterTimestampMonotonic") or "0",
    }


def _config_facts(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None
    return {"hash": __utils__["crane_drift.sha256"](data), "mtime": mtime}


def _drifts(base):
    facts = {
        "config": _config_facts(base.get("config_path") or CONFIG_PATH),
        "units": {unit: _unit_facts(unit) for unit in base.get("services") or []},
        "missing": [
            name
            for name, path in (base.get("binaries") or {}).items()
            if not os.access(path, os.X_OK)
        ],
    }
    return __utils__["crane_drift.find_drifts"](base, facts)


def _read_baseline(state_dir=None):
    return __utils__["crane_engine.read_json"](
        __utils__["crane_drift.node_path"]("baseline", state_dir)
    )


def drifts(state_dir=None):
    """
    This node's drifts from its baseline (empty without one: the formula has not applied
    ``crane:heal`` here), each ``{key, kind, what}``: config.yaml not the one applied, a
    service of the node's roles inactive or failed, a binary of its packages missing.

    CLI Example:

    .. code-block:: bash

        salt '*' crane_drift.drifts
    """
    base = _read_baseline(state_dir)
    return _drifts(base) if base else []


def check(state_dir=None):
    """
    ``{drifts, baseline, pending_change}``: this node's drifts, whether it has a baseline, and
    whether the settings differ from those last applied (a pillar change not applied yet: the
    heal leaves that to the admin, who applies it to the whole cluster).

    CLI Example:

    .. code-block:: bash

        salt cn01 crane_drift.check
    """
    base = _read_baseline(state_dir)
    if not base:
        return {"drifts": [], "baseline": False, "pending_change": False}
    current = __utils__["crane_drift.fingerprint"](__salt__["crane.settings"]())
    return {
        "drifts": _drifts(base),
        "baseline": True,
        "pending_change": current != base.get("fingerprint"),
    }


def scan(state_dir=None):
    """
    The beacon's events: one for each drift not reported before (a drift is reported once,
    until it is gone), with the healing mode of the baseline. Remembers the drifts it has
    reported in ``drift-seen.json`` beside the baseline, so a minion restart or a pillar
    refresh does not report a standing drift again.

    CLI Example:

    .. code-block:: bash

        salt cn01 crane_drift.scan
    """
    base = _read_baseline(state_dir)
    if not base:
        return []
    seen_path = __utils__["crane_drift.node_path"]("seen", state_dir)
    seen = __utils__["crane_engine.read_json"](seen_path)
    events, now_seen = __utils__["crane_drift.new_events"](
        _drifts(base), seen, base.get("mode"), time.time()
    )
    if now_seen != seen:
        __utils__["crane_engine.write_json"](seen_path, now_seen)
    return events
