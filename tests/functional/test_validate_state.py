"""`state.apply crane` with a bad cluster config: the validation state fails with a message
naming the key and node group, and no other state changes anything. A real run stops right
there (failhard); with test=True Salt ignores failhard, so every other state reports that its
requisite failed and plans no change."""

import copy

import pytest

from tests.support.bad_configs import CASES, changed
from tests.support.caller import example_pillar, node_grains


def apply(minion, crane, host, **kwargs):
    return minion.call(
        "state.apply",
        "crane",
        grains=node_grains("debian12", host),
        pillar={"crane": crane},
        **kwargs,
    )


def validation_comment(result):
    """The failed validation's comment; every other state must plan nothing."""
    assert isinstance(result, dict), result
    others = {tag: state for tag, state in result.items() if "crane-validate-config" not in tag}
    (validation,) = (state for tag, state in result.items() if tag not in others)
    assert validation["result"] is False
    for tag, state in others.items():
        assert state["changes"] == {}, tag
        assert state["result"] is False, tag
        assert state["comment"].startswith("One or more requisite failed"), tag
    assert others, "the validation state is never alone in a test run"
    return validation["comment"]


def only_validation_ran(result):
    assert isinstance(result, dict), result
    (tag,) = result  # nothing else ran
    assert "crane-validate-config" in tag
    state = result[tag]
    assert state["result"] is False
    assert state["changes"] == {}
    return state["comment"]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_stops_the_run_before_any_change(local_minion, change, message):
    crane = changed(change, copy.deepcopy(example_pillar(control=True)["crane"]))
    comment = validation_comment(apply(local_minion, crane, "cranectl", test=True))
    assert "error(s) in the CraneSched config for /etc/crane/config.yaml" in comment
    assert message in comment
    assert "change-me" not in comment


def test_real_apply_with_bad_config_changes_nothing(local_minion, tmp_path):
    crane = copy.deepcopy(example_pillar(control=False)["crane"])
    crane["config"]["Nodes"][0]["memory"] = "8g"
    crane["config_dir"] = str(tmp_path / "etc")
    comment = only_validation_ran(apply(local_minion, crane, "cn01"))
    assert "Nodes[0] 'cn[01-02]' memory: '8g' is rejected by CraneSched" in comment
    assert not (tmp_path / "etc").exists()


def test_valid_config_reports_warnings_and_enforced_keys(local_minion):
    crane = copy.deepcopy(example_pillar(control=False)["crane"])
    crane["config"]["CranedListenAddr"] = "0.0.0.0"
    crane["config"]["CranedForeground"] = False
    result = local_minion.call(
        "state.sls_id",
        "crane-validate-config",
        "crane",
        grains=node_grains("debian12", "cn01"),
        pillar={"crane": crane},
    )
    (state,) = result.values()
    assert state["result"] is True
    assert "CranedListenAddr: craned reads 'CranedListen'" in state["comment"]
    assert "CranedForeground set to true" in state["comment"]


def test_module_validate_config_sets_retcode(local_minion):
    crane = copy.deepcopy(example_pillar(control=False)["crane"])
    crane["config"]["ClusterName"] = ""
    result = local_minion.call(
        "crane.validate_config", crane["config"], grains=node_grains("debian12", "cn01")
    )
    assert result["valid"] is False
    assert result["errors"] == [
        'ClusterName: missing or empty (CraneSched: "ClusterName is empty.")'
    ]
