"""The formula's firewall rules: which rules a node needs, which present rules are the
formula's, and the crane_firewall states against stand-ins of ufw and firewall-cmd that keep
their rules the way the real programs print them."""

import ipaddress
import shlex

import crane_config
import crane_firewall as fw
import pytest

from tests.support.dunder import load

NET = ipaddress.ip_network("10.0.0.0/24")


# --- pure logic ----------------------------------------------------------------------------


def test_wanted_rules_are_each_port_from_each_source_or_from_anywhere():
    assert fw.wanted([10011, 10013]) == [(None, 10011), (None, 10013)]
    rules = fw.wanted(["10010"], ["fd00::/64", "10.0.0.0/24", "10.0.0.0/24"])
    assert rules == [(NET, 10010), (ipaddress.ip_network("fd00::/64"), 10010)]
    assert fw.describe(rules[0]) == "10010/tcp from 10.0.0.0/24"
    assert fw.describe((None, 10010)) == "10010/tcp from anywhere"


UFW_ADDED = """\
Added user rules (see 'ufw status' for running firewall):
ufw allow 22/tcp
ufw allow 10010/tcp
ufw allow from 10.0.0.0/24 to any port 10011 proto tcp comment 'crane-formula'
ufw allow from 10.0.0.5 to any port 10012 proto tcp comment 'crane-formula'
ufw deny 10013/tcp
ufw allow in on eth0 to any port 10013 proto tcp comment 'crane-formula'
ufw allow 10014/udp comment 'crane-formula'
"""


def test_ufw_rules_present_and_whose_they_are():
    assert fw.ufw_present(UFW_ADDED) == {
        (None, 22): False,
        (None, 10010): False,
        (NET, 10011): True,
        (ipaddress.ip_network("10.0.0.5/32"), 10012): True,
    }


def test_an_admin_rule_is_neither_duplicated_nor_removed():
    present = fw.ufw_present(UFW_ADDED)
    add, remove = fw.plan(present, fw.wanted([10010, 10011]))
    assert add == [(None, 10011)]
    assert sorted(remove, key=fw.describe) == [
        (NET, 10011),
        (ipaddress.ip_network("10.0.0.5/32"), 10012),
    ]
    assert fw.plan(present, []) == ([], remove)


def test_ufw_commands_add_before_they_remove():
    assert fw.ufw_commands([(NET, 10010)], [(None, 10010)]) == [
        ["ufw", "allow", "from", "10.0.0.0/24", "to", "any", "port", "10010", "proto", "tcp",
         "comment", "crane-formula"],
        ["ufw", "delete", "allow", "10010/tcp"],
    ]  # fmt: skip


ZONES = """\
public (active)
  target: default
  interfaces: host0
  services: dhcpv6-client ssh crane-formula
  ports: 10012/tcp
  rich rules: \n\
\trule family="ipv4" source address="10.0.0.0/24" service name="crane-formula" accept
\trule family="ipv4" source address="10.0.0.0/24" service name="ssh" accept

trusted
  target: ACCEPT
  services: \n\
  rich rules: \n\
"""


def test_firewalld_zones_list_the_formula_entries_only():
    rich = 'rule family="ipv4" source address="10.0.0.0/24" service name="crane-formula" accept'
    assert fw.rich_rule(NET) == rich
    assert fw.zones_present(ZONES) == {"public": ["service", rich], "trusted": []}
    assert fw.service_ports("10011/tcp 10013/tcp 53/udp\n") == [10011, 10013]


def test_firewalld_changes_from_nothing_to_open_from_a_network():
    commands, added, removed = fw.firewalld_changes(
        {"public": [], "internal": []}, "internal", [NET], None, [10010]
    )
    base = ["firewall-cmd", "--permanent"]
    assert commands == [
        [*base, "--new-service=crane-formula"],
        [*base, "--service=crane-formula", "--add-port=10010/tcp"],
        [*base, "--zone=internal", f"--add-rich-rule={fw.rich_rule(NET)}"],
    ]
    assert added == ["service crane-formula: 10010/tcp", f"zone internal: {fw.rich_rule(NET)}"]
    assert removed == []


