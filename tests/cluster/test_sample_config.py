"""CraneSched's own sample config pasted as crane:config deploys: every key of the sample (its
YAML 1.1 traps included: PreemptMode OFF and CranedDebugLevel off arrive as false) merged into
the test cluster's config, with only the cluster's own topology kept, validates with warnings
alone, is written with the words back, and the daemons and the CLIs accept it."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from . import formula

pytestmark = pytest.mark.cluster

SAMPLE = pathlib.Path(__file__).resolve().parents[1] / "support" / "cranesched_sample.yaml"
CONTROL = "cranectl"
COMPUTE = ("cn01", "cn02", "cn03")
TOPOLOGY = ("ControlMachine", "Nodes", "Partitions", "DefaultPartition")


def _paste_sample(crane):
    sample = yaml.safe_load(SAMPLE.read_text())
    for key in TOPOLOGY:
        sample.pop(key)
    crane["config"].update(sample)


@pytest.fixture(scope="module")
def applied(cluster):
    cluster.write_pillar(*formula.with_config(cluster, _paste_sample))
    result = formula.apply(cluster)
    yield cluster, result
    cluster.write_pillar(*formula.example_pillar(cluster))


def test_the_sample_deploys_with_warnings_only(applied):
    cluster, result = applied
    assert formula.failures(result) == {}
    validation = next(
        state for tag, state in result[CONTROL].items() if "crane-validate-config" in tag
    )
    assert "error(s)" not in validation["comment"]
    assert "CranedListenAddr: craned reads 'CranedListen'" in validation["comment"]
    assert "PreemptMode: YAML 1.1 read 'OFF' as false; written as 'OFF'" in validation["comment"]
    formula.wait_for("every node idle", lambda: formula.all_idle(cluster, COMPUTE))


def test_the_words_yaml_made_false_are_written_back(applied):
    cluster, _result = applied
    text = cluster.salt("cn01", "cmd.run", "cat /etc/crane/config.yaml")["cn01"]
    config = yaml.safe_load(text)
    assert config["CranedDebugLevel"] == "off"
    assert config["Preempt"]["PreemptMode"] == "OFF"


def test_the_clis_read_it_on_the_login_node(applied):
    cluster, _result = applied
    out = cluster.salt("login01", "cmd.run_all", "cinfo")["login01"]
    assert out["retcode"] == 0, out
    assert "cn[01-02]" in out["stdout"] or "cn01" in out["stdout"]
