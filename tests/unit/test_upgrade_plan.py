"""Planning logic of rolling upgrades and restarts (crane_upgrade)."""

import crane_upgrade as cu
import pytest

from bench.availability import availability


def compute(*names, version="1.1.2", **overrides):
    nodes = {n: {"version": version, "down": False, "reason": ""} for n in names}
    for name, info in overrides.items():
        nodes[name].update(info)
    return nodes


def plan(nodes, **kw):
    args = {"batch": 2, "canary": 1, "login": {"login01": "1.1.2"}}
    args.update(kw)
    return cu.build_plan("upgrade", "1.1.3", "rolling", "cranectl", "1.1.2", compute=nodes, **args)


@pytest.mark.parametrize(
    ("batch", "total", "size"),
    [(1, 10, 1), ("3", 10, 3), ("25%", 10, 3), ("10%", 4, 1), ("100%", 4, 4), ("50%", 1, 1)],
)
def test_batch_size_count_or_percentage(batch, total, size):
    assert cu.batch_size(batch, total) == size


@pytest.mark.parametrize("batch", [0, "0", "-1", "x", "0%", "150%", "", "1.5"])
def test_batch_size_rejects_nonsense(batch):
    with pytest.raises(ValueError, match="batch"):
        cu.batch_size(batch, 4)


def test_canary_alone_then_batches():
    assert cu.split_batches(["a", "b", "c", "d", "e"], 2, canary=1) == [
        ["a"],
        ["b", "c"],
        ["d", "e"],
    ]
    assert cu.split_batches(["a", "b", "c"], 2, canary=0) == [["a", "b"], ["c"]]
    assert cu.split_batches(["a"], 5, canary=3) == [["a"]]
    assert cu.split_batches([], 2) == []


def test_plan_skips_nodes_at_target_and_allowed_down():
    nodes = compute(
        "cn01", "cn02", "cn03", "cn04", "cn10",
        cn02={"version": "1.1.3"}, cn04={"down": True, "version": None},
    )  # fmt: skip
    result = plan(nodes, allow_down=["cn04"])
    assert result["batches"] == [["cn01"], ["cn03", "cn10"]]
    assert result["canary"] == ["cn01"]
    assert result["skipped"] == {
        "cn02": "already at 1.1.3",
        "cn04": "down, allowed by allow_down: not touched",
    }
    assert result["control"] == {"minion": "cranectl", "todo": True, "from": "1.1.2"}
    assert result["login"] == ["login01"]


def test_down_node_not_allowed_stays_in_plan():
    result = plan(compute("cn01", "cn02", cn02={"down": True}))
    assert result["batches"] == [["cn01"], ["cn02"]]


def test_rerun_after_everything_done_has_nothing_to_do():
    result = cu.build_plan(
        "upgrade", "1.1.3", "rolling", "cranectl", "1.1.3",
        compute=compute("cn01", "cn02", version="1.1.3"), login={"login01": "1.1.3"},
    )  # fmt: skip
    assert result["batches"] == []
    assert result["control"]["todo"] is False
    assert result["login"] == []
    text = cu.render_plan(result)
    assert "control cranectl: skipped (already at 1.1.3)" in text
    assert "compute: nothing to do" in text


def test_restart_does_every_node():
    result = cu.build_plan(
        "restart", None, "rolling", "cranectl", "1.1.3",
        compute=compute("cn01", "cn02", "cn03", version="1.1.3"), batch="50%",
    )  # fmt: skip
    assert result["batches"] == [["cn01"], ["cn02", "cn03"]]
    assert result["control"]["todo"] is True
    assert result["reason"] == "crane-formula: rolling restart"


def test_all_at_once_is_one_batch_without_canary():
    result = cu.build_plan(
        "upgrade", "1.1.3", "all-at-once", "cranectl", "1.1.2",
        compute=compute("cn01", "cn02", "cn03"), batch=1,
    )  # fmt: skip
    assert result["batches"] == [["cn01", "cn02", "cn03"]]
    assert result["canary"] == []


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="strategy"):
        cu.build_plan("upgrade", "1.1.3", "yolo", "c", "1", compute={})