def test_firewalld_changes_move_and_remove_only_the_formula_entries():
    zones = fw.zones_present(ZONES)
    commands, _, removed = fw.firewalld_changes(zones, "public", [None], [10010, 10012], [10010])
    assert [c[2:] for c in commands] == [
        ["--zone=public", f"--remove-rich-rule={fw.rich_rule(NET)}"],
        ["--service=crane-formula", "--remove-port=10012/tcp"],
    ]
    assert removed == [f"zone public: {fw.rich_rule(NET)}", "service crane-formula: 10012/tcp"]
    done = {"public": ["service"], "trusted": []}
    assert fw.firewalld_changes(done, "public", [None], [10010], [10010]) == ([], [], [])
    commands, _, removed = fw.firewalld_changes(zones, "", [], [10010], [])
    assert [c[2:] for c in commands] == [
        ["--zone=public", "--remove-service=crane-formula"],
        ["--zone=public", f"--remove-rich-rule={fw.rich_rule(NET)}"],
        ["--delete-service=crane-formula"],
    ]


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        (["10.0.0.1/24"], "'10.0.0.1/24' is not a network in CIDR form, e.g. 10.0.0.0/24 (10."),
        (["cn01"], "'cn01' is not a network in CIDR form"),
        ([10], "10 is not a network in CIDR form: quote it"),
        ("10.0.0.0/24", "must be a list, not a str"),
    ],
)
def test_bad_sources_are_an_error_naming_the_key(sources, message):
    defaults = {"firewall_sources": [], "firewall_zone": ""}
    usable, errors, _ = crane_config.check_settings({"firewall_sources": sources}, defaults)
    assert len(errors) == 1 and errors[0].startswith(f"crane:firewall_sources: {message}"), errors
    assert usable == {}


def test_good_sources_pass():
    defaults = {"firewall_sources": []}
    pillar = {"firewall_sources": ["10.0.0.0/24", "192.168.1.7/32", "fd00::/64"]}
    assert crane_config.check_settings(pillar, defaults) == (pillar, [], [])


# --- the states against stand-ins of ufw and firewall-cmd ----------------------------------


class FakeUfw:
    """ufw's user rules: ``show added`` prints them as ufw does, allow/delete edit them
    (an identical rule gets the new comment, as ufw's "Rule updated")."""

    def __init__(self, rules=(), active=True):
        self.rules = list(rules)  # [(rule words, comment)]
        self.active = active
        self.calls = []

    def __call__(self, cmd, **_kw):
        self.calls.append(cmd)
        words = cmd[1:]
        if words == ["status"]:
            return self._out("Status: active" if self.active else "Status: inactive")
        if words == ["show", "added"]:
            lines = ["Added user rules (see 'ufw status' for running firewall):"]
            for rule, comment in self.rules:
                text = "ufw " + " ".join(rule)
                lines.append(text + (f" comment {shlex.quote(comment)}" if comment else ""))
            return self._out("\n".join(lines))
        if words[0] == "delete":
            self.rules = [(r, c) for r, c in self.rules if r != words[1:]]
            return self._out("Rule deleted")
        comment = words[-1] if words[-2:-1] == ["comment"] else None
        rule = words[:-2] if comment else words
        self.rules = [(r, c) for r, c in self.rules if r != rule] + [(rule, comment)]
        return self._out("Rule added")

    @staticmethod
    def _out(text, code=0):
        return {"retcode": code, "stdout": text, "stderr": ""}


def ufw_states(fake, test=False, installed=True, conf="/nonexistent/ufw.conf"):
    salt = {
        "cmd.run_all": fake,
        "cmd.which": lambda prog: f"/usr/sbin/{prog}" if installed else None,
    }
    mod = load("_states", name="crane_firewall", __salt__=salt, __opts__={"test": test})
    mod.UFW_CONF = str(conf)
    return mod


def test_ufw_opens_the_ports_then_changes_nothing():
    fake = FakeUfw([(["allow", "22/tcp"], None)])
    assert ufw_states(fake, test=True).opened("ports", "ufw", [10010])["result"] is None
    assert len(fake.rules) == 1
    ret = ufw_states(fake).opened("ports", "ufw", [10010])
    assert ret["result"] is True and ret["changes"] == {"opened": ["10010/tcp from anywhere"]}
    assert fake.rules[-1] == (["allow", "10010/tcp"], "crane-formula")
    again = ufw_states(fake).opened("ports", "ufw", [10010])
    assert again["result"] is True and again["changes"] == {}
    assert ufw_states(fake, test=True).opened("ports", "ufw", [10010])["result"] is True


def test_ufw_narrowed_to_a_network_replaces_the_formula_rule():
    fake = FakeUfw([(["allow", "10010/tcp"], "crane-formula")])
    ret = ufw_states(fake).opened("ports", "ufw", [10010], sources=["10.0.0.0/24"])
    assert ret["changes"] == {
        "opened": ["10010/tcp from 10.0.0.0/24"],
        "closed": ["10010/tcp from anywhere"],
    }
    assert [r for r, _ in fake.rules] == [
        ["allow", "from", "10.0.0.0/24", "to", "any", "port", "10010", "proto", "tcp"]
    ]


