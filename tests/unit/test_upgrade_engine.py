"""The upgrade/restart engine (crane_engine) against a fake cluster: every branch the cluster
test covers, and the failures the cluster must survive, each in milliseconds."""

import json
import os
import subprocess

import crane_engine
import pytest

from tests.support.fake_cluster import Failed, FakeCluster

COMPUTE = ["cn01", "cn02", "cn03", "cn04"]
FAILED_CLASS = "crane-formula: upgrade to 1.1.4"


@pytest.fixture
def cluster(tmp_path):
    return FakeCluster(tmp_path / "state")


def upgrade(cluster, version="1.1.3", **options):
    return crane_engine.run(cluster, "upgrade", version, {"batch": 2, **options})


def restart(cluster, **options):
    return crane_engine.run(cluster, "restart", None, {"batch": 2, **options})


def changing_calls(cluster):
    changing = ("state.apply", "service.stop", "service.start", "crane.drain", "crane.resume",
                "crane.backup_db", "saltutil.sync_all", "pkg.refresh_db")  # fmt: skip
    return [c for c in cluster.log if c[0] in changing]


# --- the happy paths ---------------------------------------------------------------------------


def test_rolling_upgrade_drains_before_it_stops_and_keeps_the_admins_drain(cluster):
    cluster.drained["cn02"] = "disk replacement"
    report = upgrade(cluster)
    assert report["retcode"] == 0, report["summary"]
    assert set(cluster.installed.values()) == {"1.1.3"}
    assert report["plan"]["batches"] == [["cn01"], ["cn02", "cn03"], ["cn04"]]
    assert report["done"] == ["cranectl", "login01", *COMPUTE]
    assert cluster.drained == {"cn02": "disk replacement"}
    for node in ("cn01", "cn03", "cn04"):
        assert cluster.order(node) == ["crane.drain", "service.stop", "state.apply", "crane.resume"]
    assert cluster.order("cn02") == ["service.stop", "state.apply"]  # the admin's drain is kept
    assert report["backup"]["backup"]
    assert cluster.record is None  # every recorded drain restored: the record is gone
    assert not os.listdir(cluster.state_dir)  # lock released, run record cleared


def test_all_at_once_stops_everything_and_restores_the_admins_drain(cluster):
    cluster.drained["cn02"] = "disk replacement"
    report = upgrade(cluster, strategy="all-at-once")
    assert report["retcode"] == 0, report["summary"]
    assert report["plan"]["batches"] == [COMPUTE]
    assert set(cluster.installed.values()) == {"1.1.3"}
    assert cluster.drained == {"cn02": "disk replacement"}
    stops = [c for c in cluster.log if c[0] == "service.stop"]
    assert [c[1] for c in stops] == [*COMPUTE, "cranectl"]  # craned everywhere, then cranectld


def test_rerun_after_success_changes_nothing(cluster):
    assert upgrade(cluster)["retcode"] == 0
    cluster.log.clear()
    report = upgrade(cluster)
    assert report["retcode"] == 0
    assert report["plan"]["batches"] == []
    assert report["skipped"] == dict.fromkeys([*COMPUTE, "login01"], "already at 1.1.3")
    assert [c[0] for c in changing_calls(cluster)] == ["saltutil.sync_all"] * 6 + [
        "pkg.refresh_db"
    ] * 6


def test_versions_craned_reports_differently_count_as_the_release(cluster):
    cluster.reports = {"1.1.3": "1.1.3.1", "1.1.2": "1.1.2+dev"}
    report = upgrade(cluster)
    assert report["retcode"] == 0, report["summary"]
    cluster.installed.update(dict.fromkeys(cluster.installed, "1.1.3-1"))  # RPM version-release
    report = upgrade(cluster)
    assert report["plan"]["batches"] == [] and not report["plan"]["control"]["todo"]


def test_craned_reporting_a_git_hash_registers_by_its_new_start(cluster):
    cluster.reports = {"1.1.3": "a1b2c3d"}
    report = upgrade(cluster)
    assert report["retcode"] == 0, report["summary"]


def test_dry_run_plans_and_changes_nothing(cluster):
    report = crane_engine.run(cluster, "upgrade", "1.1.3", {"batch": "50%"}, dry_run=True)
    assert report["retcode"] == 0
    assert report["plan"]["batches"] == [["cn01"], ["cn02", "cn03"], ["cn04"]]
    assert "canary: cn01" in report["plan_text"]
    assert changing_calls(cluster) == []  # no sync, no package database refresh either
    assert not os.path.exists(os.path.join(cluster.state_dir, crane_engine.LOCK_FILE))


