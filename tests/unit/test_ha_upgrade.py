"""The upgrade/restart engine with a Keepalived control pair (crane:ha) against a fake pair:
backup first, a failover with the DB backed up in its gap, the old master, then the compute
nodes; every failure leaves a master that serves, and a re-run resumes. Milliseconds each."""

import crane_engine
import pytest

from tests.support.fake_pair import UNREADY_BACKUPS, FakePair

COMPUTE = ["cn01", "cn02", "cn03", "cn04"]
PAIR_CALLS = ("state.apply", "service.stop", "service.start", "crane.backup_db")


@pytest.fixture
def pair(tmp_path):
    cluster = FakePair(tmp_path / "state", login=())
    cluster.register_delay = 7.0
    return cluster


def upgrade(cluster, version="1.1.3", **options):
    return crane_engine.run(cluster, "upgrade", version, {"batch": 2, **options})


def restart(cluster, **options):
    return crane_engine.run(cluster, "restart", None, {"batch": 2, **options})


def pair_calls(cluster):
    """The changing calls on the control pair, in order."""
    return [(fun, minion, *arg) for fun, minion, arg, _ in cluster.log
            if fun in PAIR_CALLS and minion in ("ctl1", "ctl2")]  # fmt: skip


def serves(cluster, master):
    up = all(cluster.node_state(n)["resource"] != "down" for n in cluster.craned)
    return cluster.master() == master and cluster.ctld_running and up


def test_backup_first_then_failover_with_the_db_backup_in_the_gap_then_the_old_master(pair):
    pair.drained["cn02"] = "disk replacement"
    report = upgrade(pair)
    assert report["retcode"] == 0, report["summary"]
    assert pair_calls(pair) == [
        ("state.apply", "ctl2", "crane"),  # the backup: its cranectld stays stopped
        ("service.stop", "ctl1", "cranectld"),  # the failover gap begins
        ("crane.backup_db", "ctl1"),
        ("service.stop", "ctl1", "keepalived"),
        ("service.start", "ctl2", "keepalived"),  # ctl2 takes the VIP and starts cranectld
        ("state.apply", "ctl1", "crane"),  # ctl1's keepalived again: its priority takes over
    ]
    assert pair.backups == [("ctl1", False)]  # once, while no cranectld ran
    assert report["backup"]["minion"] == "ctl1"
    assert report["backup"]["source"].startswith("/shared/")
    assert set(pair.installed.values()) == {"1.1.3"}
    assert serves(pair, "ctl1") and not pair.members["ctl2"]["cranectld"]
    assert pair.members["ctl2"]["keepalived"]  # a ready backup again
    assert pair.drained == {"cn02": "disk replacement"}  # across both cranectld restarts
    assert report["done"] == ["ctl2", "ctl1", *COMPUTE]
    first_compute = min(i for i, c in enumerate(pair.log) if c[1] in COMPUTE and c[0] ==
                        "state.apply")  # fmt: skip
    last_pair = max(i for i, c in enumerate(pair.log) if c[0] == "state.apply" and c[1] == "ctl1")
    assert last_pair < first_compute  # compute batches only after the pair


def test_a_stopped_backup_with_the_higher_priority_is_refused_before_anything(pair):
    assert crane_engine.failover(pair)["result"]  # ctl2 master, ctl1's keepalived stopped
    pair.installed["ctl2"] = "1.1.2"
    pair.log.clear()
    report = upgrade(pair)
    assert report["retcode"] == 1
    assert "ctl1's keepalived is stopped and its priority is higher" in report["Error"]
    assert "salt-run crane.failover to=ctl1" in report["Error"]
    assert pair_calls(pair) == [] and serves(pair, "ctl2")


