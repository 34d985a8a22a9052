"""Where the simulator is as strict as CraneSched: the embedded DB prefix, slow or failing
cranectld start-up, typed config fields in the Go tools, partition order, host lists."""

import json
import signal

import pytest

from tests.cranesim.cranesim import hostlist
from tests.cranesim.tests.harness import wait_for

DB_FILES = ("var", "fix", "resv", "step_var", "step_fix")
BROKEN = "Failed to query cluster information: Connection to CraneCtld is broken.\n"


# --------------------------------------------------------------------------- embedded DB
def test_embedded_db_is_a_prefix_and_jobs_survive_through_its_files(cluster):
    prefix = cluster.tmp / "ctld" / "cranectld" / "embedded.db"
    assert not prefix.exists()
    assert all((cluster.tmp / "ctld" / "cranectld" / f"embedded.db{n}").is_file() for n in DB_FILES)
    assert cluster.run("cranesim-job", "--node", "cn01", "--seconds", "60").returncode == 0
    cluster.stop(cluster.procs[0])
    assert json.loads((cluster.tmp / "ctld" / "cranectld" / "embedded.dbvar").read_text())
    cluster.start_ctld()
    assert cluster.wait_state("cn01", "CRANE_ALLOC")
    assert not prefix.exists()


def test_removing_the_prefix_files_loses_the_jobs(cluster):
    assert cluster.run("cranesim-job", "--node", "cn01", "--seconds", "60").returncode == 0
    cluster.stop(cluster.procs[0])
    for name in DB_FILES:
        (cluster.tmp / "ctld" / "cranectld" / f"embedded.db{name}").unlink()
    cluster.start_ctld()
    assert wait_for(lambda: cluster.run("cranesim-job", "--list").returncode == 0)
    assert json.loads(cluster.run("cranesim-job", "--list").stdout) == []


def test_berkeleydb_backend_adds_an_env_dir_per_file(sim):
    sim.database["CraneEmbeddedDbBackend"] = "BerkeleyDB"
    sim.start_ctld()
    base = sim.tmp / "ctld" / "cranectld"
    assert wait_for((base / "embedded.dbstep_fixEnv").is_dir)
    assert all((base / f"embedded.db{name}Env").is_dir() for name in DB_FILES)
    assert not (base / "embedded.db").exists()


# --------------------------------------------------------------------------- start-up
def test_cranectld_refuses_clients_until_its_start_up_delay_is_over(sim):
    env = sim.env(CRANESIM_CTLD_START_DELAY="4")
    db = sim.write("database.yaml", sim.database)
    ctld = sim.spawn(
        "cranectld", ["-C", str(sim.ctld_config_path()), "-D", str(db)], env, "ctld.out"
    )
    assert wait_for(lambda: "Hostname of CraneCtld" in sim.log("ctld.out"))
    early = sim.run("cinfo")  # its config is read, it is still "connecting to MongoDB"
    assert (early.returncode, early.stderr) == (3, BROKEN)
    assert ctld.poll() is None
    assert wait_for(lambda: sim.run("cinfo").returncode == 0, timeout=20)
    assert "CraneCtld service ready." in sim.log("ctld.out")


def test_cranectld_exits_after_a_failed_mongodb_connect(sim, tmp_path):
    knobs = tmp_path / "knobs"
    knobs.write_text("# set on a node\nCRANESIM_CTLD_EXIT_AFTER = 1\n")
    env = sim.env(CRANESIM_KNOBS_FILE=str(knobs))
    db = sim.write("database.yaml", sim.database)
    ctld = sim.spawn(
        "cranectld", ["-C", str(sim.ctld_config_path()), "-D", str(db)], env, "ctld.out"
    )
    assert ctld.wait(30) == 1
    assert "CraneCtld.cpp:1047][default] Error: MongoDb client connect fail" in sim.log("ctld.out")
    assert "CraneCtld service ready." not in sim.log("ctld.out")


def test_environment_wins_over_the_knobs_file(sim, tmp_path):
    knobs = tmp_path / "knobs"
    knobs.write_text("CRANESIM_CTLD_EXIT_AFTER=1\n")
    env = sim.env(CRANESIM_KNOBS_FILE=str(knobs), CRANESIM_CTLD_EXIT_AFTER="")
    db = sim.write("database.yaml", sim.database)
    sim.spawn("cranectld", ["-C", str(sim.ctld_config_path()), "-D", str(db)], env, "ctld.out")
    assert wait_for(lambda: sim.run("cinfo").returncode == 0, timeout=60)


# --------------------------------------------------------------------------- Go typed fields
QUOTED = [
    ({"TLS": {"Enabled": "true"}}, "cannot unmarshal !!str `true` into bool"),
    ({"Plugin": {"Enabled": "false"}}, "cannot unmarshal !!str `false` into bool"),
    (
        {"Container": {"UserNsEnabledByDefault": "true"}},
        "cannot unmarshal !!str `true` into bool",
    ),
    ({"JobLifecycleHook": {"PrologTimeout": "30"}}, "cannot unmarshal !!str `30` into uint64"),
    ({"JobLifecycleHook": {"EpilogTimeout": -1}}, "cannot unmarshal !!int `-1` into uint64"),
    (
        {"JobLifecycleHook": {"PrologEpilogTimeout": "60"}},
        "cannot unmarshal !!str `60` into uint64",
    ),
    ({"TLS": "yes"}, "cannot unmarshal !!str `yes` into util.TLSConfig"),
]