# --- preflight ---------------------------------------------------------------------------------


def test_unhealthy_cluster_stops_before_touching_a_node(cluster):
    cluster.craned["cn03"] = False
    report = upgrade(cluster)
    assert report["retcode"] == 1
    assert report["Error"].startswith("cluster not healthy")
    assert report["summary"].startswith("FAILED before touching any node")
    assert [c for c in changing_calls(cluster) if c[0] != "saltutil.sync_all"] == []


def test_allow_down_skips_a_down_node(cluster):
    cluster.craned["cn03"] = False
    cluster.dead["cn03"] = False
    report = upgrade(cluster, allow_down="cn[03]")
    assert report["retcode"] == 0, report["summary"]
    assert report["skipped"]["cn03"] == "down, allowed by allow_down: not touched"


def test_bad_allow_down_is_a_clear_error(cluster):
    report = upgrade(cluster, allow_down="cn[1-")
    assert report["retcode"] == 1
    assert report["Error"].startswith("allow_down='cn[1-' is not a host list CraneSched accepts")


def test_version_not_in_the_repository_stops_the_run(cluster):
    report = upgrade(cluster, "1.1.9")
    assert report["retcode"] == 1
    assert "1.1.9 is not installable" in report["failed"]["preflight"]


def test_package_names_come_from_each_minions_settings(cluster):
    report = upgrade(cluster)
    assert report["retcode"] == 0, report["summary"]
    asked = sorted(c[1] for c in cluster.log if c[0] == "crane.package_names")
    assert asked == sorted(["cranectl", "login01", *COMPUTE])
    versions = [c for c in cluster.log if c[0] == "pkg.version" and c[1] == "cranectl"]
    assert versions[0][2] == ["cranesched-cranectld", "cranesched-frontend"]


def test_settings_failing_on_a_minion_stops_the_run_naming_it(cluster):
    answer = cluster._crane_package_names

    def names(minion):
        if minion == "cn03":
            raise Failed("CommandExecutionError: crane: os_family Suse is not supported")
        return answer(minion)

    cluster._crane_package_names = names
    report = upgrade(cluster)
    assert report["retcode"] == 1
    assert "crane.package_names: cn03: " in report["failed"]["preflight"]
    assert "os_family Suse" in report["failed"]["preflight"]
    assert {c[0] for c in changing_calls(cluster)} == {"saltutil.sync_all"}


def test_downgrade_is_refused_unless_allowed(cluster):
    cluster.repo.add("1.1.1")
    report = upgrade(cluster, "1.1.1")
    assert "refusing a downgrade to 1.1.1: nodes run 1.1.2" in report["Error"]
    assert upgrade(cluster, "1.1.1", allow_downgrade=True)["retcode"] == 0


def test_restart_refuses_when_the_pillar_pins_another_version(cluster):
    cluster.pillar_version = "1.1.3"
    report = restart(cluster)
    assert "Set crane:version to the running version first" in report["Error"]


def test_config_edited_on_the_control_node_names_that_node(cluster):
    cluster.hashes["cranectl"] = "edited"
    report = upgrade(cluster)
    assert report["Error"].startswith("config.yaml differs from the other nodes' on cranectl:")


@pytest.mark.parametrize("how", [False, "Minion did not return. [Not connected]"])
def test_a_dead_minion_is_not_an_answer(cluster, how):
    cluster.dead["cn02"] = how
    report = upgrade(cluster)
    assert report["retcode"] == 1
    assert report["failed"]["preflight"].startswith("minions do not answer: cn02 (no answer")
    assert [c for c in changing_calls(cluster) if c[0] != "saltutil.sync_all"] == []


@pytest.mark.parametrize(
    ("options", "error"),
    [({"batch": "0"}, "batch"), ({"strategy": "yolo"}, "strategy must be one of"),
     ({"bacth": 2}, "unknown argument(s): bacth"), ({"canary": -1}, "canary must be a count"),
     ({"drain_timeout": "soon"}, "drain_timeout must be seconds")],
)  # fmt: skip
def test_bad_options_are_refused_before_anything(cluster, options, error):
    report = upgrade(cluster, **options)
    assert report["retcode"] == 1
    assert error in report["Error"]
    assert cluster.log == []


