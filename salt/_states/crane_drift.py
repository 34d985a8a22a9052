"""
State ``crane_drift.beacon``: the ``crane_drift`` beacon configured on the running minion (and
saved to its beacons.conf) as ``crane:heal`` asks, or removed. Unlike ``beacon.present`` it
reports a planned change under ``test=True`` (result None) and saves only when something
changed.
"""

__virtualname__ = "crane_drift"


def __virtual__():
    if "beacons.list" not in __salt__:
        return (False, "crane_drift: the beacons execution module is not available")
    return __virtualname__


def _wanted(interval):
    """The beacon's configuration: Salt's own options only (the rest is in the baseline)."""
    return [{"interval": int(interval)}, {"disable_during_state_run": True}]


def _configured(name):
    """The beacon's configuration on the running minion; None when it has none. Without the
    beacon in this job's options the minion's event bus is not asked (nothing to remove)."""
    if name not in (__opts__.get("beacons") or {}):
        return None
    current = __salt__["beacons.list"](return_yaml=False, include_pillar=False)
    return (current or {}).get(name) if isinstance(current, dict) else None


def beacon(name, enabled=True, interval=10):
    """
    Ensure the beacon ``name`` (``crane_drift``) runs every ``interval`` seconds, skipped while
    a state run is in progress, or, with ``enabled: False``, that it is not configured.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    current = _configured(name) if not enabled else _listed(name)
    wanted = _wanted(interval) if enabled else None
    if current == wanted:
        ret["comment"] = f"Beacon {name} is " + ("configured" if enabled else "not configured")
        return ret
    ret["changes"] = {name: {"old": current, "new": wanted}}
    if __opts__.get("test"):
        ret["result"] = None
        ret["comment"] = f"Beacon {name} would be " + ("configured" if enabled else "removed")
        return ret
    if wanted is None:
        done = __salt__["beacons.delete"](name)
    elif current is None:
        done = __salt__["beacons.add"](name, wanted)
    else:
        done = __salt__["beacons.modify"](name, wanted)
    if done.get("result"):
        done = __salt__["beacons.save"]()
    if not done.get("result"):
        ret.update(result=False, changes={}, comment=str(done.get("comment")))
        return ret
    ret["comment"] = f"Beacon {name} " + ("configured" if enabled else "removed") + " and saved"
    return ret


def _listed(name):
    current = __salt__["beacons.list"](return_yaml=False, include_pillar=False)
    return (current or {}).get(name) if isinstance(current, dict) else None
