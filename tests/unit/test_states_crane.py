"""The crane states: current state first, test=True honoured, old/new in changes, errors as
result False. CraneSched is replaced by a small in-memory cluster."""

import pytest
from salt.exceptions import CommandExecutionError

from tests.support.dunder import load


class FakeCluster:
    """What crane.nodes / show_node / drain / resume would see and do."""

    def __init__(self, **states):
        self.nodes = {
            name: {
                "resource": resource,
                "control": "none",
                "power": "power_idle",
                "state": f"{resource}[power_idle]",
                "reason": "",
                "partitions": ["CPU"],
            }
            for name, resource in states.items()
        }
        self.jobs = {}
        self.calls = []

    def salt(self):
        return {
            "crane.expand_hostlist": lambda expr: __import__("crane_hostlist").expand(expr),
            "crane.nodes": lambda: {k: dict(v) for k, v in self.nodes.items()},
            "crane.show_node": lambda: {
                k: {"running_jobs": self.jobs.get(k, 0)} for k in self.nodes
            },
            "crane.drain": self.drain,
            "crane.resume": self.resume,
        }

    def drain(self, nodes, reason):
        self.calls.append(("drain", list(nodes), reason))
        for node in nodes:
            if self.nodes[node]["resource"] == "down":
                raise CommandExecutionError("Can't change the state of a DOWN node!")
            self.nodes[node].update(control="drain", reason=reason)

    def resume(self, nodes):
        self.calls.append(("resume", list(nodes)))
        for node in nodes:
            self.nodes[node].update(control="none", reason="")


def states(cluster, test=False, extra=None):
    return load("_states", __salt__={**cluster.salt(), **(extra or {})}, __opts__={"test": test})


def test_node_drained_drains_and_reports_old_new():
    cluster = FakeCluster(cn01="idle", cn02="idle")
    ret = states(cluster).node_drained("cn[01-02]", reason="maintenance", interval=0)
    assert ret["result"] is True
    assert ret["changes"] == {
        "cn01": {"old": "none", "new": "drain (maintenance)"},
        "cn02": {"old": "none", "new": "drain (maintenance)"},
    }
    assert cluster.calls == [("drain", ["cn01", "cn02"], "maintenance")]


def test_node_drained_keeps_an_admins_drain():
    cluster = FakeCluster(cn01="idle", cn02="idle")
    cluster.nodes["cn01"].update(control="drain", reason="bad disk")
    ret = states(cluster).node_drained("cn[01-02]", reason="upgrade", interval=0)
    assert list(ret["changes"]) == ["cn02"]
    assert cluster.nodes["cn01"]["reason"] == "bad disk"


def test_node_drained_test_mode_changes_nothing():
    cluster = FakeCluster(cn01="idle")
    ret = states(cluster, test=True).node_drained("cn01", reason="upgrade")
    assert ret["result"] is None and ret["changes"] == {}
    assert "Would drain cn01" in ret["comment"]
    assert cluster.calls == []


def test_node_drained_already_drained_is_clean():
    cluster = FakeCluster(cn01="idle")
    cluster.nodes["cn01"].update(control="drain", reason="x")
    ret = states(cluster).node_drained("cn01", reason="upgrade", interval=0)
    assert (ret["result"], ret["changes"]) == (True, {})


def test_node_drained_fails_when_jobs_outlive_the_timeout():
    cluster = FakeCluster(cn01="alloc")
    cluster.jobs["cn01"] = 2
    ret = states(cluster).node_drained("cn01", reason="upgrade", timeout=0, interval=0)
    assert ret["result"] is False
    assert "jobs still run after 0s: cn01 (2)" in ret["comment"]
    assert list(ret["changes"]) == ["cn01"]


def test_node_drained_error_is_result_false():
    cluster = FakeCluster(cn01="down")
    ret = states(cluster).node_drained("cn01", reason="upgrade", interval=0)
    assert ret["result"] is False and "DOWN node" in ret["comment"]


