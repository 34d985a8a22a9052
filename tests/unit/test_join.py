"""crane_join against the in-memory cluster: a join runs the new node's gates before any
other node hears of it, restarts cranectld, then the craned whose restart is due a batch at a
time without a drain (jobs keep running), waits for another run, and does nothing for a minion
no selector matches; a leave drains first and keeps a busy node."""

import os

import crane_engine
import crane_join
import pytest

from tests.support.fake_cluster import FakeCluster

NEW = "gpu05"
CHANGING = ("state.apply", "crane.joined", "crane.drain", "service.stop", "service.start",
            "crane.restart_mark")  # fmt: skip


class ElasticCluster(FakeCluster):
    """FakeCluster plus minions that have started but are not nodes yet."""

    def __init__(self, state_dir, new=(NEW,)):
        super().__init__(state_dir, compute=("cn01", "cn02"), login=())
        self.new = set(new)
        for minion in new:
            self.roles[minion] = []
            self.installed[minion], self.hashes[minion] = "1.1.2", "h1"
        self.matches = ["G@crane:partition:GPU"]
        self.gate_fails = set()  # new minions whose own apply fails its gres gate
        self.joined = set()
        self.mine = {}  # minion -> crane_facts the master serves
        self.unlock_at = None  # (fake) time another run releases the lock
        self.lost = set()  # nodes whose craned exits for good when it restarts
        self.new_applies = []  # the new minions' own applies, in order
        self.cranectld_restarts = 0
        self.on_sleep = None  # run once at the next sleep (another run going on meanwhile)

    def call(self, *args, **kwargs):
        self.clock += 0.01  # a call takes time: a craned started now is newer than one before
        return super().call(*args, **kwargs)

    def _saltutil_refresh_pillar(self, minion, wait=False):
        return True

    def _mine_update(self, minion):
        self.mine[minion] = {"ready": minion in self.joined}
        return True

    def _mine_get(self, minion, tgt, fun):
        return {m: f for m, f in self.mine.items() if m == tgt}

    def _crane_selector_groups(self, minion):
        return list(self.matches)

    def _crane_joined(self, minion, value=None):
        if value:  # crane.roles resolves the selectors: a joined minion is a compute node
            self.joined.add(minion)
            self.roles[minion] = ["compute"]
        return minion in self.joined

    def _grains_get(self, minion, key):
        return minion if key == "host" else super()._grains_get(minion, key)

    def _state_apply(self, minion, sls, pillar=None):
        crane = (pillar or {}).get("crane", {})
        if crane.get("elastic", {}).get("candidate") == minion:  # its own apply, gates first
            if minion in self.gate_fails:
                return {"crane_|-crane-gres-gate_|-x_|-gres_valid": {
                    "__id__": "crane-gres-gate", "result": False,
                    "comment": f"{minion}: /dev/nvidia3 does not exist"}}  # fmt: skip
            self.new_applies.append(minion)
            return {"service_|-a_|-craned_|-running": {"__id__": "a", "result": True}}
        if self.roles[minion] == ["control"] and set(self.joined) - set(self.craned):
            assert crane.get("restart") == "on_change"
            self.cranectld_restarts += 1
            for new in self.joined - set(self.craned):
                self.craned[new], self.jobs[new], self.started[new] = True, 0, self.clock
        if self.roles[minion] == ["compute"] and crane.get("restart") == "never":
            self.due.add(minion)  # config only: craned keeps running, its restart is due
            return {"file_|-a_|-config_|-managed": {"__id__": "a", "result": True}}
        if minion in self.lost:  # restarted, passes its settle time, never registers
            self.craned[minion] = False
            return {"service_|-a_|-craned_|-running": {"__id__": "a", "result": True}}
        return super()._state_apply(minion, sls, pillar)

    def sleep(self, seconds):
        super().sleep(seconds)
        hook, self.on_sleep = self.on_sleep, None
        if hook:
            hook()
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
    cluster.gate_fails = {NEW}
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


def test_the_waits_come_from_the_pillar_when_the_runner_gives_none(cluster):
    settings = cluster._crane_settings
    cluster._crane_settings = lambda m: {**settings(m), "elastic": {"lock_wait": 30}}
    crane_engine.acquire_lock(cluster.state_dir, "upgrade", cluster.now())
    report = crane_join.run(cluster, "join", NEW)
    assert not report["ok"] and "gave up waiting after 30s" in report["Error"]
    assert changing(cluster) == []


@pytest.mark.parametrize(
    ("options", "elastic", "named"),
    [
        ({"lock_wait": "soon"}, {}, "lock_wait"),
        ({}, {"drain_timeout": -1}, "crane:elastic:drain_timeout"),
    ],
)
def test_a_wait_that_is_no_number_of_seconds_fails_naming_it(cluster, options, elastic, named):
    settings = cluster._crane_settings
    cluster._crane_settings = lambda m: {**settings(m), "elastic": elastic}
    report = crane_join.run(cluster, "leave", NEW, options)
    assert not report["ok"] and report["Error"].startswith(f"{named}: seconds, 0 or more")
    assert changing(cluster) == []


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


