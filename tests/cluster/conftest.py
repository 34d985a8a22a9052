"""Fixtures booting a real multi-node test cluster (systemd-nspawn nodes, a salt-master).

``cluster`` is session-scoped and boots the demo shape on its own bridge and subnet, so it can
run beside ``make demo``.  Override ``cluster_spec`` (in a nested conftest, or with indirect
parametrisation) for another shape.  Without root or systemd-nspawn the tests are skipped,
except under ``CI=true``, where that is an error.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def booted(spec, pillar=None):
    """A booted cluster whose minions all answer, with ``pillar`` (``(sls, top)``) written
    when given; torn down (and checked) on leaving."""
    require_cluster_environment()
    cluster = Cluster(spec, log=lambda msg: print(f"[cluster] {msg}"))
    cluster.start()
    try:
        if pillar is not None:
            cluster.write_pillar(*pillar)
        yield cluster
    finally:
        left = cluster.stop()
        TIMINGS[spec.name] = dict(cluster.timings)
        if left:
            pytest.fail(f"teardown left behind: {left}", pytrace=False)


@pytest.fixture(scope="session")
def cluster(cluster_spec):
    """The session cluster, shared by the test modules that need no cluster of their own.

    Each module deploys the pillar it needs in its set-up and serves the example pillar again
    when it ends, without applying it: the next module's set-up applies what it needs."""
    with booted(cluster_spec) as running:
        yield running


@pytest.fixture(scope="module")
def flow():
    """Outcome of each step of a module's ordered scenario so far (see ``after``)."""
    return {}


def after(flow, step):
    """Skip a step whose predecessor did not pass."""
    if not flow.get(step):
        pytest.skip(f"needs the step '{step}' to pass first")


def pytest_terminal_summary(terminalreporter):
    """One line per booted cluster: rootfs build, boot until all minions answer, teardown."""
    for name, timings in TIMINGS.items():
        parts = [f"{key}={value:.1f}s" for key, value in timings.items() if value is not None]
        terminalreporter.write_line(f"cluster {name}: {' '.join(parts)}")
    if SPENT:
        parts = [f"{label}={seconds:.1f}s" for label, seconds in SPENT.items()]
        terminalreporter.write_line(f"state.apply crane: {' '.join(parts)}")
