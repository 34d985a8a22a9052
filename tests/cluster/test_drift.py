"""Drift healing on a real cluster (cranectl, cn01, cn02) whose master runs the formula's
reactor: a hand edit of config.yaml on cn01 and a stopped craned on cn02 are healed by the
crane_drift beacon, the reactor and ``crane.drift`` (mode heal), and only recorded in mode
report; a pillar change not applied yet is left to the admin. ``crane.status`` shows each."""

from __future__ import annotations

import json
import time

import pytest

from . import pillar
from .conftest import after, booted
from .formula import all_idle, apply, changed, results, wait_for
from .spec import ClusterSpec, NodeSpec, env_spec
from .test_upgrade import salt_run

pytestmark = pytest.mark.cluster

CONTROL = "cranectl"
NODES = (NodeSpec(CONTROL, "control"), NodeSpec("cn01"), NodeSpec("cn02"))
REACTORS = (("salt/beacon/*/crane_drift/*", "salt://reactor/heal.sls"),)
INTERVAL = 5  # the beacon's interval (crane:heal:interval)
GIVE_UP = 300  # only stops a hung cluster: the test reports the seconds it took
EDIT = "echo '# edited by hand' >> /etc/crane/config.yaml"


def drift_spec() -> ClusterSpec:
    """Own bridge and subnet (CRANE_FORMULA_DRIFT_NET=name:subnet moves them)."""
    return env_spec("CRANE_FORMULA_DRIFT_NET", "cfdr:10.213.73.0/24", NODES, reactors=REACTORS)


def drift_pillar(spec: ClusterSpec, mode: str = "heal", priority: int = 5):
    sls, top = pillar.cluster_pillar(spec, pillar.pathlib.Path(__file__).resolve().parents[2])
    crane = sls["crane.cluster"]["crane"]
    crane["login_nodes"] = []
    crane["config"]["Nodes"] = [{"name": "cn[01-02]", "cpu": 2, "memory": "2G"}]
    crane["config"]["Partitions"] = [{"name": "CPU", "nodes": "cn[01-02]", "priority": priority}]
    crane["config"]["DefaultPartition"] = "CPU"
    crane["heal"] = {"enabled": True, "mode": mode, "interval": INTERVAL}
    return sls, top


def apply_all(cluster, target: str = "*") -> None:
    proc = cluster.salt_cli("--timeout=600", "-C", target, "state.apply", "crane")
    assert proc.returncode == 0, proc.stdout[-4000:]


@pytest.fixture(scope="module")
def dcluster():
    spec = drift_spec()
    with booted(spec, drift_pillar(spec)) as cluster:
        apply_all(cluster)
        yield cluster


def record(cluster) -> dict:
    """The master's drift record (what crane.status reads)."""
    path = cluster.master_dir / "root" / "cache" / "crane" / "crane-drift.json"
    try:
        return json.loads(path.read_text())["nodes"]
    except (OSError, ValueError, KeyError):
        return {}


def heal_result(cluster, node: str, since: float) -> str | None:
    """The result of ``node``'s last heal recorded after ``since``, if any."""
    heal = record(cluster).get(node, {}).get("heal") or {}
    return heal.get("result") if heal.get("time", 0) >= since else None


def config_hash(cluster, node: str) -> str:
    return cluster.salt(node, "crane.config_hash")[node]


def craned_state(cluster, node: str) -> str:
    return cluster.sh(node, "systemctl is-active craned").stdout.strip()


def drift_both(cluster) -> float:
    began = time.time()
    cluster.sh("cn01", EDIT, check=True)
    cluster.sh("cn02", "systemctl stop craned", check=True)
    return began


def status_drift(cluster) -> dict:
    _, data, err = salt_run(cluster, "crane.status")
    assert data is not None, err
    return data["drift"]


def heal_states(result) -> dict:
    """``{minion: {state id: state}}`` of the drift-healing states of an apply."""
    return {m: {i: s for i, s in states.items() if i.startswith("crane-heal-")}
            for m, states in result.items()}  # fmt: skip


def test_a_second_apply_changes_nothing(dcluster):
    again = apply(dcluster)
    assert changed(again) == {}, changed(again)
    assert results(again) == {True}
    for minion, states in heal_states(again).items():
        assert set(states) == {"crane-heal-baseline-file-serialize", "crane-heal-beacon"}, minion
    baseline = dcluster.sh("cn01", "cat /var/lib/crane-formula/drift-baseline.json").stdout
    assert json.loads(baseline)["services"] == ["craned"]
    assert "crane_drift" in dcluster.sh("cn01", "cat /etc/salt/minion.d/beacons.conf").stdout