def test_node_drained_unknown_node():
    ret = states(FakeCluster(cn01="idle")).node_drained("cn09", reason="x")
    assert ret["result"] is False and "cinfo does not list cn09" in ret["comment"]


def test_node_resumed():
    cluster = FakeCluster(cn01="idle", cn02="idle")
    cluster.nodes["cn02"].update(control="drain", reason="upgrade")
    assert states(cluster, test=True).node_resumed("cn[01-02]")["result"] is None
    ret = states(cluster).node_resumed("cn[01-02]")
    assert ret["changes"] == {"cn02": {"old": "drain (upgrade)", "new": "none"}}
    assert cluster.calls == [("resume", ["cn02"])]
    again = states(cluster).node_resumed("cn[01-02]")
    assert (again["result"], again["changes"], again["comment"]) == (True, {}, "No node is drained")


def test_nodes_ready_passes_and_names_the_missing():
    cluster = FakeCluster(cn01="idle", cn02="mix")
    assert states(cluster).nodes_ready("cn[01-02]", timeout=0)["result"] is True
    cluster.nodes["cn02"].update(resource="down", state="down[failed]")
    ret = states(cluster).nodes_ready("cn[01-03]", timeout=0, interval=0)
    assert ret["result"] is False
    assert "cn02: down[failed]" in ret["comment"] and "cn03: not listed" in ret["comment"]
    assert states(cluster, test=True).nodes_ready("cn[01-03]", timeout=0)["result"] is None


def test_nodes_ready_reports_an_unreachable_cranectld():
    def unreachable():
        raise CommandExecutionError("cranectld is unreachable (cinfo exit 3)")

    ret = states(FakeCluster(), extra={"crane.nodes": unreachable}).nodes_ready("cn01", timeout=0)
    assert ret["result"] is False and "cranectld is unreachable" in ret["comment"]


def report(active=True, pid=42, uptime=10.0, **extra):
    return {
        "unit": "craned",
        "active": active,
        "state": "active/running" if active else "failed/failed",
        "main_pid": pid,
        "restarts": 0,
        "exit_status": "1",
        "loaded": True,
        "journal": "",
        "log": "",
        "uptime": uptime,
        **extra,
    }


def daemon_states(reports, test=False, asked=None):
    """States whose ``crane.daemon_report`` answers ``reports`` in turn, then the last again;
    the keyword arguments of each call go to ``asked``."""
    sequence = iter(reports)
    last = []

    def daemon_report(*args, **kwargs):
        if asked is not None:
            asked.append(kwargs)
        last[:] = [next(sequence, last[0] if last else None)]
        return last[0]

    return load("_states", __salt__={"crane.daemon_report": daemon_report}, __opts__={"test": test})


def test_daemon_healthy_running_long_enough():
    asked = []
    ret = daemon_states([report()], asked=asked).daemon_healthy("craned", log_file="x", settle=3)
    assert (ret["result"], ret["changes"]) == (True, {})
    assert asked == [{"lines": 0}]  # a healthy daemon's journal and log are not read


def test_daemon_healthy_reads_journal_and_log_to_explain_an_exit():
    asked = []
    died = report(active=False, pid=0, journal="craned.service: Failed with result 'exit-code'.")
    mod = daemon_states([report(uptime=0.1), died], asked=asked)
    ret = mod.daemon_healthy("craned", log_file="/var/crane/craned.log", settle=3, poll=0)
    assert ret["result"] is False
    assert asked == [{"lines": 0}, {"lines": 0}, {"log_file": "/var/crane/craned.log"}]


def test_daemon_healthy_waits_then_sees_the_exit_and_its_reason():
    died = report(
        active=False,
        pid=0,
        journal="Illegal memory format.\ncraned.service: Failed with result 'exit-code'.",
        log="craned.log tail",
    )
    ret = daemon_states([report(uptime=0.1), died]).daemon_healthy("craned", settle=3, poll=0)
    assert ret["result"] is False
    assert "Illegal memory format." in ret["comment"] and "craned.log tail" in ret["comment"]


