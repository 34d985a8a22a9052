"""Automatic gres mode through the Salt loader: with this minion's ``crane.gres_discover`` and
host name in the (local) mine, ``crane.settings`` fills the node group's gres from the mine and
``crane.validate_config`` names a group without data. The mine functions themselves are
exercised on a real cluster (tests/cluster/test_gres_auto.py)."""

import copy

from tests.support.caller import example_pillar, node_grains

GPU_GROUP = "cn03"


def auto_pillar():
    pillar = example_pillar(control=False)
    crane = pillar["crane"]
    for group in crane["config"]["Nodes"]:
        group.pop("gres", None)
    crane["gres"] = {"auto": True, "default_types": {"nvidia": "a100"}}
    crane["gres"]["nvidia_device_files"] = True
    return pillar


def call(minion, fun, pillar, *args):
    return minion.call(fun, *args, grains=node_grains("debian12", GPU_GROUP), pillar=pillar)


def group(config, name):
    return next(g for g in config["Nodes"] if g["name"] == name)


def publish(minion, pillar, dev_root):
    """What the mine functions of the pillar example would send (a local mine is a cache)."""
    types = pillar["crane"]["gres"]["default_types"]
    discovered = call(minion, "crane.gres_discover", pillar, dev_root, types)
    mine = {"crane_gres": discovered, "crane_host": GPU_GROUP}
    assert call(minion, "data.update", pillar, "mine_cache", mine) is True


def test_settings_fill_gres_from_the_mine(local_minion, fake_dev):
    fake_dev.chr("nvidia0", "nvidia1", "nvidia2", "nvidia3")
    pillar = auto_pillar()
    publish(local_minion, pillar, fake_dev.root)
    settings = call(local_minion, "crane.settings", pillar, pillar["crane"])
    assert group(settings["config"], GPU_GROUP)["gres"] == [
        {
            "name": "gpu",
            "type": "a100",
            "EnvInjector": "nvidia",
            "DeviceFileRegex": "/dev/nvidia[0-3]",
        }
    ]
    assert "DeviceFileRegex: /dev/nvidia[0-3]" in settings["config_text"]
    assert settings["nvidia_minors"] == [0, 1, 2, 3]
    # cn01/cn02 published nothing (only this minion did): their group is named, not guessed
    result = call(local_minion, "crane.validate_config", pillar, settings["config"])
    assert result["valid"] is False, result
    auto_errors = [e for e in result["errors"] if e.startswith("crane:gres:auto")]
    assert len(auto_errors) == 1
    assert "cn[01-02]" in auto_errors[0] and "no discovery data" in auto_errors[0]

    without = copy.deepcopy(pillar["crane"])
    without["gres"]["auto"] = False
    settings = call(local_minion, "crane.settings", pillar, without)
    assert "gres" not in group(settings["config"], GPU_GROUP)
    assert settings["nvidia_minors"] == []


def test_nvidia_minors_only_when_switched_on(local_minion):
    explicit = example_pillar(control=False)
    settings = call(local_minion, "crane.settings", explicit, explicit["crane"])
    assert settings["nvidia_minors"] == []
    explicit["crane"]["gres"] = {"nvidia_device_files": True}
    settings = call(local_minion, "crane.settings", explicit, explicit["crane"])
    assert settings["nvidia_minors"] == [0, 1, 2, 3]
