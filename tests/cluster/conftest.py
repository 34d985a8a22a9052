"""Fixtures booting a real multi-node test cluster (systemd-nspawn nodes, a salt-master).

``cluster`` is session-scoped and boots the demo shape on its own bridge and subnet, so it can
run beside ``make demo``.  Override ``cluster_spec`` (in a nested conftest, or with indirect
parametrisation) for another shape.  Without root or systemd-nspawn the tests are skipped,
except under ``CI=true``, where that is an error.
"""

from __future__ import annotations

import os
import shutil

import pytest

from .formula import SPENT
from .harness import Cluster
from .spec import env_spec

REQUIRED_COMMANDS = ("systemd-nspawn", "debootstrap", "nsenter", "ip")
TIMINGS: dict[str, dict] = {}  # cluster name -> timings, printed in the terminal summary


def environment_problem() -> str | None:
    """Why this host cannot run cluster tests, or None."""
    if os.geteuid() != 0:
        return "cluster tests need root"
    missing = [c for c in REQUIRED_COMMANDS if shutil.which(c) is None]
    if missing:
        return f"cluster tests need {', '.join(missing)}"
    return None


def require_cluster_environment() -> None:
    """Skip (or, under CI=true, fail) when the host cannot boot test nodes."""
    problem = environment_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI=true: not skipping)", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def cluster_spec(request):
    """Shape of the session cluster: the demo shape unless parametrised."""
    # CRANE_FORMULA_TEST_NET=name:subnet moves the session cluster.
    return getattr(request, "param", None) or env_spec(
        "CRANE_FORMULA_TEST_NET", "cftest:10.213.8.0/24"
    )


@pytest.fixture(scope="session")
def cluster(cluster_spec):
    """A booted cluster whose minions all answer; torn down (and checked) at the end."""
    require_cluster_environment()
    booted = Cluster(cluster_spec, log=lambda msg: print(f"[cluster] {msg}"))
    booted.start()
    try:
        yield booted
    finally:
        left = booted.stop()
        TIMINGS[cluster_spec.name] = dict(booted.timings)
        if left:
            pytest.fail(f"teardown left behind: {left}", pytrace=False)


def pytest_terminal_summary(terminalreporter):
    """One line per booted cluster: rootfs build, boot until all minions answer, teardown."""
    for name, timings in TIMINGS.items():
        parts = [f"{key}={value:.1f}s" for key, value in timings.items() if value is not None]
        terminalreporter.write_line(f"cluster {name}: {' '.join(parts)}")
    if SPENT:
        parts = [f"{label}={seconds:.1f}s" for label, seconds in SPENT.items()]
        terminalreporter.write_line(f"state.apply crane: {' '.join(parts)}")