def test_daemon_healthy_waits_for_the_journal_to_hold_the_exit():
    lagging = report(active=False, pid=0, log="[W 26-11-30 03:51:04.846] registering again")
    logged = report(
        active=False,
        pid=0,
        journal="csupervisor /usr/libexec/csupervisor does not exist\n"
        "craned.service: Main process exited, code=exited, status=1/FAILURE",
    )
    ret = daemon_states([report(uptime=0.1), lagging, logged]).daemon_healthy(
        "craned", settle=3, poll=0
    )
    assert ret["result"] is False
    assert "csupervisor /usr/libexec/csupervisor does not exist" in ret["comment"]


def test_daemon_healthy_restarted_process_is_a_failure():
    ret = daemon_states([report(uptime=0.1), report(pid=43, uptime=0.2)]).daemon_healthy(
        "craned", settle=3, poll=0
    )
    assert ret["result"] is False


def test_daemon_healthy_test_mode_before_install():
    ret = daemon_states([report(active=False, loaded=False)], test=True).daemon_healthy("craned")
    assert ret["result"] is None


def test_config_valid_lists_errors_warnings_and_notes():
    result = {
        "valid": False,
        "errors": ["ClusterName: missing"],
        "warnings": ["CranedListenAddr: x"],
    }
    asked = []
    mod = load(
        "_states",
        __salt__={
            "crane.validate_config": lambda **kw: asked.append(kw) or result,
            "crane.settings": lambda: {"config_notes": ["forced"]},
        },
    )
    ret = mod.config_valid("/etc/crane/config.yaml", database=True)
    assert asked == [{"database": True}]
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].splitlines() == [
        "1 error(s) in the CraneSched config for /etc/crane/config.yaml:",
        "  - ClusterName: missing",
        "Warnings:",
        "  - CranedListenAddr: x",
        "Enforced by the formula:",
        "  - forced",
    ]


@pytest.mark.parametrize("errors", [[], ["cn03: /dev/nvidia4 does not exist"]])
def test_gres_valid(errors):
    result = {"valid": not errors, "node": "cn03", "errors": errors}
    asked = []
    mod = load(
        "_states",
        __salt__={
            "crane.gres_validate": lambda **kw: asked.append(kw) or result,
            "crane.settings": lambda: {"config": {"Nodes": "as written"}},
        },
    )
    ret = mod.gres_valid("cn03")
    assert asked == [{"node": "cn03", "config": {"Nodes": "as written"}, "dev_root": "/dev"}]
    assert ret["result"] is (not errors)
    if errors:
        assert "config.yaml and craned are left as they are" in ret["comment"]
        assert "/dev/nvidia4" in ret["comment"]


def ctld_states(reports, answers):
    """daemon_healthy for cranectld: ``answers`` are cinfo outcomes (an exception or data)."""
    sequence, replies = iter(reports), iter(answers)

    def cinfo():
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return load(
        "_states",
        __salt__={"crane.daemon_report": lambda *a, **k: next(sequence), "crane.cinfo": cinfo},
        __opts__={"test": False},
    )


UNREACHABLE = CommandExecutionError("cranectld is unreachable (cinfo exit 3): broken")


def test_daemon_healthy_waits_until_cranectld_answers():
    mod = ctld_states([report(), report(), report()], [UNREACHABLE, UNREACHABLE, []])
    ret = mod.daemon_healthy("cranectld", settle=3, poll=0, ready_timeout=60)
    assert ret["result"] is True
    assert "answers client requests" in ret["comment"]


