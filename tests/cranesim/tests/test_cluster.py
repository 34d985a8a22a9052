"""A simulated cluster on loopback: registration, cinfo, ccontrol, timeouts, jobs, restarts."""

import json
import os
import signal

import pytest

from tests.cranesim.tests.harness import wait_for

DB_FILES = ("var", "fix", "resv", "step_var", "step_fix")

DRAIN_OK = (
    "Nodes {} modified successfully, please wait for a few minutes for the node state to "
    "fully update.\n"
)


def test_two_craneds_register_and_show_idle_in_json(cluster):
    reply = cluster.cinfo_json()
    assert reply["ok"] is True
    [part] = reply["partitions"]
    assert part["name"] == "CPU*"
    assert part["state"] == "PARTITION_UP"
    assert part["craned_lists"] == [
        {
            "resource_state": "CRANE_IDLE",
            "control_state": "CRANE_NONE",
            "power_state": "CRANE_POWER_IDLE",
            "count": 2,
            "craned_list_regex": "cn[01-02]",
            "reason": "",
        },
        {
            "resource_state": "CRANE_DOWN",
            "control_state": "CRANE_NONE",
            "power_state": "CRANE_POWER_IDLE",
            "count": 1,
            "craned_list_regex": "cn03",
            "reason": "",
        },
    ]


def test_cinfo_table_is_exact(cluster):
    result = cluster.run("cinfo")
    assert result.returncode == 0
    assert result.stdout == (  # tablewriter pads every cell, the last one too
        "PARTITION AVAIL NODES STATE            NODELIST  \n"
        "CPU*      up    2     idle[power_idle] cn[01-02] \n"
        "CPU*      up    1     down[failed]     cn03      \n"
    )
    no_header = cluster.run("cinfo", "-N", "-r")
    assert no_header.stdout == "CPU* up 2 idle[power_idle] cn[01-02] \n"


def test_cinfo_filters_and_missing_nodes(cluster):
    dead = cluster.run("cinfo", "-d", "-N")
    assert dead.stdout.split() == ["CPU*", "up", "1", "down[failed]", "cn03"]
    missing = cluster.run("cinfo", "-n", "cn01,cn09")
    assert "cn01" in missing.stdout and "cn09" not in missing.stdout
    assert (
        missing.stderr
        == "Requested nodes do not exist or do not meet the given filter condition: cn09.\n"
    )
    none = cluster.run("cinfo", "-p", "GPU")
    assert none.returncode == 0 and none.stdout == ""
    assert none.stderr == "No matching partitions were found for the given filter.\n"
    bad = cluster.run("cinfo", "-t", "busy")
    assert bad.returncode == 2 and "Invalid resource state given: busy" in bad.stderr


def test_show_node_format_and_version(cluster):
    result = cluster.run("ccontrol", "show", "node", "cn01")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "NodeName=cn01 State=idle[power_idle] CPU=2.00 AllocCPU=0.00 FreeCPU=2.00"
    assert lines[1] == "\tRealMemory=2048M AllocMem=0 FreeMem=2048M"
    assert lines[2] == "\tGres=None AllocGres=None FreeGres=None"
    assert lines[3] == "\tSockets=1"
    assert lines[4] == "\tPartition=CPU RunningJob=0 Version=1.1.2"
    assert lines[5].startswith("\tOs=Linux ")
    assert len(lines) == 8
    never = cluster.run("ccontrol", "show", "node", "cn03").stdout.splitlines()
    assert never[0].startswith("NodeName=cn03 State=down[power_idle] ")
    assert never[4:] == [
        "\tPartition=CPU RunningJob=0 Version=unknown",
        "\tOs=unknown  ",
        "\tBootTime=unknown CranedStartTime=unknown",
        "\tLastBusyTime=unknown",
    ]
    unknown = cluster.run("ccontrol", "show", "node", "cn09")
    assert (unknown.returncode, unknown.stderr) == (1, "show nodes failed: Node cn09 not found.\n")


