"""Node groups by selector: resolution from mine facts, memory rounding, byte-identical output."""

import crane_config
import crane_elastic
import pytest

from tests.support.caller import example_pillar
from tests.support.dunder import load

GPU = [{"name": "gpu", "type": "a100", "DeviceFileRegex": "/dev/nvidia[0-1]"}]
MATCH = "G@crane:partition:GPU"


def facts(host, cpu=8, memory=15992, gres=(), ready=True):
    return {"host": host, "cpu": cpu, "memory": memory, "gres": list(gres), "ready": ready}


def config(*groups, partitions=None):
    return {
        "ControlMachine": "ctl",
        "Nodes": [{"name": "cn[01-02]", "cpu": 4, "memory": "8000M"}, *groups],
        "Partitions": partitions
        or [{"name": "CPU", "nodes": "cn[01-02]"}, {"name": "GPU", "match": MATCH}],
        "DefaultPartition": "CPU",
    }


def selector(**keys):
    return {"match": MATCH, "cpu": "auto", "memory": "auto", "gres": "auto", **keys}


def test_identical_nodes_merge_into_one_compressed_group():
    answers = {MATCH: {f"gpu{n}.example": facts(f"gpu{n:02d}", gres=GPU) for n in (3, 1, 2)}}
    resolved, errors, warnings = crane_elastic.resolve(config(selector()), answers)
    assert errors == [] and warnings == []
    assert resolved["Nodes"][1:] == [
        {"name": "gpu[01-03]", "cpu": 8, "memory": "15992M", "gres": GPU}
    ]
    assert resolved["Partitions"][1] == {"name": "GPU", "nodes": "gpu[01-03]"}
    report = crane_config.validate(resolved)
    assert [e for e in report["errors"] if "Nodes" in e or "Partitions" in e or "gres" in e] == []
    assert not [w for w in report["warnings"] if "match" in w]


def test_groups_alike_but_for_their_hosts_share_one_host_list():
    rack = "G@crane:rack:7"
    cfg = config(selector(), {"match": rack, "cpu": "auto", "memory": "auto", "gres": "auto"})
    cfg["Partitions"].append({"name": "RACK", "match": rack})
    answers = {
        MATCH: {"a": facts("gpu01", gres=GPU), "b": facts("gpu03", gres=GPU)},
        rack: {"c": facts("gpu02", gres=GPU), "d": facts("gpu04")},
    }
    resolved, errors, _ = crane_elastic.resolve(cfg, answers)
    assert errors == []
    assert resolved["Nodes"][1:] == [
        {"name": "gpu[01-03]", "cpu": 8, "memory": "15992M", "gres": GPU},
        {"name": "gpu04", "cpu": 8, "memory": "15992M"},
    ]
    # each partition keeps its own nodes
    assert [p["nodes"] for p in resolved["Partitions"][1:]] == ["gpu[01,03]", "gpu[02,04]"]


def test_a_built_group_alike_a_named_one_joins_it_in_its_place():
    cfg = config(selector())
    cfg["Nodes"].insert(1, {"name": "cn05,cn04", "cpu": 8, "memory": "15992M"})
    cfg["Nodes"].append({"name": "cn09", "cpu": 8, "memory": "15992M"})  # named: kept apart
    cfg["Partitions"][0]["nodes"] = "cn[01-02,04-05,09]"
    answers = {MATCH: {"a": facts("gpu01"), "b": facts("gpu02", cpu=2)}}
    resolved, errors, _ = crane_elastic.resolve(cfg, answers)
    assert errors == []
    assert resolved["Nodes"] == [
        {"name": "cn[01-02]", "cpu": 4, "memory": "8000M"},  # nothing joined: as written
        {"name": "cn[04-05],gpu01", "cpu": 8, "memory": "15992M"},
        {"name": "gpu02", "cpu": 2, "memory": "15992M"},
        {"name": "cn09", "cpu": 8, "memory": "15992M"},
    ]
    assert resolved["Partitions"][1]["nodes"] == "gpu[01-02]"
    report = crane_config.validate(resolved)
    assert [e for e in report["errors"] if "Nodes" in e or "Partitions" in e] == []


def test_output_does_not_depend_on_mine_order():
    nodes = {f"m{n}": facts(f"gpu{n:02d}", gres=GPU if n % 2 else ()) for n in range(1, 7)}
    forward = dict(sorted(nodes.items()))
    backward = dict(sorted(nodes.items(), reverse=True))
    texts = [
        crane_config.dump(crane_elastic.resolve(config(selector()), {MATCH: answer})[0])
        for answer in (forward, backward)
    ]
    assert texts[0] == texts[1]
    assert "gpu[01,03,05]" in texts[0] and "gpu[02,04,06]" in texts[0]