def test_dry_run_prints_the_pair_plan_and_changes_nothing(pair):
    report = crane_engine.run(pair, "upgrade", "1.1.3", {"batch": 2}, dry_run=True)
    assert report["retcode"] == 0, report["summary"]
    text = report["plan_text"]
    assert "control pair (crane:ha): master ctl1, backup ctl2" in text
    assert "a. backup ctl2: upgrade to 1.1.3 (from 1.1.2)" in text
    assert "b. failover ctl1 -> ctl2" in text and "backed up from the shared directory" in text
    assert "c. old master ctl1: upgrade to 1.1.3 (from 1.1.2); its higher priority takes" in text
    assert pair_calls(pair) == [] and serves(pair, "ctl1")


def test_a_failed_backup_upgrade_stops_before_the_failover(pair):
    pair.repo.discard("1.1.3")
    pair.repo.add("1.1.3")  # installable at preflight, then the backup's apply fails:

    def package_gone():
        pair.repo.discard("1.1.3")

    pair.hooks[("state.apply", "ctl2")] = package_gone
    report = upgrade(pair)
    assert report["retcode"] == 1
    assert report["Error"].startswith("backup control node ctl2: state.apply crane: ")
    assert "Version 1.1.3 not found" in report["failed"]["ctl2"]
    assert [c[:2] for c in pair_calls(pair)] == [("state.apply", "ctl2")]  # no failover
    assert serves(pair, "ctl1") and pair.installed["ctl1"] == "1.1.2"
    assert report["not_reached"] == COMPUTE


def test_the_backups_minion_gone_mid_upgrade_stops_with_the_master_serving(pair):
    pair.hooks[("state.apply", "ctl2")] = lambda: pair.dead.update(ctl2=False)
    report = upgrade(pair)
    assert report["retcode"] == 1
    assert "ctl2" in report["Error"] and "no answer" in report["failed"]["ctl2"]
    assert serves(pair, "ctl1") and not pair.calls("crane.backup_db")
    del pair.dead["ctl2"], pair.hooks[("state.apply", "ctl2")]
    report = upgrade(pair)  # the re-run completes
    assert report["retcode"] == 0, report["summary"]
    assert set(pair.installed.values()) == {"1.1.3"} and serves(pair, "ctl1")


def test_a_backup_whose_apply_was_cut_short_after_its_package_is_applied_again(pair):
    pair.installed["ctl2"] = "1.1.3"  # the package landed, the minion went before the grain
    report = upgrade(pair)
    assert report["retcode"] == 0, report["summary"]
    assert report["plan"]["ha"]["todo"] == {"ctl2": True, "ctl1": True}
    assert pair.calls("state.apply", "ctl2") and pair.grain_versions["ctl2"] == "1.1.3"
    pair.log.clear()
    report = upgrade(pair)  # both done now: no pair step, no failover
    assert report["plan"]["ha"]["todo"] == {"ctl2": False, "ctl1": False}
    assert pair_calls(pair) == []


def test_a_failed_db_backup_starts_the_masters_cranectld_again_without_failover(pair):
    pair.drained["cn02"] = "disk replacement"
    pair.backup_fails = True
    report = upgrade(pair)
    assert report["retcode"] == 1
    assert "backup of cranectld's DB failed" in report["Error"]
    assert "no failover: cranectld started again on ctl1, serving again" in report["Error"]
    assert serves(pair, "ctl1") and pair.installed["ctl1"] == "1.1.2"
    assert not pair.calls("service.stop", "ctl2") and not pair.calls("service.start", "ctl2")
    assert pair.drained == {"cn02": "disk replacement"}
    assert report["done"] == ["ctl2"]


