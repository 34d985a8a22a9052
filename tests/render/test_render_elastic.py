"""A pillar with a node group by selector, compiled on a node whose grains match it: the node
is a compute node only once it has joined (or is the candidate of a join), and config.yaml
holds a plain group built from its mine facts, never the selector's own keys."""

import pytest
import yaml

from tests.render.test_render import args, pillar_for
from tests.support.caller import node_grains

CONFIG_ID = "crane-config-file-config-file-managed"
GPU = [
    {"name": "gpu", "type": "a100", "EnvInjector": "nvidia", "DeviceFileRegex": "/dev/nvidia[0-1]"}
]


def selector_pillar(**elastic):
    pillar = pillar_for("repo", control=False)
    config = pillar["crane"]["config"]
    config["Nodes"].append(
        {"match": "G@crane:partition:GPU", "cpu": "auto", "memory": "auto", "gres": "auto"}
    )
    config["Partitions"].append({"name": "GPUX", "match": "G@crane:partition:GPU"})
    pillar["crane"]["elastic"] = elastic
    return pillar


def show(minion, partition, ready, **elastic):
    grains = {**node_grains("debian12", "gpu05"), "crane": {"partition": partition}}
    facts = {"host": "gpu05", "cpu": 16, "memory": 64296, "gres": GPU, "ready": ready}
    pillar = selector_pillar(**elastic)
    assert minion.call("data.update", "mine_cache", {"crane_facts": facts}, grains=grains,
                       pillar=pillar) is True  # fmt: skip
    try:
        return minion.call("state.show_sls", "crane", grains=grains, pillar=pillar)
    finally:
        minion.call("data.pop", "mine_cache", grains=grains, pillar=pillar)


def test_joined_node_is_compute_with_a_plain_group_from_its_facts(minion):
    states = show(minion, "GPU", ready=True)
    assert isinstance(states, dict), states
    text = args(states[CONFIG_ID])["contents"]
    config = yaml.safe_load(text)
    assert config["Nodes"][-1] == {"name": "gpu05", "cpu": 16, "memory": "64296M", "gres": GPU}
    assert config["Partitions"][-1] == {"name": "GPUX", "nodes": "gpu05"}
    assert "match" not in text and "auto" not in text
    services = {args(s)["name"] for s in states.values() if args(s)["fun"] == "service.running"}
    assert "craned" in services


@pytest.mark.parametrize(
    ("partition", "ready", "elastic"),
    [("GPU", False, {}), ("CPU", True, {}), ("CPU", False, {"candidate": "crane-test-minion"})],
)
def test_node_not_joined_or_not_matching_has_no_role(minion, partition, ready, elastic):
    states = show(minion, partition, ready, **elastic)
    assert "crane-no-role" in states
    assert CONFIG_ID not in states


def test_candidate_of_a_join_is_compute_before_it_is_marked_joined(minion):
    states = show(minion, "GPU", ready=False, candidate="crane-test-minion")
    config = yaml.safe_load(args(states[CONFIG_ID])["contents"])
    assert config["Nodes"][-1]["name"] == "gpu05"


def test_bad_mixed_word_fails_validation_naming_the_key(minion):
    states = show(minion, "GPU", ready=True, mixed="merge")
    assert isinstance(states, dict), states
    # the validation state itself runs only on apply; its inputs say what it will report
    result = minion.call("crane.validate_config", pillar=selector_pillar(mixed="merge"))
    assert "crane:elastic:mixed: 'merge' is not one of split, refuse" in result["errors"]