def test_drain_and_resume_round_trip(cluster):
    drain = cluster.run(
        "ccontrol", "update", "nodename=cn[01-02]", "state=DRAIN", "reason=kernel update"
    )
    assert (drain.returncode, drain.stdout) == (0, DRAIN_OK.format("cn01, cn02"))
    assert cluster.wait_state("cn01", "CRANE_IDLE", "CRANE_DRAIN")
    listed = cluster.run("cinfo", "-R", "-N").stdout.splitlines()
    assert [row.rstrip().split(None, 5) for row in listed] == [
        ["CPU*", "up", "1", "down[failed]", "cn03"],
        ["CPU*", "up", "2", "idle(drain)[power_idle]", "cn[01-02]", "kernel update"],
    ]
    resume = cluster.run("ccontrol", "update", "NodeName=cn01", "State=Resume", "reason=")
    assert (resume.returncode, resume.stdout) == (0, DRAIN_OK.format("cn01"))
    assert cluster.node_states()["cn01"] == ("CRANE_IDLE", "CRANE_NONE")
    assert cluster.node_states()["cn02"] == ("CRANE_IDLE", "CRANE_DRAIN")


def test_update_argument_errors(cluster):
    no_reason = cluster.run("ccontrol", "update", "nodename=cn01", "state=drain", "reason=")
    assert (no_reason.returncode, no_reason.stderr) == (
        2,
        "change node state failed: You must specify a reason when draining a node.\n",
    )
    missing = cluster.run("ccontrol", "update", "nodename=cn01", "state=resume")
    assert (missing.returncode, missing.stderr) == (2, "missing required fields: reason\n")
    bad_state = cluster.run("ccontrol", "update", "nodename=cn01", "state=up", "reason=x")
    assert bad_state.returncode == 2
    assert bad_state.stderr == (
        "change node state failed: Invalid state given: up. "
        "Valid states are: drain, resume, on, off, sleep, wake.\n"
    )


def test_down_and_unknown_nodes_are_refused(cluster):
    result = cluster.run("ccontrol", "update", "nodename=cn[02-03]", "state=drain", "reason=r")
    assert result.returncode == 2
    assert result.stdout == DRAIN_OK.format("cn02")
    assert result.stderr == (
        "change node state failed: Failed to modify node: cn03. "
        "Reason: Can't change the state of a DOWN node!.\n\n"
    )
    unknown = cluster.run("ccontrol", "update", "nodename=cn09", "state=drain", "reason=r")
    assert unknown.stderr == (
        "change node state failed: Failed to modify node: cn09. Reason: Invalid node name "
        "specified..\n\n"
    )