# --- failures in compute batches ---------------------------------------------------------------


def test_canary_failure_stops_the_run_and_a_rerun_completes(cluster):
    cluster.repo.add("1.1.4")
    cluster.broken.add("1.1.4")
    report = upgrade(cluster, "1.1.4")
    assert report["retcode"] == 1
    assert report["failed"].keys() == {"cn01"}
    assert "csupervisor" in report["failed"]["cn01"]
    assert report["not_reached"] == ["cn02", "cn03", "cn04"]
    # drained before craned stopped; DOWN now, so CraneSched keeps that reason
    assert cluster.drained == {"cn01": FAILED_CLASS}
    assert "stays drained as 'crane-formula: upgrade to 1.1.4'" in report["failed"]["cn01"]
    assert {n: cluster.installed[n] for n in COMPUTE[1:]} == dict.fromkeys(COMPUTE[1:], "1.1.2")
    assert "canary failed on cn01" in report["Error"]

    report = upgrade(cluster, "1.1.4")  # its package is at 1.1.4, but craned is not running
    assert report["plan"]["batches"][0] == ["cn01"]
    assert "canary failed on cn01" in report["Error"]

    cluster.repo.add("1.1.5")
    report = upgrade(cluster, "1.1.5")
    assert report["retcode"] == 0, report["summary"]
    assert cluster.drained == {}  # the failed run's drain on cn01 was the formula's: resumed
    assert set(cluster.installed.values()) == {"1.1.5"}


def test_failure_on_an_admin_drained_node_keeps_the_admins_reason(cluster):
    cluster.drained["cn01"] = "fan broken"
    cluster.repo.add("1.1.4")
    cluster.broken.add("1.1.4")
    report = upgrade(cluster, "1.1.4", canary=1)
    assert report["retcode"] == 1
    assert report["failed"]["cn01"].endswith("(keeps the admin's drain and reason)")
    assert cluster.drained == {"cn01": "fan broken"}
    assert not cluster.calls("crane.drain")  # never drained over the admin's reason
    cluster.repo.add("1.1.5")
    assert upgrade(cluster, "1.1.5")["retcode"] == 0
    assert cluster.drained == {"cn01": "fan broken"}  # the re-run does not resume it either


def test_failure_on_a_node_still_up_sets_the_failure_reason(cluster):
    def minion_dies():
        cluster.dead["cn01"] = "Minion did not return. [Not connected]"

    cluster.hooks[("crane.drain", "cranectl")] = minion_dies  # after the canary's drain
    report = upgrade(cluster)
    assert report["retcode"] == 1
    assert report["failed"]["cn01"].startswith("stop craned: no answer (Minion did not return.")
    assert cluster.drained["cn01"].startswith(
        "crane-formula: upgrade to 1.1.3 failed at stop craned"
    )
    assert cluster.craned["cn01"]  # never stopped: its minion was gone


def test_busy_node_stops_the_run_or_is_skipped(cluster):
    cluster.jobs["cn02"] = 1
    report = restart(cluster, drain_timeout=5)
    assert report["retcode"] == 1
    assert report["failed"] == {"cn02": "drain: jobs still running after 5s"}
    assert report["not_reached"] == ["cn04"]
    assert cluster.drained == {
        "cn02": "crane-formula: rolling restart failed at drain: jobs still running after 5s"
    }
    report = restart(cluster, drain_timeout=5, skip_busy=True)
    assert report["retcode"] == 0, report["summary"]
    assert report["skipped"]["cn02"] == "jobs still running after 5s"
    assert cluster.drained == {}


def test_restart_rerun_skips_what_the_failed_run_did(cluster):
    cluster.jobs["cn04"] = 1
    report = restart(cluster, drain_timeout=5)
    assert report["retcode"] == 1
    assert report["done"] == ["cranectl", "login01", "cn01", "cn02", "cn03"]
    cluster.jobs["cn04"] = 0
    cluster.log.clear()
    report = restart(cluster)
    assert report["retcode"] == 0, report["summary"]
    assert report["plan"]["batches"] == [["cn04"]]
    assert not report["plan"]["control"]["todo"]
    assert report["skipped"]["cn01"].startswith("done by the unfinished run started")
    assert [c[1] for c in cluster.calls("state.apply")] == ["cn04"]
    cluster.log.clear()
    assert restart(cluster)["plan"]["batches"] == [COMPUTE[:1], COMPUTE[1:3], COMPUTE[3:]]