def test_daemon_healthy_names_the_error_line_of_a_late_exit():
    log = (
        "[I 26-11-29 22:57:04.637 CraneCtld.cpp:1032][default] Hostname of CraneCtld: c\n"
        "[E 26-11-29 22:57:35.637 CraneCtld.cpp:1047][default] Error: MongoDb client connect fail"
    )
    died = report(active=False, pid=0, log=log)
    mod = ctld_states([report(), report(), died], [UNREACHABLE, UNREACHABLE])
    ret = mod.daemon_healthy("cranectld", settle=3, poll=0, ready_timeout=60)
    assert ret["result"] is False
    first = ret["comment"].splitlines()[0]
    assert first.endswith("[default] Error: MongoDb client connect fail")
    assert first.startswith("craned is not running (failed/failed, exit status 1")


def test_daemon_healthy_gives_up_after_the_ready_timeout():
    mod = ctld_states([report()] * 3, [UNREACHABLE] * 3)
    ret = mod.daemon_healthy("cranectld", settle=3, poll=0, ready_timeout=1e-9)
    assert ret["result"] is False
    assert "answered no client request within" in ret["comment"]
    assert "cinfo exit 3" in ret["comment"]


def test_daemon_healthy_error_line_before_the_logger_exists():
    journal = (
        "[2026-11-29 22:57:04.637] [critical] Config file '/etc/crane/config.yaml' not existed\n"
        "craned.service: Main process exited, code=exited, status=1/FAILURE"
    )
    died = report(active=False, pid=0, journal=journal)
    ret = daemon_states([report(uptime=0.1), died]).daemon_healthy("craned", settle=3, poll=0)
    assert (
        ret["comment"]
        .splitlines()[0]
        .endswith("[critical] Config file '/etc/crane/config.yaml' not existed")
    )


def test_daemon_healthy_without_ready_timeout_never_asks_cinfo():
    mod = ctld_states([report()], [])
    assert mod.daemon_healthy("craned", settle=3)["result"] is True


def test_daemon_healthy_does_not_wait_when_cinfo_itself_fails():
    broken = CommandExecutionError("cinfo failed (exit 2): Config syntax error in config.yaml")
    mod = ctld_states([report(), report()], [broken])
    ret = mod.daemon_healthy("cranectld", settle=3, poll=0, ready_timeout=60)
    assert ret["result"] is False
    assert ret["comment"] == (
        "cranectld is running (pid 42) but cinfo failed (exit 2): "
        "Config syntax error in config.yaml"
    )


# --- package versions ----------------------------------------------------------------------


def version_states(installed, repo=(), running=True, test=False):
    salt = {
        "pkg.version": lambda name: installed.get(name, ""),
        "pkg.list_repo_pkgs": lambda name: {name: list(repo)} if repo else {},
        "service.status": lambda unit: running,
    }
    return load("_states", __salt__=salt, __opts__={"test": test})


CRANED = {"cranesched-craned": "craned"}


@pytest.mark.parametrize("installed", ["1.1.3", "1.1.3-1", "1:1.1.3-1"])
def test_a_downgrade_is_refused_naming_node_versions_and_the_switch(installed):
    states = version_states({"cranesched-craned": installed})
    ret = states.package_versions("cn01", {"cranesched-craned": "1.1.2"}, guarded=CRANED)
    assert ret["result"] is False
    assert ret["comment"].startswith(f"cn01: cranesched-craned {installed} is installed")
    assert "pins 1.1.2" in ret["comment"] and "crane:allow_downgrade: true" in ret["comment"]
    allowed = states.package_versions(
        "cn01",
        {"cranesched-craned": "1.1.2"},
        guarded=CRANED,
        switches={"allow_downgrade": True, "restart_on_version": True},
    )
    assert allowed["result"] is True
    # allowed, it is still a version change under a running craned
    guarded = states.package_versions(
        "cn01",
        {"cranesched-craned": "1.1.2"},
        guarded=CRANED,
        switches={"allow_downgrade": True},
    )
    assert guarded["result"] is False
    assert "salt-run crane.upgrade version=1.1.2" in guarded["comment"]


def test_the_package_release_is_not_a_version_change():
    states = version_states({"cranesched-craned": "1.1.2-1"})
    ret = states.package_versions("cn01", {"cranesched-craned": "1.1.2"}, guarded=CRANED)
    assert ret["result"] is True, ret["comment"]