def test_ufw_closed_removes_only_the_formula_rules_even_when_disabled():
    admin = (["allow", "10010/tcp"], None)
    fake = FakeUfw([admin, (["allow", "10011/tcp"], "crane-formula")], active=False)
    ret = ufw_states(fake).closed("rules", "ufw")
    assert ret["result"] is True and ret["changes"] == {"closed": ["10011/tcp from anywhere"]}
    assert fake.rules == [admin]
    assert ufw_states(fake).closed("rules", "ufw")["changes"] == {}


def test_inactive_or_missing_ufw_is_left_alone():
    fake = FakeUfw(active=False)
    ret = ufw_states(fake).opened("ports", "ufw", [10010])
    assert ret == {
        "name": "ports",
        "result": True,
        "comment": "ufw is not active: 10010/tcp left as they are",
        "changes": {},
    }
    assert ["ufw", "show", "added"] not in fake.calls
    missing = ufw_states(fake, installed=False).opened("ports", "ufw", [10010])
    assert missing["comment"].startswith("ufw is not installed")


@pytest.mark.parametrize(
    ("text", "enabled"),
    [
        ("# comment\nENABLED=no\nLOGLEVEL=low\n", False),
        ("ENABLED=yes\n", True),
        ('ENABLED="YES"\n', True),
        ("ENABLED=yes\nENABLED=no\n", False),
        ("#ENABLED=yes\n", False),
        ("", False),
    ],
)
def test_ufw_conf_enabled(text, enabled):
    assert fw.ufw_conf_enabled(text) is enabled


def test_ufw_disabled_in_its_conf_is_not_asked(tmp_path):
    conf = tmp_path / "ufw.conf"
    conf.write_text("ENABLED=no\n")
    fake = FakeUfw(active=True)  # whatever ufw would say: it is not started
    ret = ufw_states(fake, conf=conf).opened("ports", "ufw", [10010])
    assert ret["comment"] == "ufw is not active: 10010/tcp left as they are"
    assert fake.calls == []
    conf.write_text("ENABLED=yes\n")  # enabled in its conf: ufw status has the last word
    ret = ufw_states(FakeUfw(active=False), conf=conf).opened("ports", "ufw", [10010])
    assert ret["comment"] == "ufw is not active: 10010/tcp left as they are"
    ret = ufw_states(FakeUfw(active=True), conf=conf).opened("ports", "ufw", [10010])
    assert ret["changes"] == {"opened": ["10010/tcp from anywhere"]}


def test_a_failing_ufw_command_fails_the_state_with_its_message():
    fake = FakeUfw()

    def broken(cmd, **kw):
        if "allow" in cmd:
            return {"retcode": 1, "stdout": "", "stderr": "ERROR: Bad source address"}
        return fake(cmd, **kw)

    ret = ufw_states(broken).opened("ports", "ufw", [10010])
    assert ret["result"] is False
    assert "ERROR: Bad source address" in ret["comment"]


class FakeFirewalld:
    """firewall-cmd's permanent and runtime zones and the formula's service; ``--reload``
    makes the runtime the permanent configuration."""

    def __init__(self, zones=("public", "internal"), running=True):
        self.permanent = {zone: {"services": [], "rich": []} for zone in zones}
        self.runtime = {zone: {"services": [], "rich": []} for zone in zones}
        self.service = None  # ports of crane-formula
        self.running = running

    def __call__(self, cmd, **_kw):
        args = cmd[1:]
        permanent = "--permanent" in args
        args = [a for a in args if a != "--permanent"]
        zones = self.permanent if permanent else self.runtime
        if args == ["--state"]:
            return self._out(
                "running" if self.running else "not running", 0 if self.running else 252
            )
        if args == ["--get-default-zone"]:
            return self._out("public")
        if args == ["--list-all-zones"]:
            return self._out(self._listing(zones))
        if args == ["--reload"]:
            self.runtime = {
                z: {k: list(v) for k, v in e.items()} for z, e in self.permanent.items()
            }
            return self._out("success")
        return self._edit(args, zones)

    def _edit(self, args, zones):
        flag, _, value = args[-1].partition("=")
        if flag == "--new-service":
            self.service = []
        elif flag == "--delete-service":
            self.service = None
        elif args[0] == "--service=crane-formula":
            if self.service is None:
                return self._out("Error: INVALID_SERVICE", 101)
            if flag == "--get-ports":
                return self._out(" ".join(f"{p}/tcp" for p in self.service))
            port = int(value.split("/")[0])
            self.service = sorted({*self.service, port} - ({port} if "remove" in flag else set()))
        else:
            zone = zones[args[0].partition("=")[2]]
            kind = "services" if "service" in flag else "rich"
            if "add" in flag:
                zone[kind].append(value)
            else:
                zone[kind].remove(value)
        return self._out("success")

    @staticmethod
    def _listing(zones):
        blocks = []
        for name, entries in zones.items():
            rich = "".join(f"\n\t{rule}" for rule in entries["rich"])
            blocks.append(
                f"{name}\n  target: default\n  services: ssh {' '.join(entries['services'])}\n"
                f"  ports: \n  rich rules: {rich}\n"
            )
        return "\n".join(blocks)

    @staticmethod
    def _out(text, code=0):
        return {"retcode": code, "stdout": text, "stderr": text if code else ""}


