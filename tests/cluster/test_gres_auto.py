"""Automatic gres mode on real nodes: a pillar without gres, every node publishing
``crane.gres_discover`` and its host name through the Salt mine (the example pillar's
``crane/mine.sls``), and ``state.apply crane`` writing cn03's GPUs into config.yaml."""

from __future__ import annotations

import pytest

from . import formula

pytestmark = pytest.mark.cluster

CONTROL = "cranectl"
COMPUTE = ("cn01", "cn02", "cn03")
DISCOVERED_TYPE = "h100"  # not the example's a100: what craned reports comes from discovery


def _automatic(crane):
    for group in crane["config"]["Nodes"]:
        group.pop("gres", None)
    crane["gres"] = {"auto": True, "default_types": {"nvidia": DISCOVERED_TYPE}}


@pytest.fixture(scope="module")
def automatic(cluster):
    """The cluster deployed, then switched to a pillar without gres in automatic mode."""
    cluster.write_pillar(*formula.example_pillar(cluster))
    assert formula.failures(formula.apply(cluster)) == {}
    cluster.write_pillar(*formula.with_config(cluster, _automatic))
    assert set(cluster.salt("*", "mine.update").values()) == {True}
    yield cluster
    cluster.write_pillar(*formula.example_pillar(cluster))
    cluster.salt("*", "mine.update")


def test_gpu_node_gets_its_discovered_gres(automatic):
    cluster = automatic
    served = cluster.salt(CONTROL, "pillar.get", "crane:config:Nodes", unmask=True)[CONTROL]
    assert [g for g in served if "gres" in g] == []
    result = formula.apply(cluster)
    assert formula.failures(result) == {}
    hashes = cluster.salt("*", "crane.config_hash")
    assert len(set(hashes.values())) == 1, hashes
    config = cluster.sh("cn03", "cat /etc/crane/config.yaml", check=True).stdout
    assert "DeviceFileRegex: /dev/nvidia[0-3]" in config
    assert f"type: {DISCOVERED_TYPE}" in config
    formula.wait_for("every node idle", lambda: formula.all_idle(cluster, COMPUTE))
    shown = cluster.sh(CONTROL, "ccontrol show node cn03", check=True).stdout.split()
    assert f"Gres=gpu:{DISCOVERED_TYPE}:4" in shown
    for node in ("cn01", "cn02"):
        shown = cluster.sh(CONTROL, f"ccontrol show node {node}", check=True).stdout.split()
        assert "Gres=None" in shown or not any(w.startswith("Gres=gpu") for w in shown), node
    again = formula.apply(cluster)
    assert formula.failures(again) == {} and formula.changed(again) == {}


def test_group_without_mine_data_fails_validation_naming_it(automatic):
    cluster = automatic
    hashes = cluster.salt("*", "crane.config_hash")
    assert cluster.salt("cn02", "mine.flush") == {"cn02": True}
    try:
        result = formula.apply(cluster)
        for node, states in result.items():
            validate = states["crane-validate-config"]
            assert validate["result"] is False, node
            assert "node group 'cn[01-02]'" in validate["comment"], node
            assert "cn02: no discovery data" in validate["comment"], node
            assert "'cn03'" not in validate["comment"], node
        assert formula.changed(result) == {}
        assert cluster.salt("*", "crane.config_hash") == hashes
    finally:
        cluster.salt("cn02", "mine.update")
    assert formula.failures(formula.apply(cluster)) == {}
