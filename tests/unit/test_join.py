"""crane_join against the in-memory cluster: a join runs the new node's gates before any
other node hears of it, restarts cranectld, then the craned whose restart is due a batch at a
time without a drain (jobs keep running), waits for another run, and does nothing for a minion
no selector matches; a leave drains first and keeps a busy node."""

import crane_engine
import crane_join
import pytest

from tests.support.fake_cluster import FakeCluster

NEW = "gpu05"
CHANGING = ("state.apply", "crane.joined", "crane.drain", "service.stop", "service.start",
            "crane.restart_mark")  # fmt: skip


class ElasticCluster(FakeCluster):
    """FakeCluster plus a minion that has started but is not a node yet."""

    def __init__(self, state_dir):
        super().__init__(state_dir, compute=("cn01", "cn02"), login=())
        self.roles[NEW] = []
        self.installed[NEW], self.hashes[NEW] = "1.1.2", "h1"
        self.matches = ["G@crane:partition:GPU"]
        self.gate_fails = False
        self.joined = False
        self.mine = {}  # minion -> crane_facts the master serves
        self.unlock_at = None  # (fake) time another run releases the lock
        self.lost = set()  # nodes whose craned exits for good when it restarts

    def _saltutil_refresh_pillar(self, minion, wait=False):
        return True

    def _mine_update(self, minion):
        self.mine[minion] = {"ready": self.joined}
        return True

    def _mine_get(self, minion, tgt, fun):
        return {m: f for m, f in self.mine.items() if m == tgt}

    def _crane_selector_groups(self, minion):
        return list(self.matches)

    def _crane_joined(self, minion, value=None):
        self.joined = bool(value)
        return self.joined

    def _grains_get(self, minion, key):
        return minion if key == "host" else super()._grains_get(minion, key)

    def _state_apply(self, minion, sls, pillar=None):
        crane = (pillar or {}).get("crane", {})
        if minion == NEW:
            if self.gate_fails:
                return {"crane_|-crane-gres-gate_|-x_|-gres_valid": {
                    "__id__": "crane-gres-gate", "result": False,
                    "comment": "gpu05: /dev/nvidia3 does not exist"}}  # fmt: skip
            assert crane.get("elastic", {}).get("candidate") == NEW or self.joined
            return {"service_|-a_|-craned_|-running": {"__id__": "a", "result": True}}
        if self.roles[minion] == ["control"] and self.joined and NEW not in self.craned:
            assert crane.get("restart") == "on_change"
            self.roles[NEW] = ["compute"]
            self.craned[NEW], self.jobs[NEW], self.started[NEW] = True, 0, self.clock
        if self.roles[minion] == ["compute"] and crane.get("restart") == "never":
            self.due.add(minion)  # config only: craned keeps running, its restart is due
            return {"file_|-a_|-config_|-managed": {"__id__": "a", "result": True}}
        if minion in self.lost:  # restarted, passes its settle time, never registers
            self.craned[minion] = False
            return {"service_|-a_|-craned_|-running": {"__id__": "a", "result": True}}
        return super()._state_apply(minion, sls, pillar)

    def sleep(self, seconds):
        super().sleep(seconds)
        if self.unlock_at is not None and self.clock >= self.unlock_at:
            crane_engine.release_lock(f"{self.state_dir}/{crane_engine.LOCK_FILE}")
            self.unlock_at = None


@pytest.fixture
def cluster(tmp_path):
    fake = ElasticCluster(tmp_path)
    fake.jobs["cn01"] = 1  # a job runs on cn01 throughout
    return fake


def changing(cluster):
    return [(fun, minion) for fun, minion, _arg, _kw in cluster.log if fun in CHANGING]


def test_join_applies_the_node_alone_first_then_config_then_cranectld_then_craned(cluster):
    started = dict(cluster.started)
    report = crane_join.run(cluster, "join", NEW)
    assert report["ok"] and report["retcode"] == 0 and report["node"] == NEW
    assert changing(cluster) == [
        ("state.apply", NEW),
        ("crane.joined", NEW),
        ("state.apply", "cn01"),
        ("state.apply", "cn02"),
        ("state.apply", "cranectl"),
        # craned restarted one batch at a time (25 % of 2 nodes), no drain, no stop
        ("crane.restart_mark", "cn01"),
        ("state.apply", "cn01"),
        ("crane.restart_mark", "cn02"),
        ("state.apply", "cn02"),
    ]
    assert report["restart"]["done"] == ["cn01", "cn02"]
    assert report["restart"]["skipped"] == {NEW: "no craned restart due"}
    assert cluster.node_state(NEW)["resource"] == "idle"
    # the job on cn01 never saw a drain; its craned runs a new process and nothing is due
    assert cluster.node_state("cn01") == {"resource": "alloc", "control": "none", "reason": ""}
    assert all(cluster.started[n] > started[n] for n in ("cn01", "cn02"))
    assert cluster.due == set()
    assert cluster.mine[NEW] == {"ready": True}


def test_join_with_a_bad_batch_changes_nothing_and_names_the_key(cluster):
    cluster._crane_settings = lambda minion: {"version": "1.1.2", "elastic": {"batch": "0%"}}
    report = crane_join.run(cluster, "join", NEW)
    assert not report["ok"] and report["Error"].startswith("crane:elastic:batch: batch")
    assert changing(cluster) == []


