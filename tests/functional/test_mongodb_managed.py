"""The managed MongoDB's replica set and admin user (crane:mongodb:manage), driven through
Salt's loader against a recording ``mongosh`` stand-in (tests/support/mongosh_standin.py):
no MongoDB server can run here. Shown: the user is created while authorization is off and
before it is turned on, a second run neither re-initiates nor re-creates the user,
test=True changes nothing, and the password appears in no return, command line or log."""

import json
import logging
import os
import pathlib
import tempfile

import pytest

from tests.support.caller import node_grains

STANDIN = pathlib.Path(__file__).resolve().parents[1] / "support" / "mongosh_standin.py"
PASSWORD = "s3cret-Pw-42"
USER = "crane-admin"
DATABASE = {
    "DbUser": USER,
    "DbPassword": PASSWORD,
    "DbHost": "localhost",
    "DbPort": 27017,
    "DbReplSetName": "crane_rs",
}


@pytest.fixture
def mongo(tmp_path, monkeypatch):
    env = {
        "MONGOSH_STANDIN_STATE": tmp_path / "state.json",
        "MONGOSH_STANDIN_CONF": tmp_path / "mongod.conf",
        "MONGOSH_STANDIN_LOG": tmp_path / "calls.jsonl",
    }
    for key, path in env.items():
        monkeypatch.setenv(key, str(path))
    env["MONGOSH_STANDIN_LOG"].write_text("")
    return env


def run(minion, test=False, database=None):
    return minion.call(
        "state.single",
        "crane.mongodb_replica_set",
        name="cranectl",
        mongosh=str(STANDIN),
        timeout=10,
        test=test,
        grains=node_grains("debian12", "cranectl"),
        pillar={"crane": {"database": database or DATABASE}},
    )


def result_of(returned):
    (state,) = returned.values()
    return state


def calls(mongo):
    text = mongo["MONGOSH_STANDIN_LOG"].read_text()
    return [json.loads(line) for line in text.splitlines()]


def authorization_on(mongo):
    mongo["MONGOSH_STANDIN_CONF"].write_text("security:\n  authorization: enabled\n")


def test_first_run_initiates_then_creates_the_user_then_nothing(local_minion, mongo, caplog):
    caplog.set_level(logging.DEBUG)
    planned = result_of(run(local_minion, test=True))
    assert planned["result"] is None
    assert set(planned["changes"]) == {"initiate", "create_user"}
    assert [c["op"] for c in calls(mongo)] == ["probe"]  # test=True only asks

    done = result_of(run(local_minion))
    assert done["result"] is True, done["comment"]
    assert set(done["changes"]) == {"initiate", "create_user"}
    ops = [c["op"] for c in calls(mongo)][1:]
    assert ops[0] == "probe" and ops[1] == "initiate" and ops[-1] == "create_user"
    assert all(op == "probe" for op in ops[2:-1])  # waited for the member to become primary
    assert not any(c["authorization"] for c in calls(mongo))  # all before authorization is on

    authorization_on(mongo)
    before = len(calls(mongo))
    again = result_of(run(local_minion))
    assert again["result"] is True
    assert again["changes"] == {}
    later = calls(mongo)[before:]
    assert [c["op"] for c in later] == ["probe"]
    assert later[0]["authenticated"] and later[0]["authorization"]
    assert result_of(run(local_minion, test=True))["changes"] == {}

    for call in calls(mongo):
        assert call["script_mode"] == "0o600"
        assert PASSWORD not in " ".join(call["argv"])
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr([planned, done, again])
    assert not [n for n in os.listdir(tempfile.gettempdir()) if n.startswith("crane-mongosh-")]


def test_authorization_on_before_the_user_exists_fails_naming_it(local_minion, mongo):
    authorization_on(mongo)
    failed = result_of(run(local_minion))
    assert failed["result"] is False
    assert "refuses the credentials of crane:database (DbUser, DbPassword)" in failed["comment"]
    assert "authorization on" in failed["comment"]
    assert failed["changes"] == {}
    assert PASSWORD not in failed["comment"] and USER not in failed["comment"]
    assert [c["op"] for c in calls(mongo)] == ["probe"]


def test_wrong_password_for_an_existing_user_fails(local_minion, mongo):
    assert result_of(run(local_minion))["result"] is True
    wrong = {**DATABASE, "DbPassword": "not-it"}
    failed = result_of(run(local_minion, database=wrong))
    assert failed["result"] is False
    assert "DbUser exists but does not authenticate with DbPassword" in failed["comment"]
    assert "not-it" not in failed["comment"]


def test_mongod_down_fails_and_test_mode_plans(local_minion, mongo):
    mongo["MONGOSH_STANDIN_STATE"].write_text(
        json.dumps({"setName": None, "primary": False, "users": {}, "down": True, "hellos": 0})
    )
    failed = result_of(run(local_minion))
    assert failed["result"] is False
    assert "ECONNREFUSED" in failed["comment"]
    planned = result_of(run(local_minion, test=True))
    assert planned["result"] is None
    assert "does not answer yet" in planned["comment"]


def test_another_replica_set_is_left_alone(local_minion, mongo):
    mongo["MONGOSH_STANDIN_STATE"].write_text(
        json.dumps({"setName": "other", "primary": True, "users": {}, "down": False, "hellos": 2})
    )
    failed = result_of(run(local_minion))
    assert failed["result"] is False
    assert "replica set 'other', not 'crane_rs'" in failed["comment"]
    assert [c["op"] for c in calls(mongo)] == ["probe"]
