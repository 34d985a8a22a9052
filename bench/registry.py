"""Benchmark registration, discovery and timing helpers shared by the benchmark modules."""

import importlib
import pkgutil
import statistics
import time

import bench
from bench.table import Row

FRAMEWORK_MODULES = {"__main__", "registry", "table"}

_BENCHMARKS = {}
_IMPORT_FAILURES = {}


def benchmark(name):
    """Register ``func(quick) -> list[Row]`` under ``name`` (decorator)."""

    def register(func):
        _BENCHMARKS[name] = func
        return func

    return register


def discover():
    """Import every benchmark module of the package; returns the registered names.

    A module that fails to import is remembered and reported as a failed row by ``run``.
    """
    for module in pkgutil.iter_modules(bench.__path__):
        if module.name in FRAMEWORK_MODULES:
            continue
        try:
            importlib.import_module(f"bench.{module.name}")
        except Exception as exc:  # reported in the table; the other modules still run
            _IMPORT_FAILURES[module.name] = f"import failed: {type(exc).__name__}: {exc}"
    return list(_BENCHMARKS)


def run(quick=False, only=None):
    """Rows of every registered benchmark (``only``: names containing that text).

    A benchmark that raises (or whose module did not import) gives one row saying so;
    returns ``(rows, failed names)``.
    """
    rows, failed = [], []
    for name, reason in _IMPORT_FAILURES.items():
        if not only or only in name:
            failed.append(name)
            rows.append(Row(name, "benchmark failed", None, "", note=reason))
    for name, func in _BENCHMARKS.items():
        if only and only not in name:
            continue
        try:
            rows.extend(func(quick))
        except Exception as exc:  # reported in the table; the others still run
            failed.append(name)
            note = f"{type(exc).__name__}: {exc}"
            rows.append(Row(name, "benchmark failed", None, "", note=note))
    return rows, failed


def time_once(func):
    """Seconds one call of ``func`` takes, and its result."""
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def compare(contenders, repeats):
    """Median seconds of each contender, run in turn ``repeats`` times (noise hits all alike).

    ``contenders`` maps a name to a zero-argument callable; returns ``{name: median seconds}``.
    """
    samples = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, func in contenders.items():
            samples[name].append(time_once(func)[0])
    return {name: statistics.median(times) for name, times in samples.items()}
