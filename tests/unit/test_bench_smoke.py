"""Smoke run of the benchmark package: ``python -m bench --quick`` in-process.

Asserts the table's shape and that the host-list rows carry numbers; never timings.
"""

import re

import pytest

from bench import registry
from bench.__main__ import main
from bench.table import Row, format_table

# The host-list rows compare against these two; without them (e.g. the Salt 3006 venv)
# the rows would carry no baseline numbers, so the smoke run is skipped there.
pytest.importorskip("hostlist", reason="python-hostlist (a benchmark baseline) not installed")
pytest.importorskip("ClusterShell", reason="ClusterShell (a benchmark baseline) not installed")

NUMBER = r"[0-9][0-9,]*(\.[0-9]+)?"


@pytest.fixture(scope="module")
def quick_rows():
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


def test_main_prints_one_table_with_the_host_list_rows(capsys):
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