def test_group_whose_nodes_disagree_is_split_by_resources():
    answers = {MATCH: {"a": facts("gpu01", gres=GPU), "b": facts("gpu02", cpu=16, gres=GPU)}}
    resolved, errors, _ = crane_elastic.resolve(config(selector()), answers)
    assert errors == []
    assert [(g["name"], g["cpu"]) for g in resolved["Nodes"][1:]] == [("gpu01", 8), ("gpu02", 16)]
    assert resolved["Partitions"][1]["nodes"] == "gpu[01-02]"


def test_group_whose_nodes_disagree_is_refused_by_switch():
    answers = {MATCH: {"a": facts("gpu01"), "b": facts("gpu02", memory=31992)}}
    resolved, errors, _ = crane_elastic.resolve(config(selector()), answers, mixed="refuse")
    assert len(errors) == 1
    assert "Nodes[1] (match 'G@crane:partition:GPU')" in errors[0]
    assert "gpu01: cpu 8, memory 15992M" in errors[0] and "memory 31992M" in errors[0]
    assert all("match" not in g for g in resolved["Nodes"])


def test_unknown_mixed_word_is_an_error():
    _, errors, _ = crane_elastic.resolve(config(selector()), {}, mixed="merge")
    assert errors == ["crane:elastic:mixed: 'merge' is not one of split, refuse"]


def test_node_matching_two_groups_is_an_error_naming_both():
    other = "G@crane:rack:7"
    cfg = config(selector(), {"match": other, "cpu": "auto", "memory": "auto"})
    answers = {MATCH: {"m1": facts("gpu01")}, other: {"m1": facts("gpu01")}}
    _, errors, _ = crane_elastic.resolve(cfg, answers)
    assert errors == [
        "crane:config: node gpu01 matches two node groups: Nodes[1] (match "
        "'G@crane:partition:GPU') and Nodes[2] (match 'G@crane:rack:7')"
    ]


def test_node_in_a_named_group_and_a_selector_is_an_error():
    answers = {MATCH: {"m1": facts("cn02")}}
    _, errors, _ = crane_elastic.resolve(config(selector()), answers)
    assert (
        len(errors) == 1 and "node cn02 matches two node groups: Nodes[0] 'cn[01-02]'" in errors[0]
    )


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (None, "not a mapping"),
        ({"host": "gpu02"}, "no usable cpu"),
        ({**facts("gpu02"), "memory": 0}, "no usable memory"),
        ({**facts("gpu02"), "gres": None}, "no gres list"),
        ({**facts("gpu02"), "host": ""}, "no host name"),
    ],
)
def test_node_with_unusable_mine_data_is_left_out_with_a_warning(answer, why):
    answers = {MATCH: {"m1": facts("gpu01"), "m2": answer}}
    resolved, errors, warnings = crane_elastic.resolve(config(selector()), answers)
    assert errors == []
    assert [g["name"] for g in resolved["Nodes"][1:]] == ["gpu01"]
    assert len(warnings) == 1 and "minion m2 left out" in warnings[0] and why in warnings[0]


def test_group_with_no_mine_data_yet_is_left_out_whole():
    resolved, errors, warnings = crane_elastic.resolve(config(selector()), {MATCH: {}})
    assert errors == []
    assert resolved["Nodes"] == config()["Nodes"]
    assert [p["name"] for p in resolved["Partitions"]] == ["CPU"]
    assert len(warnings) == 2 and "no node has joined yet" in warnings[0]


def test_node_not_joined_counts_only_as_the_candidate():
    answers = {MATCH: {"m1": facts("gpu01"), "m2": facts("gpu02", ready=False)}}
    left_out, _, warnings = crane_elastic.resolve(config(selector()), answers)
    assert left_out["Partitions"][1]["nodes"] == "gpu01"
    assert "minion m2 left out until it has joined" in warnings[0]
    joining, _, warnings = crane_elastic.resolve(config(selector()), answers, candidate="m2")
    assert joining["Partitions"][1]["nodes"] == "gpu[01-02]" and warnings == []


