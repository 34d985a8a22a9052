"""Render tests of crane.pam (pam_crane.so in sshd's PAM stack, opt-in) and its clean, for
the RedHat and Debian families."""

import pytest

from tests.render.test_render import ROLE_HOSTS, args, pillar_for
from tests.support.caller import node_grains

PAM_ID = "crane-pam-sshd-crane-pam-configured"
CLEAN_ID = "crane-pam-clean-sshd-crane-pam-absent"
FAMILY_PAM = {
    "rocky9": {"absolute": False, "account_include": "password-auth"},
    "debian12": {"absolute": True, "account_include": "common-account"},
}
SESSION_INCLUDE = {"rocky9": "password-auth", "debian12": "common-session"}


def render_pam(minion, os_name, role, sls="crane", **pam):
    pillar = pillar_for("repo", control=role == "control")
    pillar["crane"]["pam"] = {"manage": True, **pam}
    grains = node_grains(os_name, ROLE_HOSTS[role])
    states = minion.call("state.show_sls", sls, grains=grains, pillar=pillar)
    assert isinstance(states, dict), states
    return states


@pytest.mark.parametrize("os_name", sorted(FAMILY_PAM))
def test_compute_gets_pam_crane_with_the_family_module_name_and_includes(minion, os_name):
    pam = args(render_pam(minion, os_name, "compute")[PAM_ID])
    assert pam["fun"] == "crane.pam_configured"
    assert pam["name"] == "/etc/pam.d/sshd"
    assert pam["node"] == "cn03"
    assert pam["module_path"] == "/usr/lib64/security/pam_crane.so"
    assert pam["absolute"] is FAMILY_PAM[os_name]["absolute"]
    assert pam["account_include"] == FAMILY_PAM[os_name]["account_include"]
    assert pam["session_include"] == SESSION_INCLUDE[os_name]
    assert pam["config_path"] == "/etc/crane/config.yaml"


@pytest.mark.parametrize("os_name", sorted(FAMILY_PAM))
def test_pam_comes_after_the_daemons_and_verify(minion, os_name):
    states = render_pam(minion, os_name, "compute")
    pam = states[PAM_ID]
    assert {"sls": "crane.service.running"} in args(pam)["require"]
    assert {"crane": "crane-validate-config"} in args(pam)["require"]
    later = [
        sid
        for sid, state in states.items()
        if state["__sls__"].startswith(("crane.service", "crane.verify"))
        and args(state)["order"] > args(pam)["order"]
    ]
    assert not later


@pytest.mark.parametrize("os_name", sorted(FAMILY_PAM))
@pytest.mark.parametrize("role", ["control", "login"])
def test_no_pam_without_craned(minion, os_name, role):
    assert PAM_ID not in render_pam(minion, os_name, role)


@pytest.mark.parametrize("os_name", sorted(FAMILY_PAM))
def test_pam_is_off_by_default(minion, os_name):
    pillar = pillar_for("repo", control=False)
    grains = node_grains(os_name, ROLE_HOSTS["compute"])
    states = minion.call("state.show_sls", "crane", grains=grains, pillar=pillar)
    assert PAM_ID not in states


def test_pillar_overrides_reach_the_state(minion):
    pam = args(
        render_pam(minion, "debian12", "compute", file="/etc/pam.d/sshd-test", timeout=7)[PAM_ID]
    )
    assert pam["name"] == "/etc/pam.d/sshd-test"
    assert pam["timeout"] == 7


@pytest.mark.parametrize("os_name", sorted(FAMILY_PAM))
def test_clean_removes_the_same_lines_first(minion, os_name):
    states = render_pam(minion, os_name, "compute", sls="crane.clean")
    clean = args(states[CLEAN_ID])
    assert clean["fun"] == "crane.pam_absent"
    assert clean["name"] == "/etc/pam.d/sshd"
    assert clean["absolute"] is FAMILY_PAM[os_name]["absolute"]
    assert clean["module_path"] == "/usr/lib64/security/pam_crane.so"
    packages = [
        args(state)["order"]
        for state in states.values()
        if state["__sls__"].startswith("crane.package")
    ]
    assert args(states[CLEAN_ID])["order"] < min(packages)
