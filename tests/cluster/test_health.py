"""Cluster health as the formula sees it on real nodes: ``crane.health``, drain/resume through
the module and the states, the verify step of ``state.apply crane`` and ``crane.config_hash``.

Short ``CranedTimeout``/``PingInterval`` make a stopped craned show as down quickly; every
destructive step restores the cluster before it ends.
"""

from __future__ import annotations

import json

import pytest

from . import formula

pytestmark = pytest.mark.cluster

CONTROL = "cranectl"
COMPUTE = ("cn01", "cn02", "cn03")
CRANED_TIMEOUT = 6
PING_INTERVAL = 2
VERIFY_TIMEOUT = 20


def _fast(crane):
    crane["config"]["CraneCtld"] = {"CranedTimeout": CRANED_TIMEOUT}
    crane["config"]["Craned"] = {"PingInterval": PING_INTERVAL}
    crane["verify"] = {"enabled": True, "timeout": VERIFY_TIMEOUT, "interval": 1}


@pytest.fixture(scope="module")
def deployed(cluster):
    """The cluster deployed with short timeouts; the example pillar is served again after."""
    cluster.write_pillar(*formula.with_config(cluster, _fast))
    assert formula.failures(formula.apply(cluster)) == {}
    formula.wait_for("every node idle", lambda: formula.all_idle(cluster, COMPUTE))
    yield cluster
    cluster.write_pillar(*formula.example_pillar(cluster))


def _health(cluster):
    """(return code of the salt CLI, crane.health's answer) on the control node."""
    proc = cluster.salt_cli("--out=json", "--timeout=60", CONTROL, "crane.health")
    return proc.returncode, json.loads(proc.stdout)[CONTROL]


def _down_health(cluster):
    """``_health`` once some node is down, else None."""
    answer = _health(cluster)
    return answer if answer[1]["down"] else None


def _state(cluster, fun, test=False, **kw):
    """``state.single crane.<fun>`` on the control node → its one result."""
    extra = {"test": True} if test else {}
    raw = cluster.salt(CONTROL, "state.single", f"crane.{fun}", **kw, **extra)[CONTROL]
    (result,) = raw.values()
    return result


@pytest.fixture
def cn02_stopped(deployed):
    """craned stopped on cn02 until the test ends, then started and registered again."""
    deployed.sh("cn02", "systemctl stop craned", check=True)
    yield deployed
    deployed.sh("cn02", "systemctl start craned", check=True)
    formula.wait_for("cn02 idle again", lambda: formula.all_idle(deployed, COMPUTE))


def test_healthy_after_deploy(deployed):
    retcode, health = _health(deployed)
    assert health["healthy"] is True
    assert health["up"] == list(COMPUTE)
    assert (health["down"], health["missing"], health["drained"]) == ([], [], {})
    assert retcode == 0


def test_stopped_craned_makes_cluster_unhealthy_naming_the_node(cn02_stopped):
    cluster = cn02_stopped
    retcode, health = formula.wait_for("cn02 reported down", lambda: _down_health(cluster))
    assert health["healthy"] is False
    assert health["down"] == ["cn02"]
    assert "cn02" in health["summary"]
    assert retcode != 0


def test_verify_fails_naming_the_node_that_is_down(cn02_stopped):
    cluster = cn02_stopped
    formula.wait_for("cn02 down", lambda: _down_health(cluster))
    result = formula.apply(cluster, CONTROL)
    failed = formula.failures(result)
    assert list(failed.get(CONTROL, {})) == ["crane-verify-nodes-ready"]
    comment = failed[CONTROL]["crane-verify-nodes-ready"]
    assert "cn02" in comment
    assert "cn01" not in comment and "cn03" not in comment


def test_verify_passes_when_all_nodes_are_up(deployed):
    result = formula.apply(deployed, CONTROL)
    verify = result[CONTROL]["crane-verify-nodes-ready"]
    assert verify["result"] is True, verify["comment"]
    assert formula.failures(result) == {}


