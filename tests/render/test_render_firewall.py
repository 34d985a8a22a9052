"""Render tests of the firewall step: the backend per OS family, the role's ports, source
networks and zone passed through, the switch off, a bad CIDR named by validation, and
crane.clean closing the formula's rules."""

import pytest

from tests.render.test_render import ROLE_HOSTS, args, pillar_for, requires
from tests.support.caller import OS_GRAINS, node_grains

BACKENDS = {"rocky9": "firewalld", "centos7": "firewalld", "debian12": "ufw", "ubuntu2204": "ufw"}
PORTS = {"control": [10011, 10013], "compute": [10010], "login": [10012]}


def render(minion, os_name, role, sls="crane", **firewall):
    pillar = pillar_for("repo", control=role == "control")
    pillar["crane"].update(firewall)
    grains = node_grains(os_name, ROLE_HOSTS[role])
    states = minion.call("state.show_sls", sls, grains=grains, pillar=pillar)
    assert isinstance(states, dict), states
    return states


def validation(minion, os_name, role, **firewall):
    """The validation step's result for this pillar (``test=True``: nothing changes)."""
    pillar = pillar_for("repo", control=role == "control")
    pillar["crane"].update(firewall)
    grains = node_grains(os_name, ROLE_HOSTS[role])
    result = minion.call("state.apply", "crane.validate", grains=grains, pillar=pillar, test=True)
    (state,) = result.values()
    return state


def test_every_os_in_the_table():
    assert set(BACKENDS) == set(OS_GRAINS)


@pytest.mark.parametrize("role", sorted(PORTS))
@pytest.mark.parametrize("os_name", sorted(BACKENDS))
def test_the_role_ports_open_to_all_by_default(minion, os_name, role):
    states = render(minion, os_name, role)
    opened = args(states["crane-firewall-opened"])
    assert opened["fun"] == "crane_firewall.opened"
    assert opened["backend"] == BACKENDS[os_name]
    assert opened["ports"] == PORTS[role]
    assert opened["sources"] == [] and opened["zone"] == ""
    assert "crane-validate-config" in requires(states["crane-firewall-opened"])
    assert "crane-firewall-inactive" not in states


@pytest.mark.parametrize("os_name", ["rocky9", "debian12"])
def test_sources_and_zone_are_passed_through(minion, os_name):
    sources = ["10.213.0.0/16", "fd00::/64"]
    states = render(minion, os_name, "compute", firewall_sources=sources, firewall_zone="internal")
    opened = args(states["crane-firewall-opened"])
    assert opened["sources"] == sources and opened["zone"] == "internal"
    assert validation(minion, os_name, "compute", firewall_sources=sources)["result"] is not False


def test_switched_off_the_firewall_is_left_as_it_is(minion):
    states = render(minion, "rocky9", "compute", firewall=False)
    assert "crane-firewall-opened" not in states
    assert args(states["crane-firewall-inactive"])["name"].startswith("crane:firewall is off")


def test_a_bad_cidr_is_a_validation_error_naming_the_key(minion):
    states = render(minion, "debian12", "compute", firewall_sources=["10.213.0.1/16"])
    state = validation(minion, "debian12", "compute", firewall_sources=["10.213.0.1/16"])
    assert state["result"] is False
    assert "1 error(s)" in state["comment"]
    assert "- crane:firewall_sources: '10.213.0.1/16' is not a network" in state["comment"]
    # the refused value is left out: the step would open the ports to all, but validation
    # stops the run first (failhard) and the firewall step waits for it
    assert args(states["crane-validate-config"])["failhard"] is True


@pytest.mark.parametrize("os_name", sorted(BACKENDS))
def test_clean_closes_the_formula_rules(minion, os_name):
    states = render(minion, os_name, "compute", sls="crane.clean")
    closed = args(states["crane-firewall-closed"])
    assert closed["fun"] == "crane_firewall.closed"
    assert closed["backend"] == BACKENDS[os_name]
