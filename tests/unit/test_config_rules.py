"""crane_config: CraneSched's config rules, one bad config per rule, and rendering."""

import copy

import crane_config
import pytest
import yaml

from tests.support.bad_configs import CASES, changed
from tests.support.caller import REPO, example_pillar

DEFAULTS = yaml.safe_load(
    (REPO / "salt" / "states" / "crane" / "parameters" / "defaults.yaml").read_text()
)["values"]


@pytest.fixture
def crane():
    return copy.deepcopy(example_pillar(control=True)["crane"])


def test_example_config_is_valid(crane):
    result = crane_config.validate(crane["config"], crane["database"])
    assert result == {"valid": True, "errors": [], "warnings": []}


def test_there_are_at_least_25_distinct_rules():
    assert len({message for _id, _change, message in CASES}) >= 25


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_the_key(crane, change, message):
    crane = changed(change, crane)
    usable, errors, _warnings = crane_config.check_settings(crane, DEFAULTS)
    result = crane_config.validate(usable.get("config"), usable.get("database"))
    errors += result["errors"]
    assert errors
    assert any(message in error for error in errors), errors


def test_ignored_and_forced_keys_are_warnings(crane):
    crane["config"]["CranedListenAddr"] = "0.0.0.0"
    crane["config"]["CranedForeground"] = False
    result = crane_config.validate(crane["config"])
    assert result["valid"]
    assert any(
        w.startswith("CranedListenAddr: craned reads 'CranedListen'") for w in result["warnings"]
    )
    assert any(w.startswith("CranedForeground: forced to true") for w in result["warnings"])


def test_literal_brackets_warn(crane):
    crane["config"]["Nodes"][0]["name"] = "cn[01-02]-ib"
    crane["config"]["Partitions"][0]["nodes"] = "cn[01-02]-ib"
    result = crane_config.validate(crane["config"])
    assert result["valid"], result
    assert any("keeps its brackets" in w for w in result["warnings"])


def test_partition_all_covers_every_node(crane):
    crane["config"]["Partitions"] = [{"name": "CPU", "nodes": "ALL"}]
    assert crane_config.validate(crane["config"])["valid"]


def test_not_a_mapping():
    result = crane_config.validate(None)
    assert result["errors"] == [
        "crane:config: missing or not a mapping: the pillar must hold config.yaml"
    ]


def test_prepare_forces_foreground_and_trailing_slash():
    config, notes = crane_config.prepare({"CraneBaseDir": "/srv/crane", "CranedForeground": False})
    assert config["CraneBaseDir"] == "/srv/crane/"
    assert config["CranedForeground"] is True and config["CraneCtldForeground"] is True
    assert len(notes) == 3


def test_prepare_leaves_correct_values_alone(crane):
    config, notes = crane_config.prepare(crane["config"])
    assert config == crane["config"] and notes == []


def test_dump_is_canonical_and_round_trips(crane):
    shuffled = dict(reversed(list(crane["config"].items())))
    text = crane_config.dump(crane["config"])
    assert crane_config.dump(shuffled) == text
    assert yaml.safe_load(text) == crane["config"]
    assert text.index("- name: cn[01-02]\n  cpu: 2") >= 0


def test_roles(crane):
    config = crane["config"]
    assert crane_config.roles(config, ["cranectl"], ["login01"]) == ["control"]
    assert crane_config.roles(config, ["cn03", "cn03.example.org"]) == ["compute"]
    assert crane_config.roles(config, ["login01"], ["login[01-02]"]) == ["login"]
    assert crane_config.roles(config, ["other"], ["login01"]) == []
    assert crane_config.compute_hosts(config) == ["cn01", "cn02", "cn03"]
