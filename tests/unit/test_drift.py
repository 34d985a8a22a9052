"""Drift healing: the beacon's findings (hash change, service stop, once per drift, the HA
exemption, the mode in the payload), the master's record and its status table, and the heal
rounds against a fake cluster (overlap, failure, pending pillar change, a running upgrade)."""

import json
import os
import threading

import crane_drift
import crane_engine
import pytest

from tests.support.dunder import load

CONFIG_TEXT = "# Managed by Salt\nClusterName: crane\n"
SUPERVISOR = "/usr/libexec/csupervisor"
APPLIED = "/etc/crane/config.yaml differs from the one last applied"


def settings(**changes):
    data = {
        "config_text": CONFIG_TEXT,
        "config": {"ClusterName": "crane"},
        "services": ["craned"],
        "roles": ["compute"],
        "packages": {"craned": {}},
        "binaries": {
            "craned": {"craned": "/usr/bin/craned", "csupervisor": SUPERVISOR},
            "cranectld": {"cranectld": "/usr/bin/cranectld"},
        },
        "heal": {"enabled": True, "mode": "heal", "interval": 10},
    }
    data.update(changes)
    return data


def base(**changes):
    return crane_drift.baseline(settings(**changes), "/etc/crane/config.yaml")


def facts(config_hash=None, mtime=1, units=None, missing=()):
    return {
        "config": {"hash": config_hash or crane_drift.sha256(CONFIG_TEXT), "mtime": mtime},
        "units": units or {"craned": {"state": "active", "sub": "running", "since": "0"}},
        "missing": list(missing),
    }


# --- baseline ----------------------------------------------------------------------------------


def test_baseline_hashes_the_rendered_config_as_file_managed_writes_it():
    assert base()["config_hash"] == crane_drift.sha256(CONFIG_TEXT)
    unterminated = base(config_text="a: 1")["config_hash"]
    assert unterminated == crane_drift.sha256("a: 1\n")


def test_baseline_watches_the_roles_services_and_binaries_and_has_no_time():
    found = base()
    assert found["services"] == ["craned"]
    assert found["binaries"] == {"craned": "/usr/bin/craned", "csupervisor": SUPERVISOR}
    assert found["mode"] == "heal"
    assert found == base()  # a second apply writes the same file


def test_baseline_follows_the_configured_supervisor_path():
    found = base(config={"Supervisor": {"Path": "/opt/crane/csupervisor"}})
    assert found["binaries"]["csupervisor"] == "/opt/crane/csupervisor"


def test_ha_control_node_leaves_cranectld_to_keepalived():
    pair = {"ha_facts": {"vip_address": "10.0.0.10"}, "roles": ["control"],
            "services": ["cranectld"]}  # fmt: skip
    assert crane_drift.watched_services(settings(**pair)) == []
    single = {"roles": ["control"], "services": ["cranectld"]}
    assert crane_drift.watched_services(settings(**single)) == ["cranectld"]


def test_fingerprint_changes_with_the_settings_only():
    assert base()["fingerprint"] == base()["fingerprint"]
    assert base(config_text="other\n")["fingerprint"] != base()["fingerprint"]


def test_unknown_mode_reports_only():
    assert base(heal={"mode": "fix"})["mode"] == "report"


# --- finding drifts ----------------------------------------------------------------------------


def test_no_drift_when_the_node_is_as_applied():
    assert crane_drift.find_drifts(base(), facts()) == []


def test_edited_config_is_a_drift_by_hash_not_by_time():
    assert crane_drift.find_drifts(base(), facts(mtime=99)) == []  # touched, same content
    found = crane_drift.find_drifts(base(), facts(config_hash="f00", mtime=5))
    assert found == [{"key": "config:f00:5", "kind": "config", "what": APPLIED}]


def test_missing_config_is_a_drift():
    found = crane_drift.find_drifts(base(), {**facts(), "config": None})
    assert [d["what"] for d in found] == ["/etc/crane/config.yaml is missing"]


@pytest.mark.parametrize(
    ("state", "sub", "what"),
    [("inactive", "dead", "craned is inactive"), ("failed", "failed", "craned is failed (failed)")],
)
def test_stopped_or_failed_service_is_a_drift(state, sub, what):
    units = {"craned": {"state": state, "sub": sub, "since": "123"}}
    found = crane_drift.find_drifts(base(), facts(units=units))
    assert found == [{"key": "service:craned:123", "kind": "service", "what": what}]


