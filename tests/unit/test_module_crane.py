"""The crane execution module, with CraneSched's commands replaced by canned output."""

import json
import os
import time

import pytest
from salt.exceptions import CommandExecutionError

from tests.support.caller import example_pillar
from tests.support.dunder import load

CINFO_JSON = json.dumps(
    {
        "ok": True,
        "partitions": [
            {
                "name": "CPU*",
                "state": "PARTITION_UP",
                "craned_lists": [
                    {
                        "resource_state": "CRANE_IDLE",
                        "control_state": "CRANE_NONE",
                        "power_state": "CRANE_POWER_IDLE",
                        "count": 1,
                        "craned_list_regex": "cn01",
                        "reason": "",
                    },
                    {
                        "resource_state": "CRANE_IDLE",
                        "control_state": "CRANE_DRAIN",
                        "power_state": "CRANE_POWER_IDLE",
                        "count": 1,
                        "craned_list_regex": "cn02",
                        "reason": "disk swap",
                    },
                ],
            },
            {
                "name": "GPU",
                "state": "PARTITION_UP",
                "craned_lists": [
                    {
                        "resource_state": "CRANE_DOWN",
                        "control_state": "CRANE_NONE",
                        "power_state": "CRANE_POWER_IDLE",
                        "count": 1,
                        "craned_list_regex": "cn03",
                        "reason": "",
                    }
                ],
            },
        ],
    }
)


