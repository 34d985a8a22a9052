"""Model-name normalisation, type resolution and automatic-mode merging."""

import crane_gres
import pytest


@pytest.mark.parametrize(
    ("raw", "token"),
    [
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA A100 80GB PCIe", "a100"),
        ("Tesla V100-PCIE-16GB", "v100"),
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA GeForce RTX 4090", "rtx4090"),
        ("Tesla T4", "t4"),
        ("NVIDIA L40S", "l40s"),
        ("AMD Instinct MI250X / MI250", "mi250x"),
        ("910B3", "910b3"),
        ("K100_AI", "k100_ai"),
        ("Iluvatar BI-V100", "bi-v100"),
    ],
)
def test_model_token(raw, token):
    assert crane_gres.model_token(raw) == token


@pytest.mark.parametrize(
    "raw",
    [
        "No devices were found",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        "[N/A]",
        "0x740f",
        "",
        "\x00\xff\x1b[31m",
        "x" * 40 + "1",
    ],
)
def test_model_token_rejects_garbage(raw):
    assert crane_gres.model_token(raw) is None


def test_resolve_types_per_device_from_a_mapped_answer():
    models = [(0, "a100"), (1, "t4")]
    assert crane_gres.resolve_types("nvidia", [0, 1], models) == {0: "a100", 1: "t4"}


def test_resolve_types_one_model_for_all():
    assert crane_gres.resolve_types("amd", [128, 129], [(None, "mi250x")] * 2) == {
        128: "mi250x",
        129: "mi250x",
    }


def test_resolve_types_does_not_guess_between_unmapped_models():
    models = [(None, "910b3"), (None, "310p3")]
    assert crane_gres.resolve_types("ascend", [0, 1], models, {"ascend": "910b"}) == {
        0: "910b",
        1: "910b",
    }


def test_resolve_types_fallback_is_the_vendor():
    assert crane_gres.resolve_types("iluvatar", [0], []) == {0: "iluvatar"}
    assert crane_gres.resolve_types("iluvatar", [0], [], {"iluvatar": " "}) == {0: "iluvatar"}


# --------------------------------------------------------------------------- merge_discovered


def a100(expr="/dev/nvidia[0-3]"):
    return {"name": "gpu", "type": "a100", "EnvInjector": "nvidia", "DeviceFileRegex": expr}


def test_agreeing_group_gets_its_entries():
    per_node = {"cn01": [a100()], "cn02": [a100()]}
    gres, disagreements = crane_gres.merge_discovered({"cn[01-02]": ["cn01", "cn02"]}, per_node)
    assert gres == {"cn[01-02]": [a100()]}
    assert disagreements == {}


def test_same_devices_written_differently_agree():
    listed = {"name": "gpu", "type": "a100", "EnvInjector": "nvidia"}
    listed["DeviceFileList"] = [f"/dev/nvidia{i}" for i in range(4)]
    per_node = {"cn01": [a100()], "cn02": [listed]}
    gres, disagreements = crane_gres.merge_discovered({"cn[01-02]": "cn[01-02]"}, per_node)
    assert list(gres) == ["cn[01-02]"] and disagreements == {}


def test_disagreeing_group_is_reported_not_guessed():
    per_node = {"cn01": [a100()], "cn02": [a100()], "cn03": [a100("/dev/nvidia[0-2]")]}
    gres, disagreements = crane_gres.merge_discovered({"cn[01-03]": "cn[01-03]"}, per_node)
    assert gres == {}
    message = disagreements["cn[01-03]"]
    assert "cn[01-02]: gpu:a100 x4" in message
    assert "cn03: gpu:a100 x3" in message


def test_group_without_accelerators_agrees_on_nothing():
    gres, disagreements = crane_gres.merge_discovered(
        {"cpu[1-2]": "cpu[1-2]"}, {"cpu1": [], "cpu2": []}
    )
    assert gres == {"cpu[1-2]": []} and disagreements == {}


def test_node_without_data_makes_the_group_undecided():
    gres, disagreements = crane_gres.merge_discovered(
        {"cn[01-02]": "cn[01-02]"}, {"cn01": [a100()]}
    )
    assert gres == {}
    assert "cn02: no discovery data" in disagreements["cn[01-02]"]


def test_groups_are_judged_separately():
    per_node = {"cn01": [a100()], "cn02": [], "gpu1": [a100()]}
    gres, disagreements = crane_gres.merge_discovered(
        {"cn[01-02]": "cn[01-02]", "gpu1": "gpu1"}, per_node
    )
    assert gres == {"gpu1": [a100()]}
    assert list(disagreements) == ["cn[01-02]"]
    assert "cn02: no accelerators" in disagreements["cn[01-02]"]


def test_groups_to_nodes_feeds_merge_discovered():
    config = {"Nodes": [{"name": "cn[01-02]", "gres": []}, {"name": "bad[1-", "gres": []}]}
    groups = crane_gres.groups_to_nodes(config)
    assert groups == {"cn[01-02]": ["cn01", "cn02"]}
    gres, disagreements = crane_gres.merge_discovered(groups, {"cn01": [a100()], "cn02": [a100()]})
    assert gres == {"cn[01-02]": [a100()]} and disagreements == {}
