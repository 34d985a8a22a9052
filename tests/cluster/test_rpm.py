"""RPM nodes (a Debian base whose CraneSched packages rpm and dnf manage, reporting Rocky 9)
next to Debian compute and login nodes: the formula's RedHat and Debian paths with each
install method (``repo``, then ``files``: the .rpm/.deb files from salt://, then
``binaries``: the guide's manual copy), each from bare nodes to every node idle, idempotent,
a clean dry run, ``crane.clean``; then a re-apply after the last clean.  Last, live
firewalls on the same nodes: firewalld on the RPM nodes, ufw (default deny incoming) on the
Debian ones.

One ordered flow on one cluster; a failed step skips the rest.
"""

from __future__ import annotations

import ipaddress
import json
import socket

import pytest

from . import formula, pillar
from .conftest import after, booted
from .spec import ClusterSpec, NodeSpec, env_spec
from .test_upgrade import drains, jobs, salt_run

pytestmark = pytest.mark.cluster

CONTROL = "cranectl"
COMPUTE = ("cn01", "cn02")
NODES = (
    NodeSpec(CONTROL, "control", family="RedHat"),
    NodeSpec("cn01", family="RedHat"),
    NodeSpec("cn02", family="Debian"),
    NodeSpec("login01", "login", family="Debian"),
)
# The control node also gets the frontend RPM (the CLIs).
RPM_NODES = {CONTROL: "CraneSched-cranectld", "cn01": "CraneSched-craned"}
DEB_NODES = {"cn02": "cranesched-craned", "login01": "cranesched-frontend"}
SERVICES = {CONTROL: "cranectld", "cn01": "craned", "cn02": "craned", "login01": "cfored"}


def rpm_spec() -> ClusterSpec:
    """Own bridge and subnet (CRANE_FORMULA_RPM_NET=name:subnet moves them)."""
    return env_spec("CRANE_FORMULA_RPM_NET", "cfrpm:10.213.94.0/24", NODES)


def rpm_pillar(spec: ClusterSpec):
    sls, top = pillar.cluster_pillar(spec, pillar.pathlib.Path(__file__).resolve().parents[2])
    crane = sls["crane.cluster"]["crane"]
    crane["login_nodes"] = ["login01"]
    crane["config"]["Nodes"] = [{"name": "cn[01-02]", "cpu": 2, "memory": "2G"}]
    crane["config"]["Partitions"] = [{"name": "CPU", "nodes": "cn[01-02]", "priority": 5}]
    crane["config"]["DefaultPartition"] = "CPU"
    return sls, top


@pytest.fixture(scope="module")
def rcluster():
    spec = rpm_spec()
    with booted(spec, rpm_pillar(spec)) as cluster:
        yield cluster


def test_rpm_nodes_report_rocky_and_use_the_dnf_module(rcluster):
    grains = rcluster.salt("*", "grains.item", "os_family", "os", "osmajorrelease")
    assert grains[CONTROL] == {"os_family": "RedHat", "os": "Rocky", "osmajorrelease": 9}
    assert grains["cn02"]["os_family"] == "Debian"
    providers = rcluster.salt("*", "test.provider", "pkg")
    assert providers == {**dict.fromkeys(RPM_NODES, "yumpkg"), **dict.fromkeys(DEB_NODES, "aptpkg")}
    assert rcluster.sh(CONTROL, "rpm -q cranesim-node-provides python3").returncode == 0
    assert rcluster.sh(CONTROL, "rpm -q CraneSched-cranectld").returncode != 0


def test_dry_run_on_bare_nodes_fails_nothing(rcluster, flow):
    result = formula.apply(rcluster, test=True)
    assert set(result) == set(rcluster.spec.hostnames())
    assert formula.failures(result) == {}
    assert formula.results(result) <= {None, True}
    assert rcluster.sh(CONTROL, "test -e /etc/crane/config.yaml").returncode == 1
    flow["dry_run"] = True


