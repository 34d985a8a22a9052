"""``crane.backup_db`` against the simulated cranectld: the backup holds every file of the
embedded DB prefix, and copying it back brings the jobs back after a restart."""

import json
import shutil

import pytest

from tests.cranesim.tests.harness import Sim
from tests.support.caller import example_pillar
from tests.support.dunder import load


@pytest.fixture
def sim(tmp_path):
    cluster = Sim(tmp_path)
    yield cluster
    cluster.stop_all()


def crane_module(sim):
    pillar = example_pillar(control=True)
    pillar["crane"]["config"] = sim.config
    pillar["crane"]["database"] = sim.database
    return load(
        "_modules",
        __salt__={"service.status": lambda name: False},
        __pillar__=pillar,
        __grains__={"host": "cranectl", "nodename": "cranectl", "id": "cranectl"},
    )


def job_ids(sim):
    listed = sim.run("cranesim-job", "--list")
    return [job["job_id"] for job in json.loads(listed.stdout)] if listed.returncode == 0 else None


def test_a_backup_restores_the_jobs(sim):
    sim.start_ctld()
    sim.start_craned("cn01")
    assert sim.wait_state("cn01", "CRANE_IDLE")
    assert sim.run("cranesim-job", "--node", "cn01", "--seconds", "300").returncode == 0
    sim.stop(sim.procs[0])
    backup = crane_module(sim).backup_db()
    assert len(backup["files"]) == 5  # var, fix, resv, step_var, step_fix

    db_dir = sim.tmp / "ctld" / "cranectld"
    for path in db_dir.glob("embedded.db*"):  # the DB is lost
        path.unlink()
    for copy in backup["files"]:
        shutil.copy2(copy, db_dir)
    sim.start_ctld()
    assert sim.wait_state("cn01", "CRANE_ALLOC")
    assert job_ids(sim) == [1]