def firewalld_states(fake, test=False):
    salt = {"cmd.run_all": fake, "cmd.which": lambda prog: f"/usr/bin/{prog}"}
    return load("_states", name="crane_firewall", __salt__=salt, __opts__={"test": test})


def test_firewalld_opens_the_service_in_the_default_zone_then_changes_nothing():
    fake = FakeFirewalld()
    dry = firewalld_states(fake, test=True).opened("ports", "firewalld", [10011, 10013])
    assert dry["result"] is None and fake.service is None
    ret = firewalld_states(fake).opened("ports", "firewalld", [10011, 10013])
    assert ret["result"] is True, ret
    assert fake.service == [10011, 10013]
    assert fake.runtime["public"]["services"] == ["crane-formula"]
    assert "reloaded" in ret["changes"]
    again = firewalld_states(fake).opened("ports", "firewalld", [10011, 10013])
    assert again["changes"] == {} and again["result"] is True


def test_firewalld_sources_in_a_named_zone_and_clean_leaves_the_rest():
    fake = FakeFirewalld()
    states = firewalld_states(fake)
    states.opened("ports", "firewalld", [10010])
    ret = states.opened("ports", "firewalld", [10010], sources=["10.0.0.0/24"], zone="internal")
    assert ret["changes"]["closed"] == ["zone public: service crane-formula"]
    assert fake.runtime["internal"]["rich"] == [fw.rich_rule(NET)]
    assert fake.runtime["public"]["services"] == []
    fake.permanent["public"]["services"].append("http")  # the admin's
    cleaned = states.closed("rules", "firewalld")
    assert cleaned["result"] is True
    assert fake.service is None
    assert fake.runtime["internal"] == {"services": [], "rich": []}
    assert fake.runtime["public"]["services"] == ["http"]


def test_firewalld_one_rich_rule_per_network_for_all_ports():
    fake = FakeFirewalld()
    sources = ["10.0.0.0/24", "fd00::/64"]
    ret = firewalld_states(fake).opened("ports", "firewalld", [10011, 10013], sources=sources)
    assert ret["result"] is True, ret
    assert fake.service == [10011, 10013]
    assert fake.runtime["public"]["rich"] == [
        fw.rich_rule(ipaddress.ip_network(source)) for source in sources
    ]
    again = firewalld_states(fake).opened("ports", "firewalld", [10011, 10013], sources=sources)
    assert again["changes"] == {}


def test_firewalld_unknown_zone_fails_naming_the_setting():
    ret = firewalld_states(FakeFirewalld()).opened("ports", "firewalld", [10010], zone="lan")
    assert ret["result"] is False
    assert ret["comment"].startswith("crane:firewall_zone: no firewalld zone 'lan'")


def test_firewalld_runtime_drift_is_reloaded():
    fake = FakeFirewalld()
    firewalld_states(fake).opened("ports", "firewalld", [10010])
    fake.runtime["public"]["services"] = []  # an admin's runtime-only removal
    ret = firewalld_states(fake).opened("ports", "firewalld", [10010])
    assert list(ret["changes"]) == ["reloaded"]
    assert fake.runtime["public"]["services"] == ["crane-formula"]


def test_stopped_firewalld_is_left_alone():
    fake = FakeFirewalld(running=False)
    ret = firewalld_states(fake).closed("rules", "firewalld")
    assert ret["result"] is True and ret["comment"].startswith("firewalld is not running")