class Commands:
    """A fake ``cmd.run_all`` answering by the command's name, recording every call."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        name = argv[0].rsplit("/", 1)[-1]
        answer = self.answers[name]
        result = answer(argv) if callable(answer) else answer
        return {"retcode": 0, "stdout": "", "stderr": "", **result}


BIN_DIR = "/opt/crane/bin"


@pytest.fixture
def pillar(monkeypatch):
    # The fake CraneSched binaries "exist" in BIN_DIR (restored after each test).
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: str(path).startswith(BIN_DIR) or real_access(path, mode)
    )
    return example_pillar(control=True)


def module(pillar, answers=None, host="cranectl", bin_dir=BIN_DIR):
    pillar["crane"]["bin_dir"] = bin_dir
    commands = Commands(answers or {})
    mod = load(
        "_modules",
        __salt__={"cmd.run_all": commands},
        __pillar__=pillar,
        __grains__={"host": host, "nodename": host, "id": host, "os_family": "Debian"},
    )
    return mod, commands


def test_roles_follow_the_host_name(pillar):
    assert module(pillar, host="cranectl")[0].roles() == ["control"]
    assert module(pillar, host="cn02")[0].roles() == ["compute"]
    assert module(pillar, host="login01")[0].roles() == ["login"]
    assert module(pillar, host="elsewhere")[0].roles() == []


def test_settings_derive_packages_services_ports(pillar):
    crane, _ = module(pillar, host="cranectl")
    data = crane.settings(
        {"role_packages": {"control": ["cranectld", "frontend"]}}, pillar["crane"]
    )
    assert data["roles"] == ["control"]
    assert list(data["packages"]) == ["cranectld", "frontend"]
    assert data["packages"]["cranectld"]["version"] == "1.1.2"
    assert data["services"] == ["cranectld"]
    assert data["ports"] == [10011, 10013]
    assert data["compute_nodes"] == "cn[01-03]"
    assert data["has_database"] is True and "database" not in data
    assert "change-me" not in repr(data)


def test_settings_later_layers_win_and_layers_are_not_changed(pillar):
    crane, _ = module(pillar)
    defaults = {"verify": {"timeout": 180, "interval": 5}, "config": {}}
    data = crane.settings(
        defaults, {"verify": {"timeout": 30}, "config": pillar["crane"]["config"]}
    )
    assert data["verify"] == {"timeout": 30, "interval": 5}
    assert defaults == {"verify": {"timeout": 180, "interval": 5}, "config": {}}


def test_no_role_comment_explains_a_minion_id_match(pillar):
    crane, _ = module(pillar, host="node7")
    crane.__grains__["id"] = "cn01"
    comment = crane.settings(pillar["crane"])["no_role_comment"]
    assert "minion id 'cn01' is in the cluster config but craned matches the host name" in comment


def test_validate_config_sets_retcode_and_checks_database(pillar):
    crane, _ = module(pillar)
    assert crane.validate_config(database=True)["valid"] is True
    del pillar["crane"]["database"]["DbReplSetName"]
    result = crane.validate_config(database=True)
    assert result["valid"] is False
    assert crane.__context__["retcode"] == 1


def test_database_text_is_canonical_yaml_without_the_credentials(pillar):
    crane, _ = module(pillar)
    text = crane.database_text()
    assert text.splitlines()[0] == (
        "# Managed by Salt (crane formula): edit the pillar crane:database, not this file."
    )
    assert "DbReplSetName: crane_rs" in text
    assert "DbPassword: <redacted>" in text and "DbUser: <redacted>" in text
    assert pillar["crane"]["database"]["DbPassword"] not in text


def test_hostlists(pillar):
    crane, _ = module(pillar)
    assert crane.expand_hostlist("cn[01-03]") == ["cn01", "cn02", "cn03"]
    assert crane.compress_hostlist("cn01,cn02,cn03") == "cn[01-03]"
    with pytest.raises(CommandExecutionError, match="isolated bracket"):
        crane.expand_hostlist("cn[01")


def test_config_hash(tmp_path, pillar):
    crane, _ = module(pillar)
    path = tmp_path / "config.yaml"
    assert crane.config_hash(str(path)) is None
    path.write_text("a: 1\n")
    first = crane.config_hash(str(path))
    path.write_text("a: 2\n")
    assert crane.config_hash(str(path)) != first


def test_cinfo_nodes_and_health(pillar):
    crane, commands = module(pillar, {"cinfo": {"stdout": CINFO_JSON}})
    nodes = crane.nodes()
    assert nodes["cn02"]["control"] == "drain"
    assert commands.calls[0] == ["/opt/crane/bin/cinfo", "--json"]
    report = crane.health()
    assert report["healthy"] is False
    assert report["down"] == ["cn03"]
    assert report["drained"] == {"cn02": "disk swap"}
    assert crane.__context__["retcode"] == 1
    crane.__context__.clear()
    assert crane.health(nodes="cn01")["healthy"] is True
    assert "retcode" not in crane.__context__


def test_health_and_drains_count_the_nodes_that_joined_by_selector(pillar, tmp_path):
    # gpu05 joined through a node group by selector: the pillar does not name it, the
    # config the control node renders does; health must miss it, a drain on it must stay
    match = "G@crane:partition:GPUX"
    pillar["crane"]["config"]["Nodes"].append({"match": match, "cpu": 8, "memory": "15G"})
    pillar["crane"]["config"]["Partitions"].append({"name": "GPUX", "match": match})
    crane, _ = module(pillar, {"cinfo": {"stdout": CINFO_JSON}})
    joined = {"host": "gpu05", "ready": True, "cpu": 8, "memory": 15992, "gres": []}
    crane.__salt__["mine.get"] = lambda tgt, fun, tgt_type="glob": {"m5": joined}
    assert crane.health()["missing"] == ["gpu05"]
    crane.DRAINS_FILE = str(tmp_path / "drains.json")
    (tmp_path / "drains.json").write_text(json.dumps({"gpu05": "disk swap"}))
    crane._drains_path = lambda: crane.DRAINS_FILE
    assert crane.drains_restore(timeout=0)["pending"] == {"gpu05": "disk swap"}


def test_unreachable_cranectld_is_an_error_not_an_empty_cluster(pillar):
    down = {
        "retcode": 3,
        "stderr": "Failed to query cluster information: Connection to CraneCtld is broken.",
    }
    crane, _ = module(pillar, {"cinfo": down})
    with pytest.raises(CommandExecutionError, match="cranectld is unreachable"):
        crane.cinfo()


def test_cinfo_falls_back_to_the_table(pillar):
    table = (
        "PARTITION AVAIL NODES STATE            NODELIST\n"
        "CPU*      up    2     idle[power_idle] cn[01-02]\n"
    )

    def answer(argv):
        return (
            {"retcode": 1, "stderr": "unknown flag: --json"}
            if "--json" in argv
            else {"stdout": table}
        )

    crane, _ = module(pillar, {"cinfo": answer})
    (partition,) = crane.cinfo()
    assert partition["name"] == "CPU" and partition["groups"][0]["nodes"] == ["cn01", "cn02"]


def test_drain_and_resume_pass_ccontrols_arguments(pillar):
    ok = {
        "stdout": "Nodes cn01, cn02 modified successfully, please wait for a few minutes for "
        "the node state to fully update."
    }
    crane, commands = module(pillar, {"ccontrol": ok})
    assert crane.drain(["cn02", "cn01"], "disk swap")["modified"] == ["cn01", "cn02"]
    assert commands.calls[-1][1:] == [
        "update",
        "nodename=cn[01-02]",
        "state=drain",
        'reason="disk swap"',
    ]
    crane.resume("cn[01-02]")
    assert commands.calls[-1][1:] == ["update", "nodename=cn[01-02]", "state=resume", 'reason=""']


def test_drain_failures_raise(pillar):
    refused = {
        "retcode": 2,
        "stderr": "change node state failed: Failed to modify node: cn03. "
        "Reason: Can't change the state of a DOWN node!.",
    }
    crane, _ = module(pillar, {"ccontrol": refused})
    with pytest.raises(CommandExecutionError, match="DOWN node"):
        crane.drain("cn03", "maintenance")
    with pytest.raises(CommandExecutionError, match="needs a reason"):
        crane.drain("cn03", " ")


def test_show_node(pillar):
    text = (
        "NodeName=cn01 State=idle[power_idle] CPU=2.00 AllocCPU=0.00 FreeCPU=2.00\n"
        "\tRealMemory=2048M AllocMem=0 FreeMem=2048M\n"
        "\tGres=None AllocGres=None FreeGres=None\n"
        "\tSockets=1\n"
        "\tPartition=CPU RunningJob=1 Version=1.1.3\n"
        "\tOs=Linux 6.1.0 #1 SMP\n"
        "\tBootTime=2026-11-29 04:00:00 CranedStartTime=2026-11-29 04:01:00\n"
        "\tLastBusyTime=unknown\n"
    )
    crane, commands = module(pillar, {"ccontrol": {"stdout": text}})
    node = crane.show_node("cn01")["cn01"]
    assert (node["version"], node["running_jobs"]) == ("1.1.3", 1)
    assert commands.calls[-1][1:] == ["show", "node", "cn01"]


def test_missing_binary_is_a_clear_error(pillar, monkeypatch):
    crane, _ = module(pillar, bin_dir="")
    monkeypatch.setattr(crane.salt.utils.path, "which", lambda name: None)
    with pytest.raises(CommandExecutionError, match="cinfo not found"):
        crane.cinfo()


def test_daemon_report_reads_systemd_and_the_log(tmp_path, pillar):
    log = tmp_path / "craned.log"
    log.write_text("".join(f"line {n}\n" for n in range(30)) + "Illegal memory format.\n")
    show = (
        "ActiveState=activating\nSubState=auto-restart\nMainPID=0\nNRestarts=4\n"
        "ExecMainStatus=1\nLoadState=loaded\nActiveEnterTimestampMonotonic=0\n"
    )
    crane, commands = module(
        pillar,
        {
            "systemctl": {"stdout": show},
            "journalctl": {"stdout": "craned exited: Illegal memory format."},
        },
    )
    report = crane.daemon_report("craned", log_file=str(log), lines=5)
    assert report["active"] is False
    assert report["state"] == "activating/auto-restart"
    assert report["restarts"] == 4
    assert report["log"].splitlines() == [
        "line 26",
        "line 27",
        "line 28",
        "line 29",
        "Illegal memory format.",
    ]
    assert "Illegal memory format." in report["journal"]
    commands.calls.clear()
    quiet = crane.daemon_report("craned", log_file=str(log), lines=0)
    assert (quiet["state"], quiet["journal"], quiet["log"]) == ("activating/auto-restart", "", "")
    assert [argv[0] for argv in commands.calls] == ["systemctl"]  # the journal is not read


def backup_module(pillar, base, running=False):
    pillar["crane"]["config"]["CraneBaseDir"] = f"{base}/"
    pillar["crane"]["config"].pop("Keepalived", None)
    pillar["crane"].setdefault("database", {})["CraneCtldDbPath"] = "cranectld/embedded.db"
    mod, _ = module(pillar)
    mod.__salt__["service.status"] = lambda name: running
    return mod


DB_NAMES = ["var", "fix", "resv", "step_var", "step_fix"]


def test_backup_db_copies_every_file_of_the_prefix(tmp_path, pillar):
    db = tmp_path / "cranectld"
    db.mkdir()
    for name in DB_NAMES:
        (db / f"embedded.db{name}").write_text(name)
    (db / "embedded.dbvarEnv").mkdir()  # BerkeleyDB
    (db / "embedded.dbvarEnv" / "log.0000000001").write_text("log")
    (db / "cranectld.log").write_text("not the DB")
    result = backup_module(pillar, tmp_path).backup_db()
    backup = result["backup"]
    assert result["source"] == f"{db}/embedded.db"
    assert sorted(os.listdir(backup)) == sorted(
        [f"embedded.db{n}" for n in DB_NAMES] + ["embedded.dbvarEnv"]
    )
    assert result["files"] == sorted(os.path.join(backup, n) for n in os.listdir(backup))
    assert (tmp_path / "backup").samefile(os.path.dirname(backup))
    with open(os.path.join(backup, "embedded.dbstep_fix"), encoding="utf-8") as stream:
        assert stream.read() == "step_fix"
    assert os.listdir(os.path.join(backup, "embedded.dbvarEnv")) == ["log.0000000001"]


def test_backup_db_fails_when_cranectld_ran_but_no_db_file_exists(tmp_path, pillar):
    (tmp_path / "cranectld").mkdir()
    (tmp_path / "cranectld" / "cranectld.lock").write_text("")
    mod = backup_module(pillar, tmp_path)
    mod.__pillar__["crane"]["database"]["CraneCtldDbPath"] = "cranectld/jobs.db"
    with pytest.raises(CommandExecutionError, match=r"no embedded DB file starts with .*jobs\.db"):
        mod.backup_db()


def test_backup_db_before_cranectld_ever_ran_backs_up_nothing(tmp_path, pillar):
    result = backup_module(pillar, tmp_path).backup_db()
    assert (result["backup"], result["files"]) == (None, [])


def test_backup_db_refuses_while_cranectld_runs(tmp_path, pillar):
    with pytest.raises(CommandExecutionError, match="cranectld is running"):
        backup_module(pillar, tmp_path, running=True).backup_db()


def test_backup_db_keeps_the_last_copies(tmp_path, pillar):
    (tmp_path / "cranectld").mkdir()
    (tmp_path / "cranectld" / "embedded.dbvar").write_text("{}")
    mod = backup_module(pillar, tmp_path)
    first = mod.backup_db(keep=1)["backup"]
    second = mod.backup_db(keep=1)
    assert second["removed"] == [os.path.basename(first)]
    assert os.listdir(tmp_path / "backup") == [os.path.basename(second["backup"])]


# --- drains kept across cranectld restarts ---------------------------------------------------


class Drains:
    """cranectld's node table behind crane.nodes / crane.drain (drains live in memory)."""

    def __init__(self, **resources):
        self.states = {
            n: {"resource": r, "control": "none", "reason": ""} for n, r in resources.items()
        }
        self.answering = True
        self.drained = []

    def nodes(self):
        if not self.answering:
            raise CommandExecutionError("cranectld is unreachable (cinfo exit 3)")
        return {n: dict(s) for n, s in self.states.items()}

    def drain(self, nodes, reason):
        for node in nodes:
            if self.states[node]["resource"] == "down":
                raise CommandExecutionError("Can't change the state of a DOWN node!")
            self.states[node].update(control="drain", reason=reason)
            self.drained.append(node)

    def restart_cranectld(self):
        """cranectld restarted: every drain is gone, nodes not registered yet are down."""
        for state in self.states.values():
            state.update(control="none", reason="")