def test_admin_drains_are_listed_ours_are_not():
    nodes = compute(
        "cn01", "cn02", "cn03",
        cn01={"reason": "disk replacement"}, cn02={"reason": "crane-formula: upgrade to 1.1.3"},
    )  # fmt: skip
    result = plan(nodes)
    assert result["admin_drained"] == {"cn01": "disk replacement"}
    assert "keep drained cn01: 'disk replacement'" in cu.render_plan(result)


def test_render_plan_lists_order_batches_and_skips():
    text = cu.render_plan(plan(compute("cn01", "cn02", "cn03", cn03={"version": "1.1.3"})))
    lines = text.splitlines()
    assert lines[0] == (
        "Plan: upgrade to 1.1.3 (rolling), drain reason 'crane-formula: upgrade to 1.1.3'"
    )
    assert lines[1].startswith("  1. control cranectl: back up cranectld's DB, upgrade to 1.1.3")
    assert lines[2:] == [
        "  2. login: login01",
        "  canary: cn01",
        "  batch 2: cn02",
        "  skip cn03: already at 1.1.3",
    ]


@pytest.mark.parametrize(
    ("reason", "ours"),
    [
        ("crane-formula: upgrade to 1.1.3", True),
        ("crane-formula: rolling restart failed at drain: x", True),
        ("maintenance", False),
        ("", False),
        (None, False),
        ("Prolog failed", False),
    ],
)
def test_which_drains_are_ours(reason, ours):
    assert cu.is_ours(reason) is ours


def test_failure_reason_is_one_safe_line():
    reason = cu.failure_reason(
        cu.drain_reason("upgrade", "1.1.4"),
        "state.apply crane",
        'craned "died"\nexit 1' + "x" * 300,
    )
    assert reason.startswith(
        "crane-formula: upgrade to 1.1.4 failed at state.apply crane: craned 'died' exit 1"
    )
    assert len(reason) == cu.MAX_REASON
    assert '"' not in reason and "\n" not in reason
    assert cu.is_ours(reason)


@pytest.mark.parametrize(
    ("current", "target", "down"),
    [("1.1.3", "1.1.2", True), ("1.1.2", "1.1.3", False), ("1.1.9", "1.1.10", False),
     ("1.1.3", "1.1.3", False), (None, "1.1.3", False), ("2.0", "1.9.9", True)],
)  # fmt: skip
def test_downgrade_detection(current, target, down):
    assert cu.is_downgrade(current, target) is down


def summary_report(**kw):
    report = {
        "plan": plan(compute("cn01", "cn02")),
        "ok": True,
        "done": ["cranectl", "cn01", "cn02"],
        "failed": {},
        "skipped": {},
        "not_reached": [],
        "pillar_version": "1.1.2",
    }
    report.update(kw)
    return report


def test_summary_tells_to_update_the_pillar():
    text = cu.summary(summary_report())
    assert text.startswith("SUCCESS: Plan: upgrade to 1.1.3")
    assert "set crane:version to '1.1.3' in the pillar" in text
    assert "would change the packages back" in text


def test_summary_after_failure_says_what_to_do():
    text = cu.summary(
        summary_report(
            ok=False, done=["cranectl"], failed={"cn01": "state.apply crane: craned died"},
            not_reached=["cn02"], pillar_version="1.1.3",
        )
    )  # fmt: skip
    assert text.startswith("FAILED: ")
    assert "failed: cn01: state.apply crane: craned died" in text
    assert "not reached (untouched): cn02" in text
    assert "Run the same command again" in text
    assert "set crane:version" not in text


def n(resource="idle", control="none"):
    return {"resource": resource, "control": control}


def test_availability_figures():
    samples = [
        (0.0, {"a": n(), "b": n(), "c": n()}),
        (1.0, {"a": n(control="drain"), "b": n(control="drain"), "c": n()}),
        (2.0, None),
        (3.0, None),
        (4.0, {"a": n("down", "drain"), "b": n(), "c": n()}),
        (6.0, {"a": n(), "b": n(), "c": n(control="drain")}),
        (7.0, {"a": n(), "b": n(), "c": n(control="drain")}),
    ]
    figures = availability(samples)
    assert figures["total"] == 7.0
    assert figures["max_unavailable"] == 2
    assert figures["longest_node"] == {"node": "a", "seconds": 5.0}
    assert figures["per_node"] == {"a": 5.0, "b": 3.0, "c": 1.0}
    assert figures["control_gaps"] == [2.0]