def test_apply_installs_the_rpms_through_dnf_and_every_node_is_idle(rcluster, flow):
    after(flow, "dry_run")
    result = formula.timed_apply(rcluster, "RPM nodes: first apply")
    assert formula.failures(result) == {}
    assert formula.results(result) == {True}
    for node, package in RPM_NODES.items():
        shown = rcluster.sh(node, f"rpm -q --qf '%{{NAME}} %{{VERSION}}-%{{RELEASE}}' {package}")
        assert shown.stdout == f"{package} 1.1.2-1", (node, shown.stdout + shown.stderr)
    assert rcluster.sh(CONTROL, "rpm -q cranesched-frontend").returncode == 0
    for node, package in DEB_NODES.items():
        assert rcluster.sh(node, f"dpkg -s {package}").returncode == 0, node
    assert rcluster.sh("cn01", "dpkg -s cranesched-craned").returncode != 0
    formula.wait_for("every node idle", lambda: formula.all_idle(rcluster, COMPUTE))
    flow["applied"] = True


def test_the_rpm_scriptlet_ran_and_the_formula_owns_the_result(rcluster, flow):
    """CraneSched's %post creates crane and chowns /etc/crane to it; the formula then sets
    its own owners (root for /etc/crane, 0755 binaries)."""
    after(flow, "applied")
    assert rcluster.sh("cn01", "id -u crane").returncode == 0  # from %post, even on compute
    assert rcluster.sh("cn02", "id -u crane").returncode != 0  # dpkg never ran it
    shown = rcluster.sh(CONTROL, "stat -c '%U %a' /etc/crane /usr/bin/cranectld").stdout
    assert shown.split("\n")[:2] == ["root 755", "root 755"]


def test_second_apply_changes_nothing_and_dry_run_is_clean(rcluster, flow):
    after(flow, "applied")
    pids = {node: formula.main_pid(rcluster, node, unit) for node, unit in SERVICES.items()}
    formula.assert_settled(rcluster)
    assert pids == {node: formula.main_pid(rcluster, node, unit) for node, unit in SERVICES.items()}
    flow["idempotent"] = True


def package_versions(cluster) -> dict:
    """{node: version of its CraneSched package} as rpm or dpkg report it."""
    found = {}
    for node, package in RPM_NODES.items():
        found[node] = cluster.sh(node, f"rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' {package}").stdout
    for node, package in DEB_NODES.items():
        found[node] = cluster.sh(node, f"dpkg-query -W -f '${{Version}}' {package}").stdout
    return found


def publish(cluster, versions, broken=()):
    """Serve these versions from both repositories (apt and yum)."""
    from tests.cranesim.build import build_repo  # noqa: PLC0415
    from tests.cranesim.rpm import build_rpm_repo  # noqa: PLC0415

    build_repo(cluster.run_dir / "repo", list(versions), broken=list(broken))
    build_rpm_repo(cluster.run_dir / "repo" / "rpm", list(versions), broken=list(broken))


def test_rolling_upgrade_on_rpm_nodes_keeps_drain_and_job(rcluster, flow):
    """The pillar says 1.1.3, dnf lists 1.1.3-1, craned registers as 1.1.3."""
    after(flow, "idempotent")
    code, _, err = salt_run(rcluster, "saltutil.sync_all")  # runners and utils on the master
    assert code == 0, err
    rcluster.sh(CONTROL, 'ccontrol update nodename=cn02 state=drain reason="disk"', check=True)
    rcluster.sh(CONTROL, "cranesim-job --node cn01 --seconds 20", check=True)
    code, report, err = salt_run(rcluster, "crane.upgrade", "version=1.1.3", "batch=1")
    assert code == 0, (report, err)
    assert package_versions(rcluster) == {
        CONTROL: "1.1.3-1",
        "cn01": "1.1.3-1",
        "cn02": "1.1.3",
        "login01": "1.1.3",
    }
    details = rcluster.salt(CONTROL, "crane.show_node")[CONTROL]
    assert {n: d["version"] for n, d in details.items()} == dict.fromkeys(COMPUTE, "1.1.3")
    assert drains(rcluster) == {"cn02": "disk"}
    assert {j["status"] for j in jobs(rcluster).values()} == {"Completed"}
    rcluster.sh(CONTROL, 'ccontrol update nodename=cn02 state=resume reason=""', check=True)
    flow["upgraded"] = True


