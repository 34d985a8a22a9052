"""Every refuse-to-start reason the simulator reproduces: exit status and CraneSched's message."""

import os
import resource
import signal
import socket
import subprocess
import sys

import pytest

from tests.cranesim.tests.harness import wait_for

ABORTED = -signal.SIGABRT
GPU = {"name": "gpu", "type": "a100"}


def run_ctld(sim, args=(), env=None):
    config = sim.ctld_config_path()
    db = sim.write("database.yaml", sim.database)
    argv = [sys.executable, "-m", "cranesim", "cranectld", "-C", str(config), "-D", str(db), *args]
    return subprocess.run(
        argv, env=env or sim.env(), capture_output=True, text=True, timeout=30, check=False
    )


def run_craned(sim, node="cn01", config=None, env=None):
    path = config or sim.node_config(node)
    argv = [sys.executable, "-m", "cranesim", "craned", "-f", str(path)]
    env = env or sim.env(node)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)


def run_tool(sim, *argv, env=None):
    cmd = [sys.executable, "-m", "cranesim", *argv]
    return subprocess.run(
        cmd, env=env or sim.env(), capture_output=True, text=True, timeout=30, check=False
    )


def set_in(data, dotted, value):
    """Set (or, with value None, delete) ``a.b.c`` in nested config data."""
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data.setdefault(key, {})
    if value is None:
        data.pop(last, None)
    elif isinstance(data, list):
        data[int(last)] = value
    else:
        data[last] = value