@pytest.mark.parametrize("state", ["activating", "deactivating", "reloading", "active"])
def test_a_unit_on_its_way_is_no_drift(state):
    units = {"craned": {"state": state, "sub": "auto-restart", "since": "1"}}
    assert crane_drift.find_drifts(base(), facts(units=units)) == []


def test_missing_binary_is_a_drift():
    found = crane_drift.find_drifts(base(), facts(missing=["csupervisor"]))
    assert [d["what"] for d in found] == ["csupervisor is missing (/usr/libexec/csupervisor)"]


# --- once per drift ----------------------------------------------------------------------------


def test_each_drift_is_reported_once_until_it_is_gone():
    drift = crane_drift.find_drifts(base(), facts(config_hash="f00"))
    events, seen = crane_drift.new_events(drift, {}, "heal", 10.0)
    assert [(e["tag"], e["kind"], e["mode"], e["time"]) for e in events] == [
        ("config", "config", "heal", 10.0)
    ]
    again, seen_again = crane_drift.new_events(drift, seen, "heal", 20.0)
    assert again == [] and seen_again == seen  # the next interval: nothing new
    gone, seen_gone = crane_drift.new_events([], seen_again, "heal", 30.0)
    assert gone == [] and seen_gone == {}
    back, _ = crane_drift.new_events(drift, seen_gone, "heal", 40.0)
    assert len(back) == 1  # the same drift after it was healed is new again


def test_a_new_edit_or_a_new_stop_is_a_new_drift_even_unseen_in_between():
    first = crane_drift.find_drifts(base(), facts(config_hash="f00", mtime=1))
    _, seen = crane_drift.new_events(first, {}, "heal", 1.0)
    second = crane_drift.find_drifts(base(), facts(config_hash="f00", mtime=2))
    events, _ = crane_drift.new_events(second, seen, "heal", 2.0)
    assert len(events) == 1


@pytest.mark.parametrize("mode", ["heal", "report"])
def test_the_payload_carries_the_baselines_mode(mode):
    drift = crane_drift.find_drifts(base(heal={"mode": mode}), facts(config_hash="f00"))
    events, _ = crane_drift.new_events(drift, {}, base(heal={"mode": mode})["mode"], 1.0)
    assert events[0]["mode"] == mode


# --- the execution module and the beacon -------------------------------------------------------


class Node:
    """A node's files and units for the execution module: config.yaml, the state dir."""

    def __init__(self, root):
        self.root = root
        self.units = {"craned": ("active", "running", "0")}
        self.config = root / "config.yaml"
        self.config.write_text(CONFIG_TEXT)
        self.state_dir = root / "state"
        self.binary = root / "csupervisor"
        self.binary.write_text("#!/bin/sh\n")
        self.binary.chmod(0o755)

    def run_all(self, cmd, **_kw):
        state, sub, since = self.units[cmd[-1]]
        out = f"ActiveState={state}\nSubState={sub}\nInactiveEnterTimestampMonotonic={since}\n"
        return {"retcode": 0, "stdout": out, "stderr": ""}

    def module(self, data=None):
        data = data or settings()
        return load(
            "_modules",
            "crane_drift",
            __salt__={"cmd.run_all": self.run_all, "crane.settings": lambda: data},
        )

    def apply(self, module):
        found = module.baseline()
        found["config_path"] = str(self.config)
        found["binaries"] = {"csupervisor": str(self.binary)}
        crane_engine.write_json(crane_drift.node_path("baseline", str(self.state_dir)), found)


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path)


def test_scan_without_a_baseline_reports_nothing(node):
    module = node.module()
    assert module.scan(str(node.state_dir)) == []
    assert module.check(str(node.state_dir)) == {"drifts": [], "baseline": False,
                                                 "pending_change": False}  # fmt: skip


