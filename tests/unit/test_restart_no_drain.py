"""``crane.restart drain=False``: craned only, a batch at a time, no drain and no wait for jobs
(CraneSched keeps running jobs across a craned restart), cranectld and login nodes untouched;
``only_due=True`` limits it to the nodes whose craned restart is due. Against the fake cluster."""

import crane_engine
import pytest

from tests.support.fake_cluster import FakeCluster
from tests.support.fake_pair import FakePair

COMPUTE = ["cn01", "cn02", "cn03", "cn04"]


class LossyCluster(FakeCluster):
    """A node of ``lost`` restarts its craned, which then never registers again."""

    def __init__(self, state_dir):
        super().__init__(state_dir)
        self.lost = set()

    def _state_apply(self, minion, sls, pillar=None):
        ret = super()._state_apply(minion, sls, pillar)
        if minion in self.lost:
            self.craned[minion] = False
        return ret


@pytest.fixture
def cluster(tmp_path):
    return LossyCluster(tmp_path / "state")


def restart(cluster, **options):
    return crane_engine.run(cluster, "restart", None, {"batch": 2, "drain": False, **options})


def changing(cluster):
    funs = ("state.apply", "service.stop", "service.start", "service.restart", "crane.drain",
            "crane.resume", "crane.backup_db", "crane.restart_mark")  # fmt: skip
    return [(c[0], c[1]) for c in cluster.log if c[0] in funs]


def test_batches_in_order_without_drain_busy_nodes_too(cluster):
    cluster.jobs["cn02"] = 1  # a job runs on cn02 throughout
    before = dict(cluster.started)
    seen = {}

    def batch_two_starts():  # the canary registered again before the next batch starts
        seen["cn01"] = (cluster.node_state("cn01")["resource"], cluster.started["cn01"])

    cluster.hooks[("crane.restart_mark", "cn02")] = batch_two_starts
    report = restart(cluster)
    assert report["retcode"] == 0, report["summary"]
    assert report["plan"]["batches"] == [["cn01"], ["cn02", "cn03"], ["cn04"]]
    assert report["plan_text"].startswith("Plan: rolling restart of craned only, no drain")
    assert changing(cluster) == [
        ("crane.restart_mark", "cn01"),
        ("state.apply", "cn01"),
        ("crane.restart_mark", "cn02"),
        ("crane.restart_mark", "cn03"),
        ("state.apply", "cn02"),
        ("state.apply", "cn03"),
        ("crane.restart_mark", "cn04"),
        ("state.apply", "cn04"),
    ]  # no drain, no stop, nothing on cranectl or login01
    assert seen["cn01"][0] == "idle" and seen["cn01"][1] > before["cn01"]
    assert all(cluster.started[n] > before[n] for n in COMPUTE)  # every craned is new
    assert cluster.jobs["cn02"] == 1 and cluster.drained == {}
    assert report["done"] == COMPUTE
    assert cluster.due == set()


def test_only_due_restarts_just_the_nodes_whose_restart_is_due(cluster):
    cluster.due = {"cn02", "cn04"}
    before = dict(cluster.started)
    report = restart(cluster, only_due=True, batch="50%")
    assert report["retcode"] == 0, report["summary"]
    assert report["plan"]["batches"] == [["cn02"], ["cn04"]]
    assert report["skipped"] == dict.fromkeys(["cn01", "cn03"], "no craned restart due")
    assert [n for n in COMPUTE if cluster.started[n] != before[n]] == ["cn02", "cn04"]
    assert cluster.due == set()
    cluster.log.clear()
    again = restart(cluster, only_due=True)
    assert again["retcode"] == 0 and again["plan"]["batches"] == []
    assert changing(cluster) == []


