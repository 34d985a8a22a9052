"""The opt-in prerequisites' pure rules: plugin.yaml and its gate, TLS files from the pillar,
the managed MongoDB's settings and its decision table."""

import crane_mongodb
import crane_prereq

PLUGINS = {
    "Enabled": True,
    "Plugins": [
        {"Name": "monitor", "Path": "/usr/lib/crane/plugin/monitor.so"},
        {"Name": "mail", "Path": "/usr/lib/crane/plugin/mail.so"},
    ],
}


def test_plugin_gate_names_each_missing_so():
    present = {"/usr/lib/crane/plugin/monitor.so"}
    errors = crane_prereq.plugin_file_problems("cn01", PLUGINS, exists=present.__contains__)
    assert errors == [
        "cn01: plugin 'mail': /usr/lib/crane/plugin/mail.so (Plugins[1].Path) does not exist; "
        "cplugind would run without it"
    ]
    disabled = {**PLUGINS, "Enabled": False}
    assert crane_prereq.plugin_file_problems("cn01", disabled, exists=lambda path: False) == []


def test_plugin_config_good_and_listen_port_as_number():
    good = {**PLUGINS, "PlugindListenAddress": "0.0.0.0", "PlugindListenPort": 10015}
    assert crane_prereq.plugin_problems(good) == ([], [])
    errors, _warnings = crane_prereq.plugin_problems({"Plugins": "monitor"})
    assert errors == [
        "crane:plugin:config:Plugins: must be a list (cplugind reads it with Go's yaml.v3)"
    ]


def test_tls_pillar_files_off_warns_and_names_never_content():
    errors, warnings = crane_prereq.tls_pillar_problems(
        {"ca.pem": "PEM"}, {"CaFilePath": "/etc/crane/tls/ca.pem"}, manage=False
    )
    assert errors == []
    assert warnings == ["crane:tls:files: has no effect while crane:tls:manage is off"]


def test_mongodb_manage_settings():
    database = {"DbUser": "admin", "DbPassword": "pw", "DbReplSetName": "crane_rs"}
    assert crane_prereq.mongodb_manage_problems("a" * 756, database, ["cranectl"]) == ([], [])
    errors, warnings = crane_prereq.mongodb_manage_problems(
        "not base64!", {**database, "DbHost": "db01"}, ["cranectl"]
    )
    assert errors == [
        "crane:mongodb:keyfile: MongoDB takes 6 to 1024 characters of the base64 set "
        "(A-Z, a-z, 0-9, +, /, =)"
    ]
    assert warnings[0].startswith("crane:database:DbHost: cranectld connects to db01")


def probe(set_name=None, authenticated=False, user_exists=False, primary=False):
    return {
        "setName": set_name,
        "authenticated": authenticated,
        "userExists": user_exists,
        "isWritablePrimary": primary,
    }


def test_mongodb_plan():
    assert crane_mongodb.plan(probe(), "rs") == (["initiate", "create_user"], None)
    assert crane_mongodb.plan(probe("rs", primary=True), "rs") == (["create_user"], None)
    assert crane_mongodb.plan(probe("rs", authenticated=True), "rs") == ([], None)
    assert crane_mongodb.plan(probe(authenticated=True), "rs") == (["initiate"], None)
    steps, error = crane_mongodb.plan(probe(user_exists=None), "rs")
    assert not steps and "authorization on" in error
    steps, error = crane_mongodb.plan(probe(user_exists=True), "rs")
    assert not steps and "does not authenticate" in error


def test_mongodb_converge_stops_at_a_refused_step():
    replies = {"probe": probe(), "initiate": {"ok": 0, "errmsg": "bad member"}}
    result = crane_mongodb.converge(replies.__getitem__, "rs", "cranectl:27017")
    assert result == {
        "result": False,
        "changes": {},
        "comment": "replica set rs: rs.initiate failed: bad member",
    }