def test_broken_rpm_stops_at_the_canary_and_a_fixed_repository_completes(rcluster, flow):
    after(flow, "upgraded")
    publish(rcluster, ["1.1.2", "1.1.3"], broken=["1.1.4"])
    code, report, _ = salt_run(rcluster, "crane.upgrade", "version=1.1.4", "batch=1")
    assert code != 0
    canary = next(iter(report["failed"]))
    assert "csupervisor" in str(report["failed"][canary]), report
    assert drains(rcluster)[canary].startswith("crane-formula: upgrade to 1.1.4")
    assert sorted([canary, *report["not_reached"]]) == sorted(COMPUTE)
    publish(rcluster, ["1.1.2", "1.1.3", "1.1.5"], broken=["1.1.4"])
    code, report, err = salt_run(rcluster, "crane.upgrade", "version=1.1.5", "batch=1")
    assert code == 0, (report, err)
    assert set(package_versions(rcluster).values()) == {"1.1.5", "1.1.5-1"}
    assert drains(rcluster) == {}


def test_clean_removes_the_rpms(rcluster, flow):
    after(flow, "idempotent")
    clean(rcluster)
    for node, package in RPM_NODES.items():
        assert rcluster.sh(node, f"rpm -q {package}").returncode != 0, node
    for node, package in DEB_NODES.items():
        assert rcluster.sh(node, f"dpkg -s {package}").returncode != 0, node
    assert rcluster.sh(CONTROL, "test -e /etc/yum.repos.d/cranesched.repo").returncode != 0
    flow["bare"] = "repo"


def clean(cluster):
    cleaned = cluster.salt("*", "state.apply", "crane.clean", timeout=formula.APPLY_TIMEOUT)
    assert formula.failures({m: formula._by_id(s) for m, s in cleaned.items()}) == {}


PACKAGE_FILES = {
    "deb": {
        "cranectld": "CraneSched-{v}-Linux-x86_64-cranectld.deb",
        "craned": "CraneSched-{v}-Linux-x86_64-craned.deb",
        "frontend": "cranesched-frontend_{v}_amd64.deb",
    },
    "rpm": {
        "cranectld": "CraneSched-{v}-Linux-x86_64-cranectld.rpm",
        "craned": "CraneSched-{v}-Linux-x86_64-craned.rpm",
        "frontend": "cranesched-frontend_{v}_amd64.rpm",
    },
}


def method_pillar(cluster, method):
    """The cluster's pillar with ``install:method`` ``files`` (the .deb files for Debian
    nodes, the .rpm files for RPM nodes, from salt://) or ``binaries`` (from salt://)."""
    version = cluster.spec.repo_versions[0]
    urls = cluster.publish_install_files(version)
    sls, top = rpm_pillar(cluster.spec)
    install = sls["crane.cluster"]["crane"]["install"]
    install["method"] = method
    if method == "files":
        for kind, owner in (("deb", "crane.cluster"), ("rpm", pillar.REDHAT_SLS)):
            files = {
                key: {"source": f"{urls[kind]}/{name.format(v=version)}"}
                for key, name in PACKAGE_FILES[kind].items()
            }
            sls[owner]["crane"].setdefault("install", {})["files"] = files
    else:
        install["binaries"] = {"source": urls["binaries"]}
    return sls, top


