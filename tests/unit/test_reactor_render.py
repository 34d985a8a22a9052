"""The reactor SLS (salt/reactor) and crane.orch.join / leave render to one state each,
without calling anything: the reactor hands the event's minion to an orchestration, the
orchestration runs the crane runner's join or leave as a ``salt.runner`` state."""

import json
import pathlib

import jinja2
import pytest
import yaml

SALT = pathlib.Path(__file__).resolve().parents[2] / "salt"


class NoCalls(dict):
    def __getitem__(self, key):
        raise AssertionError(f"the SLS called {key} while rendering")


def render(root, path, **context):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)), extensions=["jinja2.ext.do"]
    )
    env.filters["json"] = json.dumps
    text = env.get_template(path).render(salt=NoCalls(), **context)
    return yaml.safe_load(text) or {}


def reactor(name, data, tag):
    return render(SALT, f"reactor/{name}.sls", data=data, tag=tag)


def orch(name, pillar, test=False):
    return render(
        SALT / "states", f"crane/orch/{name}.sls", pillar=pillar, opts={"test": test},
        tpldir="crane/orch",
    )  # fmt: skip


def orchestrate(states):
    ((sid, state),) = states.items()
    args = state["runner.state.orchestrate"][0]["args"]
    return sid, {k: v for item in args for k, v in item.items()}


def test_start_event_orchestrates_the_join_of_that_minion():
    states = reactor("join", {"id": "gpu05", "cmd": "_minion_event"}, "salt/minion/gpu05/start")
    sid, args = orchestrate(states)
    assert sid == "crane-reactor-join"
    assert args == {"mods": "crane.orch.join", "pillar": {"crane": {"join": "gpu05"}}}


@pytest.mark.parametrize("minion", [None, "", " gpu05", 5])
def test_start_event_without_a_plain_minion_id_does_nothing(minion):
    assert reactor("join", {"id": minion}, "salt/minion/x/start") == {}


def test_minion_id_is_quoted_not_interpreted():
    tricky = "gpu05: {evil: 1}"
    _sid, args = orchestrate(reactor("join", {"id": tricky}, "salt/minion/x/start"))
    assert args["pillar"] == {"crane": {"join": tricky}}


def test_key_delete_orchestrates_the_leave():
    data = {"id": "gpu05", "act": "delete", "result": True}
    sid, args = orchestrate(reactor("leave", data, "salt/key"))
    assert sid == "crane-reactor-leave"
    assert args == {"mods": "crane.orch.leave", "pillar": {"crane": {"leave": "gpu05"}}}


@pytest.mark.parametrize(
    "data",
    [
        {"id": "gpu05", "act": "accept", "result": True},
        {"id": "gpu05", "act": "reject", "result": True},
        {"id": "gpu05", "act": "delete", "result": False},
        {"act": "delete", "result": True},
    ],
)
def test_other_key_events_do_nothing(data):
    assert reactor("leave", data, "salt/key") == {}


@pytest.mark.parametrize("action", ["join", "leave"])
def test_orchestration_runs_the_runner_with_its_options(action):
    pillar = {"crane": {action: "gpu05", "lock_wait": 60, "drain_timeout": 30, "batch": 2,
                        "canary": 1}}  # fmt: skip
    states = orch(action, pillar)
    assert states == {
        f"crane-orch-{action}-run": {
            "salt.runner": [
                {"name": f"crane.{action}"},
                {"minion": "gpu05"},
                {"lock_wait": 60},
                {"drain_timeout": 30},
                {"batch": 2},
            ]
        }
    }


@pytest.mark.parametrize("action", ["join", "leave"])
def test_orchestration_renders_the_same_under_test(action):
    # salt.runner states themselves run nothing under test=True and say what they would run
    pillar = {"crane": {action: "gpu05"}}
    assert orch(action, pillar, test=True) == orch(action, pillar)


@pytest.mark.parametrize("action", ["join", "leave"])
@pytest.mark.parametrize("pillar", [{}, {"crane": {}}, {"crane": {"join": ["a"], "leave": 5}}])
def test_orchestration_without_a_minion_fails_naming_the_key(action, pillar):
    ((sid, state),) = orch(action, pillar).items()
    assert sid == f"crane-orch-{action}-minion-missing"
    assert f"crane:{action}" in state["test.fail_without_changes"][0]["name"]