DOWN_REFUSED = (
    "change node state failed: Failed to modify node: cn02. "
    "Reason: Can't change the state of a DOWN node!.\n"
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stopped_or_crashed_craned_is_down_at_once_and_cannot_be_drained(sim, sig):
    sim.config["CraneCtld"]["CranedTimeout"] = 600  # far beyond the wait below
    sim.start_ctld()
    sim.start_craned("cn01")
    cn02 = sim.start_craned("cn02")
    assert sim.wait_state("cn01", "CRANE_IDLE") and sim.wait_state("cn02", "CRANE_IDLE")
    sim.stop(cn02, sig)
    assert sim.wait_state("cn02", "CRANE_DOWN", timeout=20)
    assert "Craned cn02 is down now." in sim.log("ctld.out")
    shown = sim.run("ccontrol", "show", "node", "cn02").stdout
    assert shown.startswith("NodeName=cn02 State=down[power_idle] ")
    table = sim.run("cinfo", "-N", "-d").stdout
    assert table.split() == ["CPU*", "up", "2", "down[failed]", "cn[02-03]"]
    drain = sim.run("ccontrol", "update", "nodename=cn02", "state=drain", "reason=upgrade")
    assert drain.returncode == 2
    assert drain.stderr.startswith(DOWN_REFUSED)
    assert sim.node_states()["cn01"] == ("CRANE_IDLE", "CRANE_NONE")


def test_frozen_craned_goes_down_only_after_the_timeout(cluster):
    cn02 = cluster.procs[2]
    os.killpg(cn02.pid, signal.SIGSTOP)  # its channel stays open, its pings stop
    try:
        assert cluster.node_states()["cn02"] == ("CRANE_IDLE", "CRANE_NONE")
        assert cluster.wait_state("cn02", "CRANE_DOWN", timeout=15)
        assert "Craned cn02 is down now." in cluster.log("ctld.out")
    finally:
        os.killpg(cn02.pid, signal.SIGCONT)


def test_restarted_craned_registers_again(cluster):
    cluster.stop(cluster.procs[1])
    assert cluster.wait_state("cn01", "CRANE_DOWN", timeout=15)
    cluster.start_craned("cn01")
    assert cluster.wait_state("cn01", "CRANE_IDLE")


def test_fake_job_allocates_and_survives_ctld_restart(cluster):
    submit = cluster.run("cranesim-job", "--node", "cn01", "--seconds", "6")
    assert submit.returncode == 0, submit.stderr
    assert cluster.node_states()["cn01"] == ("CRANE_ALLOC", "CRANE_NONE")
    mix = cluster.run("cranesim-job", "--node", "cn02", "--seconds", "6", "--cpus", "1")
    assert mix.returncode == 0 and cluster.node_states()["cn02"] == ("CRANE_MIX", "CRANE_NONE")
    cluster.stop(cluster.procs[0])
    assert cluster.run("cinfo").returncode == 3
    cluster.start_ctld()
    assert cluster.wait_state("cn01", "CRANE_ALLOC")
    assert "RunningJob=1 " in cluster.run("ccontrol", "show", "node", "cn01").stdout
    assert cluster.wait_state("cn01", "CRANE_IDLE", timeout=20)
    assert wait_for(lambda: job_states(cluster) == ["Completed", "Completed"])


def job_states(cluster):
    return [job["status"] for job in json.loads(cluster.run("cranesim-job", "--list").stdout)]


def test_fake_job_survives_craned_restart(cluster):
    assert cluster.run("cranesim-job", "--node", "cn02", "--seconds", "5").returncode == 0
    cluster.stop(cluster.procs[2])
    cluster.start_craned("cn02")
    assert wait_for(
        lambda: "Craned registered" in cluster.log("cn02.out").split("Craned is ending.")[-1]
    )
    assert cluster.node_states()["cn02"] == ("CRANE_ALLOC", "CRANE_NONE")
    assert cluster.wait_state("cn02", "CRANE_IDLE", timeout=20)
    jobs = json.loads(cluster.run("cranesim-job", "--list").stdout)
    assert jobs[0]["status"] == "Completed"


def test_drained_node_refuses_jobs_and_restart_clears_drain(cluster):
    cluster.run("ccontrol", "update", "nodename=cn01", "state=drain", "reason=maint")
    assert cluster.run("cranesim-job", "--node", "cn01", "--seconds", "5").returncode == 4
    cluster.stop(cluster.procs[0])
    cluster.start_ctld()
    assert cluster.wait_state("cn01", "CRANE_IDLE", "CRANE_NONE")


def test_cli_exit_3_when_ctld_is_down(cluster):
    cluster.stop(cluster.procs[0])
    result = cluster.run("cinfo")
    assert (result.returncode, result.stdout) == (3, "")
    assert (
        result.stderr == "Failed to query cluster information: Connection to CraneCtld is broken.\n"
    )
    update = cluster.run("ccontrol", "update", "nodename=cn01", "state=drain", "reason=r")
    assert (update.returncode, update.stderr) == (
        2,
        "change node state failed: Failed to modify node state: Connection to CraneCtld is "
        "broken.\n",
    )


def test_unknown_host_is_rejected_and_not_listed(sim):
    sim.config["Nodes"].append({"name": "cn04", "cpu": 1, "memory": "1G"})
    sim.config["Partitions"].append({"name": "EXTRA", "nodes": "cn04"})
    craned_config = sim.node_config("cn04")
    del sim.config["Nodes"][1]
    del sim.config["Partitions"][1]
    sim.start_ctld()
    sim.start_craned("cn04", config=craned_config)
    assert wait_for(lambda: "Reject register request from unknown node cn04" in sim.log("ctld.out"))
    assert "[W " in sim.log("ctld.out")
    assert "cn04" not in sim.run("cinfo").stdout


def test_config_crc_mismatch_is_only_logged(sim):
    sim.start_ctld()
    sim.start_craned("cn01", config=sim.node_config("cn01", CranedDebugLevel="debug"))
    assert sim.wait_state("cn01", "CRANE_IDLE")
    assert "CranedNode #cn01 appears to have a diffrent config.yaml than the CraneCtld." in sim.log(
        "ctld.out"
    )


def test_daemons_log_to_file_and_stderr(cluster):
    log_file = cluster.tmp / "ctld" / "cranectld" / "cranectld.log"
    assert "CraneCtld service ready." in log_file.read_text()
    assert "CraneCtld service ready." in cluster.log("ctld.out")
    craned_log = cluster.tmp / "cn01" / "craned" / "craned.log"
    assert "Found this machine cn01 in Nodes" in craned_log.read_text()


def test_background_mode_forks_and_parent_exits_zero(sim):
    sim.config["CraneCtldForeground"] = False
    db = sim.write("database.yaml", sim.database)
    result = sim.run("cranectld", "-D", str(db))
    assert result.returncode == 0
    try:
        assert wait_for(lambda: sim.cinfo_json() is not None)
        second = sim.run("cranectld", "-D", str(db))
        assert second.returncode == 1
        assert "There is another CraneCtld instance running. Exiting..." in second.stderr
    finally:
        _kill_from_lock_holder(sim)


def _kill_from_lock_holder(sim):
    """The daemon is not our child: find it by the lock file it holds and kill it."""
    lock = str(sim.tmp / "ctld" / "cranectld" / "cranectld.lock")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == lock for fd in fds):
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            continue