def test_node_not_coming_back_stops_the_run_naming_it_and_a_rerun_resumes(cluster):
    cluster.lost.add("cn02")
    before = dict(cluster.started)
    report = restart(cluster, register_timeout=30)
    assert report["retcode"] == 1
    assert report["Error"] == "batch 2 failed on cn02"
    assert report["failed"] == {"cn02": "register: not registered after 30s"}
    assert report["done"] == ["cn01", "cn03"] and report["not_reached"] == ["cn04"]
    assert report["not_drained"] == {"cn02": "down: CraneSched refuses to drain a DOWN node"}
    assert cluster.started["cn04"] == before["cn04"] and not cluster.calls(
        "crane.restart_mark", "cn04"
    )
    refused = restart(cluster)  # cn02 is down and could not be drained: named, nothing done
    assert "cluster not healthy: down: ['cn02']" in refused["Error"]
    cluster.lost.clear()
    cluster.craned["cn02"] = True  # the admin fixed the cause and started craned
    cluster.log.clear()
    again = restart(cluster)
    assert again["retcode"] == 0, again["summary"]
    assert again["plan"]["batches"] == [["cn02"], ["cn04"]]
    assert again["skipped"]["cn01"].startswith("done by the unfinished run started")
    assert [c[1] for c in cluster.calls("state.apply")] == ["cn02", "cn04"]


def test_a_restart_with_drain_does_not_skip_what_a_no_drain_run_did(cluster):
    cluster.lost.add("cn02")
    restart(cluster, register_timeout=30)
    cluster.lost.clear()
    cluster.craned["cn02"] = True
    report = crane_engine.run(cluster, "restart", None, {"batch": 2})
    assert report["retcode"] == 0, report["summary"]
    assert report["plan"]["control"]["todo"]
    assert [n for batch in report["plan"]["batches"] for n in batch] == COMPUTE


@pytest.mark.parametrize(
    ("action", "options", "error"),
    [
        ("upgrade", {"drain": False}, "drain=False and only_due=True are options of crane.restart"),
        ("upgrade", {"only_due": True}, "options of crane.restart"),
        ("restart", {"drain": False, "strategy": "all-at-once"}, "strategy must be rolling"),
        ("restart", {"drain": False, "skip_busy": True}, "skip_busy does not apply"),
        ("restart", {"drain": "no"}, "drain must be True or False: 'no'"),
        ("restart", {"only_due": 1}, "only_due must be True or False: 1"),
    ],
)
def test_bad_options_are_refused_before_anything(cluster, action, options, error):
    version = "1.1.3" if action == "upgrade" else None
    report = crane_engine.run(cluster, action, version, options)
    assert report["retcode"] == 1 and error in report["Error"]
    assert cluster.log == []


def test_with_a_keepalived_pair_no_control_node_is_touched(tmp_path):
    pair = FakePair(tmp_path / "state", login=())
    report = restart(pair)
    assert report["retcode"] == 0, report["summary"]
    assert "ha" not in report["plan"] and not report["plan"]["control"]["todo"]
    assert [m for _f, m in changing(pair) if m in ("ctl1", "ctl2")] == []
    assert pair.master() == "ctl1" and report["done"] == COMPUTE


def test_a_finished_no_drain_run_keeps_the_record_of_an_unfinished_admin_restart(cluster):
    cluster.jobs["cn04"] = 1
    admin = restart(cluster, drain=True, drain_timeout=5)  # stops at busy cn04
    assert admin["retcode"] == 1 and "cn01" in admin["done"]
    cluster.jobs["cn04"] = 0
    cluster.due.add("cn02")  # a join's config step left cn02's restart due
    closing = restart(cluster, only_due=True)
    assert closing["retcode"] == 0 and closing["done"] == ["cn02"]
    cluster.log.clear()
    again = restart(cluster, drain=True)  # the admin's re-run resumes its own run
    assert again["retcode"] == 0, again["summary"]
    assert again["skipped"]["cn01"].startswith("done by the unfinished run started")
    assert [c[1] for c in cluster.calls("state.apply")] == ["cn04"]


def test_run_records_of_other_runs_are_kept_and_the_oldest_dropped(tmp_path):
    for number in range(crane_engine.RECORDS_KEPT + 2):
        crane_engine.save_record(str(tmp_path), {"run": number}, number, [f"cn{number:02d}"])
    assert crane_engine.load_record(str(tmp_path), {"run": 0}) == {}
    assert list(crane_engine.load_record(str(tmp_path), {"run": 9})) == ["cn09"]
    crane_engine.clear_record(str(tmp_path), {"run": 9})
    assert crane_engine.load_record(str(tmp_path), {"run": 9}) == {}
    assert list(crane_engine.load_record(str(tmp_path), {"run": 8})) == ["cn08"]
