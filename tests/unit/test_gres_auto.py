"""Automatic gres mode: mine answers keyed by minion id → host names → each group's gres."""

import copy

import crane_gres

A100 = {
    "name": "gpu",
    "type": "a100",
    "EnvInjector": "nvidia",
    "DeviceFileRegex": "/dev/nvidia[0-3]",
}
CONFIG = {
    "ControlMachine": "ctl",
    "Nodes": [
        {"name": "cn[01-02]", "cpu": 2, "memory": "2G"},
        {"name": "gpu[1-2]", "cpu": 4, "memory": "8G"},
    ],
}


def test_nodes_from_mine_maps_minion_ids_to_host_names():
    discovered = {"gpu1.example.org": [A100], "cn01.example.org": [], "stray": [A100]}
    hosts = {"gpu1.example.org": "gpu1", "cn01.example.org": "cn01"}
    assert crane_gres.nodes_from_mine(discovered, hosts) == {"gpu1": [A100], "cn01": []}


def test_nodes_from_mine_drops_answers_that_are_not_lists():
    discovered = {"m1": "'crane.gres_discover' is not available.", "m2": [A100]}
    assert crane_gres.nodes_from_mine(discovered, {"m1": "n1", "m2": "n2"}) == {"n2": [A100]}
    assert crane_gres.nodes_from_mine(None, None) == {}


def test_fill_config_gives_agreeing_groups_their_gres():
    original = copy.deepcopy(CONFIG)
    per_node = {"cn01": [], "cn02": [], "gpu1": [A100], "gpu2": [A100]}
    filled, problems = crane_gres.fill_config(CONFIG, per_node)
    assert problems == {}
    assert filled["Nodes"][1]["gres"] == [A100]
    assert "gres" not in filled["Nodes"][0]  # no accelerators: no gres key at all
    assert original == CONFIG


def test_fill_config_names_a_group_whose_nodes_disagree():
    two = dict(A100, DeviceFileRegex="/dev/nvidia[0-1]")
    per_node = {"cn01": [], "cn02": [], "gpu1": [A100], "gpu2": [two]}
    filled, problems = crane_gres.fill_config(CONFIG, per_node)
    assert list(problems) == ["gpu[1-2]"]
    assert "gpu[1-2]" in problems["gpu[1-2]"]
    assert "gres" not in filled["Nodes"][1]


def test_fill_config_names_a_group_with_a_node_without_data():
    filled, problems = crane_gres.fill_config(CONFIG, {"cn01": [], "cn02": [], "gpu1": [A100]})
    assert list(problems) == ["gpu[1-2]"]
    assert "gpu2: no discovery data" in problems["gpu[1-2]"]
    assert "gres" not in filled["Nodes"][1]


def test_fill_config_keeps_a_groups_own_gres():
    config = copy.deepcopy(CONFIG)
    config["Nodes"][1]["gres"] = [dict(A100, type="h100")]
    filled, problems = crane_gres.fill_config(config, {"cn01": [], "cn02": []})
    assert problems == {}
    assert filled["Nodes"][1]["gres"] == [dict(A100, type="h100")]


def test_fill_config_without_nodes():
    assert crane_gres.fill_config({"ControlMachine": "ctl"}, {}) == ({"ControlMachine": "ctl"}, {})


def test_nvidia_minors_of_a_node():
    config = copy.deepcopy(CONFIG)
    config["Nodes"][1]["gres"] = [
        dict(A100, DeviceFileRegex="/dev/nvidia[0-1]"),
        {"name": "gpu", "type": "h100", "EnvInjector": "nvidia",
         "DeviceFileList": ["/dev/nvidia3,/dev/nvidia-caps/nvidia-cap1"]},
    ]  # fmt: skip
    assert crane_gres.nvidia_minors("gpu2", config) == [0, 1, 3]
    assert crane_gres.nvidia_minors("cn01", config) == []
    assert crane_gres.nvidia_minors("other", config) == []
