"""A Keepalived control pair added to a pillar: the settings the HA tests start from."""

import copy

PAIR = ["ctl1", "ctl2"]
VIP_NAME = "cranectl"  # the example pillar's ControlMachine becomes the VIP's name


def ha_pillar(pillar, **changes):
    """``pillar`` (not changed) with ``crane:ha`` for ctl1/ctl2, the VIP named like its
    ControlMachine and a Keepalived section; ``changes`` override ``crane:ha`` keys."""
    data = copy.deepcopy(pillar)
    crane = data["crane"]
    crane["config"]["ControlMachine"] = VIP_NAME
    crane["config"]["Keepalived"] = {"CraneSharedBaseDir": "/shared/crane/"}
    crane["ha"] = {
        "enabled": True,
        "nodes": list(PAIR),
        "vip": "10.0.0.10/24",
        "vip_name": VIP_NAME,
        "interface": "eth0",
        "router_id": 51,
        "priorities": {"ctl1": 100, "ctl2": 90},
        "unicast_peers": {"ctl1": "10.0.0.11", "ctl2": "10.0.0.12"},
        **changes,
    }
    return data