@pytest.mark.parametrize(("change", "error"), QUOTED)
def test_go_tools_reject_quoted_typed_values(cluster, change, error):
    cluster.config.update(change)
    path = cluster.ctld_config_path()
    for tool in ("cinfo", "ccontrol"):
        args = ("show", "node") if tool == "ccontrol" else ()
        result = cluster.run(tool, *args)
        assert result.returncode == 2, (tool, result.stderr)
        assert result.stderr.startswith(f"Config syntax error in {path}: yaml: unmarshal errors:")
        assert error in result.stderr


def test_go_tools_accept_what_yaml_v3_converts(cluster):
    cluster.config.update(
        {
            "TLS": {"Enabled": False, "DomainSuffix": 5},
            "Plugin": {"Enabled": "no"},  # YAML 1.1 words fit a Go bool, even quoted
            "Container": {"UserNsEnabledByDefault": "on"},
            "JobLifecycleHook": {"PrologTimeout": 30, "EpilogTimeout": None},
            "CraneCtldListenPort": cluster.ctld_port,  # an int into a Go string
        }
    )
    assert cluster.run("cinfo").returncode == 0


def test_daemons_accept_quoted_values_the_go_tools_reject(sim):
    sim.config.update({"TLS": {"Enabled": "false"}, "JobLifecycleHook": {"PrologTimeout": "30"}})
    sim.start_ctld()
    sim.start_craned("cn01")
    assert wait_for(lambda: "Craned cn01 is up now." in sim.log("ctld.out"))
    assert sim.run("ccontrol", "show", "node", "cn01").returncode == 2


def test_cfored_rejects_a_quoted_boolean(sim):
    sim.config["Plugin"] = {"Enabled": "true"}
    result = sim.run("cfored")
    assert result.returncode == 2
    assert "cannot unmarshal !!str `true` into bool" in result.stderr


# --------------------------------------------------------------------------- partitions
def _partition_order(sim):
    rows = sim.run("cinfo", "-N").stdout.splitlines()
    return list(dict.fromkeys(row.split()[0] for row in rows))


def test_partition_order_does_not_follow_the_config(sim):
    names = ["alpha", "beta", "gamma", "delta"]
    sim.config["Partitions"] = [{"name": n, "nodes": "cn[01-03]"} for n in names]
    sim.config["DefaultPartition"] = "alpha"
    ctld = sim.start_ctld()
    assert wait_for(lambda: sim.run("cinfo").returncode == 0, timeout=60)
    first = _partition_order(sim)
    sim.stop(ctld)
    sim.config["Partitions"].reverse()
    sim.start_ctld()
    assert wait_for(lambda: sim.run("cinfo").returncode == 0, timeout=60)
    assert _partition_order(sim) == first
    assert sorted(first) == sorted(["alpha*", "beta", "gamma", "delta"])


# --------------------------------------------------------------------------- host lists
@pytest.mark.parametrize(
    ("text", "cpp", "go"),
    [
        ("cn[01-03]", ["cn01", "cn02", "cn03"], ["cn01", "cn02", "cn03"]),
        ("cn[1,,2]", None, ["cn1", "cn2"]),
        ("cn[]", None, []),
        ("[1-3]", ["1", "2", "3"], []),
        ("a,,b", ["a", "b"], ["a", "", "b"]),
        ("cn[08-10].ib", ["cn08.ib", "cn09.ib", "cn10.ib"], ["cn08.ib", "cn09.ib", "cn10.ib"]),
        ("cn[1-2]-ib", ["cn[1-2]-ib"], ["cn[1-2]-ib"]),
        ("cn[5-3]", [], []),
        ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"], ["r1n1", "r1n2", "r2n1", "r2n2"]),
        ("cn[1[2]]", None, None),
        ("cn1]", None, None),
        ("cn[a]", None, None),
    ],
)
def test_host_list_expansion_per_dialect(text, cpp, go):
    assert hostlist.expand(text, hostlist.CPP) == cpp
    assert hostlist.expand(text, hostlist.GO) == go


def test_host_list_compression_per_dialect():
    assert hostlist.compress(["cn01", "cn02", "cn03", "cn05", "gpu1"]) == "cn[01-03,05],gpu1"
    assert hostlist.compress(["cn05", "cn02", "cn01", "cn03"], hostlist.GO) == "cn[01-03,05]"
    assert hostlist.compress(["cn1", "cn1", "cn2"]) == "cn[1-2]"
    # a digit at index 0 never starts a number in C++; in Go it does
    assert hostlist.compress(["1a", "2a"]) == "1a,2a"
    assert hostlist.compress(["1a", "2a"], hostlist.GO) == "[1-2]a"


def test_simulator_has_its_own_host_list_code(tmp_path):
    from tests.cranesim import build  # noqa: PLC0415

    [pkg, *_] = build.packages_for("1.1.2", "amd64")
    paths = [entry.path for entry in pkg.files]
    assert not any("crane_hostlist" in path for path in paths)
    assert "/usr/lib/cranesim/cranectld/cranesim/hostlist.py" in paths


def test_craned_channel_restarts_do_not_mark_the_new_registration_down(cluster):
    """A craned restart drops the old channel after the new one may have registered."""
    cluster.stop(cluster.procs[1], signal.SIGTERM)
    cluster.start_craned("cn01")
    assert cluster.wait_state("cn01", "CRANE_IDLE")
    assert cluster.node_states()["cn01"] == ("CRANE_IDLE", "CRANE_NONE")