def test_join_stops_naming_a_craned_that_does_not_come_back(cluster):
    cluster.lost.add("cn02")
    report = crane_join.run(cluster, "join", NEW, {"register_timeout": 30})
    assert not report["ok"]
    assert report["Error"].startswith("rolling restart of craned: batch 2 failed on cn02")
    assert report["restart"]["done"] == ["cn01"]
    assert report["restart"]["failed"]["cn02"] == "register: not registered after 30s"
    assert cluster.node_state(NEW)["resource"] == "idle"  # joined all the same


def test_node_failing_its_gates_is_not_added_anywhere(cluster):
    cluster.gate_fails = True
    report = crane_join.run(cluster, "join", NEW)
    assert not report["ok"] and report["retcode"] == 1
    assert "/dev/nvidia3 does not exist" in report["Error"]
    assert changing(cluster) == [("state.apply", NEW)]
    assert not cluster.joined and NEW not in cluster.craned


def test_minion_matching_no_selector_changes_nothing(cluster):
    cluster.matches = []
    report = crane_join.run(cluster, "join", NEW)
    assert report["ok"] and report["groups"] == []
    assert changing(cluster) == []
    assert any("nothing to do" in m for m in cluster.messages)


def test_join_waits_for_a_run_in_progress(cluster):
    crane_engine.acquire_lock(cluster.state_dir, "restart", cluster.now())
    cluster.unlock_at = cluster.clock + 30
    report = crane_join.run(cluster, "join", NEW)
    assert report["ok"]
    assert any(m.startswith("waiting: another crane.restart") for m in cluster.messages)


def test_join_gives_up_when_the_other_run_does_not_end(cluster):
    crane_engine.acquire_lock(cluster.state_dir, "upgrade", cluster.now())
    report = crane_join.run(cluster, "join", NEW, {"lock_wait": 60})
    assert not report["ok"] and "gave up waiting after 60s" in report["Error"]
    assert cluster.log == []


def test_join_interrupted_by_a_minion_restart_is_finished_by_the_next_start_event(cluster):
    def restart_minion():
        if cluster.joined:  # its second mine.update: the minion restarts right then
            cluster.dead[NEW] = "Minion did not return. [Not connected]"

    cluster.hooks[("mine.update", NEW)] = restart_minion
    first = crane_join.run(cluster, "join", NEW)
    assert not first["ok"] and "gpu05 did not answer" in first["Error"]
    assert changing(cluster) == [("state.apply", NEW), ("crane.joined", NEW)]
    assert NEW not in cluster.craned  # no other node heard of it
    del cluster.dead[NEW], cluster.hooks[("mine.update", NEW)]
    second = crane_join.run(cluster, "join", NEW)  # the start event of the restarted minion
    assert second["ok"] and cluster.node_state(NEW)["resource"] == "idle"


def test_join_of_a_minion_that_stops_answering_fails_before_any_other_node(cluster):
    cluster.dead[NEW] = "Minion did not return. [Not connected]"
    report = crane_join.run(cluster, "join", NEW)
    assert not report["ok"] and "did not answer" in report["Error"]
    assert changing(cluster) == []


def leaving_cluster(cluster, busy):
    """cn02 is gone from the config (its key was deleted); cranectld still knows it."""
    cluster.jobs["cn02"] = 1 if busy else 0
    del cluster.roles["cn02"]

    def forget():  # cranectld restarted on a config without cn02
        for known in (cluster.craned, cluster.jobs, cluster.started):
            known.pop("cn02", None)

    cluster.hooks[("state.apply", "cranectl")] = forget

    def settings(minion):
        return {"version": "1.1.2", "config": {"Nodes": [{"name": "cn01"}]}}

    cluster._crane_settings = settings
    return cluster


def test_leave_drains_and_waits_then_takes_the_node_out(cluster):
    report = crane_join.run(leaving_cluster(cluster, busy=False), "leave", "cn02")
    assert report["ok"] and report["nodes"] == ["cn02"]
    assert changing(cluster) == [
        ("crane.drain", "cranectl"),
        ("state.apply", "cn01"),
        ("state.apply", "cranectl"),
        ("crane.restart_mark", "cn01"),
        ("state.apply", "cn01"),
    ]
    assert cluster.due == set()


def test_leave_keeps_a_busy_node_drained_and_configured(cluster):
    report = crane_join.run(leaving_cluster(cluster, busy=True), "leave", "cn02",
                            {"drain_timeout": 30})  # fmt: skip
    assert not report["ok"] and "jobs still running after 30s on cn02" in report["Error"]
    assert changing(cluster) == [("crane.drain", "cranectl")]
    assert cluster.drained == {"cn02": crane_join.LEAVE_REASON}


def test_leave_waits_until_the_master_forgot_the_minion(cluster):
    leaving_cluster(cluster, busy=False)
    cluster.mine["cn02"] = {"ready": True}
    report = crane_join.run(cluster, "leave", "cn02")
    assert not report["ok"] and "still serves its mine data" in report["Error"]
    assert changing(cluster) == []