def test_availability_ignores_admin_drained_nodes():
    samples = [
        (0.0, {"a": n(control="drain"), "b": n()}),
        (1.0, {"a": n(control="drain"), "b": n("down")}),
    ]
    figures = availability(samples, ignore=["a"])
    assert figures["max_unavailable"] == 1
    assert figures["per_node"] == {"b": 0.0}
    assert availability([])["total"] == 0.0


def test_dry_run_summary_says_nothing_changed():
    assert cu.summary(summary_report(dry_run=True, done=[])).startswith(
        "DRY RUN, nothing changed: Plan: upgrade to 1.1.3"
    )


def test_summary_names_pending_drains_and_undrained_nodes():
    text = cu.summary(
        summary_report(
            ok=False, drains_pending={"cn04": "bad fan"},
            not_drained={"cn01": "down: CraneSched refuses to drain a DOWN node"},
            cranectld="started again after the failure",
        )
    )  # fmt: skip
    assert "drain pending: cn04 is down" in text
    assert "keeps 'bad fan'" in text
    assert "not drained: cn01: down: CraneSched refuses to drain a DOWN node" in text
    assert "cranectld: started again after the failure" in text


@pytest.mark.parametrize(
    ("version", "release"),
    [("1.1.3", "1.1.3"), ("1.1.3.1", "1.1.3"), ("1.1.2+dev", "1.1.2"), ("1.1.3-1", "1.1.3"),
     ("1:1.1.3-2.el9", "1.1.3"), ("a1b2c3d", None), ("", None), (None, None), ("1.1", "1.1"),
     ("1.1.30", "1.1.30")],
)  # fmt: skip
def test_release_of_package_and_craned_versions(version, release):
    assert cu.release(version) == release


@pytest.mark.parametrize(
    ("current", "target", "same"),
    [("1.1.3.1", "1.1.3", True), ("1.1.3-1", "1.1.3", True), ("1.1.2+dev", "1.1.3", False),
     ("1.1.2+dev", "1.1.2", True), ("a1b2c3d", "1.1.3", False), ("1.1.30", "1.1.3", False),
     (None, "1.1.3", False)],
)  # fmt: skip
def test_same_release_compares_the_x_y_z(current, target, same):
    assert cu.same_release(current, target) is same


@pytest.mark.parametrize(
    ("current", "target", "down"),
    [("1.1.3.1", "1.1.3", False), ("1.1.3-1", "1.1.2", True), ("1.1.2+dev", "1.1.2", False),
     ("1.1.2+dev", "1.1.1", True), ("a1b2c3d", "1.1.1", False), ("1.1.3", "a1b2c3d", False)],
)  # fmt: skip
def test_downgrade_detection_on_reported_versions(current, target, down):
    assert cu.is_downgrade(current, target) is down


def test_plan_takes_a_node_reporting_a_build_suffix_as_done():
    nodes = compute(
        "cn01", "cn02", "cn03", cn01={"version": "1.1.3.1"}, cn02={"version": "1.1.3-1"}
    )
    result = plan(nodes)
    assert result["batches"] == [["cn03"]]
    assert result["skipped"]["cn01"] == "already at 1.1.3"


def test_restart_plan_skips_what_an_unfinished_run_did():
    done = {"cranectl": "done by the unfinished run", "cn01": "done by the unfinished run"}
    result = cu.build_plan(
        "restart", None, "rolling", "cranectl", "1.1.2", compute=compute("cn01", "cn02"),
        login={"login01": "1.1.2"}, done=done,
    )  # fmt: skip
    assert result["control"]["todo"] is False
    assert result["batches"] == [["cn02"]]
    assert result["login"] == ["login01"]
    assert result["skipped"]["cn01"] == "done by the unfinished run"


@pytest.mark.parametrize(
    ("hashes", "expected", "differs"),
    [({"ctl": "b", "cn01": "a", "cn02": "a"}, "a", ["ctl"]),  # hand-edited on the control node
     ({"ctl": "a", "cn01": "a", "cn02": "b"}, "a", ["cn02"]),
     ({"ctl": "a", "cn01": "b"}, "a", ["cn01"]),  # a tie: the control node's
     ({"ctl": "a"}, "a", []), ({}, None, [])],
)  # fmt: skip
def test_odd_hashes_name_the_odd_one_out(hashes, expected, differs):
    assert cu.odd_hashes(hashes, prefer="ctl") == (expected, differs)
