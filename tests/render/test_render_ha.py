"""Render tests of crane:ha on the two control minions (RedHat and Debian families): the
shared-directory gate and keepalived come before cranectld, cranectld is never a plain
service.running there, and keepalived's config and scripts carry each node's VRRP settings."""

import pytest

from tests.render.test_render import args, pillar_for, requires
from tests.support.caller import REPO, node_grains
from tests.support.ha import PAIR, ha_pillar

FAMILIES = ("rocky9", "debian12")
HA_IDS = (
    "crane-ha-shared-dir-ready",
    "crane-ha-keepalived-pkg-installed",
    "crane-ha-script-check-file-managed",
    "crane-ha-script-on_master-file-managed",
    "crane-ha-script-on_backup-file-managed",
    "crane-ha-keepalived-config-file-managed",
    "crane-ha-keepalived-service-running",
)


def render_ha(minion, os_name, host, sls="crane", **changes):
    pillar = ha_pillar(pillar_for("repo", control=True), **changes)
    result = minion.call("state.show_sls", sls, grains=node_grains(os_name, host), pillar=pillar)
    assert isinstance(result, dict), result
    return result


def template(minion, states, sid):
    """A managed file's template rendered with the context the state gives it."""
    state = args(states[sid])
    source = state["source"][-1].replace("salt://", "")
    text = (REPO / "salt" / "states" / source).read_text()
    return minion.call(
        "file.apply_template_on_contents", text, "jinja", state["context"], None, "base"
    )


@pytest.mark.parametrize("os_name", FAMILIES)
@pytest.mark.parametrize("host", PAIR)
def test_both_pair_members_get_keepalived_after_the_gate_and_the_config(minion, os_name, host):
    states = render_ha(minion, os_name, host)
    for sid in HA_IDS:
        assert sid in states, sid
    keepalived = requires(states["crane-ha-keepalived-service-running"])
    for sid in (
        "crane-ha-shared-dir-ready",
        "crane-config-file-config-file-managed",
        "crane-config-file-database-file-managed",
        "crane-ha-keepalived-config-file-managed",
    ):
        assert sid in keepalived, sid
    gate = args(states["crane-ha-shared-dir-ready"])
    assert gate["name"] == "/shared/crane/" and gate["user"] == "crane"
    assert gate["require_mount"] is True
    for sid in HA_IDS[:2]:
        assert "crane-validate-config" in requires(states[sid]), sid


@pytest.mark.parametrize("os_name", FAMILIES)
@pytest.mark.parametrize("host", PAIR)
def test_cranectld_is_never_a_plain_service_running_on_the_pair(minion, os_name, host):
    states = render_ha(minion, os_name, host)
    cranectld = [args(s)["fun"] for s in states.values() if args(s).get("name") == "cranectld"]
    assert cranectld and "service.running" not in cranectld
    role = args(states["crane-service-cranectld-service-running"])
    assert role["fun"] == "crane_ha.cranectld_role"
    assert role["vip"] == "10.0.0.10"
    assert role["on_master"] == "/etc/keepalived/crane-on-master.sh"
    assert role["alive_file"] == "/var/crane/cranectld/cranectld.alive"
    assert "crane-ha-keepalived-service-running" in requires(
        states["crane-service-cranectld-service-running"]
    )
    healthy = args(states["crane-service-cranectld-crane-daemon-healthy"])
    assert healthy["fun"] == "crane_ha.cranectld_answering"
    assert "crane-service-cranectld-crane-daemon-healthy" in requires(
        states["crane-verify-nodes-ready"]
    )


def test_scripts_are_root_owned_and_not_writable_by_others(minion):
    states = render_ha(minion, "debian12", "ctl1")
    for key in ("check", "on_master", "on_backup"):
        script = args(states[f"crane-ha-script-{key}-file-managed"])
        assert (script["user"], script["group"], script["mode"]) == ("root", "root", "0755")
    folder = args(states["crane-ha-script-dir-file-directory"])
    assert (folder["user"], folder["mode"]) == ("root", "0755")


def test_keepalived_conf_per_node(minion):
    master = template(
        minion, render_ha(minion, "debian12", "ctl1"), "crane-ha-keepalived-config-file-managed"
    )
    backup = template(
        minion, render_ha(minion, "rocky9", "ctl2"), "crane-ha-keepalived-config-file-managed"
    )
    for text in (master, backup):
        assert "script_user root" in text and "enable_script_security" in text
        assert 'script "/etc/keepalived/crane-check-cranectld.sh"' in text
        assert "weight -20" in text and "fall 2" in text and "interval 1" in text
        assert "virtual_router_id 51" in text and "interface eth0" in text
        assert "10.0.0.10/24 dev eth0" in text
        assert 'notify_master "/etc/keepalived/crane-on-master.sh"' in text
        assert 'notify_backup "/etc/keepalived/crane-on-backup.sh"' in text
    assert "state MASTER" in master and "priority 100" in master
    assert "unicast_src_ip 10.0.0.11" in master and "10.0.0.12" in master
    assert "state BACKUP" in backup and "priority 90" in backup
    assert "unicast_src_ip 10.0.0.12" in backup


def test_multicast_pair_has_no_unicast_block(minion):
    states = render_ha(minion, "debian12", "ctl1", unicast_peers={}, multicast=True)
    text = template(minion, states, "crane-ha-keepalived-config-file-managed")
    assert "unicast" not in text


def test_scripts_carry_the_alive_file_and_the_shared_lock(minion):
    states = render_ha(minion, "debian12", "ctl2")
    check = template(minion, states, "crane-ha-script-check-file-managed")
    assert 'alive="/var/crane/cranectld/cranectld.alive"' in check
    on_master = template(minion, states, "crane-ha-script-on_master-file-managed")
    assert 'lock="/shared/crane/cranectld/cranectld.lock"' in on_master
    assert "flock -x -w 2 9" in on_master and "systemctl restart cranectld" in on_master
    on_backup = template(minion, states, "crane-ha-script-on_backup-file-managed")
    assert "systemctl stop cranectld" in on_backup


def test_cranectld_dropin_has_no_systemd_restart_under_ha(minion):
    states = render_ha(minion, "debian12", "ctl1")
    dropin = args(states["crane-config-dropin-cranectld-file-managed"])
    assert dropin["context"]["settings"] == {"LimitNOFILE": 640000}


def test_compute_and_login_nodes_get_no_keepalived(minion):
    for host in ("cn03", "login01"):
        pillar = ha_pillar(pillar_for("repo", control=False))
        states = minion.call(
            "state.show_sls", "crane", grains=node_grains("debian12", host), pillar=pillar
        )
        assert not [sid for sid in states if sid.startswith("crane-ha-")], host


def test_clean_stops_keepalived_on_the_pair_only(minion):
    states = render_ha(minion, "debian12", "ctl1", sls="crane.clean")
    assert args(states["crane-ha-clean-keepalived-service-dead"])["name"] == "keepalived"
    assert "crane-ha-clean-keepalived-config-file-absent" in states
    plain = minion.call(
        "state.show_sls",
        "crane.clean",
        grains=node_grains("debian12", "cranectl"),
        pillar=pillar_for("repo", control=True),
    )
    assert not [sid for sid in plain if sid.startswith("crane-ha-")]
