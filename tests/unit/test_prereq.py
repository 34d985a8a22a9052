"""Node prerequisites: cgroup mode and controllers as craned needs them, and the names every
node must resolve; the execution module's checks and the gates built on them."""

import socket
import sys

import crane_prereq
import pytest

from tests.support.dunder import load

CONFIG = {
    "ControlMachine": "cranectl",
    "Nodes": [{"name": "cn[01-02]", "cpu": 2, "memory": "2G"}, {"name": "cn03", "cpu": 2}],
}


def v2_root(path, offered="cpuset cpu io memory hugetlb pids rdma", enabled=""):
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.controllers").write_text(offered + "\n")
    (path / "cgroup.subtree_control").write_text(enabled + "\n")
    return path


def v1_root(path, hierarchies=crane_prereq.V1_CONTROLLERS, unified=False):
    for name in (*hierarchies, "systemd"):
        (path / name).mkdir(parents=True)
    if unified:
        (path / "unified").mkdir()
        (path / "unified" / "cgroup.controllers").write_text("\n")
    return path


def test_modes_follow_libcgroup(tmp_path):
    assert crane_prereq.cgroup_mode(str(v2_root(tmp_path / "v2"))) == "v2"
    assert crane_prereq.cgroup_mode(str(v1_root(tmp_path / "v1"))) == "v1"
    assert crane_prereq.cgroup_mode(str(v1_root(tmp_path / "hy", unified=True))) == "hybrid"
    assert crane_prereq.cgroup_mode(str(tmp_path / "absent")) == "none"


def test_v2_names_every_disabled_controller(tmp_path):
    root = str(v2_root(tmp_path, enabled="cpu memory"))
    report = crane_prereq.cgroup_problems("cn01", root)
    assert report["mode"] == "v2"
    assert report["disabled"] == ["io", "cpuset", "pids"]
    assert report["unavailable"] == []
    subtree = f"{root}/cgroup.subtree_control"
    assert report["errors"] == [
        f"cn01: cgroup v2 controller(s) io, cpuset, pids not enabled in {subtree}"
    ]


def test_v2_with_everything_enabled_passes(tmp_path):
    root = str(v2_root(tmp_path, enabled="cpuset cpu io memory pids"))
    assert crane_prereq.cgroup_problems("cn01", root)["errors"] == []


def test_v2_controller_the_kernel_lacks_is_not_called_disabled(tmp_path):
    root = str(v2_root(tmp_path, offered="cpu memory io pids", enabled="cpu memory io pids"))
    report = crane_prereq.cgroup_problems("cn02", root)
    assert (report["unavailable"], report["disabled"]) == (["cpuset"], [])
    assert "offers no cgroup v2 controller cpuset" in report["errors"][0]


def test_hybrid_is_an_error_naming_the_node(tmp_path):
    report = crane_prereq.cgroup_problems("cn03", str(v1_root(tmp_path, unified=True)))
    assert report["mode"] == "hybrid"
    assert report["errors"][0].startswith("cn03: ")
    assert "undefined cgroup version" in report["errors"][0]


def test_v1_names_missing_hierarchies(tmp_path):
    root = str(v1_root(tmp_path, hierarchies=("cpu", "memory", "cpuset")))
    report = crane_prereq.cgroup_problems("cn01", root)
    assert report["unavailable"] == ["devices", "blkio"]
    assert "devices, blkio not mounted" in report["errors"][0]


def test_required_names_in_order_each_once():
    names = crane_prereq.required_names(["cn01", "cn02", "cranectl"], "cranectl", ["login01"])
    assert names == ["cn01", "cn02", "cranectl", "login01"]


def test_name_problems_name_the_unresolved_and_a_wrong_hostname():
    known = {"cn01": "10.0.0.1", "cranectl": "10.0.0.9"}
    errors = crane_prereq.name_problems(
        "cn01", "cn01.example.org", ["cn01", "cn02", "cranectl", "login01"], known.get, ["cn01"]
    )
    assert errors[0] == "cn01 cannot resolve cn02, login01"
    assert "gethostname() returns 'cn01.example.org'" in errors[1]
    # a login node's host name is not craned's business
    assert crane_prereq.name_problems("login01", "x", ["cn01"], known.get, ["cn01"]) == []


def _module(host="cn01", pillar=None):
    return load(
        "_modules",
        __grains__={"host": host, "nodename": host, "os_family": "Debian"},
        __pillar__={"crane": pillar or {"config": CONFIG, "login_nodes": ["login01"]}},
    )


def test_cgroup_check_sets_retcode(tmp_path):
    module = _module()
    report = module.cgroup_check(root=str(v2_root(tmp_path, enabled="cpu")))
    assert report["valid"] is False and report["node"] == "cn01"
    assert module.__context__["retcode"] == 1
    module = _module()
    assert module.cgroup_check(
        root=str(v2_root(tmp_path / "ok", enabled=" ".join(crane_prereq.V2_CONTROLLERS)))
    )["valid"]
    assert "retcode" not in module.__context__