def test_drain_and_resume_through_the_module(deployed):
    cluster = deployed
    try:
        drained = cluster.salt(CONTROL, "crane.drain", "cn01", reason="disk swap")[CONTROL]
        assert drained["modified"] == ["cn01"]
        state = formula.node_states(cluster)["cn01"]
        assert (state["control"], state["reason"]) == ("drain", "disk swap")
        _, health = _health(cluster)
        assert health["drained"] == {"cn01": "disk swap"}
        assert health["healthy"] is False
    finally:
        resumed = cluster.salt(CONTROL, "crane.resume", "cn01")[CONTROL]
    assert resumed["modified"] == ["cn01"]
    assert formula.node_states(cluster)["cn01"]["control"] == "none"
    assert _health(cluster)[1]["healthy"] is True


def test_drain_and_resume_states_honour_test_and_report_old_new(deployed):
    cluster = deployed
    planned = _state(cluster, "node_drained", test=True, name="cn[01-02]", reason="maintenance")
    assert planned["result"] is None and planned["changes"] == {}
    assert "cn01" in planned["comment"] and "cn02" in planned["comment"]
    assert formula.node_states(cluster)["cn01"]["control"] == "none"
    try:
        done = _state(cluster, "node_drained", name="cn[01-02]", reason="maintenance")
        assert done["result"] is True, done["comment"]
        assert done["changes"] == {
            n: {"old": "none", "new": "drain (maintenance)"} for n in ("cn01", "cn02")
        }
        again = _state(cluster, "node_drained", name="cn[01-02]", reason="maintenance")
        assert (again["result"], again["changes"]) == (True, {})
        planned = _state(cluster, "node_resumed", test=True, name="cn[01-02]")
        assert planned["result"] is None and planned["changes"] == {}
        assert formula.node_states(cluster)["cn02"]["control"] == "drain"
    finally:
        done = _state(cluster, "node_resumed", name="cn[01-02]")
    assert done["result"] is True, done["comment"]
    assert done["changes"] == {
        n: {"old": "drain (maintenance)", "new": "none"} for n in ("cn01", "cn02")
    }
    again = _state(cluster, "node_resumed", name="cn[01-02]")
    assert (again["result"], again["changes"]) == (True, {})
    assert _health(cluster)[1]["healthy"] is True


def test_config_hash_differs_after_a_hand_edit(deployed):
    cluster = deployed
    before = cluster.salt("*", "crane.config_hash")
    assert len(set(before.values())) == 1
    cluster.sh("cn02", "echo '# local edit' >> /etc/crane/config.yaml", check=True)
    try:
        after = cluster.salt("*", "crane.config_hash")
        assert after["cn02"] != before["cn02"]
        assert {n: h for n, h in after.items() if n != "cn02"} == {
            n: h for n, h in before.items() if n != "cn02"
        }
    finally:
        result = formula.apply(cluster, "cn02")
    assert formula.changed(result) == {
        "cn02": [
            "crane-config-file-config-file-managed",
            "crane-service-craned-restart-marked",
            "crane-service-craned-service-running",
        ]
    }
    assert cluster.salt("*", "crane.config_hash") == before
    formula.wait_for("cn02 idle again", lambda: formula.all_idle(cluster, COMPUTE))


KNOBS = "/etc/cranesim/knobs"  # the simulator's start-up knobs, read at each start
CTLD_LOG = "/var/crane/cranectld/cranectld.log"


def _restart_ctld_with(cluster, knobs):
    cluster.sh(CONTROL, f"mkdir -p /etc/cranesim && printf '{knobs}\\n' > {KNOBS}", check=True)
    cluster.sh(CONTROL, "systemctl restart cranectld", check=True)


def test_daemon_healthy_waits_for_a_slow_cranectld_and_names_a_late_exit(deployed):
    cluster = deployed
    healthy = {"name": "cranectld", "log_file": CTLD_LOG, "settle": 1, "ready_timeout": 60}
    try:
        _restart_ctld_with(cluster, "CRANESIM_CTLD_START_DELAY=8")
        slow = _state(cluster, "daemon_healthy", **healthy)
        assert slow["result"] is True, slow["comment"]
        assert "answers client requests" in slow["comment"]
        _restart_ctld_with(cluster, "CRANESIM_CTLD_EXIT_AFTER=8")
        late = _state(cluster, "daemon_healthy", **healthy)
        assert late["result"] is False
        assert late["comment"].splitlines()[0].endswith("Error: MongoDb client connect fail")
    finally:
        cluster.sh(CONTROL, f"rm -f {KNOBS} && systemctl restart cranectld", check=True)
        formula.wait_for("every node idle", lambda: formula.all_idle(cluster, COMPUTE))
