"""Smoke run of the benchmark package: ``python -m bench --quick`` in-process.

Asserts the table's shape and that the rows carry numbers (or say why not); never timings.
"""

import re

import pytest

from bench import config_scale, registry, upgrade
from bench.__main__ import main
from bench.table import Row, format_table

NUMBER = r"[0-9][0-9,]*(\.[0-9]+)?"


@pytest.fixture(scope="module")
def baselines():
    # The host-list rows compare against these two; without them (e.g. the Salt 3006 venv)
    # the rows would carry no baseline numbers, so those smoke tests are skipped there.
    pytest.importorskip("hostlist", reason="python-hostlist (a benchmark baseline) not installed")
    pytest.importorskip("ClusterShell", reason="ClusterShell (a benchmark baseline) not installed")


@pytest.fixture(scope="module")
def quick_rows(baselines):
    registry.discover()
    rows, failed = registry.run(quick=True, only="hostlist")
    assert failed == []
    return rows


def test_host_list_rows_compare_ours_with_both_baselines(quick_rows):
    rows = [row for row in quick_rows if row.section == "host lists"]
    baselines = {row.baseline.split()[0] for row in rows}
    assert baselines == {"python-hostlist", "ClusterShell"}
    figures = {row.figure for row in rows}
    assert any("CraneSched unit-test expression" in figure for figure in figures)
    assert any("cinfo paste" in figure for figure in figures)
    assert len(rows) == 4


def test_host_list_rows_are_numeric_and_checked(quick_rows):
    for row in quick_rows:
        assert row.unit == "ms"
        assert row.ours > 0
        assert row.baseline_value > 0
        assert row.ratio == pytest.approx(row.baseline_value / row.ours)
        assert "hosts" in row.note  # the same-host-set verdict (or why not)


def test_main_prints_one_table_with_the_host_list_rows(baselines, capsys):
    assert main(["--quick", "--only", "hostlist"]) == 0
    out = capsys.readouterr().out
    header = [line for line in out.splitlines() if line.startswith("SECTION")]
    assert len(header) == 1
    rows = [line for line in out.splitlines() if line.startswith("host lists")]
    assert len(rows) == 4
    for line in rows:
        assert re.search(rf"{NUMBER} ms .* {NUMBER} ms +{NUMBER}x", line), line


def test_failing_benchmark_becomes_a_row_and_a_failure(monkeypatch):
    def broken(quick):
        raise RuntimeError("boom")

    monkeypatch.setitem(registry._BENCHMARKS, "smoke-failure", broken)
    rows, failed = registry.run(quick=True, only="smoke-failure")
    assert failed == ["smoke-failure"]
    assert rows[0].figure == "benchmark failed"
    assert "RuntimeError: boom" in rows[0].note


def test_module_that_did_not_import_becomes_a_failed_row(monkeypatch):
    monkeypatch.setitem(registry._IMPORT_FAILURES, "smoke-import", "import failed: ImportError")
    rows, failed = registry.run(quick=True, only="smoke-import")
    assert failed == ["smoke-import"]
    assert rows[0].note == "import failed: ImportError"


def test_table_marks_missing_values_and_ratio_direction():
    faster = Row("s", "time", 10.0, "ms", "other", 30.0)
    rate = Row("s", "rate", 200.0, "ops/s", "other", 100.0, higher_is_better=True)
    missing = Row("s", "time", 5.0, "ms", "absent", None, note="not installed")
    assert faster.ratio == pytest.approx(3.0)
    assert rate.ratio == pytest.approx(2.0)
    assert missing.ratio is None
    text = format_table([faster, rate, missing])
    assert "3.0x" in text
    assert "2.0x" in text
    assert "n/a" in text


# --- config at scale -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def config_rows():
    registry.discover()
    rows, failed = registry.run(quick=True, only="config scale")
    assert failed == [], rows
    return rows


