"""Deploy the demo cluster with the formula on fresh nodes, in one flow: a truthful dry run,
the real apply, what runs where afterwards, idempotency, and the role grains.

The steps depend on each other (each starts where the previous one left the cluster), so they
are one ordered sequence of tests in this module; a failed step skips the rest.
"""

from __future__ import annotations

import json

import pytest

from . import formula
from .conftest import after

pytestmark = pytest.mark.cluster

CONTROL = "cranectl"
COMPUTE = ("cn01", "cn02", "cn03")
BINARIES = {
    "cranectl": ("/usr/bin/cranectld", "/usr/bin/cinfo", "/usr/bin/ccontrol"),
    "cn01": ("/usr/bin/craned", "/usr/libexec/csupervisor"),
    "cn03": ("/usr/bin/craned", "/usr/libexec/csupervisor"),
    "login01": ("/usr/bin/cfored", "/usr/bin/cinfo"),
}
SERVICES = {"cranectl": ("cranectld", "crane"), "login01": ("cfored", "root")}
SERVICES.update({node: ("craned", "root") for node in COMPUTE})


def test_dry_run_on_fresh_nodes_plans_changes_and_fails_nothing(cluster, flow):
    assert cluster.sh(CONTROL, "test -e /etc/crane/config.yaml").returncode == 1, "not fresh"
    result = formula.timed_apply(cluster, "first test=True", test=True)
    assert set(result) == set(cluster.spec.hostnames())
    assert formula.failures(result) == {}
    assert formula.results(result) <= {None, True}
    planned = formula.changed(result)
    for node in cluster.spec.hostnames():
        assert "crane-config-file-config-file-managed" in planned.get(node, []), node
    assert cluster.sh(CONTROL, "test -e /etc/crane/config.yaml").returncode == 1
    assert cluster.sh("cn01", "dpkg -s cranesched-craned").returncode != 0
    flow["dry_run"] = True


def test_apply_succeeds_on_every_node(cluster, flow):
    after(flow, "dry_run")
    result = formula.timed_apply(cluster, "first apply")
    assert set(result) == set(cluster.spec.hostnames())
    assert formula.failures(result) == {}
    assert formula.results(result) == {True}
    flow["applied"] = True


def test_every_configured_node_is_up_and_idle(cluster, flow):
    after(flow, "applied")
    nodes = formula.node_states(cluster)
    assert sorted(nodes) == list(COMPUTE)
    assert {n: s["resource"] for n, s in nodes.items()} == dict.fromkeys(COMPUTE, "idle")
    assert {n: s["control"] for n, s in nodes.items()} == dict.fromkeys(COMPUTE, "none")
    cinfo = json.loads(cluster.sh(CONTROL, "cinfo --json", check=True).stdout)
    assert cinfo, "cinfo --json printed nothing"


def test_gpu_node_reports_its_gres(cluster, flow):
    after(flow, "applied")
    shown = cluster.sh(CONTROL, "ccontrol show node cn03", check=True).stdout
    assert "Gres=gpu:a100:4" in shown.split()


@pytest.mark.parametrize("node", sorted(SERVICES))
def test_daemons_run_as_systemd_services_under_their_users(cluster, flow, node):
    after(flow, "applied")
    unit, user = SERVICES[node]
    assert cluster.sh(node, f"systemctl is-active {unit}").stdout.strip() == "active"
    assert cluster.sh(node, f"systemctl is-enabled {unit}").stdout.strip() == "enabled"
    pid = formula.main_pid(cluster, node, unit)
    assert pid > 0
    owner = cluster.sh(node, f"ps -o user= -p {pid}", check=True).stdout.strip()
    assert owner == user


def test_no_daemon_runs_outside_its_role(cluster, flow):
    after(flow, "applied")
    for node in cluster.spec.hostnames():
        running = set(cluster.sh(node, "pgrep -x 'cranectld|craned|cfored' -l").stdout.split())
        running = {word for word in running if not word.isdigit()}
        assert running == {SERVICES[node][0]}, node


def test_config_yaml_is_byte_identical_everywhere(cluster, flow):
    after(flow, "applied")
    hashes = cluster.salt("*", "crane.config_hash")
    assert set(hashes) == set(cluster.spec.hostnames())
    assert None not in hashes.values()
    assert len(set(hashes.values())) == 1, hashes


def test_database_yaml_only_on_control_0600_crane(cluster, flow):
    after(flow, "applied")
    for node in cluster.spec.hostnames():
        stat = cluster.sh(node, "stat -c '%a %U %G' /etc/crane/database.yaml")
        if node == CONTROL:
            assert stat.stdout.split() == ["600", "crane", "crane"]
        else:
            assert stat.returncode != 0, f"{node} has database.yaml"


@pytest.mark.parametrize("node", sorted(BINARIES))
def test_binaries_are_0755_root(cluster, flow, node):
    after(flow, "applied")
    paths = " ".join(BINARIES[node])
    stats = cluster.sh(node, f"stat -c '%a %U %G' {paths}", check=True).stdout.splitlines()
    assert stats == ["755 root root"] * len(BINARIES[node])


def test_second_apply_changes_nothing(cluster, flow):
    after(flow, "applied")
    pids = {node: formula.main_pid(cluster, node, SERVICES[node][0]) for node in SERVICES}
    result = formula.timed_apply(cluster, "re-apply")
    assert formula.failures(result) == {}
    assert formula.changed(result) == {}
    assert pids == {node: formula.main_pid(cluster, node, SERVICES[node][0]) for node in SERVICES}
    flow["idempotent"] = True


def test_dry_run_on_deployed_cluster_is_clean(cluster, flow):
    after(flow, "idempotent")
    result = formula.timed_apply(cluster, "test=True on deployed", test=True)
    assert formula.failures(result) == {}
    assert formula.changed(result) == {}
    assert formula.results(result) == {True}


def test_role_grains_target_nodes(cluster, flow):
    after(flow, "applied")
    by_role = {
        role: sorted(cluster.salt(f"crane:roles:{role}", "test.ping", tgt_type="grain"))
        for role in ("control", "compute", "login")
    }
    assert by_role == {"control": [CONTROL], "compute": list(COMPUTE), "login": ["login01"]}
    versions = cluster.salt("*", "grains.get", "crane:version")
    assert set(versions.values()) == {cluster.spec.repo_versions[0]}


def test_clean_removes_what_the_formula_installed_and_keeps_data(cluster, flow):
    """crane.clean on the login node, then crane again brings it back."""
    after(flow, "applied")
    node = "login01"
    cluster.sh(node, "mkdir -p /var/crane/cfored && echo kept > /var/crane/cfored/marker")
    cleaned = cluster.salt(node, "state.apply", "crane.clean", timeout=formula.APPLY_TIMEOUT)
    states = cleaned[node]
    failed = {k: s["comment"] for k, s in states.items() if s["result"] is not True}
    assert failed == {}
    gone = (
        "systemctl is-enabled cfored; test -e /etc/crane/config.yaml; dpkg -s cranesched-frontend"
    )
    for check in gone.split("; "):
        assert cluster.sh(node, check).returncode != 0, check
    assert cluster.sh(node, "cat /var/crane/cfored/marker").stdout.strip() == "kept"
    assert cluster.salt(node, "grains.get", "crane:roles")[node] == ""
    again = formula.apply(cluster, node)
    assert formula.failures(again) == {}
    assert cluster.sh(node, "systemctl is-active cfored").stdout.strip() == "active"