def test_craned_reregisters_soon_after_a_ctld_restart(sim):
    sim.config["Craned"]["PingInterval"] = 60
    sim.config["CraneCtld"]["CranedTimeout"] = 120
    ctld = sim.start_ctld()
    sim.start_craned("cn01")
    assert sim.wait_state("cn01", "CRANE_IDLE")
    sim.stop(ctld)
    sim.start_ctld()
    assert sim.wait_state("cn01", "CRANE_IDLE", timeout=15)
    assert "Channel to CraneCtld is broken, registering again." in sim.log("cn01.out")


def test_health_check_drains_on_memory_mismatch(sim):
    sim.config["Craned"]["NodeHealthCheckInterval"] = 1
    sim.config["Nodes"][0]["memory"] = "1K"
    sim.start_ctld()
    sim.start_craned("cn01")
    assert sim.wait_state("cn01", "CRANE_IDLE", "CRANE_DRAIN")
    rows = sim.run("cinfo", "-R", "-N").stdout.splitlines()
    assert rows[-1].rstrip().split(None, 5)[3:] == [
        "idle(drain)[power_idle]",
        "cn01",
        "Mem mismatch",
    ]


def test_health_check_drains_on_missing_cpus(sim):
    sim.config["Craned"]["NodeHealthCheckInterval"] = 1
    sim.config["Nodes"][0]["cpu"] = 100000
    sim.start_ctld()
    sim.start_craned("cn01")
    assert sim.wait_state("cn01", "CRANE_IDLE", "CRANE_DRAIN")
    assert "CPU count mismatch" in sim.run("cinfo", "-R").stdout


def test_keepalived_alive_file_and_shared_lock(sim):
    shared = sim.tmp / "shared"
    sim.config["Keepalived"] = {"CraneSharedBaseDir": f"{shared}/"}
    ctld = sim.start_ctld()
    alive = sim.tmp / "ctld" / "cranectld" / "cranectld.alive"
    assert wait_for(alive.exists)
    assert (shared / "cranectld" / "cranectld.lock").exists()
    db_files = sorted(path.name for path in (shared / "cranectld").glob("embedded.db*"))
    assert db_files == [f"embedded.db{name}" for name in sorted(DB_FILES)]
    sim.stop(ctld)
    assert ctld.returncode == 0 and not alive.exists()