def drains_module(pillar, tmp_path, cluster):
    pillar["crane"]["config"]["CraneBaseDir"] = f"{tmp_path}/"
    crane, _ = module(pillar)
    crane.nodes, crane.drain = cluster.nodes, cluster.drain
    return crane


def test_drains_survive_a_cranectld_restart(pillar, tmp_path):
    cluster = Drains(cn01="idle", cn02="idle", cn03="idle")
    crane = drains_module(pillar, tmp_path, cluster)
    cluster.drain(["cn03"], "fan broken")
    assert crane.drains_save() == {"cn03": "fan broken"}
    record = tmp_path / "crane-formula-drains.json"
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    cluster.restart_cranectld()
    assert crane.drains_restore(timeout=0) == {"restored": {"cn03": "fan broken"}, "pending": {}}
    assert cluster.states["cn03"] == {
        "resource": "idle",
        "control": "drain",
        "reason": "fan broken",
    }
    assert not record.exists()
    assert crane.drains_restore(timeout=0) == {"restored": {}, "pending": {}}


def test_a_save_after_the_drains_were_lost_forgets_nothing(pillar, tmp_path):
    cluster = Drains(cn01="idle", cn02="idle", cn03="idle")
    crane = drains_module(pillar, tmp_path, cluster)
    cluster.drain(["cn03"], "fan broken")
    crane.drains_save()
    cluster.restart_cranectld()  # a restart the record was not restored after
    cluster.drain(["cn01"], "crane-formula: rolling restart")
    assert crane.drains_save() == {
        "cn01": "crane-formula: rolling restart",
        "cn03": "fan broken",
    }
    assert crane.drains_record() == crane.drains_save()


