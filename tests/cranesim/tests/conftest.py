"""Fixtures for the CraneSched simulator tests (loopback only, every process killed)."""

import pytest

from tests.cranesim.tests.harness import Sim


@pytest.fixture
def sim(tmp_path):
    """An empty simulated cluster; the test starts what it needs."""
    cluster = Sim(tmp_path)
    yield cluster
    cluster.stop_all()


@pytest.fixture
def cluster(sim):
    """cranectld plus craneds on cn01 and cn02, both registered; cn03 never starts."""
    sim.start_ctld()
    sim.start_craned("cn01")
    sim.start_craned("cn02")
    assert sim.wait_state("cn01", "CRANE_IDLE") and sim.wait_state("cn02", "CRANE_IDLE"), (
        sim.log("ctld.out") + sim.log("cn01.out") + sim.log("cn02.out")
    )
    return sim