@pytest.mark.parametrize("method", ["files", "binaries"])
def test_install_method_from_bare_nodes_to_idle_and_back(rcluster, flow, method):
    """Bare nodes → every node idle → re-apply 0 changes → test=True clean → crane.clean."""
    if not flow.get("bare"):
        pytest.skip("needs bare nodes from the previous step")
    flow["bare"] = None
    rcluster.write_pillar(*method_pillar(rcluster, method))
    result = formula.timed_apply(rcluster, f"mixed cluster: {method}")
    assert formula.failures(result) == {}
    assert formula.results(result) == {True}
    formula.wait_for("every node idle", lambda: formula.all_idle(rcluster, COMPUTE))
    packaged = method == "files"
    for node, package in RPM_NODES.items():
        assert (rcluster.sh(node, f"rpm -q {package}").returncode == 0) == packaged, node
    for node, package in DEB_NODES.items():
        assert (rcluster.sh(node, f"dpkg -s {package}").returncode == 0) == packaged, node
    assert rcluster.sh("login01", "/usr/bin/cinfo -v").stdout.startswith("CraneSched 1.1.2")
    for node in ("cn01", "cn02"):
        shown = rcluster.sh(node, "stat -c '%U %a' /usr/bin/craned /usr/libexec/csupervisor")
        assert shown.stdout.split("\n")[:2] == ["root 755", "root 755"], node
    formula.assert_settled(rcluster)
    clean(rcluster)
    for node in ("cn01", "cn02"):
        assert rcluster.sh(node, "test -e /usr/bin/craned").returncode != 0, node
    assert rcluster.sh("login01", "test -e /usr/bin/cinfo").returncode != 0
    flow["bare"] = method


def test_reapply_after_clean_brings_the_cluster_back(rcluster, flow):
    if not flow.get("bare"):
        pytest.skip("needs bare nodes from the previous step")
    rcluster.write_pillar(*method_pillar(rcluster, flow["bare"]))
    result = formula.apply(rcluster)
    assert formula.failures(result) == {}
    formula.wait_for("every node idle", lambda: formula.all_idle(rcluster, COMPUTE))
    flow["converged"] = True


# --- live firewalls ----------------------------------------------------------------------------

UFW_NODES = ("cn02", "login01")
FIREWALLD_NODES = (CONTROL, "cn01")
ROLE_PORTS = {CONTROL: [10011, 10013], "cn01": [10010], "cn02": [10010], "login01": [10012]}
UNNEEDED = 10012  # no compute node's port: it stays closed there
OWN_RULE = "comment 'crane-formula'"


def firewall_pillar(cluster, flow, **firewall):
    """The pillar the cluster runs with (the last install method), with ``crane:firewall*``
    settings and a short verify wait (the first step expects nodes down)."""
    method = flow.get("bare")
    sls, top = method_pillar(cluster, method) if method else rpm_pillar(cluster.spec)
    crane = sls["crane.cluster"]["crane"]
    crane["verify"] = {"enabled": True, "timeout": 20, "interval": 2}
    crane.update(firewall)
    return sls, top


def reachable(cluster, source, node, port) -> bool:
    """A TCP connection from ``source`` (a node, or None for this host) to node:port."""
    if source is None:
        with socket.socket() as sock:
            sock.settimeout(3)
            return sock.connect_ex((cluster.spec.address(node), port)) == 0
    probe = "python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(3); "
    probe += "sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))))' "
    return cluster.sh(source, probe + f"{node} {port}").returncode == 0


def listening(cluster, node, port):
    """A listener on node:port that is no CraneSched daemon (stopped by the caller)."""
    unit = f"probe-{port}"
    cluster.sh(node, f"systemd-run --unit={unit} python3 -m http.server {port}", check=True)
    formula.wait_for(
        f"{node}:{port} listening", lambda: reachable(cluster, node, "127.0.0.1", port)
    )
    return unit