def test_down_nodes_stay_pending_until_they_are_up(pillar, tmp_path):
    cluster = Drains(cn01="idle", cn02="idle", cn03="idle")
    crane = drains_module(pillar, tmp_path, cluster)
    cluster.drain(["cn02", "cn03"], "fan broken")
    crane.drains_save()
    cluster.restart_cranectld()
    cluster.states["cn03"]["resource"] = "down"  # not registered again yet
    assert crane.drains_restore(timeout=0) == {
        "restored": {"cn02": "fan broken"},
        "pending": {"cn03": "fan broken"},
    }
    assert crane.drains_record() == {"cn03": "fan broken"}
    cluster.states["cn03"]["resource"] = "idle"
    assert crane.drains_restore(timeout=0)["restored"] == {"cn03": "fan broken"}
    assert crane.drains_record() == {}


def test_an_admin_drain_set_meanwhile_is_kept_and_an_unreachable_cranectld_raises(pillar, tmp_path):
    cluster = Drains(cn01="idle", cn02="idle", cn03="idle")
    crane = drains_module(pillar, tmp_path, cluster)
    cluster.drain(["cn03"], "fan broken")
    crane.drains_save()
    cluster.restart_cranectld()
    cluster.answering = False
    with pytest.raises(CommandExecutionError, match="unreachable"):
        crane.drains_restore(timeout=0)
    assert crane.drains_record() == {"cn03": "fan broken"}
    cluster.answering = True
    cluster.drain(["cn03"], "psu swap")
    assert crane.drains_restore(timeout=0) == {"restored": {}, "pending": {}}
    assert cluster.states["cn03"]["reason"] == "psu swap"
    assert cluster.drained == ["cn03", "cn03"]  # never drained over the admin's new reason