def test_names_check_resolves_for_real(monkeypatch):
    module = _module()
    table = {"cn01": "10.0.0.1", "cn02": "10.0.0.2", "cranectl": "10.0.0.9"}
    monkeypatch.setattr(module, "_resolve", table.get)
    monkeypatch.setattr(module.socket, "gethostname", lambda: "cn01")
    report = module.names_check()
    assert report["names"] == ["cn01", "cn02", "cn03", "cranectl", "login01"]
    assert report["errors"] == ["cn01 cannot resolve cn03, login01"]
    assert module.__context__["retcode"] == 1


def test_resolve_answers_none_for_an_unknown_name():
    module = _module()
    assert module._resolve("localhost")
    assert module._resolve("no-such-host.invalid") is None


def _state(module, test=False):
    return load(
        "_states",
        __salt__={
            "crane.cgroup_check": module.cgroup_check,
            "crane.names_check": module.names_check,
            "crane.settings": module.settings,
        },
        __opts__={"test": test},
    )


def test_cgroup_gate_fails_naming_controllers_and_plans_under_test(tmp_path):
    root = str(v2_root(tmp_path, enabled="cpu memory io"))
    ret = _state(_module()).cgroup_ready("cn01", root=root, enabled_by="crane-cgroup-controllers")
    assert ret["result"] is False and ret["changes"] == {}
    assert "cpuset, pids not enabled" in ret["comment"]
    planned = _state(_module(), test=True).cgroup_ready(
        "cn01", root=root, enabled_by="crane-cgroup-controllers"
    )
    assert planned["result"] is None
    assert planned["comment"] == "crane-cgroup-controllers would enable cpuset, pids on cn01"
    # without the unit, test=True tells the same failure
    assert _state(_module(), test=True).cgroup_ready("cn01", root=root)["result"] is False


@pytest.mark.parametrize("test", [False, True])
def test_cgroup_gate_hybrid_fails_even_under_test(tmp_path, test):
    root = str(v1_root(tmp_path, unified=True))
    ret = _state(_module(), test=test).cgroup_ready("cn01", root=root, enabled_by="unit")
    assert ret["result"] is False
    assert "hybrid" in ret["comment"]


def test_names_gate(monkeypatch):
    module = _module()
    monkeypatch.setattr(module, "_resolve", lambda name: "10.0.0.1" if name != "cn02" else None)
    monkeypatch.setattr(module.socket, "gethostname", lambda: "cn01")
    ret = _state(module).names_resolve("cn01")
    assert ret["result"] is False
    assert "cn01 cannot resolve cn02" in ret["comment"]
    monkeypatch.setattr(module, "_resolve", lambda name: "10.0.0.1")
    ret = _state(module).names_resolve("cn01")
    assert ret["result"] is True and ret["changes"] == {}


def test_hosts_entries_from_the_mine_keep_only_cranesched_names():
    mine_hosts = {"cn01.example": "cn01", "ctl": "cranectl", "web": "web01", "cn02": "cn02"}
    mine_addresses = {
        "cn01.example": ["10.0.0.1", "10.0.1.1"],
        "ctl": "10.0.0.9",
        "web": ["10.0.0.50"],
        "cn02": [],
    }
    entries = crane_prereq.hosts_entries(
        mine_hosts, mine_addresses, ["cn01", "cn02", "cranectl", "login01"]
    )
    assert entries == {"cn01": "10.0.0.1", "cranectl": "10.0.0.9"}


def test_module_hosts_entries_reads_both_mine_functions():
    mine = {
        "crane_host": {"m1": "cn01", "m2": "cranectl", "m3": "login01"},
        "crane_address": {"m1": ["10.0.0.1"], "m2": ["10.0.0.9"], "m3": ["10.0.0.20"]},
    }
    module = _module()
    module.__salt__ = {"mine.get": lambda tgt, fun: mine[fun]}
    assert module.hosts_entries() == {
        "cn01": "10.0.0.1",
        "cranectl": "10.0.0.9",
        "login01": "10.0.0.20",
    }


DATABASE = {"DbHost": "db01", "DbPort": 27018, "DbReplSetName": "crane_rs", "DbPassword": "s3"}


def _mongo(resolves=True, answers=True, hello=None, database=DATABASE):
    return crane_prereq.mongodb_problems(
        "cranectl",
        database,
        lambda host: "10.0.0.5" if resolves else None,
        lambda host, port: answers,
        hello,
    )


def test_mongodb_names_host_and_port_at_each_step():
    assert _mongo(resolves=False) == [
        "cranectl: MongoDB at db01:27018 (DbHost/DbPort): DbHost db01 does not resolve"
    ]
    assert _mongo(answers=False) == [
        "cranectl: MongoDB at db01:27018 (DbHost/DbPort): nothing answers on port 27018"
    ]
    assert _mongo() == []  # no pymongo: resolving and answering is all that can be known


def test_mongodb_defaults_are_cranescheds():
    seen = []
    crane_prereq.mongodb_problems(
        "c", {}, lambda h: "127.0.0.1", lambda h, p: seen.append((h, p)) or True
    )
    assert seen == [("localhost", 27017)]


