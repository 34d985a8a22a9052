"""The crane runner's engine against fake minions: exit codes and failure texts."""

import importlib.util
import pathlib

import crane_hostlist
import crane_upgrade
import crane_version
import pytest

RUNNER = pathlib.Path(__file__).resolve().parents[2] / "salt" / "_runners" / "crane.py"


@pytest.fixture
def runner(monkeypatch):
    spec = importlib.util.spec_from_file_location("crane_runner_under_test", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    utils = {f"crane_upgrade.{n}": getattr(crane_upgrade, n) for n in dir(crane_upgrade)}
    utils["crane_hostlist.expand"] = crane_hostlist.expand
    utils.update({f"crane_version.{n}": getattr(crane_version, n) for n in dir(crane_version)})
    module.__utils__ = utils
    module.__opts__ = {"conf_file": "/dev/null", "sock_dir": "/nonexistent"}
    module.__context__ = {}
    monkeypatch.setattr(module, "_progress", lambda message: None)
    return module


def fake_cluster(runner, monkeypatch, calls, answers):
    """Minions answer from ``answers[fun]`` (a value or a callable of the target)."""

    def cmd(tgt, fun, arg=(), *, kwarg=None, tgt_type="list", timeout=0):
        calls.append((tgt, fun, list(arg), kwarg))
        minions = ["cranectl", "cn01", "cn02"] if tgt_type != "list" else list(tgt)
        answer = answers.get(fun, True)
        return {
            m: {"ret": answer(m) if callable(answer) else answer, "retcode": 0} for m in minions
        }

    monkeypatch.setattr(runner, "_cmd", cmd)


IDLE = {"resource": "idle", "control": "none", "reason": "", "state": "idle[power_idle]"}


def answers_for(healthy=True, repo_versions=("1.1.2", "1.1.3")):
    roles = {"cranectl": ["control"], "cn01": ["compute"], "cn02": ["compute"]}
    return {
        "crane.roles": lambda m: roles[m],
        "test.ping": True,
        "grains.get": lambda m: m,
        "crane.settings": {"version": "1.1.2", "login_nodes": []},
        "crane.nodes": {"cn01": dict(IDLE), "cn02": dict(IDLE)},
        "crane.health": {"healthy": healthy, "up": ["cn01", "cn02"], "down": [], "summary": "x"},
        "crane.show_node": {n: {"version": "1.1.2"} for n in ("cn01", "cn02")},
        "saltutil.sync_all": {},
        "crane.config_hash": "abc",
        "cp.get_file_str": "values: {package_names: {craned: cranesched-craned}}",
        "pkg.version": "1.1.2",
        "pkg.refresh_db": True,
        "pkg.list_repo_pkgs": lambda m: {
            name: list(repo_versions)
            for name in ("cranesched-craned", "cranesched-cranectld", "cranesched-frontend")
        },
    }


def test_unhealthy_cluster_stops_before_touching_a_node(runner, monkeypatch):
    calls = []
    fake_cluster(runner, monkeypatch, calls, answers_for(healthy=False))
    report = runner.upgrade("1.1.3", batch=2)
    assert report["retcode"] == 1
    assert report["Error"].startswith("cluster not healthy")
    assert runner.__context__["retcode"] == 1
    assert not [c for c in calls if c[1] in ("state.apply", "service.stop", "crane.drain")]


def test_version_not_in_the_repository_stops_the_run(runner, monkeypatch):
    calls = []
    fake_cluster(runner, monkeypatch, calls, answers_for(repo_versions=("1.1.2",)))
    report = runner.upgrade("1.1.3")
    assert report["retcode"] == 1
    assert "1.1.3 is not installable" in report["failed"]["preflight"]


def test_rpm_repository_versions_carry_a_release(runner, monkeypatch):
    """dnf lists 1.1.3-1: the pillar's 1.1.3 is in the repository, 1.1.3-2 is not."""
    rpm_repo = answers_for(repo_versions=("1.1.2-1", "1.1.3-1"))
    fake_cluster(runner, monkeypatch, [], rpm_repo)
    assert runner.upgrade("1.1.3", dry_run=True)["retcode"] == 0
    assert runner.upgrade("1.1.3-1", dry_run=True)["retcode"] == 0
    report = runner.upgrade("1.1.3-2", dry_run=True)
    assert "1.1.3-2 is not installable" in report["failed"]["preflight"]


def test_restart_accepts_rpm_package_versions(runner, monkeypatch):
    """rpm reports 1.1.2-1 for the pillar's 1.1.2: the same version, no refusal."""
    answers = answers_for(repo_versions=("1.1.2-1",))
    answers["pkg.version"] = "1.1.2-1"
    fake_cluster(runner, monkeypatch, [], answers)
    assert runner.restart(dry_run=True)["retcode"] == 0
    answers["pkg.version"] = "1.1.3-1"
    report = runner.restart(dry_run=True)
    assert "nodes run 1.1.3-1 but the pillar pins crane:version '1.1.2'" in report["Error"]


def test_downgrade_is_refused(runner, monkeypatch):
    fake_cluster(runner, monkeypatch, [], answers_for(repo_versions=("1.1.1", "1.1.2")))
    report = runner.upgrade("1.1.1")
    assert report["retcode"] == 1
    assert "refusing a downgrade to 1.1.1" in report["Error"]


def test_dry_run_plans_and_changes_nothing(runner, monkeypatch):
    calls = []
    fake_cluster(runner, monkeypatch, calls, answers_for())
    report = runner.upgrade("1.1.3", batch="50%", dry_run=True)
    assert report["retcode"] == 0
    assert report["plan"]["batches"] == [["cn01"], ["cn02"]]
    changing = ("state.apply", "service.stop", "crane.drain", "crane.resume", "crane.backup_db")
    assert not [c for c in calls if c[1] in changing]


def test_bad_arguments_exit_non_zero(runner):
    assert runner.upgrade("1.1.3", batch="0")["retcode"] == 1
    assert runner.upgrade("1.1.3", strategy="yolo")["retcode"] == 1
    assert "unknown argument" in runner.upgrade("1.1.3", bacth=2)["Error"]


def test_state_failures_quote_the_daemon_reason(runner):
    comment = (
        "craned is not running (activating/auto-restart, exit status 1, 0 restart(s))\n"
        "journal:\nStarted craned.service - Crane.\n"
        "csupervisor /usr/libexec/csupervisor does not exist\n"
        "craned.service: Main process exited, code=exited, status=1/FAILURE\n"
        "log file:\n[W 26-11-29 04:57:18.422 CtldClient.cpp:0][default] Channel is broken\n"
        "[I 26-11-29 04:43:08.368 Craned.cpp:0][default] Craned is ending."
    )
    ret = {
        "crane_|-a_|-craned_|-daemon_healthy": {"__id__": "a", "result": False, "comment": comment},
        "service_|-b_|-x_|-running": {"__id__": "b", "result": True, "comment": "ok"},
        "test_|-c_|-x_|-nop": {
            "__id__": "c",
            "result": False,
            "comment": "One or more requisite failed",
        },
    }
    assert runner._state_failures(ret) == [
        "a: craned is not running: csupervisor /usr/libexec/csupervisor does not exist"
    ]
    assert runner._state_failures(["Rendering SLS failed"]) == [
        "state.apply did not run: ['Rendering SLS failed']"
    ]
    assert runner._state_failures({"x": {"result": True}}) == []