def test_scan_reports_an_edit_and_a_stop_once_and_again_after_a_heal(node):
    module = node.module()
    node.apply(module)
    state = str(node.state_dir)
    assert module.scan(state) == []
    node.config.write_text(CONFIG_TEXT + "# edited by hand\n")
    node.units["craned"] = ("inactive", "dead", "42")
    events = module.scan(state)
    assert sorted(e["tag"] for e in events) == ["config", "service"]
    assert {e["mode"] for e in events} == {"heal"}
    assert module.scan(state) == []  # once per drift, not every interval
    node.config.write_text(CONFIG_TEXT)
    node.units["craned"] = ("active", "running", "42")
    assert module.scan(state) == []
    node.units["craned"] = ("inactive", "dead", "77")
    assert [e["what"] for e in module.scan(state)] == ["craned is inactive"]


def test_a_removed_binary_is_reported(node):
    module = node.module()
    node.apply(module)
    node.binary.unlink()
    assert [e["kind"] for e in module.scan(str(node.state_dir))] == ["binary"]


def test_check_tells_a_pillar_change_not_applied_yet(node):
    module = node.module()
    node.apply(module)
    state = str(node.state_dir)
    assert module.check(state)["pending_change"] is False
    changed = node.module(settings(config_text="ClusterName: other\n"))
    result = changed.check(state)
    assert result["pending_change"] is True
    assert result["drifts"] == []  # a pillar change is not drift


def test_the_beacon_hands_over_the_modules_events():
    events = [{"tag": "config", "what": "x"}]
    beacon = load("_beacons", "crane_drift", __salt__={"crane_drift.scan": lambda: events})
    assert beacon.validate([{"interval": 10}]) == (True, "valid")
    assert beacon.validate({"interval": 10})[0] is False
    assert beacon.beacon([{"interval": 10}]) == events


# --- the master's record and crane.status ------------------------------------------------------


def test_status_rows_and_table(tmp_path):
    store = crane_drift.Store(str(tmp_path))
    with store.changing() as nodes:
        node = nodes.setdefault("cn02", {})
        crane_drift.note_event(node, {"kind": "service", "what": "craned is inactive",
                                      "mode": "heal", "time": 0}, 0)  # fmt: skip
        node["heal"] = crane_drift.outcome("healed", "craned is inactive", 12.5, seconds=9.1)
    rows = crane_drift.recorded(str(tmp_path))
    assert rows == {"cn02": {"drift": "craned is inactive", "drift_at": "1970-01-01 00:00:00",
                             "heal": "healed", "heal_at": "1970-01-01 00:00:12",
                             "comment": "craned is inactive"}}  # fmt: skip
    lines = crane_drift.status_text(rows).strip().splitlines()
    assert lines[0].split() == ["NODE", "DRIFT", "AT", "(UTC)", "DRIFT", "HEAL", "HEAL", "AT",
                                "(UTC)", "COMMENT"]  # fmt: skip
    assert lines[1].split()[:6] == ["cn02", "1970-01-01", "00:00:00", "craned", "is", "inactive"]
    assert crane_drift.status_text({}) == ""


def test_history_is_bounded(tmp_path):
    node = {}
    for i in range(crane_drift.HISTORY + 5):
        crane_drift.note_event(node, {"what": f"d{i}", "time": i}, i)
    assert len(node["events"]) == crane_drift.HISTORY
    assert node["drift"]["what"] == f"d{crane_drift.HISTORY + 4}"


# --- heal rounds against a fake cluster --------------------------------------------------------


class HealCluster(crane_engine.Cluster):
    """A master with one node: ``check`` answers as the node would, ``state.apply`` heals."""

    def __init__(self, state_dir, drifts=None, apply_ok=True, pending_change=False):
        self.state_dir = str(state_dir)
        default = [{"key": "k", "kind": "config", "what": "edited"}]
        self.drifts = default if drifts is None else list(drifts)
        self.apply_ok, self.pending_change = apply_ok, pending_change
        self.calls, self.clock, self.during_apply = [], 100.0, None

    def call(self, tgt, fun, arg=(), kwarg=None, *, tgt_type="list", timeout=15):
        minion = tgt[0] if isinstance(tgt, list) else tgt
        self.calls.append(fun)
        if fun == "crane_drift.check":
            ret = {"drifts": list(self.drifts), "baseline": True,
                   "pending_change": self.pending_change}  # fmt: skip
        else:
            assert kwarg == {"queue": True}
            self.clock += 7
            ok = {"result": True, "comment": "", "__id__": "crane-config-file-config-file-managed"}
            bad = {"result": False, "comment": "craned exited: bad gres", "__id__": "crane-service"}
            if self.apply_ok:
                self.drifts = []
            if self.during_apply:
                self.during_apply()
            ret = {"file_|-x_|-y_|-managed": ok if self.apply_ok else bad}
        return {minion: {"ret": ret, "retcode": 0}}

    def progress(self, message):
        pass

    def now(self):
        return self.clock


