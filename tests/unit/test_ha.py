"""crane:ha, the Keepalived control pair: its rules, the roles it gives, what settings derive."""

import crane_config
import crane_ha
import pytest

from tests.support.caller import example_pillar
from tests.support.dunder import load
from tests.support.ha import ha_pillar


def errors_of(pillar):
    crane = pillar["crane"]
    return crane_ha.problems(crane["ha"], crane["config"])


def test_a_complete_pair_has_no_problem():
    assert errors_of(ha_pillar(example_pillar())) == []


def test_off_by_default_nothing_is_checked():
    pillar = ha_pillar(example_pillar(), enabled=False, nodes=[])
    assert errors_of(pillar) == []
    assert crane_ha.pair(pillar["crane"]["ha"]) == []


BAD = [
    ({"nodes": ["ctl1"]}, "crane:ha:nodes: must name the two control minions"),
    ({"nodes": ["ctl1", "ctl1"]}, "crane:ha:nodes: must name the two control minions"),
    ({"vip": "10.0.0.300"}, "crane:ha:vip: '10.0.0.300' is not an IP address"),
    ({"vip_name": ""}, "crane:ha:vip_name: missing"),
    ({"vip_name": "ctl1"}, "crane:ha:vip_name: 'ctl1' is one of crane:ha:nodes"),
    ({"interface": ""}, "crane:ha:interface: missing"),
    ({"router_id": 256}, "crane:ha:router_id: must be an integer 1-255, not 256"),
    ({"router_id": True}, "crane:ha:router_id: must be an integer 1-255, not True"),
    (
        {"priorities": {"ctl1": 100, "ctl2": 100}},
        "crane:ha:priorities: both control nodes have priority 100",
    ),
    ({"priorities": {"ctl1": 100}}, "crane:ha:priorities:ctl2: must be an integer 1-254"),
    ({"priorities": {"ctl1": 255, "ctl2": 90}}, "crane:ha:priorities:ctl1: must be an integer"),
    (
        {"priorities": {"ctl1": 100, "ctl2": 90, "ctl3": 80}},
        "crane:ha:priorities:ctl3: not one of crane:ha:nodes",
    ),
    ({"unicast_peers": {}}, "crane:ha:unicast_peers: give each control node's address"),
    ({"unicast_peers": {"ctl1": "10.0.0.11"}}, "crane:ha:unicast_peers:ctl2: missing or not"),
    (
        {"unicast_peers": {"ctl1": "10.0.0.11", "ctl2": "10.0.0.12", "x": "10.0.0.13"}},
        "crane:ha:unicast_peers:x: not one of crane:ha:nodes",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_bad_ha_setting_is_named(changes, message):
    errors = errors_of(ha_pillar(example_pillar(), **changes))
    assert any(error.startswith(message) for error in errors), errors


def test_multicast_instead_of_unicast_peers():
    assert errors_of(ha_pillar(example_pillar(), unicast_peers={}, multicast=True)) == []


def test_control_machine_must_be_the_vip_name():
    pillar = ha_pillar(example_pillar())
    pillar["crane"]["config"]["ControlMachine"] = "ctl1"
    assert errors_of(pillar) == [
        "ControlMachine: 'ctl1' is not the virtual IP's name crane:ha:vip_name 'cranectl' "
        "(craned, cfored and the CLIs must reach whichever node is master)"
    ]


@pytest.mark.parametrize("keepalived", [None, {}, {"CraneCtldAliveFile": "a"}])
def test_shared_base_dir_is_required(keepalived):
    pillar = ha_pillar(example_pillar())
    pillar["crane"]["config"]["Keepalived"] = keepalived
    [error] = errors_of(pillar)
    assert error.startswith("Keepalived.CraneSharedBaseDir: required with crane:ha")


def test_shared_base_dir_must_be_absolute():
    pillar = ha_pillar(example_pillar())
    pillar["crane"]["config"]["Keepalived"] = {"CraneSharedBaseDir": "shared/"}
    assert errors_of(pillar) == [
        "Keepalived.CraneSharedBaseDir: 'shared/' must be an absolute path"
    ]


def test_pair_members_are_the_control_role():
    pillar = ha_pillar(example_pillar())
    config, pair = pillar["crane"]["config"], crane_ha.pair(pillar["crane"]["ha"])
    assert crane_config.roles(config, ["ctl1"], ha_pair=pair) == ["control"]
    assert crane_config.roles(config, ["ctl2"], ha_pair=pair) == ["control"]
    assert crane_config.roles(config, ["cranectl"], ha_pair=pair) == []
    assert crane_config.roles(config, ["cn01"], ha_pair=pair) == ["compute"]


def test_a_minion_named_like_the_vip_is_not_in_the_pair():
    crane = ha_pillar(example_pillar())["crane"]
    assert crane_ha.minion_problems(crane["ha"], crane["config"], ["cranectl"]) == [
        "crane:ha:nodes: this minion (cranectl) is ControlMachine but not one of the control "
        "pair ['ctl1', 'ctl2']: with crane:ha, ControlMachine is the virtual IP's name"
    ]
    assert crane_ha.minion_problems(crane["ha"], crane["config"], ["ctl1"]) == []


def test_paths_follow_cranectld_rules():
    config = {"CraneBaseDir": "/var/crane/", "Keepalived": {"CraneSharedBaseDir": "/sh/"}}
    assert crane_ha.paths(config) == {
        "shared_dir": "/sh/",
        "lock_file": "/sh/cranectld/cranectld.lock",
        "alive_file": "/var/crane/cranectld/cranectld.alive",
    }
    config["CraneCtldMutexFilePath"] = "/abs/lock"
    config["Keepalived"]["CraneCtldAliveFile"] = "x/alive"
    assert crane_ha.paths(config)["lock_file"] == "/abs/lock"
    assert crane_ha.paths(config)["alive_file"] == "/var/crane/x/alive"


def test_vrrp_state_priority_and_peers_per_node():
    ha = ha_pillar(example_pillar())["crane"]["ha"]
    assert crane_ha.vrrp(ha, "ctl1") == {
        "state": "MASTER",
        "priority": 100,
        "unicast_src": "10.0.0.11",
        "unicast_peers": ["10.0.0.12"],
        "vip_address": "10.0.0.10",
    }
    assert crane_ha.vrrp(ha, "ctl2")["state"] == "BACKUP"
    multicast = {**ha, "unicast_peers": {}, "multicast": True}
    assert crane_ha.vrrp(multicast, "ctl2")["unicast_peers"] == []


def _module(pillar, host):
    return load("_modules", __pillar__=pillar, __grains__={"host": host, "nodename": host})


def test_settings_add_ha_errors_facts_and_drop_systemd_restart():
    pillar = ha_pillar(example_pillar(), priorities={"ctl1": 90, "ctl2": 90})
    defaults = {"units": {"cranectld": {"dropin": {"Restart": "on-failure", "RestartSec": 5}}}}
    data = _module(pillar, "ctl2").settings(defaults, pillar["crane"])
    assert data["roles"] == ["control"]
    assert any(e.startswith("crane:ha:priorities: both") for e in data["settings_errors"])
    assert data["ha_facts"]["host"] == "ctl2"
    assert data["ha_facts"]["lock_file"] == "/shared/crane/cranectld/cranectld.lock"
    assert data["units"]["cranectld"]["dropin"] == {}


def test_settings_without_ha_keep_the_restart_policy():
    pillar = example_pillar()
    defaults = {"units": {"cranectld": {"dropin": {"Restart": "on-failure"}}}}
    data = _module(pillar, "cranectl").settings(defaults, pillar["crane"])
    assert data["ha_facts"] is None
    assert data["units"]["cranectld"]["dropin"] == {"Restart": "on-failure"}