RACKED = ("gpu05", "gpu06", "gpu07")


@pytest.fixture
def racked(tmp_path):
    fake = ElasticCluster(tmp_path, new=RACKED)
    fake.jobs["cn01"] = 1
    return fake


def start_together(cluster):
    """gpu06's join starts while another run holds the lock, gpu07's while gpu06's waits,
    then the lock is freed and gpu05's starts and gets it: ``{minion: report}``."""
    crane_engine.acquire_lock(cluster.state_dir, "restart", cluster.now())
    reports = {}

    def lock_freed_then_gpu05_starts():
        crane_engine.release_lock(f"{cluster.state_dir}/{crane_engine.LOCK_FILE}")
        reports["gpu05"] = crane_join.run(cluster, "join", "gpu05")

    def gpu07_starts():
        cluster.on_sleep = lock_freed_then_gpu05_starts
        reports["gpu07"] = crane_join.run(cluster, "join", "gpu07")

    cluster.on_sleep = gpu07_starts
    reports["gpu06"] = crane_join.run(cluster, "join", "gpu06")
    return reports


def restarts(cluster, node):
    return changing(cluster).count(("crane.restart_mark", node))


def test_nodes_started_together_join_in_one_config_step_and_one_rolling_restart(racked):
    racked.gate_fails = {"gpu06"}
    reports = start_together(racked)
    assert reports["gpu05"]["ok"] and reports["gpu05"]["batch"] == list(RACKED)
    assert reports["gpu07"]["ok"] and reports["gpu07"]["retcode"] == 0
    assert reports["gpu07"]["node"] == "gpu07" and reports["gpu07"]["joined_with"] == "gpu05"
    assert not reports["gpu06"]["ok"] and reports["gpu06"]["retcode"] == 1
    assert "/dev/nvidia3 does not exist" in reports["gpu06"]["Error"]
    # each gated alone, the failing one left out; then one cluster-wide step for both
    assert racked.new_applies == ["gpu05", "gpu07"]
    assert racked.cranectld_restarts == 1
    assert [restarts(racked, n) for n in ("cn01", "cn02", "gpu05")] == [1, 1, 1]
    assert racked.due == set()
    assert {n: racked.node_state(n)["resource"] for n in ("gpu05", "gpu07", "cn01")} == {
        "gpu05": "idle", "gpu07": "idle", "cn01": "alloc"}  # fmt: skip
    assert "gpu06" not in racked.craned
    assert os.listdir(crane_join._Queue(racked).dir) == []


def test_a_minion_queued_while_the_batch_is_gated_joins_with_it(racked):
    # gpu07 starts while gpu05's run is gating gpu05: its run queues it and waits
    queue, tokens = crane_join._Queue(racked), {}
    own_apply = racked._state_apply

    def state_apply(minion, sls, pillar=None):
        if minion == "gpu05" and not tokens:
            tokens["gpu07"] = queue.add("gpu07")
        return own_apply(minion, sls, pillar)

    racked._state_apply = state_apply
    report = crane_join.run(racked, "join", "gpu05")
    assert report["ok"] and report["batch"] == ["gpu05", "gpu07"]
    assert racked.new_applies == ["gpu05", "gpu07"] and racked.cranectld_restarts == 1
    assert [restarts(racked, n) for n in ("cn01", "cn02", "gpu05")] == [1, 1, 1]
    left = queue.report("gpu07", tokens["gpu07"])
    assert left["ok"] and left["node"] == "gpu07" and left["joined_with"] == "gpu05"
    assert racked.due == set()


def test_a_failed_cluster_step_fails_every_join_of_the_batch(racked):
    racked.lost.add("cn02")
    reports = start_together(racked)
    for minion in RACKED:
        assert not reports[minion]["ok"], minion
        assert reports[minion]["Error"].startswith("rolling restart of craned: batch"), minion


def test_a_minion_queued_again_meanwhile_is_left_to_its_own_run(racked):
    queue = crane_join._Queue(racked)
    first = queue.add("gpu07")
    assert queue.waiting() == {"gpu07": first}
    again = queue.add("gpu07")  # it restarted: a second start event
    queue.settle("gpu07", first, {"ok": True})
    assert queue.report("gpu07", first) is None and queue.report("gpu07", again) is None
    assert queue.waiting() == {"gpu07": again}
    report = crane_join.run(racked, "join", "gpu07")
    assert report["ok"] and report["node"] == "gpu07" and "batch" not in report
    assert queue.waiting() == {}
