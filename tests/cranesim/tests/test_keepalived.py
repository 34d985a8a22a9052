"""cranectld with a ``Keepalived:`` section: a control pair sharing one directory.

Each cranectld has its own local ``CraneBaseDir`` (log, alive file); the lock and the embedded
DB are in ``CraneSharedBaseDir``, so the second one refuses while the first holds the lock and
finds the first one's jobs once it has stopped.
"""

import json
import signal

from tests.cranesim.tests.harness import wait_for

ANOTHER = "There is another CraneCtld instance running. Exiting..."


def _pair(sim):
    shared = sim.tmp / "shared"
    shared.mkdir()
    sim.config["Keepalived"] = {"CraneSharedBaseDir": f"{shared}/"}
    return shared


def _start(sim, local):
    sim.config["CraneBaseDir"] = f"{sim.tmp}/{local}/"
    return sim.start_ctld()


def _alive(sim, local):
    return sim.tmp / local / "cranectld" / "cranectld.alive"


def _ready(sim):
    return wait_for(lambda: sim.run("cinfo").returncode == 0)


def test_backup_refuses_while_master_holds_the_shared_lock(sim):
    _pair(sim)
    master = _start(sim, "ctl1")
    assert _ready(sim) and _alive(sim, "ctl1").exists()
    backup = _start(sim, "ctl2")
    assert backup.wait(20) == 1
    assert ANOTHER in sim.log("ctld.out")
    assert not _alive(sim, "ctl2").exists()
    assert master.poll() is None


def test_backup_takes_over_the_jobs_from_the_shared_db(sim):
    shared = _pair(sim)
    master = _start(sim, "ctl1")
    sim.start_craned("cn01")
    assert sim.wait_state("cn01", "CRANE_IDLE")
    assert sim.run("cranesim-job", "--node", "cn01", "--seconds", "300").returncode == 0
    sim.stop(master)
    assert master.returncode == 0 and not _alive(sim, "ctl1").exists()
    assert (shared / "cranectld" / "embedded.dbvar").exists()
    assert not (sim.tmp / "ctl1" / "cranectld" / "embedded.dbvar").exists()
    _start(sim, "ctl2")
    assert sim.wait_state("cn01", "CRANE_ALLOC")
    assert _alive(sim, "ctl2").exists()
    jobs = json.loads(sim.run("cranesim-job", "--list").stdout)
    assert [job["status"] for job in jobs] == ["Running"]


def test_killed_cranectld_leaves_its_alive_file_and_starts_again_over_it(sim):
    _pair(sim)
    ctld = _start(sim, "ctl1")
    assert _ready(sim)
    sim.stop(ctld, signal.SIGKILL)
    assert _alive(sim, "ctl1").exists()  # what keepalived's check script looks for
    again = _start(sim, "ctl1")
    assert _ready(sim) and again.poll() is None


def test_alive_file_that_cannot_be_created_stops_cranectld(sim):
    _pair(sim)
    alive = _alive(sim, "ctl1")
    alive.parent.mkdir(parents=True)
    alive.symlink_to(sim.tmp / "missing" / "alive")  # dangling: open(O_CREAT) fails
    ctld = _start(sim, "ctl1")
    assert ctld.wait(20) == 1
    out = sim.log("ctld.out")
    assert f"Create file {alive} failed: No such file or directory" in out
    assert not alive.is_symlink()  # the clean-up on the way out removes the link itself


def test_alive_file_folder_that_cannot_be_created_stops_cranectld(sim):
    _pair(sim)
    sim.config["Keepalived"]["CraneCtldAliveFile"] = "blocker/cranectld.alive"
    (sim.tmp / "ctl1").mkdir()
    (sim.tmp / "ctl1" / "blocker").write_text("")
    ctld = _start(sim, "ctl1")
    assert ctld.wait(20) == 1
    assert "Failed to create folders for CraneCtld alive file!" in sim.log("ctld.out")


def test_absolute_alive_file_and_null_shared_dir_as_yaml_cpp_reads_them(sim):
    sim.config["Keepalived"] = {
        "CraneSharedBaseDir": None,
        "CraneCtldAliveFile": str(sim.tmp / "elsewhere" / "alive"),
    }
    sim.config["CraneCtldMutexFilePath"] = str(sim.tmp / "lock")  # absolute: under no base
    ctld = _start(sim, "ctl1")
    assert _ready(sim), sim.log("ctld.out")
    assert (sim.tmp / "elsewhere" / "alive").exists() and (sim.tmp / "lock").exists()
    assert (sim.tmp / "null" / "cranectld" / "embedded.dbvar").exists()  # relative to the cwd
    sim.stop(ctld)
    assert not (sim.tmp / "elsewhere" / "alive").exists()


def test_empty_keepalived_section_is_a_section_without_the_shared_dir(sim):
    sim.config["Keepalived"] = None  # "Keepalived:" with nothing under it
    ctld = _start(sim, "ctl1")
    assert ctld.wait(20) == 1
    assert "Keepalived.CraneSharedBaseDir is not set in configuration file." in sim.log("ctld.out")