def test_config_rows_cover_every_quick_size(config_rows):
    assert len(config_rows) == 5 * len(config_scale.QUICK_SIZES)
    assert {row.section for row in config_rows} == {"config scale"}
    for nodes, groups in config_scale.QUICK_SIZES:
        label = config_scale.label(nodes, groups)
        figures = [row.figure for row in config_rows if label in row.figure]
        assert len(figures) == 5, label
    units = sorted(row.unit for row in config_rows)
    sizes = len(config_scale.QUICK_SIZES)
    assert units == sorted(["ms"] * 3 * sizes + ["MiB"] * sizes + ["KiB"] * sizes)


def test_config_rows_are_numeric_and_name_their_baseline(config_rows):
    for row in config_rows:
        assert row.ours > 0, row
        assert row.baseline_value > 0, row
        assert row.baseline, row
        assert row.ratio == pytest.approx(row.baseline_value / row.ours)


def test_rendered_config_keeps_node_groups_compressed(config_rows):
    sizes = [row for row in config_rows if row.unit == "KiB"]
    assert len(sizes) == len(config_scale.QUICK_SIZES)
    for row in sizes:
        assert "kept compressed (checked)" in row.note
    # same groups, more nodes: the written config does not grow with the node count
    one_group = [row.ours for row in sizes if "in 1 group" in row.figure]
    assert len(one_group) >= 2
    assert max(one_group) - min(one_group) < 0.1


def test_config_rows_report_growth_with_node_count(config_rows):
    grown = [row for row in config_rows if "40 nodes in 1 group" in row.figure]
    assert any(re.search(r"x[0-9.]+ for x4 nodes", row.note) for row in grown)


def test_benchmark_pillar_is_realistic_and_valid():
    config = config_scale.cluster_config(1000, 100)
    assert len(config["Nodes"]) == 100
    assert config["Nodes"][0]["name"] == "cn[0001-0010]"
    assert sum("gres" in group for group in config["Nodes"]) == 10
    assert config_scale.crane_config.validate(config)["valid"]
    hosts = config_scale.crane_config.compute_hosts(config)
    assert len(hosts) == 1000
    assert config_scale.node_names(10000)[-1] == "cn10000"


def test_compressed_check_rejects_expanded_groups():
    config = config_scale.cluster_config(10, 1)
    text = config_scale.crane_config.dump(config)
    config_scale.check_compressed(text, config)
    expanded = dict(
        config, Nodes=[dict(config["Nodes"][0], name=f"cn{n:04d}") for n in range(1, 11)]
    )
    with pytest.raises(AssertionError, match="node groups"):
        config_scale.check_compressed(config_scale.crane_config.dump(expanded), config)


# --- cluster rows in a quick run -----------------------------------------------------------


def test_quick_run_skips_cluster_rows_with_a_reason():
    registry.discover()
    rows, failed = registry.run(quick=True, only="converge")
    assert failed == []
    assert rows
    for row in rows:
        assert row.ours is None
        assert "--quick" in row.note


def test_quick_upgrade_rows_say_why_they_are_not_measured():
    registry.discover()
    rows, failed = registry.run(quick=True, only="upgrade")
    assert failed == []
    assert [row.figure.split(": ")[-1] for row in rows] == [
        "total time",
        "longest single node unavailable",
        "most nodes unavailable at once",
    ]
    for row in rows:
        assert row.ours is None
        assert "--quick" in row.note or "not available yet" in row.note


def test_upgrade_figures_by_engine_step():
    from bench.availability import availability  # noqa: PLC0415

    def nodes(*down):
        return {name: {"resource": "down" if name in down else "idle", "control": "none"}
                for name in ("cn01", "cn02", "cn03")}  # fmt: skip

    samples = [(0.0, nodes()), (1.0, nodes("cn01", "cn02", "cn03")), (2.0, nodes("cn01"))]
    samples += [(3.0, None), (4.0, nodes("cn02")), (5.0, nodes())]
    epochs = [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]
    steps = [
        {"step": "control", "start": 100.5, "end": 101.5},
        {"step": "canary", "start": 101.5, "end": 105.0},
        {"step": "unfinished", "start": 105.0},
    ]
    figures = upgrade.by_step(availability, samples, epochs, steps)
    assert figures == [("control", 3), ("canary", 1)]
