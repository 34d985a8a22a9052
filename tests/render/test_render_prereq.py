"""Render tests of the node prerequisites: the cgroup controllers (unit, bpffs, gate) and the
name-resolution gate, for the RedHat and Debian families."""

import pytest

from tests.render.test_render import ROLE_HOSTS, args, pillar_for, render, requires
from tests.support.caller import node_grains

FAMILIES = ("rocky9", "debian12")
CONFIG_FILE = {"file": "crane-config-file-config-file-managed"}
CGROUP_IDS = (
    "crane-cgroup-controllers-unit-file-managed",
    "crane-cgroup-controllers-dropin-file-managed",
    "crane-cgroup-controllers-service-running",
    "crane-cgroup-ready",
)


def fake_v2_root(path, enabled=""):
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (path / "cgroup.subtree_control").write_text(enabled)
    return path


def render_with(minion, os_name, role, **cgroup):
    pillar = pillar_for("repo", control=role == "control")
    pillar["crane"]["cgroup"] = cgroup
    grains = node_grains(os_name, ROLE_HOSTS[role])
    return minion.call("state.show_sls", "crane", grains=grains, pillar=pillar)


@pytest.mark.parametrize("os_name", FAMILIES)
def test_compute_gets_the_controller_unit_and_the_gate_before_config(minion, os_name, tmp_path):
    states = render_with(minion, os_name, "compute", root=str(fake_v2_root(tmp_path / "cg")))
    for sid in CGROUP_IDS:
        assert sid in states, sid
    # show_sls keeps require_in on the gate; the compiler turns it into config.yaml's require
    assert args(states["crane-cgroup-ready"])["require_in"] == [CONFIG_FILE]
    assert "crane-cgroup-controllers-service-running" in requires(states["crane-cgroup-ready"])
    gate = args(states["crane-cgroup-ready"])
    assert gate["name"] == "cn03"
    assert gate["enabled_by"] == "crane-cgroup-controllers"
    unit = args(states["crane-cgroup-controllers-unit-file-managed"])
    assert unit["name"] == "/etc/systemd/system/crane-cgroup-controllers.service"
    assert unit["context"]["controllers"] == ["cpu", "memory", "io", "cpuset", "pids"]
    dropin = args(states["crane-cgroup-controllers-dropin-file-managed"])
    assert "After=crane-cgroup-controllers.service" in dropin["contents"]
    assert "Wants=crane-cgroup-controllers.service" in dropin["contents"]


@pytest.mark.parametrize("os_name", FAMILIES)
@pytest.mark.parametrize("role", ["control", "login"])
def test_no_cgroup_states_without_craned(minion, os_name, role):
    states = render(minion, os_name, role)
    assert not [sid for sid in states if sid.startswith("crane-cgroup")]


def test_no_unit_outside_cgroup_v2(minion, tmp_path):
    """On v1 or hybrid the unit would be skipped by its condition: only the gate renders."""
    (tmp_path / "cpu").mkdir()
    for root in (str(tmp_path), str(tmp_path / "absent")):
        states = render_with(minion, "rocky9", "compute", root=root)
        assert "crane-cgroup-ready" in states
        assert "crane-cgroup-controllers-unit-file-managed" not in states
        assert "enabled_by" not in args(states["crane-cgroup-ready"])


def test_switches_turn_the_unit_and_the_gate_off(minion, tmp_path):
    root = str(fake_v2_root(tmp_path / "cg"))
    assert "crane-cgroup-controllers-service-running" in render_with(
        minion, "debian12", "compute", root=root
    )
    states = render_with(minion, "debian12", "compute", enable_controllers=False, root=root)
    assert "crane-cgroup-ready" in states
    assert "crane-cgroup-controllers-service-running" not in states
    assert "enabled_by" not in args(states["crane-cgroup-ready"])
    states = render_with(minion, "debian12", "compute", manage=False)
    assert not [sid for sid in states if sid.startswith("crane-cgroup")]