def ufw_added(cluster, node) -> list[str]:
    """ufw's rules as ``ufw`` command lines (it prints "(None)" when there are none)."""
    lines = cluster.sh(node, "ufw show added", check=True).stdout.splitlines()[1:]
    return [line for line in lines if line != "(None)"]


def service_ports(cluster, node) -> str:
    """The ports of the formula's firewalld service ('' when there is none)."""
    return cluster.sh(node, "firewall-cmd --permanent --service=crane-formula --get-ports").stdout


def health(cluster):
    proc = cluster.salt_cli("--out=json", "--timeout=60", CONTROL, "crane.health")
    return proc.returncode, json.loads(proc.stdout)[CONTROL]


def test_live_firewalls_without_the_formula_rules_nodes_are_down_and_named(rcluster, flow):
    """The guide's first troubleshooting step: craned cannot reach cranectld through the
    control node's firewall (restarted as after a reboot: established connections pass)."""
    rcluster.write_pillar(*firewall_pillar(rcluster, flow, firewall=False))
    for node in UFW_NODES:
        rcluster.sh(node, "ufw default deny incoming && ufw --force enable", check=True)
        assert "Status: active" in rcluster.sh(node, "ufw status").stdout, node
    for node in FIREWALLD_NODES:
        rcluster.sh(node, "systemctl start firewalld", check=True)
        assert rcluster.sh(node, "firewall-cmd --state").stdout.strip() == "running", node
    # Connections opened before the firewall started were never tracked: their packets look
    # INVALID to it (window scaling unseen) and are dropped, so the minions' connections to the
    # master die.  Restart the minions, as on nodes booted with their firewall.
    for node in rcluster.spec.hostnames():
        rcluster.sh(node, "systemctl restart salt-minion", check=True)
    rcluster.wait_for_minions(rcluster.spec.hostnames())
    rcluster.sh(CONTROL, "systemctl restart cranectld", check=True)
    result = formula.apply(rcluster)
    failed = formula.failures(result)
    assert set(failed) == {CONTROL}, failed
    assert set(failed[CONTROL]) == {"crane-verify-nodes-ready"}, failed
    assert "cn01" in failed[CONTROL]["crane-verify-nodes-ready"]
    assert "cn02" in failed[CONTROL]["crane-verify-nodes-ready"]
    code, answer = health(rcluster)
    assert code != 0
    assert {"cn01", "cn02"} <= set(answer["down"]) | set(answer["missing"]), answer
    flow["firewalls"] = True


def test_the_formula_opens_exactly_the_role_ports_and_every_node_is_idle(rcluster, flow):
    after(flow, "firewalls")
    rcluster.write_pillar(*firewall_pillar(rcluster, flow))
    result = formula.apply(rcluster)
    assert formula.failures(result) == {}
    formula.wait_for("every node idle", lambda: formula.all_idle(rcluster, COMPUTE))
    for node in UFW_NODES:
        assert ufw_added(rcluster, node) == [
            f"ufw allow {port}/tcp {OWN_RULE}" for port in ROLE_PORTS[node]
        ]
    for node in FIREWALLD_NODES:
        wanted = " ".join(f"{port}/tcp" for port in ROLE_PORTS[node])
        assert service_ports(rcluster, node).strip() == wanted, node
        services = rcluster.sh(node, "firewall-cmd --list-services", check=True).stdout.split()
        assert "crane-formula" in services, node
    assert reachable(rcluster, CONTROL, "cn02", 10010)
    assert reachable(rcluster, "cn02", CONTROL, 10011)
    for node, source in (("cn02", CONTROL), ("cn01", "cn02")):
        unit = listening(rcluster, node, UNNEEDED)
        assert not reachable(rcluster, source, node, UNNEEDED), f"{node}:{UNNEEDED} is open"
        rcluster.sh(node, f"systemctl stop {unit}")
    formula.assert_settled(rcluster)
    flow["opened"] = True


