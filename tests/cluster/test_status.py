"""``salt-run crane.status`` on a real cluster: cranectl, cn01, cn02."""

from __future__ import annotations

import time

import crane_engine
import pytest

from . import pillar
from .conftest import booted
from .spec import ClusterSpec, NodeSpec, env_spec
from .test_upgrade import salt_run

pytestmark = pytest.mark.cluster

CONTROL = "cranectl"
NODES = (NodeSpec(CONTROL, "control"), NodeSpec("cn01"), NodeSpec("cn02"))


def status_spec() -> ClusterSpec:
    """Own bridge and subnet (CRANE_FORMULA_STATUS_NET=name:subnet moves them)."""
    return env_spec("CRANE_FORMULA_STATUS_NET", "cfsta:10.213.23.0/24", NODES)


def status_pillar(spec: ClusterSpec):
    sls, top = pillar.cluster_pillar(spec, pillar.pathlib.Path(__file__).resolve().parents[2])
    crane = sls["crane.cluster"]["crane"]
    crane["login_nodes"] = []
    crane["config"]["Nodes"] = [{"name": "cn[01-02]", "cpu": 2, "memory": "2G"}]
    crane["config"]["Partitions"] = [{"name": "CPU", "nodes": "cn[01-02]", "priority": 5}]
    crane["config"]["DefaultPartition"] = "CPU"
    return sls, top


@pytest.fixture(scope="module")
def scluster():
    spec = status_spec()
    with booted(spec, status_pillar(spec)) as cluster:
        proc = cluster.salt_cli("--timeout=600", "*", "state.apply", "crane")
        assert proc.returncode == 0, proc.stdout[-4000:]
        code, _, err = salt_run(cluster, "saltutil.sync_all")  # runners and utils on the master
        assert code == 0, err
        yield cluster


def test_status_prints_the_table(scluster):
    code, out, err = salt_run(scluster, "crane.status", out_json=False)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].split() == ["PARTITION", "STATE", "NODES", "NODELIST", "REASON"]
    assert lines[1].split() == ["CPU*", "idle[power_idle]", "2", "cn[01-02]"]
    assert ["cn01", "idle[power_idle]", "1.1.2", "ok"] in [line.split() for line in lines]
    assert "healthy; config.yaml identical on every node" in out


def test_status_json_gives_the_same_data(scluster):
    code, data, _ = salt_run(scluster, "crane.status")
    assert code == 0
    assert data["healthy"] is True
    assert data["control"] == CONTROL
    assert data["rows"] == [
        {
            "partition": "CPU*",
            "nodes": 2,
            "state": "idle[power_idle]",
            "nodelist": "cn[01-02]",
            "reason": "",
        }
    ]
    assert {n: i["version"] for n, i in data["nodes"].items()} == {"cn01": "1.1.2", "cn02": "1.1.2"}
    assert data["config_hash"]["differs"] == []


def test_hand_edited_config_is_reported(scluster):
    scluster.sh("cn02", "echo '# edited by hand' >> /etc/crane/config.yaml", check=True)
    try:
        code, data, _ = salt_run(scluster, "crane.status")
        assert code != 0
        assert data["config_hash"]["differs"] == ["cn02"]
        assert data["problems"] == ["config.yaml differs from the other nodes' on cn02"]
        code, out, _ = salt_run(scluster, "crane.status", out_json=False)
        assert code != 0
        assert ["cn02", "idle[power_idle]", "1.1.2", "differs"] in [
            x.split() for x in out.splitlines()
        ]
    finally:
        scluster.salt("cn02", "state.apply", "crane", timeout=300)
    code, data, _ = salt_run(scluster, "crane.status")
    assert code == 0
    assert data["config_hash"]["differs"] == []


def test_drained_node_shows_its_reason_and_fails_the_check(scluster):
    scluster.sh(CONTROL, 'ccontrol update nodename=cn01 state=drain reason="bad fan"', check=True)
    try:
        code, out, _ = salt_run(scluster, "crane.status", out_json=False)
        assert code != 0
        row = [x.split(None, 4) for x in out.splitlines() if x.startswith("CPU*") and "drain" in x]
        assert row == [["CPU*", "idle(drain)[power_idle]", "1", "cn01", "bad fan"]]
    finally:
        scluster.sh(CONTROL, 'ccontrol update nodename=cn01 state=resume reason=""', check=True)


def test_hand_edited_config_on_the_control_node_names_that_node(scluster):
    scluster.sh(CONTROL, "echo '# edited by hand' >> /etc/crane/config.yaml", check=True)
    try:
        code, data, _ = salt_run(scluster, "crane.status")
        assert code != 0
        assert data["config_hash"]["differs"] == [CONTROL]  # not every other node
        assert data["problems"] == [f"config.yaml differs from the other nodes' on {CONTROL}"]
    finally:
        scluster.salt(CONTROL, "state.apply", "crane", timeout=300)


def test_dead_minion_is_no_answer_not_ok(scluster):
    scluster.sh("cn02", "systemctl stop salt-minion", check=True)
    try:
        began = time.monotonic()
        code, out, _ = salt_run(scluster, "crane.status", out_json=False)
        took = time.monotonic() - began
        assert code != 0
        assert ["cn02", "idle[power_idle]", "1.1.2", "no", "answer"] in [
            x.split() for x in out.splitlines()
        ]
        assert "no answer from cn02" in out
        # one glob call waits CALL_TIMEOUT plus Salt's gather_job_timeout (10 s) for the dead
        # minion; everything else answers at once (the old runner took 72 s here)
        print(f"crane.status with a dead minion: {took:.1f}s")
        assert took < 3 * (crane_engine.CALL_TIMEOUT + 10)
    finally:
        scluster.sh("cn02", "systemctl start salt-minion", check=True)
        scluster.wait_for_minions(["cn02"])
