"""The crane_ha states with the node's facts faked: cranectld runs where keepalived is
master, is never started on the backup, test=True plans truthfully and a second run is quiet."""

import pytest

from tests.support.dunder import load


class Node:
    """A control node: VIP held or not, cranectld active or not, enabled at boot, restart due."""

    def __init__(self, master, active, enabled=False, due=False):
        self.master, self.active, self.enabled, self.due = master, active, enabled, due
        self.calls = []

    def clear(self, unit, force=False):
        assert force  # a restart still due is forgotten only on purpose
        self.calls.append(("clear", unit))
        self.due = False
        return True

    def salt(self):
        def on_master(argv, **_kw):
            self.calls.append(("on_master", argv[0]))
            self.active = True
            return {"retcode": 0, "stdout": "", "stderr": ""}

        def act(name, value):
            def call(unit):
                self.calls.append((name, unit))
                if name == "disable":
                    self.enabled = False
                else:
                    self.active, self.due = True, False
                return value

            return call

        return {
            "crane_ha.status": lambda **_kw: {
                "master": self.master,
                "cranectld": self.active,
                "keepalived": True,
                "alive_file": self.active,
            },
            "service.enabled": lambda unit: self.enabled,
            "crane.restart_pending": lambda unit: {unit: {}} if self.due else {},
            "service.disable": act("disable", True),
            "service.restart": act("restart", True),
            "cmd.run_all": on_master,
            "crane.restart_clear": self.clear,
        }


def run(node, test=False, restart=True):
    states = load("_states", name="crane_ha", __salt__=node.salt(), __opts__={"test": test})
    return states.cranectld_role("cranectld", "10.0.0.10", "/etc/keepalived/crane-on-master.sh",
                                 restart=restart)  # fmt: skip


def test_master_without_cranectld_starts_it_through_the_notify_script_then_is_quiet():
    node = Node(master=True, active=False, enabled=True)
    first = run(node)
    assert first["result"] is True and set(first["changes"]) == {"disable", "on_master"}
    assert node.calls == [
        ("disable", "cranectld"),
        ("on_master", "/etc/keepalived/crane-on-master.sh"),
    ]
    second = run(node)
    assert second["result"] is True and second["changes"] == {}
    assert second["comment"] == "master: cranectld is running, as keepalived wants"


def test_backup_never_starts_cranectld_and_forgets_a_restart_due():
    node = Node(master=False, active=False, due=True)
    result = run(node)
    assert result == {
        "name": "cranectld",
        "result": True,
        "comment": "backup: cranectld is not running, as keepalived wants",
        "changes": {},
    }
    assert node.calls == [("clear", "cranectld")]  # the next start reads the new config
    assert run(node, test=True)["changes"] == {} and node.calls == [("clear", "cranectld")]


def test_backup_running_cranectld_is_reported_not_touched():
    node = Node(master=False, active=True)
    result = run(node)
    assert result["changes"] == {} and "runs on this backup node" in result["comment"]
    assert node.calls == []


@pytest.mark.parametrize("restart", [True, False])
def test_master_restarts_only_when_due_and_allowed(restart):
    node = Node(master=True, active=True, due=True)
    result = run(node, restart=restart)
    assert (("restart", "cranectld") in node.calls) is restart
    assert bool(result["changes"]) is restart


def test_test_mode_plans_and_changes_nothing():
    node = Node(master=True, active=False, enabled=True)
    result = run(node, test=True)
    assert result["result"] is None
    assert set(result["changes"]) == {"disable", "on_master"}
    assert node.calls == [] and node.enabled and not node.active


def test_failed_notify_script_fails_the_state():
    node = Node(master=True, active=False)
    salt = node.salt()
    salt["cmd.run_all"] = lambda argv, **_kw: {"retcode": 1, "stdout": "", "stderr": "held"}
    states = load("_states", name="crane_ha", __salt__=salt, __opts__={"test": False})
    result = states.cranectld_role("cranectld", "10.0.0.10", "/x/on_master.sh")
    assert result["result"] is False
    assert result["comment"] == "master: /x/on_master.sh failed: held"


IP_ADDR = (
    "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
    "2: host0    inet 10.0.0.11/24 brd 10.0.0.255 scope global host0\\       valid_lft forever\n"
    "2: host0    inet 10.0.0.10/24 scope global secondary host0\\       valid_lft forever\n"
)


def status_module(addresses, active_units=("keepalived",)):
    def run_all(argv, **_kw):
        if argv[0] == "ip":
            return {"retcode": 0, "stdout": addresses, "stderr": ""}
        return {"retcode": 0 if argv[-1] in active_units else 3, "stdout": "", "stderr": ""}

    settings = {
        "ha": {"keepalived_service": "keepalived"},
        "ha_facts": {"vip_address": "10.0.0.10"},
    }
    salt = {"cmd.run_all": run_all, "crane.settings": lambda: settings}
    return load("_modules", name="crane_ha", __salt__=salt)


def test_status_master_is_the_node_holding_the_vip(tmp_path):
    alive = tmp_path / "cranectld.alive"
    alive.write_text("")
    module = status_module(IP_ADDR, ("keepalived", "cranectld"))
    assert module.status(alive_file=str(alive)) == {
        "master": True,
        "keepalived": True,
        "cranectld": True,
        "alive_file": True,
    }
    backup = status_module(IP_ADDR.replace("10.0.0.10/24", "10.0.0.99/24"))
    assert backup.status(alive_file=str(tmp_path / "none")) == {
        "master": False,
        "keepalived": True,
        "cranectld": False,
        "alive_file": False,
    }
