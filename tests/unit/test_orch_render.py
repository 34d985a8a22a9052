"""crane.orch.upgrade / crane.orch.restart render to one state without calling anything:
the runner runs as a ``salt.runner`` state, and under test=True a ``crane_run.plan`` state asks
the engine for its dry run (a render that called the runner would sync modules and refresh
package databases even for a dry run)."""

import importlib.util
import json
import pathlib

import jinja2
import pytest
import yaml

ORCH = pathlib.Path(__file__).resolve().parents[2] / "salt" / "states" / "crane" / "orch"


class NoCalls(dict):
    def __getitem__(self, key):
        raise AssertionError(f"the orchestration called {key} while rendering")


def render(sls, pillar, test=False):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ORCH.parent.parent)), extensions=["jinja2.ext.do"]
    )
    env.filters["json"] = json.dumps
    text = env.get_template(f"crane/orch/{sls}.sls").render(
        opts={"test": test}, pillar=pillar, tpldir="crane/orch", salt=NoCalls()
    )
    return yaml.safe_load(text)


def test_upgrade_runs_the_runner_as_a_salt_runner_state():
    states = render("upgrade", {"crane": {"version": "1.1.3", "batch": 2, "skip_busy": True}})
    assert states == {
        "crane-orch-upgrade-run": {
            "salt.runner": [
                {"name": "crane.upgrade"},
                {"batch": 2},
                {"skip_busy": True},
                {"version": "1.1.3"},
            ]
        }
    }


@pytest.mark.parametrize(
    ("sls", "fun"), [("upgrade", "crane.upgrade"), ("restart", "crane.restart")]
)
def test_test_mode_renders_the_plan_state(sls, fun):
    states = render(sls, {"crane": {"version": "1.1.3", "batch": "50%"}}, test=True)
    ((sid, state),) = states.items()
    assert sid == f"crane-orch-{sls}-plan"
    args = state["crane_run.plan"]
    assert args[0] == {"runner": fun}
    assert {"batch": "50%"} in args


def test_upgrade_without_a_version_fails_without_calling_anything():
    states = render("upgrade", {"crane": {}})
    assert list(states) == ["crane-orch-upgrade-version-missing"]


def plan_state(report):
    path = ORCH.parents[2] / "_states" / "crane_run.py"
    spec = importlib.util.spec_from_file_location("crane_run_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []

    def runner(fun, **kwargs):
        calls.append((fun, kwargs))
        return report

    module.__salt__ = {"saltutil.runner": runner}
    return module, calls


def test_plan_state_asks_for_a_dry_run_and_shows_the_plan():
    report = {"retcode": 0, "plan": {"batches": [["cn01"]]}, "plan_text": "Plan: upgrade"}
    module, calls = plan_state(report)
    ret = module.plan("x", runner="crane.upgrade", version="1.1.3", __pub_user="root")
    assert calls == [("crane.upgrade", {"dry_run": True, "version": "1.1.3"})]
    assert ret["result"] is None
    assert ret["comment"] == "Plan: upgrade"


def test_plan_state_fails_when_preflight_fails():
    module, _ = plan_state({"retcode": 1, "summary": "FAILED before touching any node: x"})
    ret = module.plan("x", runner="crane.restart")
    assert ret["result"] is False
    assert ret["comment"] == "FAILED before touching any node: x"