def test_restart_record_is_ignored_after_a_config_change(cluster):
    cluster.jobs["cn04"] = 1
    restart(cluster, drain_timeout=5)
    cluster.jobs["cn04"] = 0
    cluster.hashes.update(dict.fromkeys(cluster.hashes, "h2"))
    report = restart(cluster)
    assert report["plan"]["control"]["todo"]
    assert [n for batch in report["plan"]["batches"] for n in batch] == COMPUTE


# --- failures around cranectld -----------------------------------------------------------------


def test_failed_backup_starts_cranectld_again_and_restores_drains(cluster):
    cluster.drained["cn02"] = "disk replacement"
    cluster.backup_fails = True
    cluster.register_delay = 6  # drains can be restored only once the nodes are up again
    report = upgrade(cluster)
    assert report["retcode"] == 1
    assert cluster.ctld_running
    assert cluster.drained == {"cn02": "disk replacement"}
    assert report["failed"]["cranectl"].startswith(
        "backup of cranectld's DB failed: cranectl: crane.backup_db: FileExistsError"
    )
    assert "Traceback" not in report["Error"]
    assert "cranectld: started again after the failure" in report["summary"]
    assert report["not_reached"] == COMPUTE
    assert cluster.installed["cranectl"] == "1.1.2"


def test_node_lost_during_the_control_step_is_named_and_drains_restored(cluster):
    cluster.drained["cn02"] = "disk replacement"

    def craned_dies():
        cluster.craned["cn03"] = False

    cluster.hooks[("state.apply", "cranectl")] = craned_dies
    report = upgrade(cluster, register_timeout=10)
    assert report["retcode"] == 1
    assert "did not register again" in report["failed"]["cn03"]
    assert "cranectld" not in report  # it ran: nothing to start again
    assert report["not_drained"] == {"cn03": "down: CraneSched refuses to drain a DOWN node"}
    assert cluster.drained == {"cn02": "disk replacement"}
    assert "not drained: cn03" in report["summary"]
    assert "nodes not registered again: cn03" in report["Error"]


def test_node_shown_up_with_craned_stopped_is_not_waited_for(cluster):
    cluster.craned["cn04"] = False
    cluster.stale.add("cn04")  # cinfo still shows it up (a silent stop: until CranedTimeout)
    report = upgrade(cluster)
    assert report["retcode"] == 0, report["summary"]
    assert cluster.craned["cn04"]


def test_admin_drain_on_a_node_down_at_restore_is_pending(cluster):
    cluster.drained["cn03"] = "bad disk"

    def craned_dies():
        cluster.craned["cn03"] = False

    cluster.hooks[("state.apply", "cranectl")] = craned_dies
    report = upgrade(cluster, register_timeout=10)
    assert report["drains_pending"] == {"cn03": "bad disk"}
    assert cluster.record == {"cn03": "bad disk"}  # kept for when it is up again
    assert "drain pending: cn03 is down" in report["summary"]


def test_nodes_registering_slowly_get_their_drains_back(cluster):
    cluster.drained["cn02"] = "disk replacement"
    cluster.register_delay = 20
    report = upgrade(cluster)
    assert report["retcode"] == 0, report["summary"]
    assert cluster.drained == {"cn02": "disk replacement"}


def test_slow_cranectld_is_waited_for(cluster):
    def slow_start():
        cluster.ctld_answers_at = cluster.clock + 20

    cluster.hooks[("state.apply", "cranectl")] = slow_start
    report = upgrade(cluster)
    assert report["retcode"] == 0, report["summary"]


def test_cranectld_exiting_after_its_start_fails_the_step_at_once(cluster):
    cluster.ctld_exits = True
    report = upgrade(cluster)
    assert report["retcode"] == 1
    assert report["failed"]["cranectl"].startswith("cranectld exited after its start")
    assert "cranectld: NOT running after the failure" in report["summary"]
    assert report["seconds"] < 10  # fake clock: no wait for register_timeout


# --- one run at a time -------------------------------------------------------------------------