@pytest.mark.parametrize("os_name", FAMILIES)
def test_bpffs_only_for_a_gres_node_on_cgroup_v2(minion, os_name, tmp_path):
    root = str(fake_v2_root(tmp_path / "cg"))
    gpu = render_with(minion, os_name, "compute", root=root)  # cn03 has gres
    mount = args(gpu["crane-cgroup-bpffs-mount-mounted"])
    assert (mount["name"], mount["fstype"], mount["persist"]) == ("/sys/fs/bpf", "bpf", True)
    assert args(gpu["crane-cgroup-ready"])["root"] == root
    pillar = pillar_for("repo", control=False)
    pillar["crane"]["cgroup"] = {"root": root}
    cpu = minion.call("state.show_sls", "crane", grains=node_grains(os_name, "cn01"), pillar=pillar)
    assert "crane-cgroup-ready" in cpu
    assert "crane-cgroup-bpffs-mount-mounted" not in cpu
    v1 = render_with(minion, os_name, "compute", root=str(tmp_path / "none"))
    assert "crane-cgroup-bpffs-mount-mounted" not in v1


@pytest.mark.parametrize("os_name", FAMILIES)
@pytest.mark.parametrize("role", ["control", "compute", "login"])
def test_every_role_checks_names_before_config(minion, os_name, role):
    states = render(minion, os_name, role)
    gate = args(states["crane-names-resolve"])
    assert gate["name"] == ROLE_HOSTS[role]
    assert "login_nodes" not in gate and "config" not in gate  # from crane.settings
    assert gate["require_in"] == [CONFIG_FILE]
    assert gate["require"] == [{"sls": "crane.validate"}]


def test_names_switch_off(minion):
    pillar = pillar_for("repo", control=False)
    pillar["crane"]["names"] = {"check": False}
    grains = node_grains("rocky9", ROLE_HOSTS["compute"])
    states = minion.call("state.show_sls", "crane", grains=grains, pillar=pillar)
    assert "crane-names-resolve" not in states


@pytest.mark.parametrize("os_name", FAMILIES)
def test_clean_removes_the_controller_unit(minion, os_name):
    grains = node_grains(os_name, ROLE_HOSTS["compute"])
    pillar = pillar_for("repo", control=False)
    states = minion.call("state.show_sls", "crane.clean", grains=grains, pillar=pillar)
    unit = args(states["crane-cgroup-clean-controllers-unit-file-absent"])
    assert unit["name"] == "/etc/systemd/system/crane-cgroup-controllers.service"
    assert "crane-cgroup-clean-controllers-dropin-file-absent" in states


@pytest.mark.parametrize(
    ("os_name", "service"),
    [
        ("rocky9", "chronyd"),
        ("centos7", "chronyd"),
        ("debian12", "chrony"),
        ("ubuntu2204", "chrony"),
    ],
)
@pytest.mark.parametrize("role", ["control", "compute", "login"])
def test_chrony_on_every_role(minion, os_name, service, role):
    states = render(minion, os_name, role)
    assert args(states["crane-time-chrony-pkg-installed"])["name"] == "chrony"
    running = args(states["crane-time-chrony-service-running"])
    assert (running["name"], running["enable"]) == (service, True)
    assert requires(states["crane-time-chrony-pkg-installed"]) == ["crane-validate-config"]


def test_chrony_switch_off_and_no_role(minion):
    pillar = pillar_for("repo", control=False)
    pillar["crane"]["time"] = {"chrony": False}
    grains = node_grains("debian12", ROLE_HOSTS["compute"])
    states = minion.call("state.show_sls", "crane", grains=grains, pillar=pillar)
    assert not [sid for sid in states if sid.startswith("crane-time")]
    assert not [sid for sid in render(minion, "debian12", "none") if sid.startswith("crane-time")]


def test_clean_keeps_chrony(minion):
    grains = node_grains("rocky9", ROLE_HOSTS["compute"])
    states = minion.call(
        "state.show_sls", "crane.clean", grains=grains, pillar=pillar_for("repo", False)
    )
    assert "crane-time-clean-chrony-kept" in states
    assert not [
        s
        for s in states.values()
        if args(s)["fun"] in ("pkg.removed", "pkg.purged") and args(s).get("name") == "chrony"
    ]


