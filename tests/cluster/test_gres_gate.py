"""What the formula does when CraneSched would refuse the new state: the gres gate keeps a
GPU node on its old config and running craned, a daemon that refuses to start shows
CraneSched's own reason, and a config that fails validation changes nothing anywhere."""

from __future__ import annotations

import pytest

from . import formula

pytestmark = pytest.mark.cluster

CONTROL = "cranectl"
GPU_NODE = "cn03"
DAEMONS = {"cranectl": "cranectld", "cn01": "craned", "cn02": "craned", "cn03": "craned"}
BROKEN_VERSION = "1.1.4"


@pytest.fixture(scope="module")
def deployed(cluster):
    """The cluster deployed with the example pillar (and left that way afterwards)."""
    cluster.write_pillar(*formula.example_pillar(cluster))
    assert formula.failures(formula.apply(cluster)) == {}
    compute = [node for node in DAEMONS if node != CONTROL]
    formula.wait_for("every node idle", lambda: formula.all_idle(cluster, compute))
    yield cluster
    cluster.write_pillar(*formula.example_pillar(cluster))


def _snapshot(cluster):
    """Config hash and daemon PID of every backend node."""
    hashes = cluster.salt(",".join(DAEMONS), "crane.config_hash", tgt_type="list")
    pids = {node: formula.main_pid(cluster, node, unit) for node, unit in DAEMONS.items()}
    return hashes, pids


def test_gres_gate_keeps_old_config_and_running_craned(deployed):
    cluster = deployed
    hashes, pids = _snapshot(cluster)

    def eight_gpus(crane):
        formula.node_group(crane, GPU_NODE)["gres"][0]["DeviceFileRegex"] = "/dev/nvidia[0-7]"

    cluster.write_pillar(*formula.with_config(cluster, eight_gpus))
    result = formula.apply(cluster, GPU_NODE)
    failed = formula.failures(result)
    assert list(failed) == [GPU_NODE]
    gate = failed[GPU_NODE].get("crane-gres-valid", "")
    for minor in range(4, 8):
        assert f"/dev/nvidia{minor}" in gate
    for minor in range(4):
        assert f"/dev/nvidia{minor} " not in gate
    assert "crane-config-file-config-file-managed" in failed[GPU_NODE]  # not run: requisite
    assert formula.changed(result) == {}
    assert _snapshot(cluster) == (hashes, pids)
    assert formula.node_states(cluster)[GPU_NODE]["resource"] == "idle"

    cluster.write_pillar(*formula.example_pillar(cluster))
    result = formula.apply(cluster, GPU_NODE)
    assert formula.failures(result) == {}
    assert formula.changed(result) == {}
    assert _snapshot(cluster) == (hashes, pids)


def test_rejected_config_changes_nothing_on_any_node(deployed):
    cluster = deployed
    hashes, pids = _snapshot(cluster)

    def bad_memory(crane):
        formula.node_group(crane, "cn[01-02]")["memory"] = "2X"

    cluster.write_pillar(*formula.with_config(cluster, bad_memory))
    result = formula.apply(cluster)
    assert set(result) == set(cluster.spec.hostnames())
    for node, states in result.items():
        validate = states["crane-validate-config"]
        assert validate["result"] is False, node
        assert "memory" in validate["comment"] and "cn[01-02]" in validate["comment"], node
        ran = [sid for sid, s in states.items() if s["result"] is not False]
        assert ran == [], f"{node} ran {ran} after the config was rejected"
    assert formula.changed(result) == {}
    assert _snapshot(cluster) == (hashes, pids)
    cluster.write_pillar(*formula.example_pillar(cluster))


def test_daemon_refusing_to_start_shows_cranesched_reason(deployed):
    cluster = deployed
    node = "cn01"
    cluster.rebuild_repo(broken=(BROKEN_VERSION,))
    try:
        cluster.write_pillar(
            *formula.with_config(
                cluster,
                # a new version under a running craned is refused without the switch
                lambda c: c.update(versions={"craned": BROKEN_VERSION}, restart_on_version=True),
            )
        )
        result = formula.apply(cluster, node)
        failed = formula.failures(result).get(node, {})
        healthy = failed.get("crane-service-craned-crane-daemon-healthy", "")
        assert "csupervisor /usr/libexec/csupervisor does not exist" in healthy, failed
    finally:
        cluster.rebuild_repo()
        cluster.write_pillar(*formula.example_pillar(cluster))
        cluster.stop_node(node)
        cluster.start_node(node)
    result = formula.apply(cluster, node)
    assert formula.failures(result) == {}
    formula.wait_for("cn01 idle again", lambda: formula.all_idle(cluster, [node]))