def test_given_resources_win_and_other_keys_are_kept():
    group = selector(cpu=4, memory="8000M", gres=None, sockets=1)
    answers = {MATCH: {"a": facts("gpu01", gres=GPU), "b": facts("gpu02", cpu=2)}}
    resolved, errors, _ = crane_elastic.resolve(config(group), answers)
    assert errors == []
    assert resolved["Nodes"][1] == {"name": "gpu[01-02]", "cpu": 4, "memory": "8000M", "sockets": 1}


@pytest.mark.parametrize(
    ("keys", "text"),
    [
        ({"match": ""}, "match must be a non-empty"),
        ({"name": "x"}, "either name or match"),
        ({"cpu": "8"}, "cpu must be a positive integer or auto"),
        ({"memory": 8}, "memory must be"),
        ({"gres": "gpu"}, "gres must be"),
    ],
)
def test_bad_selector_group_is_an_error_naming_it(keys, text):
    _, errors, _ = crane_elastic.resolve(config(selector(**keys)), {})
    assert "Nodes[1]" in errors[0] and text in errors[0]
    # the GPU partition's match names no valid group when the match itself is empty
    assert len(errors) == (2 if keys == {"match": ""} else 1)


def test_partition_match_of_no_group_is_an_error():
    parts = [{"name": "CPU", "nodes": "cn[01-02]"}, {"name": "X", "match": "G@nothing:here"}]
    _, errors, _ = crane_elastic.resolve(config(selector(), partitions=parts), {})
    assert errors == [
        "crane:config: Partitions[1] 'X': match 'G@nothing:here' is the match of no node group"
    ]


def test_config_without_selectors_is_returned_as_is():
    plain = config(partitions=[{"name": "CPU", "nodes": "cn[01-02]"}])
    assert crane_elastic.resolve(plain, {}) == (plain, [], [])


@pytest.mark.parametrize("real_mib", [1, 7, 8, 15, 15999, 16000, 16007, 257_847, 1_031_999])
def test_memory_rounding_stays_within_the_health_check_tolerance(real_mib):
    rounded = crane_elastic.round_memory_mib(real_mib)
    assert rounded % crane_elastic.MEMORY_STEP_MIB == 0
    assert rounded <= real_mib
    # what CraneSched's health check compares: real (bytes, up to 1 MiB more than the
    # grain's floor) against configured, 0.01 GiB tolerance
    real_gib_max = (real_mib + 1) / 1024
    assert real_gib_max - rounded / 1024 <= 0.01


def test_node_facts_from_grains():
    grains = {"host": "gpu01", "num_cpus": 16, "mem_total": 64303}
    assert crane_elastic.node_facts(grains, GPU, ready=None) == {
        "host": "gpu01",
        "cpu": 16,
        "memory": 64296,
        "gres": GPU,
        "ready": False,
    }


# --- the execution module's side ---------------------------------------------------------


def elastic_module(host, answer, tmp_path=None, minion_id=None):
    pillar = example_pillar(control=False)
    pillar["crane"]["config"]["Nodes"].append(selector())
    pillar["crane"]["config"]["Partitions"].append({"name": "GPUX", "match": MATCH})
    calls = []

    def mine_get(tgt, fun, tgt_type="glob"):
        calls.append((tgt, fun, tgt_type))
        return answer

    grains = {"host": host, "nodename": host, "id": minion_id or host, "os_family": "Debian"}
    module = load("_modules", __salt__={"mine.get": mine_get}, __pillar__=pillar, __grains__=grains)
    if tmp_path is not None:
        module.JOINED_FILE = str(tmp_path / "joined")
    return module, calls


def test_roles_of_a_joined_selector_node_are_compute():
    crane, calls = elastic_module("gpu05", {"m5": facts("gpu05")}, minion_id="m5")
    assert crane.roles() == ["compute"]
    assert calls == [(MATCH, "crane_facts", "compound")]
    assert crane.selector_groups() == [MATCH]
    not_joined, _ = elastic_module("gpu05", {"m5": facts("gpu05", ready=False)}, minion_id="m5")
    assert not_joined.roles() == []


def test_minion_matching_no_selector_has_no_group():
    crane, _ = elastic_module("cn09", {"m5": facts("gpu05")}, minion_id="cn09")
    assert crane.selector_groups() == [] and crane.roles() == []


def test_joined_mark_round_trip(tmp_path):
    crane, _ = elastic_module("gpu05", {}, tmp_path=tmp_path)
    assert crane.joined() is False
    assert crane.joined(True) is True and crane.joined() is True
    assert crane.joined(False) is False and not (tmp_path / "joined").exists()