def nodes_network(cluster) -> str:
    """A CIDR holding every node (.11 upwards) but not this host's bridge address (.1)."""
    first = ipaddress.ip_address(cluster.spec.address(cluster.spec.hostnames()[0]))
    return str(ipaddress.ip_network(f"{first}/29", strict=False))


def test_a_bad_source_cidr_fails_naming_the_key_before_anything_changes(rcluster, flow):
    after(flow, "opened")
    rcluster.write_pillar(*firewall_pillar(rcluster, flow, firewall_sources=["10.213.0.1/16"]))
    result = formula.apply(rcluster)
    assert set(formula.failures(result)) == set(rcluster.spec.hostnames())
    for minion, states in result.items():
        assert "crane:firewall_sources: '10.213.0.1/16'" in str(states), minion
        assert formula.changed({minion: states}) == {}, minion
    assert ufw_added(rcluster, "cn02") == [f"ufw allow 10010/tcp {OWN_RULE}"]


def test_with_source_cidrs_a_connection_from_outside_is_refused(rcluster, flow):
    after(flow, "opened")
    network = nodes_network(rcluster)
    rcluster.write_pillar(*firewall_pillar(rcluster, flow, firewall_sources=[network]))
    dry = formula.apply(rcluster, test=True)
    assert formula.failures(dry) == {}
    assert set(formula.changed(dry)) == set(rcluster.spec.hostnames())
    result = formula.apply(rcluster)
    assert formula.failures(result) == {}
    assert set(formula.changed(result)) == set(rcluster.spec.hostnames())
    formula.wait_for("every node idle", lambda: formula.all_idle(rcluster, COMPUTE))
    assert ufw_added(rcluster, "cn02") == [
        f"ufw allow from {network} to any port 10010 proto tcp {OWN_RULE}"
    ]
    rich = rcluster.sh("cn01", "firewall-cmd --list-rich-rules", check=True).stdout.strip()
    assert (
        rich == f'rule family="ipv4" source address="{network}" service name="crane-formula" accept'
    )
    for node in ("cn01", "cn02"):
        assert reachable(rcluster, CONTROL, node, 10010), node
        assert not reachable(rcluster, None, node, 10010), f"{node}:10010 open to this host"
    assert not reachable(rcluster, None, CONTROL, 10011)
    again = formula.apply(rcluster)
    assert formula.changed(again) == {}
    flow["sources"] = network


def test_clean_closes_what_the_formula_opened_and_nothing_else(rcluster, flow):
    after(flow, "sources")
    rcluster.sh("cn02", "ufw allow 10012/tcp", check=True)  # an admin's own rule
    rcluster.sh("cn01", "firewall-cmd --permanent --add-port=10012/tcp", check=True)
    clean(rcluster)
    assert ufw_added(rcluster, "cn02") == ["ufw allow 10012/tcp"]
    assert ufw_added(rcluster, "login01") == []
    for node in FIREWALLD_NODES:
        assert service_ports(rcluster, node) == "", node
        services = rcluster.sh(node, "firewall-cmd --list-services", check=True).stdout.split()
        assert "crane-formula" not in services, node
        assert rcluster.sh(node, "firewall-cmd --list-rich-rules").stdout.strip() == "", node
    ports = rcluster.sh("cn01", "firewall-cmd --permanent --list-ports", check=True).stdout
    assert ports.split() == ["10012/tcp"]
    flow["closed"] = True


def test_reapply_after_clean_opens_the_ports_again(rcluster, flow):
    after(flow, "closed")
    result = formula.apply(rcluster)
    assert formula.failures(result) == {}
    formula.wait_for("every node idle", lambda: formula.all_idle(rcluster, COMPUTE))
    network = flow["sources"]
    assert ufw_added(rcluster, "cn02") == [
        "ufw allow 10012/tcp",
        f"ufw allow from {network} to any port 10010 proto tcp {OWN_RULE}",
    ]
    assert service_ports(rcluster, CONTROL).strip() == "10011/tcp 10013/tcp"