def test_mongodb_hello_must_show_the_replica_set():
    assert _mongo(hello=lambda h, p: {"setName": "crane_rs", "isWritablePrimary": True}) == []
    wrong = _mongo(hello=lambda h, p: {"setName": "other"})
    assert wrong == [
        "cranectl: MongoDB at db01:27018 (DbHost/DbPort): the server reports replica set "
        "'other', DbReplSetName is 'crane_rs'"
    ]
    assert "reports no replica set" in _mongo(hello=lambda h, p: {})[0]

    def refused(host, port):
        raise RuntimeError("Authentication failed.")

    assert _mongo(hello=refused) == [
        "cranectl: MongoDB at db01:27018 (DbHost/DbPort): hello failed: Authentication failed."
    ]


def test_mongodb_check_and_gate_never_show_the_password(monkeypatch):
    module = _module(host="cranectl", pillar={"config": CONFIG, "database": DATABASE})
    monkeypatch.setattr(module, "_resolve", lambda name: "10.0.0.5")
    monkeypatch.setattr(module, "_port_open", lambda host, port, timeout: False)
    monkeypatch.setattr(module, "_mongodb_hello", lambda database, timeout: None)
    report = module.mongodb_check()
    assert (report["host"], report["port"], report["valid"]) == ("db01", 27018, False)
    assert module.__context__["retcode"] == 1
    state = load("_states", __salt__={"crane.mongodb_check": module.mongodb_check})
    ret = state.mongodb_reachable("cranectl")
    assert ret["result"] is False
    assert "db01:27018" in ret["comment"] and "nothing answers on port 27018" in ret["comment"]
    assert "s3" not in repr(report) + ret["comment"]


def test_mongodb_hello_uses_pymongo_with_admin_auth(monkeypatch):
    calls = {}

    class Client:
        def __init__(self, **kw):
            calls.update(kw)
            self.admin = self

        def command(self, name):
            calls["command"] = name
            return {"setName": "crane_rs"}

        def close(self):
            calls["closed"] = True

    fake = type("pymongo", (), {"MongoClient": Client})
    monkeypatch.setitem(sys.modules, "pymongo", fake)
    module = _module()
    hello = module._mongodb_hello({"DbUser": "admin", "DbPassword": "s3"}, 2)
    assert hello("db01", 27018) == {"setName": "crane_rs"}
    assert calls["command"] == "hello" and calls["closed"]
    assert (calls["username"], calls["authSource"], calls["serverSelectionTimeoutMS"]) == (
        "admin",
        "admin",
        2000,
    )


def test_port_open_against_a_real_listener():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert _module()._port_open("127.0.0.1", port, 2) is True
    assert _module()._port_open("127.0.0.1", port, 2) is False


TLS_CONFIG = {
    "TLS": {
        "Enabled": "yes",
        "CaFilePath": "/tls/ca.pem",
        "InternalCertFilePath": "/tls/internal.pem",
        "InternalKeyFilePath": "/tls/internal.key",
        "ExternalCertFilePath": "/tls/external.pem",
        "ExternalKeyFilePath": "",
    }
}


def test_tls_files_per_daemon():
    files = crane_prereq.tls_files
    assert list(files(TLS_CONFIG, ["craned"])) == [
        "CaFilePath",
        "InternalCertFilePath",
        "InternalKeyFilePath",
    ]
    assert list(files(TLS_CONFIG, ["cli"])) == ["CaFilePath", "ExternalCertFilePath"]
    assert len(files(TLS_CONFIG, ["cranectld", "cli"])) == 5
    assert files({"TLS": {"Enabled": False, "CaFilePath": "/x"}}, ["craned"]) == {}
    assert files({}, ["cranectld"]) == {}


def test_tls_problems_name_each_file(tmp_path):
    (tmp_path / "ca.pem").write_text("CERT")
    (tmp_path / "internal.pem").write_text("")
    files = {
        "CaFilePath": str(tmp_path / "ca.pem"),
        "InternalCertFilePath": str(tmp_path / "internal.pem"),
        "InternalKeyFilePath": str(tmp_path / "internal.key"),
        "ExternalKeyFilePath": "",
    }
    assert crane_prereq.tls_problems("cranectl", files) == [
        f"cranectl: {tmp_path}/internal.pem (TLS.InternalCertFilePath) is empty",
        f"cranectl: {tmp_path}/internal.key (TLS.InternalKeyFilePath): No such file or directory",
        "cranectl: TLS.ExternalKeyFilePath is not set",
    ]


def test_tls_gate_and_module_roles(tmp_path):
    module = _module(host="cn01", pillar={"config": {**CONFIG, **TLS_CONFIG}})
    assert list(module.tls_files()) == ["CaFilePath", "InternalCertFilePath", "InternalKeyFilePath"]
    state = load("_states", __salt__={"crane.tls_check": module.tls_check})
    ret = state.tls_ready("cn01")
    assert ret["result"] is False and ret["changes"] == {}
    assert "/tls/ca.pem (TLS.CaFilePath)" in ret["comment"]
    (tmp_path / "ca.pem").write_text("CERT")
    ret = state.tls_ready("cn01", files={"CaFilePath": str(tmp_path / "ca.pem")})
    assert ret["result"] is True
