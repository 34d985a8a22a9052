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


def daemon_states(reports, test=False):
    sequence = iter(reports)
    return load(
        "_states",
        __salt__={"crane.daemon_report": lambda *a, **k: next(sequence)},
        __opts__={"test": test},
    )


def test_daemon_healthy_running_long_enough():
    ret = daemon_states([report()]).daemon_healthy("craned", settle=3)
    assert (ret["result"], ret["changes"]) == (True, {})


def test_daemon_healthy_waits_then_sees_the_exit_and_its_reason():
    died = report(active=False, pid=0, journal="Illegal memory format.", log="craned.log tail")
    ret = daemon_states([report(uptime=0.1), died]).daemon_healthy("craned", settle=3, poll=0)
    assert ret["result"] is False
    assert "Illegal memory format." in ret["comment"] and "craned.log tail" in ret["comment"]


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
    mod = load("_states", __salt__={"crane.validate_config": lambda **kw: result})
    ret = mod.config_valid("/etc/crane/config.yaml", config={}, notes=["forced"])
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
    mod = load("_states", __salt__={"crane.gres_validate": lambda **kw: result})
    ret = mod.gres_valid("cn03")
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
        "[2026-11-29 22:57:04.637] [critical] Config file '/etc/crane/config.yaml' not existed"
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