# --- restarts that are due -------------------------------------------------------------------


def systemctl_show(started_seconds_ago):
    active = started_seconds_ago is not None
    monotonic = int((time.monotonic() - (started_seconds_ago or 0)) * 1e6) if active else 0
    return {
        "stdout": f"ActiveState={'active' if active else 'inactive'}\nSubState=running\n"
        f"MainPID=42\nActiveEnterTimestampMonotonic={monotonic}\n"
    }


def test_a_restart_is_due_until_the_daemon_started_after_the_mark(pillar, tmp_path):
    started = {"ago": 100.0}
    crane, _ = module(pillar, {"systemctl": lambda argv: systemctl_show(started["ago"])})
    crane.RESTART_DIR = str(tmp_path / "markers")
    assert crane.restart_pending() == {}
    crane.restart_mark("craned", "config.yaml changed")
    pending = crane.restart_pending()
    assert list(pending) == ["craned"] and pending["craned"]["why"] == "config.yaml changed"
    assert crane.restart_clear("craned") is False  # still due: kept
    started["ago"] = None  # stopped: still due
    assert "craned" in crane.restart_pending("craned")
    time.sleep(0.01)
    started["ago"] = 0.001  # started after the mark, by anyone
    assert crane.restart_pending() == {}
    assert crane.restart_clear("craned") is True
    assert not os.listdir(crane.RESTART_DIR)