def kill_lock_holder(lock):
    """A daemonized process is not our child: find it by the lock file it holds."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(lock) for fd in fds):
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            continue


# ---------------------------------------------------------------------------- cranectld
CTLD_CASES = [
    ("ClusterName", "", "ClusterName is empty."),
    ("ClusterName", None, "ClusterName is empty."),
    ("CraneCtld.MaxLogFileSize", "10X", "Illegal memory format."),
    (
        "Keepalived",
        {"CraneCtldAliveFile": "a"},
        "Keepalived.CraneSharedBaseDir is not set in configuration file.",
    ),
    ("Keepalived", [], "Keepalived.CraneSharedBaseDir is not set in configuration file."),
    ("TLS", {"Enabled": True}, "UseTls is true, but CaFilePath is empty"),
    ("Licenses", [{"quantity": 3}], "Illegal licenses name format."),
    ("Licenses", [{"name": "matlab"}], "Illegal licenses quantity format."),
    ("Nodes.0.name", "cn[01-03", "Illegal node name string format."),
    ("Nodes.0.memory", "2T", "Illegal memory format."),
    (
        "Nodes.0.gres",
        [{**GPU, "DeviceFileRegex": "/dev/nvidia[0-"}],
        "Illegal gres gpu:a100 DeviceFileRegex path string format.",
    ),
    (
        "Nodes.0.gres",
        [{**GPU, "DeviceFileList": "/dev/nvidia0"}],
        "Illegal gres gpu:a100 DeviceFileList type. It must be a YAML sequence.",
    ),
    (
        "Nodes.0.gres",
        [{**GPU, "DeviceFileList": ["/dev/nvidia[3-0]"]}],
        "Illegal gres gpu:a100 DeviceFileList entry expands to empty device file list.",
    ),
    ("Partitions.0", {"name": "CPU"}, "The node of the partition CPU was not found"),
    ("Partitions.0", {"nodes": "ALL"}, "Partition name not found"),
    (
        "Partitions.0.nodes",
        "cn[01-03],cn09",
        "Unknown node 'cn09' found in partition 'CPU'. "
        "It must be defined in the Nodes section of the configuration file.",
    ),
    ("Partitions.0.nodes", "cn[01-02]", "Nodes cn03 not belong to any partition"),
    ("DefaultPartition", "GPU", "Unknown default partition GPU"),
    (
        "Preempt",
        {"PreemptType": "fair", "PreemptMode": "OFF"},
        "Unknown PreemptType 'fair'. Valid: none|qos|partition",
    ),
    ("Preempt", {"PreemptType": "qos", "PreemptMode": "OFF"}, "Preempt config inconsistent"),
    ("CraneCtldListenAddr", "localhost", "Listening address is invalid."),
    ("CraneCtldListenPort", 70000, "Listening port is invalid."),
]


@pytest.mark.parametrize(("key", "value", "message"), CTLD_CASES)
def test_cranectld_refuses(sim, key, value, message):
    set_in(sim.config, key, value)
    result = run_ctld(sim)
    assert result.returncode == 1
    assert message in result.stdout + result.stderr


def test_cranectld_early_errors_go_to_the_default_logger_on_stdout(sim):
    sim.config["ClusterName"] = ""
    result = run_ctld(sim)
    assert result.stderr == ""
    assert result.stdout.endswith("] [error] ClusterName is empty.\n")


def test_cranectld_later_errors_use_the_crane_pattern_in_file_and_stderr(sim):
    sim.config["DefaultPartition"] = "GPU"
    result = run_ctld(sim)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("[E ") and line.endswith("][default] Unknown default partition GPU")
    log = (sim.tmp / "ctld" / "cranectld" / "cranectld.log").read_text()
    assert "Unknown default partition GPU" in log


def test_cranectld_bad_debug_level(sim):
    sim.config["CraneCtldDebugLevel"] = "verbose"
    result = run_ctld(sim)
    assert (result.returncode, result.stderr) == (1, "Illegal debug-level format.")


@pytest.mark.parametrize("key", ["Nodes.0.cpu", "Nodes.0.memory", "Nodes.0.name"])
def test_cranectld_silent_exits(sim, key):
    set_in(sim.config, key, None)
    result = run_ctld(sim)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "")


def test_cranectld_partition_memory_limits(sim):
    sim.config["Partitions"][0].update(DefaultMemPerCpu=2048, MaxMemPerCpu=1024)
    result = run_ctld(sim)
    assert result.returncode == 1
    assert (
        "The partition CPU MaxMemPerCpu 1024MB should not be less than DefaultMemPerCpu 2048MB."
        in result.stderr
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("Nodes.0.cpu", "two"), ("Nodes.0.gres", [{"name": "gpu", "DeviceFileRegex": "/dev/null"}])],
)
def test_cranectld_aborts_on_conversion_errors(sim, key, value):
    set_in(sim.config, key, value)
    result = run_ctld(sim)
    assert result.returncode == ABORTED
    assert "terminate called after throwing an instance of" in result.stderr


def test_cranectld_aborts_on_yaml_syntax_error(sim):
    path = sim.ctld_config_path()
    path.write_text("ClusterName: [unclosed\n")
    result = run_tool(sim, "cranectld", "-C", str(path))
    assert result.returncode == ABORTED
    assert "YAML::ParserException" in result.stderr


def test_cranectld_missing_files(sim):
    missing = sim.tmp / "nope.yaml"
    result = run_tool(sim, "cranectld", "-C", str(missing))
    assert result.returncode == 1 and f"Config file '{missing}' not existed" in result.stdout
    db_missing = run_ctld(sim, args=["-D", str(missing)])
    assert db_missing.returncode == 1
    assert f"Database config file '{missing}' not existed" in db_missing.stderr


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ({"CraneCtldDbPath": "x"}, "Unknown Replica Set name"),
        (
            {"DbReplSetName": "rs", "Vault": {"Enabled": False, "Password": "p"}},
            "Unknown Vault Username",
        ),
        ({"DbReplSetName": "rs", "Vault": {"Username": "u"}}, "Unknown Vault Password"),
        (
            {"DbReplSetName": "rs", "CraneEmbeddedDbBackend": "Sqlite"},
            "Invalid embedded database backend: Sqlite",
        ),
    ],
)
def test_cranectld_database_yaml(sim, database, message):
    sim.database = database
    result = run_ctld(sim)
    assert result.returncode == 1
    assert message in result.stderr


def test_cranectld_unusable_base_dir_aborts_like_spdlog(sim):
    blocker = sim.tmp / "blocker"
    blocker.write_text("a file, not a directory")
    sim.config["CraneBaseDir"] = f"{blocker}/"
    result = run_ctld(sim)
    assert result.returncode == ABORTED
    assert "spdlog::spdlog_ex" in result.stderr and "Failed opening file" in result.stderr


def test_cranectld_db_folder_cannot_be_created(sim):
    blocker = sim.tmp / "blocker"
    blocker.write_text("x")
    sim.database["CraneCtldDbPath"] = f"{blocker}/db/embedded.db"
    result = run_ctld(sim)
    assert result.returncode == 1
    assert "Failed to create folders for CraneCtld db files!" in result.stderr


def test_cranectld_tls_without_vault(sim):
    tls = {"Enabled": True}
    for key in (
        "CaFilePath",
        "InternalCertFilePath",
        "InternalKeyFilePath",
        "ExternalCertFilePath",
        "ExternalKeyFilePath",
    ):
        path = sim.tmp / key
        path.write_text("pem")
        tls[key] = str(path)
    sim.config["TLS"] = tls
    result = run_ctld(sim)
    assert result.returncode == 1
    assert "[Security] TLS is enabled but Vault is not enabled." in result.stderr


def test_cranectld_port_in_use(sim):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", sim.internal_port))
        holder.listen()
        result = run_ctld(sim)
    assert result.returncode == 1
    assert "Cannot start internal gRPC server!" in result.stderr


def test_cranectld_flags(sim):
    env = sim.env(CRANESIM_VERSION="1.1.3")
    assert run_tool(sim, "cranectld", "-v", env=env).stdout == "Version: 1.1.3\n"
    assert run_tool(sim, "cranectld", "--help", env=env).returncode == 0
    assert run_tool(sim, "cranectld", "--bogus", env=env).returncode == 1


# ------------------------------------------------------------------------------- craned
def other_group(**gres):
    """A second node group (cn04) that carries the gres entry under test."""
    return {"name": "cn04", "cpu": 1, "memory": "1G", "gres": [{**GPU, **gres}]}


CRANED_GRES_CASES = [
    (
        {
            "DeviceFileRegex": "/dev/null",
            "DeviceCDIRegex": "nvidia.com/gpu=0",
            "DeviceCDIList": ["x"],
        },
        "GRES gpu:a100 has both DeviceCDIRegex and DeviceCDIList configured. Only one is allowed.",
    ),
    (
        {"DeviceFileRegex": "/dev/nvidia[3-0]"},
        "GRES gpu:a100 DeviceFileRegex expanded to zero paths.",
    ),
    (
        {"DeviceFileRegex": "/dev/nvidia[0-"},
        "Illegal gres gpu:a100 DeviceFileRegex path string format.",
    ),
    (
        {"DeviceFileList": ["/dev/x[3-0]"]},
        "GRES gpu:a100 DeviceFileList entry expanded to zero paths.",
    ),
    (
        {"DeviceFileList": "/dev/null"},
        "At least one of DeviceFileRegex or DeviceFileList must be configured for GRES gpu:a100 "
        "device.",
    ),
    (
        {},
        "At least one of DeviceFileRegex or DeviceFileList must be configured for GRES gpu:a100 "
        "device.",
    ),
    (
        {"DeviceFileRegex": "/dev/nvidia[0-1]", "DeviceCDIList": ["nvidia.com/gpu=0"]},
        "GRES gpu:a100 CDI name count (1) does not match device count (2). They must be equal.",
    ),
]


@pytest.mark.parametrize(("gres", "message"), CRANED_GRES_CASES)
def test_craned_gres_rules_apply_to_every_node_group(sim, gres, message):
    sim.config["Nodes"].append(other_group(**gres))
    result = run_craned(sim)
    assert result.returncode == 1
    assert message in result.stderr


def test_craned_duplicate_gres(sim):
    entry = {**GPU, "DeviceFileRegex": "/dev/null"}
    sim.config["Nodes"].append({"name": "cn04", "cpu": 1, "memory": "1G", "gres": [entry, entry]})
    result = run_craned(sim)
    assert result.returncode == 1
    assert (
        "Duplicate GRES definition: gpu:a100 appears more than once in the same node group. "
        "Each (name, type) pair must be unique."
    ) in result.stderr


@pytest.mark.parametrize(
    ("key", "value", "stderr"),
    [
        ("Supervisor", None, "No Supervisor configuration found.\n"),
        (
            "Supervisor.Path",
            "/nonexistent/csupervisor",
            "csupervisor /nonexistent/csupervisor does not exist\n",
        ),
        ("CranedDebugLevel", "loud", "Illegal Craned debug-level format: loud.\n"),
    ],
)
def test_craned_messages_printed_before_the_logger(sim, key, value, stderr):
    set_in(sim.config, key, value)
    result = run_craned(sim)
    assert (result.returncode, result.stderr) == (1, stderr)


CRANED_CASES = [
    ("ControlMachine", None, "ControlMachine is not configured."),
    ("ClusterName", "", "Cluster name is empty."),
    ("HealthCheck", {"Interval": 60}, "HealthCheckProgram is not configured"),
    ("Nodes.0.memory", "2g", "Illegal memory format."),
    ("Nodes.0.name", "cn[01-03", "Illegal node name string format."),
    ("Container", {"Enabled": True}, "RuntimeEndpoint is not configured."),
    (
        "JobLifecycleHook",
        {"PrologFlags": "RunInJob,Serial"},
        "Cannot set RunInJob and Serial flags at the same time.",
    ),
    ("Partitions.0.nodes", "cn[02-03]", "This machine cn01 doesn't belong to any partition"),
    ("TLS", {"Enabled": True}, "UseTls is true, but InternalCertFilePath is empty"),
]


@pytest.mark.parametrize(("key", "value", "message"), CRANED_CASES)
def test_craned_refuses(sim, key, value, message):
    set_in(sim.config, key, value)
    result = run_craned(sim)
    assert result.returncode == 1
    assert message in result.stderr


def test_craned_listen_address_must_be_an_ip(sim):
    result = run_craned(sim, config=sim.node_config("cn01", CranedListen="localhost"))
    assert result.returncode == 1 and "Listening address is invalid." in result.stderr


def test_craned_requires_every_node_name_to_resolve(sim):
    sim.config["Nodes"].append({"name": "nores01", "cpu": 1, "memory": "1G"})
    result = run_craned(sim)
    assert result.returncode == 1
    assert "Init error: Cannot resolve hostname of `nores01`" in result.stderr


def test_craned_host_must_be_in_nodes_exactly(sim):
    result = run_craned(sim, env=sim.env("cn01.cluster"))
    assert result.returncode == 1
    assert "This machine cn01.cluster is not contained in Nodes!" in result.stderr


def test_craned_checks_its_own_devices(sim):
    sim.config["Nodes"] = [
        {
            "name": "cn01",
            "cpu": 2,
            "memory": "2G",
            "gres": [{**GPU, "DeviceFileRegex": f"{sim.tmp}/gpu[0-1]"}],
        },
        {"name": "cn[02-03]", "cpu": 2, "memory": "2G"},
    ]
    (sim.tmp / "gpu0").write_text("")
    result = run_craned(sim)
    assert result.returncode == 1
    assert (
        f"Failed to stat device file {sim.tmp}/gpu1 err:No such file or directory" in result.stderr
    )
    assert f"Access Device gpu:a100:{sim.tmp}/gpu1 failed." in result.stderr


def test_craned_rejects_an_invalid_env_injector_on_its_own_node(sim):
    sim.config["Nodes"][0]["gres"] = [
        {**GPU, "DeviceFileRegex": "/dev/null", "EnvInjector": "NVIDIA"}
    ]
    result = run_craned(sim)
    assert result.returncode == 1
    assert 'Invalid injector type:NVIDIA for device ["/dev/null"].' in result.stderr


def test_craned_ignores_devices_of_other_nodes_and_ip_names(sim):
    bad = {**GPU, "DeviceFileRegex": "/nonexistent/gpu0", "EnvInjector": "NVIDIA"}
    sim.config["Nodes"].append({"name": "cn04", "cpu": 1, "memory": "1G", "gres": [bad]})
    sim.config["Nodes"].append({"name": "127.0.0.99", "cpu": 1, "memory": "1G"})
    proc = sim.start_craned("cn01")
    assert wait_for(lambda: "Craned is listening" in sim.log("cn01.out"))
    assert proc.poll() is None
    assert "`127.0.0.99` is a valid ip address" in sim.log("cn01.out")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (
            {"cgroup.controllers": "cpuset cpu memory pids\n"},
            "Failed to initialize cpu,memory,IO cgroups controller.",
        ),
        (
            {"cpu": None, "memory": None, "devices": None},
            "Failed to initialize cpu,memory,devices,block cgroups controller.",
        ),
    ],
)
def test_craned_needs_cgroup_controllers(sim, layout, message):
    root = sim.tmp / "cg-test"
    root.mkdir()
    for name, content in layout.items():
        if content is None:
            (root / name).mkdir()
        else:
            (root / name).write_text(content)
    result = run_craned(sim, env=sim.env("cn01", CRANESIM_CGROUP_ROOT=str(root)))
    assert result.returncode == 1
    assert message in result.stderr


def _can_raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, 640000))
    except (ValueError, OSError):
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return True


@pytest.mark.skipif(_can_raise_nofile(), reason="this process may raise RLIMIT_NOFILE to 640000")
def test_craned_exits_when_nofile_cannot_be_raised(sim):
    proc = sim.start_craned("cn01", **{"CRANESIM_NOFILE": ""})
    assert wait_for(lambda: proc.poll() is not None), sim.log("cn01.out")
    assert proc.returncode == 1
    assert "Unable to set file descriptor limits to 640000" in sim.log("cn01.out")


def test_craned_node_info_and_version(sim):
    env = sim.env("cn07", CRANESIM_VERSION="1.1.3")
    lines = run_tool(sim, "craned", "-C", env=env).stdout.splitlines()
    assert lines[:2] == ["Nodes:", "  - name: cn07"]
    assert lines[2].startswith("    cpu: ")
    assert lines[3].startswith("    memory: ") and lines[3].endswith("G")
    assert run_tool(sim, "craned", "--version", env=env).stdout == "Version: 1.1.3\n"


def test_craned_in_background_forks_and_registers(sim):
    sim.start_ctld()
    result = run_craned(sim, config=sim.node_config("cn01", CranedForeground=False))
    assert result.returncode == 0
    try:
        assert sim.wait_state("cn01", "CRANE_IDLE")
    finally:
        kill_lock_holder(sim.tmp / "cn01" / "craned" / "craned.lock")


def test_second_craned_is_refused(sim):
    sim.start_craned("cn01")
    assert wait_for(lambda: "Craned is listening" in sim.log("cn01.out"))
    result = run_craned(sim)
    assert result.returncode == 1
    assert "There is another Craned instance running. Exiting..." in result.stderr


# ------------------------------------------------------------------------------- Go CLIs
def test_cli_config_errors(sim):
    missing = sim.tmp / "missing.yaml"
    unreadable = run_tool(sim, "cinfo", "-C", str(missing))
    assert unreadable.returncode == 2
    assert unreadable.stderr.startswith(f"Failed to read config file {missing}: ")
    sim.config["Nodes"][0]["cpu"] = "2"
    quoted = run_tool(sim, "cinfo", "-C", str(sim.ctld_config_path()))
    assert quoted.returncode == 2 and "Config syntax error in" in quoted.stderr
    sim.config["Nodes"][0]["cpu"] = 2
    del sim.config["CraneCtldForInternalListenPort"]
    path = sim.ctld_config_path()
    no_port = run_tool(sim, "ccontrol", "-C", str(path), "show", "node")
    assert no_port.returncode == 1
    assert no_port.stderr == f"CraneCtldForInternalListenPort is not set in config file {path}\n"


def test_cli_versions(sim):
    env = sim.env(CRANESIM_VERSION="1.1.3")
    for tool in ("cinfo", "ccontrol"):
        result = run_tool(sim, tool, "-v", env=env)
        assert result.stdout.startswith("CraneSched 1.1.3\nSource Time: ")


def test_cli_mutually_exclusive_filters(sim):
    result = run_tool(sim, "cinfo", "-C", str(sim.ctld_config_path()), "-d", "-r")
    assert result.returncode == 1
    assert "none of the others can be" in result.stderr
