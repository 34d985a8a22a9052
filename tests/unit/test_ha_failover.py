"""The pair view of crane.status/health and the planned failover (crane_engine) against a fake
Keepalived pair: what the runner reports and what it changes, in milliseconds."""

import crane_engine
import pytest

from tests.support.fake_cluster import FakeCluster
from tests.support.fake_pair import UNREADY_BACKUPS, FakePair


@pytest.fixture
def pair(tmp_path):
    cluster = FakePair(tmp_path / "state")
    cluster.register_delay = 7.0
    cluster.registered_at = 0.0
    return cluster


def changing_calls(cluster):
    return [(fun, minion, arg) for fun, minion, arg, _ in cluster.log
            if fun in ("service.stop", "service.start")]  # fmt: skip


def test_status_names_the_master_and_a_ready_backup(pair):
    data = crane_engine.status(pair)
    assert data["healthy"] and data["retcode"] == 0
    assert data["ha"]["master"] == "ctl1" and data["ha"]["backup"] == "ctl2"
    assert data["warnings"] == [] and data["control"] == "ctl1"
    text = crane_engine.status_text(data)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line[:3] == "ctl"}
    assert rows == {"ctl1": ["master", "active", "active", "-"],
                    "ctl2": ["backup", "active", "inactive", "yes"]}  # fmt: skip


def test_a_stopped_backup_keepalived_is_a_warning_not_an_outage(pair):
    pair._service_stop("ctl2", "keepalived")
    data = crane_engine.status(pair)
    assert data["healthy"] and data["retcode"] == 0
    assert data["warnings"] == ["backup not ready: ctl2: keepalived is not running"]
    assert "warning: backup not ready: ctl2" in crane_engine.status_text(data)


def test_a_backup_minion_that_does_not_answer_is_a_warning(pair):
    pair.dead["ctl2"] = "Minion did not return. [Not connected]"
    data = crane_engine.status(pair)
    assert data["healthy"], data["problems"]
    assert len(data["warnings"]) == 1 and "ctl2" in data["warnings"][0]
    assert "no answer" in data["warnings"][0]


def test_the_master_down_is_seen_through_the_other_node(pair):
    pair.stop_node("ctl1")  # ctl2 alone takes the VIP, its notify_master starts cranectld
    pair.clock += 10
    data = crane_engine.status(pair)
    assert data["ha"]["master"] == "ctl2" and data["control"] == "ctl2"
    assert data["healthy"] and "ctl1" in data["warnings"][0]


def test_cranectld_not_answering_through_the_vip_still_shows_the_pair(pair):
    pair.members["ctl1"]["cranectld"] = False
    pair.sync()
    data = crane_engine.status(pair)
    assert data["retcode"] == 1 and data["ha"]["master"] == "ctl1"
    assert data["problems"][0] == "ctl1 holds the virtual IP but cranectld is not running"
    assert data["problems"][1].startswith(
        "cranectld does not answer through the virtual IP's name cranectl: ctl1: crane.cinfo"
    )


def test_no_master_is_a_problem(pair):
    for name in ("ctl1", "ctl2"):
        pair._service_stop(name, "keepalived")
    data = crane_engine.status(pair)
    assert not data["healthy"] and data["retcode"] == 1
    assert "no control node holds the virtual IP 10.0.0.100/24" in data["problems"]


def test_failover_moves_the_role_and_waits_for_every_node(pair):
    pair.jobs["cn01"] = 1
    report = crane_engine.failover(pair)
    assert report["result"] is True and report["retcode"] == 0, report
    assert (report["from"], report["to"]) == ("ctl1", "ctl2")
    assert pair.master() == "ctl2" and pair.members["ctl2"]["cranectld"]
    assert not pair.members["ctl1"]["cranectld"] and not pair.members["ctl1"]["alive"]
    assert report["seconds"] >= pair.register_delay  # waited for the nodes to register
    assert all(pair.node_state(n)["resource"] != "down" for n in pair.craned)
    # cranectld first (the lock frees), then keepalived; ctl1 would preempt: it stays stopped
    assert changing_calls(pair) == [("service.stop", "ctl1", ["cranectld"]),
                                    ("service.stop", "ctl1", ["keepalived"]),
                                    ("service.start", "ctl2", ["keepalived"])]  # fmt: skip
    assert not pair.members["ctl1"]["keepalived"]
    assert "failover to=ctl1" in report["comment"]