def test_heal_brings_both_nodes_back(dcluster, flow):
    expected = config_hash(dcluster, "cn02")
    assert config_hash(dcluster, "cn01") == expected
    began = drift_both(dcluster)
    wait_for(
        "both heals recorded",
        lambda: all(heal_result(dcluster, n, began) for n in ("cn01", "cn02")),
        limit=GIVE_UP,
    )
    wait_for("cn01 and cn02 idle", lambda: all_idle(dcluster, ["cn01", "cn02"]), limit=GIVE_UP)
    took = time.time() - began
    print(f"drift to healed and idle: {took:.1f}s (beacon interval {INTERVAL}s)")
    assert config_hash(dcluster, "cn01") == expected  # the rendered file, not the edit
    assert craned_state(dcluster, "cn02") == "active"
    rows = status_drift(dcluster)
    assert rows["cn01"]["heal"] == "healed", rows
    assert "config.yaml differs from the one last applied" in rows["cn01"]["drift"]
    assert rows["cn02"]["heal"] == "healed", rows
    assert rows["cn02"]["drift"] == "craned is inactive"
    code, out, _ = salt_run(dcluster, "crane.status", out_json=False)
    assert code == 0, out
    print(out)
    assert "HEAL" in out and "healed" in out
    flow["healed"] = True


def test_a_pillar_change_not_applied_is_not_healed_onto_one_node(dcluster, flow):
    after(flow, "healed")
    spec = dcluster.spec
    dcluster.write_pillar(*drift_pillar(spec, priority=7))  # not applied yet
    try:
        time.sleep(2 * INTERVAL)  # a pillar refresh alone is no drift: nothing recorded
        assert heal_result(dcluster, "cn01", time.time() - 2 * INTERVAL) is None
        before = config_hash(dcluster, "cn02")
        began = time.time()
        dcluster.sh("cn02", "systemctl stop craned", check=True)
        wait_for("cn02's heal recorded", lambda: heal_result(dcluster, "cn02", began),
                 limit=GIVE_UP)  # fmt: skip
        heal = record(dcluster)["cn02"]["heal"]
        assert heal["result"] == "skipped", heal
        assert "a change not applied yet" in heal["comment"]
        assert config_hash(dcluster, "cn02") == before  # the new config went nowhere
        assert craned_state(dcluster, "cn02") != "active"
    finally:
        dcluster.write_pillar(*drift_pillar(spec))
        dcluster.salt("cn02", "state.apply", "crane", timeout=300)
    wait_for("cn02 idle", lambda: all_idle(dcluster, ["cn02"]), limit=GIVE_UP)
    flow["pending"] = True


def test_report_mode_only_records(dcluster, flow):
    after(flow, "healed")
    spec = dcluster.spec
    dcluster.write_pillar(*drift_pillar(spec, mode="report"))
    planned = apply(dcluster, "cn01", test=True)  # test=True tells the truth
    heal = heal_states(planned)["cn01"]
    assert heal["crane-heal-baseline-file-serialize"]["result"] is None
    assert heal["crane-heal-beacon"]["result"] is True  # the beacon itself is unchanged
    apply_all(dcluster, "L@cn01,cn02")  # the nodes drifting below (the mode is per node)
    expected = config_hash(dcluster, "cn02")
    began = drift_both(dcluster)
    try:
        wait_for(
            "both drifts recorded",
            lambda: all(heal_result(dcluster, n, began) for n in ("cn01", "cn02")),
            limit=GIVE_UP,
        )
        rows = status_drift(dcluster)
        assert rows["cn01"]["heal"] == "reported" and rows["cn02"]["heal"] == "reported", rows
        assert rows["cn02"]["drift"] == "craned is inactive"
        time.sleep(2 * INTERVAL)  # nothing heals them meanwhile
        assert config_hash(dcluster, "cn01") != expected
        assert craned_state(dcluster, "cn02") == "inactive"
    finally:
        # healed by hand
        proc = dcluster.salt_cli("--timeout=600", "-L", "cn01,cn02", "state.apply", "crane")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert config_hash(dcluster, "cn01") == expected
    wait_for("cn01 and cn02 idle", lambda: all_idle(dcluster, ["cn01", "cn02"]), limit=GIVE_UP)