def test_a_version_change_under_a_running_craned_needs_the_switch():
    states = version_states({"cranesched-craned": "1.1.2"})
    ret = states.package_versions("cn01", {"cranesched-craned": "1.1.3"}, guarded=CRANED)
    assert ret["result"] is False
    assert "salt-run crane.upgrade version=1.1.3" in ret["comment"]
    assert "crane:restart_on_version: true" in ret["comment"]
    switched = states.package_versions(
        "cn01",
        {"cranesched-craned": "1.1.3"},
        guarded=CRANED,
        switches={"restart_on_version": True},
    )
    assert switched["result"] is True
    stopped = version_states({"cranesched-craned": "1.1.2"}, running=False)
    ret = stopped.package_versions("cn01", {"cranesched-craned": "1.1.3"}, guarded=CRANED)
    assert ret["result"] is True  # the upgrade engine stops craned first
    control = version_states({"cranesched-cranectld": "1.1.2"})
    assert control.package_versions("ctl", {"cranesched-cranectld": "1.1.3"})["result"] is True


def test_test_mode_fails_when_the_pinned_version_is_not_in_the_repository():
    pins = {"cranesched-craned": "1.1.9"}
    states = version_states({}, repo=["1.1.3", "1.1.2"], test=True)
    ret = states.package_versions("cn01", pins, guarded=CRANED)
    assert ret["result"] is False
    assert "version 1.1.9 of cranesched-craned is not in the repository" in ret["comment"]
    assert (
        version_states({}, repo=["1.1.9-1"], test=True).package_versions("cn01", pins)["result"]
        is True
    )
    # the repository is set up by this very run: nothing to check against yet
    fresh = version_states({}, test=True).package_versions("cn01", pins)
    assert fresh["result"] is True and "does not list it yet" in fresh["comment"]
    # a package file is no repository
    files = version_states({}, repo=["1.1.3"], test=True)
    assert files.package_versions("cn01", pins, repository=False)["result"] is True


# --- restarts that are due -------------------------------------------------------------------


class Markers:
    def __init__(self):
        self.marked = {}
        self.restarted = set()

    def salt(self):
        return {
            "crane.restart_mark": lambda unit, why="": self.marked.__setitem__(unit, why),
            "crane.restart_pending": lambda unit=None: {
                u: {"since": "2026-01-01T00:00:00Z", "why": w}
                for u, w in self.marked.items()
                if u not in self.restarted and unit in (None, u)
            },
            "crane.restart_clear": self.clear,
        }

    def clear(self, unit):
        if unit in self.marked and unit in self.restarted:
            del self.marked[unit]
            return True
        return False


def test_a_watched_change_marks_a_restart_that_stays_until_it_happened():
    markers = Markers()
    crane = load("_states", __salt__=markers.salt(), __opts__={"test": False})
    assert crane.restart_marked("craned")["changes"] == {}
    ret = crane.mod_watch("craned", sfun="restart_marked", why="config.yaml changed")
    assert ret["changes"] == {"restart": "due"} and markers.marked == {
        "craned": "config.yaml changed"
    }
    # the next run (e.g. the package step failed in this one) still reports the restart
    again = crane.restart_marked("craned")
    assert again["result"] is True and again["changes"] == {"restart": "due"}
    assert "config.yaml changed" in again["comment"]
    # a daemon's second marker state (its package) leaves the report to the first one
    assert crane.restart_marked("craned", pending=False)["changes"] == {}
    markers.restarted.add("craned")
    done = crane.restart_marked("craned")
    assert done["changes"] == {} and markers.marked == {}


def test_test_mode_marks_nothing():
    markers = Markers()
    crane = load("_states", __salt__=markers.salt(), __opts__={"test": True})
    ret = crane.mod_watch("craned", sfun="restart_marked")
    assert ret["result"] is None and ret["changes"] == {"restart": "due"}
    assert markers.marked == {}