def test_failover_drains_again_what_cranectld_forgot(pair):
    pair.drained["cn02"] = "disk check"
    report = crane_engine.failover(pair)
    assert report["result"] is True, report
    assert report["drains"] == {"restored": {"cn02": "disk check"}, "lost": {}}
    assert pair.drained == {"cn02": "disk check"}


def test_failover_keeps_a_node_down_before_out_of_the_wait(pair):
    pair.craned["cn04"] = False
    report = crane_engine.failover(pair)
    assert report["result"] is True, report
    assert pair.calls("crane.health")[-1][3]["allow_down"] == "cn04"


def test_failover_back_restarts_the_lower_priority_keepalived(pair):
    assert crane_engine.failover(pair)["result"]
    pair.log.clear()
    report = crane_engine.failover(pair, to="ctl1")
    assert report["result"] is True, report
    assert pair.master() == "ctl1" and pair.members["ctl1"]["cranectld"]
    assert pair.members["ctl2"]["keepalived"] and not pair.members["ctl2"]["cranectld"]
    assert changing_calls(pair)[-1] == ("service.start", "ctl2", ["keepalived"])
    assert crane_engine.status(pair)["warnings"] == []


def test_failover_to_the_master_changes_nothing(pair):
    report = crane_engine.failover(pair, to="ctl1")
    assert report["result"] is True and "already master" in report["comment"]
    assert changing_calls(pair) == []


@pytest.mark.parametrize(("setup", "expected"), UNREADY_BACKUPS)
def test_failover_refuses_an_unready_backup_and_changes_nothing(pair, setup, expected):
    setup(pair)
    report = crane_engine.failover(pair)
    assert report["result"] is False and report["retcode"] == 1
    assert report["comment"].startswith("refusing to fail over to ctl2")
    assert expected in report["comment"]
    assert changing_calls(pair) == [] and pair.master() == "ctl1"


def test_failover_refuses_a_target_outside_the_pair(pair):
    report = crane_engine.failover(pair, to="cn01")
    assert report["retcode"] == 1
    assert report["comment"] == "to=cn01: not one of crane:ha:nodes ['ctl1', 'ctl2']"


def test_failover_refuses_when_cranectld_does_not_answer(pair):
    pair.members["ctl1"]["cranectld"] = False
    pair.sync()
    report = crane_engine.failover(pair)
    assert report["retcode"] == 1 and "refusing" in report["comment"]
    assert changing_calls(pair) == []


def test_failover_that_times_out_names_what_is_missing(pair):
    pair.register_delay = 1000.0
    report = crane_engine.failover(pair, timeout=60)
    assert report["retcode"] == 1
    assert "after 60 s ctl2 is not serving every node" in report["comment"]
    assert "keepalived stays stopped on ctl1" in report["comment"]


def test_without_ha_failover_refuses(tmp_path):
    report = crane_engine.failover(FakeCluster(tmp_path))
    assert report["retcode"] == 1
    assert report["comment"] == "crane:ha is not enabled: there is no pair to fail over"


def lose_ctl2_minion(pair, node_too):
    """ctl2's minion is gone as it is told to take over; with ``node_too`` its node as well."""
    pair.dead["ctl2"] = False
    if not node_too:
        pair.minion_only.add("ctl2")
    pair.elect()


def test_a_backup_node_lost_as_it_is_told_to_take_over_hands_the_role_back(pair):
    pair.drained["cn02"] = "disk replacement"
    pair.hooks[("service.start", "ctl2")] = lambda: pair.stop_node("ctl2")
    report = crane_engine.failover(pair)
    assert report["result"] is False and report["retcode"] == 1
    assert "ctl2 did not answer service.start" in report["comment"]
    assert "no failover: ctl1 is master again" in report["comment"]
    assert pair.master() == "ctl1" and pair.ctld_running
    assert pair.drained == {"cn02": "disk replacement"}  # drained again after the restart


def test_a_backup_minion_lost_while_its_keepalived_takes_over_leaves_it_serving(pair):
    pair.drained["cn02"] = "disk replacement"
    pair.hooks[("service.start", "ctl2")] = lambda: lose_ctl2_minion(pair, node_too=False)
    report = crane_engine.failover(pair)
    assert report["result"] is False and report["retcode"] == 1
    assert "the virtual IP serves every node all the same" in report["comment"]
    assert pair.master() == "ctl2" and pair.ctld_running
    assert not pair.members["ctl1"]["keepalived"]  # not started: it would take the role back
    assert pair.drained == {"cn02": "disk replacement"}