def test_second_run_refuses_while_the_first_holds_the_lock(cluster):
    state = cluster.state_dir
    os.makedirs(state)
    with open(os.path.join(state, crane_engine.LOCK_FILE), "w") as handle:
        json.dump({"pid": os.getpid(), "host": os.uname().nodename, "action": "restart",
                   "started": cluster.clock - 60}, handle)  # fmt: skip
    report = upgrade(cluster)
    assert report["retcode"] == 1
    assert report["Error"].startswith("another crane.restart is in progress (pid")
    assert cluster.log == []


def test_lock_of_a_dead_run_is_taken_over(cluster):
    proc = subprocess.Popen(["true"])
    proc.wait()
    os.makedirs(cluster.state_dir)
    with open(os.path.join(cluster.state_dir, crane_engine.LOCK_FILE), "w") as handle:
        json.dump({"pid": proc.pid, "host": os.uname().nodename, "action": "upgrade",
                   "started": cluster.clock - 60}, handle)  # fmt: skip
    assert upgrade(cluster)["retcode"] == 0


def test_lock_older_than_a_day_is_stale(cluster):
    os.makedirs(cluster.state_dir)
    with open(os.path.join(cluster.state_dir, crane_engine.LOCK_FILE), "w") as handle:
        json.dump({"pid": 1, "host": "elsewhere", "action": "upgrade",
                   "started": cluster.clock - crane_engine.LOCK_MAX_AGE - 1}, handle)  # fmt: skip
    assert upgrade(cluster)["retcode"] == 0


# --- status ------------------------------------------------------------------------------------


def test_status_shows_a_dead_minion_as_no_answer(cluster):
    cluster.dead["cn02"] = False
    data = crane_engine.status(cluster)
    assert data["retcode"] == 1
    assert data["nodes"]["cn02"]["config"] == "no answer"
    assert data["nodes"]["cn01"]["config"] == "ok"
    assert "no answer from cn02" in data["problems"]


def test_status_blames_only_the_hand_edited_control_node(cluster):
    cluster.hashes["cranectl"] = "edited"
    data = crane_engine.status(cluster)
    assert data["config_hash"]["differs"] == ["cranectl"]
    assert data["problems"] == ["config.yaml differs from the other nodes' on cranectl"]


# --- answers and state returns -----------------------------------------------------------------


def test_sort_answers_tells_answers_from_silence():
    raw = {
        "a": {"ret": {"x": 1}, "retcode": 0},
        "b": False,
        "c": {"ret": "Minion did not return. [Not connected]", "retcode": 1},
        "d": {"ret": "ERROR: crane.nodes failed", "retcode": 1},
        "e": {"failed": True},
    }
    answers, silent = crane_engine.sort_answers(["a", "b", "c", "d", "e", "f"], raw)
    assert answers == {"a": {"ret": {"x": 1}, "retcode": 0},
                       "d": {"ret": "ERROR: crane.nodes failed", "retcode": 1}}  # fmt: skip
    assert sorted(silent) == ["b", "c", "e", "f"]
    assert silent["c"] == "no answer (Minion did not return. [Not connected])"


def test_state_failures_quote_the_daemon_reason():
    comment = (
        "craned is not running (activating/auto-restart, exit status 1, 0 restart(s))\n"
        "journal:\nStarted craned.service - Crane.\n"
        "csupervisor /usr/libexec/csupervisor does not exist\n"
        "craned.service: Main process exited, code=exited, status=1/FAILURE\n"
        "log file:\n[W 26-11-29 04:57:18.422 CtldClient.cpp:0][default] Channel is broken\n"
        "[I 26-11-29 04:43:08.368 Craned.cpp:0][default] Craned is ending."
    )
    ret = {
        "crane_|-a_|-craned_|-daemon_healthy": {"__id__": "a", "result": False, "comment": comment},
        "service_|-b_|-x_|-running": {"__id__": "b", "result": True, "comment": "ok"},
        "test_|-c_|-x_|-nop": {
            "__id__": "c",
            "result": False,
            "comment": "One or more requisite failed",
        },
    }
    assert crane_engine.state_failures(ret) == [
        "a: craned is not running: csupervisor /usr/libexec/csupervisor does not exist"
    ]
    assert crane_engine.state_failures(["Rendering SLS failed"]) == [
        "state.apply did not run: ['Rendering SLS failed']"
    ]
    assert crane_engine.state_failures({"x": {"result": True}}) == []