def heal_event(mode="heal", what="edited"):
    return {"kind": "config", "what": what, "mode": mode, "time": 90.0}


def test_report_mode_records_without_touching_the_node(tmp_path):
    cluster = HealCluster(tmp_path)
    result = crane_drift.handle(cluster, "cn01", heal_event("report"))
    assert result["result"] == "reported"
    assert cluster.calls == []
    assert crane_drift.recorded(cluster.state_dir)["cn01"]["heal"] == "reported"


def test_heal_mode_applies_checks_and_records_the_seconds(tmp_path):
    cluster = HealCluster(tmp_path)
    result = crane_drift.handle(cluster, "cn01", heal_event())
    assert cluster.calls == ["crane_drift.check", "state.apply", "crane_drift.check"]
    assert result["result"] == "healed" and result["comment"] == "edited"
    assert result["seconds"] == 7.0 and result["since_drift"] == 17.0
    assert crane_drift.recorded(cluster.state_dir)["cn01"]["heal"] == "healed"


def test_a_failed_apply_is_reported_not_looped(tmp_path):
    cluster = HealCluster(tmp_path, apply_ok=False)
    result = crane_drift.handle(cluster, "cn01", heal_event())
    assert result["result"] == "failed"
    assert "crane-service: craned exited: bad gres" in result["comment"]
    assert cluster.calls.count("state.apply") == 1


def test_a_pillar_change_not_applied_is_left_to_the_admin(tmp_path):
    cluster = HealCluster(tmp_path, pending_change=True)
    result = crane_drift.handle(cluster, "cn01", heal_event())
    assert result["result"] == "skipped" and "apply it to the cluster" in result["comment"]
    assert "state.apply" not in cluster.calls


def test_nothing_left_to_heal_applies_nothing(tmp_path):
    cluster = HealCluster(tmp_path, drifts=[])
    assert crane_drift.handle(cluster, "cn01", heal_event())["result"] == "gone"
    assert "state.apply" not in cluster.calls


def test_a_running_upgrade_is_not_disturbed(tmp_path):
    cluster = HealCluster(tmp_path)
    crane_engine.acquire_lock(cluster.state_dir, "upgrade", cluster.now())
    result = crane_drift.handle(cluster, "cn01", heal_event())
    assert result["result"] == "skipped" and "crane.upgrade is running" in result["comment"]
    assert cluster.calls == []


def test_events_during_a_heal_start_no_second_apply_but_one_more_round(tmp_path):
    cluster = HealCluster(tmp_path)
    answers = []

    def edit_again():
        cluster.during_apply = None
        # a second event while the first apply runs (another reactor thread)
        worker = threading.Thread(
            target=lambda: answers.append(crane_drift.handle(cluster, "cn01", heal_event(what="x")))
        )
        worker.start()
        worker.join()
        cluster.drifts = [{"key": "k2", "kind": "config", "what": "edited again"}]

    cluster.during_apply = edit_again
    result = crane_drift.handle(cluster, "cn01", heal_event())
    assert answers[0]["result"] == "queued"
    # the round after the queued event applied again: one apply at a time, two in all
    assert cluster.calls.count("state.apply") == 2
    assert result["result"] == "healed" and result["comment"] == "edited again"
    record = json.loads((tmp_path / crane_drift.RECORD_FILE).read_text())
    assert "pending" not in record["nodes"]["cn01"]
    assert [e["what"] for e in record["nodes"]["cn01"]["events"]] == ["edited", "x"]


def test_the_heal_lock_is_free_after_a_heal(tmp_path):
    cluster = HealCluster(tmp_path)
    crane_drift.handle(cluster, "cn01", heal_event())
    lock = crane_drift.Store(cluster.state_dir).heal_lock("cn01")
    assert lock is not None
    lock.close()
    assert os.path.exists(os.path.join(cluster.state_dir, "crane-heal-cn01.lock"))