def test_a_restart_still_due_is_forgotten_only_when_forced(pillar, tmp_path):
    crane, _ = module(pillar, {"systemctl": lambda argv: systemctl_show(None)})
    crane.RESTART_DIR = str(tmp_path / "markers")
    crane.restart_mark("cranectld", "config.yaml changed")
    assert crane.restart_clear("cranectld") is False  # not running: still due
    assert crane.restart_clear("cranectld", force=True) is True
    assert crane.restart_pending() == {}


def _counting_module(pillar, context):
    reads = []
    pillar["crane"]["gres"] = {"auto": True}
    mod, _ = module(pillar, host="cn03")
    mod.__salt__["mine.get"] = lambda target, fun: reads.append(fun) or {}
    mod.__context__ = context
    return mod, reads


def test_settings_and_the_mine_are_worked_out_once_per_state_run(pillar):
    mod, reads = _counting_module(pillar, {"fileclient": "the run's file client"})
    first = mod.settings()
    assert mod.settings() is first
    result = mod.validate_config()
    assert sorted(reads) == ["crane_gres", "crane_host"]
    assert result["errors"] == first["gres_errors"] and first["gres_errors"]
    mod.settings(pillar["crane"])  # other inputs: worked out, the mine still read once
    assert sorted(reads) == ["crane_gres", "crane_host"]


def test_a_direct_call_reads_the_mine_afresh(pillar):
    mod, reads = _counting_module(pillar, {})
    mod.settings()
    mod.settings()
    assert sorted(reads) == ["crane_gres", "crane_gres", "crane_host", "crane_host"]


def test_package_names_follow_the_roles_and_os_family(pillar):
    mod, _ = module(pillar, host="cranectl")
    assert mod.package_names() == {
        "cranectld": "cranesched-cranectld",
        "frontend": "cranesched-frontend",
    }
    mod.__grains__["os_family"] = "RedHat"
    pillar["crane"]["package_names"] = {"frontend": "site-frontend"}
    assert mod.package_names() == {"cranectld": "CraneSched-cranectld", "frontend": "site-frontend"}