def test_hosts_file_entries_from_the_mine_before_the_gate(minion):
    pillar = pillar_for("repo", control=False)
    pillar["crane"]["names"] = {"hosts_file": True}
    grains = node_grains("debian12", ROLE_HOSTS["compute"])
    # a masterless minion's mine holds its own data only: this node publishes itself
    mine = {"crane_host": "cn03", "crane_address": ["10.9.0.3", "10.9.1.3"]}
    assert minion.call("data.update", "mine_cache", mine, grains=grains, pillar=pillar) is True
    try:
        states = minion.call("state.show_sls", "crane", grains=grains, pillar=pillar)
        clean = minion.call("state.show_sls", "crane.clean", grains=grains, pillar=pillar)
    finally:
        minion.call("data.pop", "mine_cache", grains=grains, pillar=pillar)
    present = {
        args(s)["name"]: args(s)["ip"] for s in states.values() if args(s)["fun"] == "host.present"
    }
    assert present == {"cn03": "10.9.0.3"}
    entry = args(states["crane-names-hosts-cn03-host-present"])
    assert entry["require_in"] == [{"crane": "crane-names-resolve"}]
    absent = {
        args(s)["name"]: args(s)["ip"] for s in clean.values() if args(s)["fun"] == "host.absent"
    }
    assert absent == present
    off = render(minion, "debian12", "compute")
    assert not [s for s in off.values() if args(s)["fun"] == "host.present"]


@pytest.mark.parametrize("os_name", FAMILIES)
def test_mongodb_preflight_on_control_before_its_files(minion, os_name):
    states = render(minion, os_name, "control")
    gate = args(states["crane-mongodb-reachable"])
    assert gate["name"] == "cranectl"
    assert gate["require_in"] == [
        CONFIG_FILE,
        {"crane": "crane-config-file-database-file-managed"},
    ]
    assert "change-me" not in repr(gate)  # the module reads the secrets from the pillar
    for role in ("compute", "login"):
        assert "crane-mongodb-reachable" not in render(minion, os_name, role)


def test_mongodb_preflight_switch_off(minion):
    pillar = pillar_for("repo", control=True)
    pillar["crane"]["mongodb"] = {"preflight": False}
    grains = node_grains("rocky9", ROLE_HOSTS["control"])
    states = minion.call("state.show_sls", "crane", grains=grains, pillar=pillar)
    assert "crane-mongodb-reachable" not in states
    assert "crane-config-file-database-file-managed" in states


TLS = {
    "Enabled": True,
    "CaFilePath": "/etc/crane/tls/ca.pem",
    "InternalCertFilePath": "/etc/crane/tls/internal.pem",
    "InternalKeyFilePath": "/etc/crane/tls/internal.key",
    "ExternalCertFilePath": "/etc/crane/tls/external.pem",
    "ExternalKeyFilePath": "/etc/crane/tls/external.key",
    "DomainSuffix": "crane.local",
}
TLS_BY_ROLE = {
    "control": {"ca.pem", "internal.pem", "internal.key", "external.pem", "external.key"},
    "compute": {"ca.pem", "internal.pem", "internal.key"},
    "login": {"ca.pem", "internal.pem", "internal.key", "external.pem"},  # cfored + CLIs
}


def render_tls(minion, os_name, role, manage=True):
    pillar = pillar_for("repo", control=role == "control")
    pillar["crane"]["config"]["TLS"] = dict(TLS)
    pillar["crane"]["tls"] = {"manage": manage, "source": "salt://site-tls/"}
    grains = node_grains(os_name, ROLE_HOSTS[role])
    return minion.call("state.show_sls", "crane", grains=grains, pillar=pillar)


@pytest.mark.parametrize("os_name", FAMILIES)
@pytest.mark.parametrize("role", ["control", "compute", "login"])
def test_tls_files_per_role_modes_owners_and_gate(minion, os_name, role):
    states = render_tls(minion, os_name, role)
    managed = {
        args(s)["name"].rsplit("/", 1)[1]: args(s)
        for sid, s in states.items()
        if sid.startswith("crane-tls-") and args(s)["fun"] == "file.managed"
    }
    assert set(managed) == TLS_BY_ROLE[role]
    owner = "crane" if role == "control" else "root"
    for name, file in managed.items():
        assert file["source"] == f"salt://site-tls/{name}"
        assert file["mode"] == ("0600" if name.endswith(".key") else "0644")
        assert (file["user"], file["group"]) == (owner, owner)
        assert file["show_changes"] is False
        assert file["require_in"] == [{"crane": "crane-tls-ready"}]
    gate = args(states["crane-tls-ready"])
    assert gate["name"] == ROLE_HOSTS[role]
    assert gate["require_in"] == [CONFIG_FILE]


def test_tls_gate_without_managed_files_and_nothing_while_tls_is_off(minion):
    states = render_tls(minion, "rocky9", "compute", manage=False)
    assert "crane-tls-ready" in states
    assert not [sid for sid in states if sid.startswith("crane-tls-") and sid != "crane-tls-ready"]
    off = render(minion, "rocky9", "compute")
    assert not [sid for sid in off if sid.startswith("crane-tls")]