# --- drains around a cranectld restart -------------------------------------------------------


def drain_states(cluster, record, test=False, restore=None):
    extra = {
        "crane.drains_record": lambda: dict(record),
        "crane.drains_save": lambda: (
            record.update(
                {n: s["reason"] for n, s in cluster.nodes.items() if s["control"] == "drain"}
            )
            or dict(record)
        ),
        "crane.drains_restore": restore or (lambda timeout=60: {"restored": {}, "pending": {}}),
    }
    return states(cluster, test=test, extra=extra)


def test_drains_saved_records_and_test_mode_says_what_it_would_record():
    cluster = FakeCluster(cn01="idle", cn03="idle")
    cluster.drain(["cn03"], "fan broken")
    record = {}
    ret = drain_states(cluster, record, test=True).drains_saved("cranectld")
    assert ret["result"] is None and "cn03 ('fan broken')" in ret["comment"]
    assert record == {}
    ret = drain_states(cluster, record).drains_saved("cranectld")
    assert ret["changes"] == {"recorded": {"cn03": "fan broken"}}
    assert record == {"cn03": "fan broken"}


def test_drains_saved_with_cranectld_down_keeps_the_record():
    cluster = FakeCluster(cn01="idle")
    record = {"cn03": "fan broken"}

    def unreachable():
        raise CommandExecutionError("cranectld is unreachable (cinfo exit 3)")

    crane = drain_states(cluster, record)
    crane.__salt__["crane.nodes"] = unreachable
    ret = crane.drains_saved("cranectld")
    assert ret["result"] is True and "cn03 ('fan broken')" in ret["comment"]
    assert record == {"cn03": "fan broken"}


def test_drains_restored_reports_restored_and_pending():
    cluster = FakeCluster(cn01="idle")
    outcome = {"restored": {"cn02": "disk"}, "pending": {"cn03": "fan broken"}}
    crane = drain_states(
        cluster, {"cn02": "disk", "cn03": "fan broken"}, restore=lambda timeout: outcome
    )
    ret = crane.drains_restored("cranectld")
    assert ret["result"] is True
    assert ret["changes"] == {"restored": {"cn02": "disk"}}
    assert "cn03 ('fan broken')" in ret["comment"]
    assert drain_states(cluster, {}).drains_restored("cranectld")["changes"] == {}
    test_mode = drain_states(cluster, {"cn03": "fan broken"}, test=True).drains_restored("x")
    assert test_mode["result"] is None


def restore_states(present, test=False):
    """The states with binaries ``present`` and pkg.installed recorded, not run."""
    calls = []

    def installed(**kwargs):
        calls.append(kwargs)
        return _ret_like(None if test else True, "reinstalled", {"cranesched-craned": {}})

    crane = load(
        "_states",
        __salt__={"file.file_exists": lambda path: path in present},
        __states__={"pkg.installed": installed},
        __opts__={"test": test},
    )
    return crane, calls


def _ret_like(result, comment, changes):
    return {"name": "cranesched-craned", "result": result, "comment": comment, "changes": changes}


BINARIES = ["/usr/bin/craned", "/usr/libexec/csupervisor"]


def test_package_restored_leaves_a_complete_package_alone():
    crane, calls = restore_states(present=BINARIES)
    ret = crane.package_restored("cranesched-craned", BINARIES, version="1.1.2")
    assert ret["result"] is True and ret["changes"] == {}
    assert calls == []


@pytest.mark.parametrize("test", [False, True])
def test_package_restored_reinstalls_when_a_binary_is_gone(test):
    crane, calls = restore_states(present=BINARIES[:1], test=test)
    ret = crane.package_restored("cranesched-craned", BINARIES, version="1.1.2")
    assert calls == [{"name": "cranesched-craned", "reinstall": True, "version": "1.1.2"}]
    assert ret["result"] is (None if test else True)
    assert ret["comment"].startswith("cranesched-craned: /usr/libexec/csupervisor missing\n")