def test_a_failover_that_does_not_serve_fails_back_to_the_old_master(pair):
    pair.ctld_broken.add("ctl2")  # the upgraded cranectld exits at once
    report = upgrade(pair, register_timeout=30)
    assert report["retcode"] == 1
    assert "failover to ctl2: after 30 s ctl2 is not serving every node" in report["Error"]
    assert report["Error"].endswith("ctl1 is master again")
    assert serves(pair, "ctl1") and pair.installed["ctl1"] == "1.1.2"
    assert not pair.members["ctl2"]["keepalived"]  # stays out until repaired
    assert pair.backups == [("ctl1", False)]
    assert report["not_reached"] == COMPUTE
    # repaired: the re-run skips the upgraded backup and fails over again
    pair.ctld_broken.clear()
    pair.log.clear()
    report = upgrade(pair)
    assert report["retcode"] == 0, report["summary"]
    assert "a. backup ctl2: skipped (already at 1.1.3)" in report["plan_text"]
    assert next(c[:2] for c in pair_calls(pair)) == ("service.stop", "ctl1")
    assert serves(pair, "ctl1") and pair.members["ctl2"]["keepalived"]


@pytest.mark.parametrize(("setup", "expected"), UNREADY_BACKUPS)
def test_a_backup_that_cannot_take_over_stops_the_run_before_anything(pair, setup, expected):
    setup(pair)
    report = upgrade(pair)
    assert report["retcode"] == 1
    assert report["summary"].startswith("FAILED before touching any node")
    assert expected in report["Error"]
    assert pair_calls(pair) == [] and not pair.calls("crane.drain")


def test_all_at_once_is_refused_with_a_pair(pair):
    report = upgrade(pair, strategy="all-at-once")
    assert report["retcode"] == 1
    assert "strategy=all-at-once with crane:ha" in report["Error"]
    assert pair_calls(pair) == []


def test_restart_goes_backup_failover_old_master_and_a_rerun_resumes(pair):
    def old_master_fails():
        pair.dead["ctl1"] = "Minion did not return. [Not connected]"

    pair.hooks[("state.apply", "ctl1")] = old_master_fails
    report = restart(pair)
    assert report["retcode"] == 1
    assert report["Error"].startswith("old master control node ctl1")
    assert serves(pair, "ctl2")  # the failover stood: the upgraded backup serves
    assert report["done"] == ["ctl2"]
    del pair.dead["ctl1"], pair.hooks[("state.apply", "ctl1")]
    pair.log.clear()
    report = restart(pair)
    assert report["retcode"] == 0, report["summary"]
    # the record (on the runner's side) says ctl2 is done; ctl2 is master now, ctl1 backup
    assert report["plan"]["ha"]["master"] == "ctl2"
    assert report["plan"]["ha"]["todo"] == {"ctl1": True, "ctl2": False}
    assert [c[:2] for c in pair_calls(pair)] == [("state.apply", "ctl1")]
    assert serves(pair, "ctl1")  # ctl1's keepalived runs again: its priority takes over
    assert not pair.calls("crane.backup_db")  # no failover, no cranectld stopped by the run


def test_a_backup_node_lost_at_the_failover_stops_the_run_with_the_old_master_serving(pair):
    pair.hooks[("service.start", "ctl2")] = lambda: pair.stop_node("ctl2")
    report = upgrade(pair)
    assert report["retcode"] == 1
    assert report["Error"].startswith("failover to ctl2: ctl2 did not answer service.start")
    assert "no failover: ctl1 is master again" in report["Error"]
    assert serves(pair, "ctl1") and pair.members["ctl1"]["keepalived"]
    assert not any(pair.calls("state.apply", node) for node in COMPUTE)


def test_the_old_master_taking_the_role_back_late_is_waited_for_before_the_compute_nodes(pair):
    pair.preempt_delay = 3.0  # keepalived preempts a few adverts after the old master's apply
    seen = []
    pair.hooks[("state.apply", "cn01")] = lambda: seen.append((pair.master(), pair.preempt_at))
    report = upgrade(pair)
    assert report["retcode"] == 0, report["summary"]
    assert seen == [("ctl1", None)]  # the role was back on ctl1 before any compute node
    assert serves(pair, "ctl1") and pair.members["ctl2"]["keepalived"]
