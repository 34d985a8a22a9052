"""RPM nodes (a Debian base whose CraneSched packages rpm and dnf manage, reporting Rocky 9)
next to Debian compute and login nodes: the formula's RedHat and Debian paths with each
install method (``repo``, then ``files``: the .rpm/.deb files from salt://, then
``binaries``: the guide's manual copy), each from bare nodes to every node idle, idempotent,
a clean dry run, ``crane.clean``; finally a re-apply after the last clean.

One ordered flow on one cluster; a failed step skips the rest.
"""

from __future__ import annotations

import pytest

from . import formula, pillar
from .conftest import require_cluster_environment
from .harness import Cluster
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
    require_cluster_environment()
    spec = rpm_spec()
    cluster = Cluster(spec, log=lambda msg: print(f"[cluster] {msg}"))
    cluster.start()
    try:
        cluster.write_pillar(*rpm_pillar(spec))
        yield cluster
    finally:
        left = cluster.stop()
        assert not left, f"teardown left behind: {left}"


@pytest.fixture(scope="module")
def flow():
    return {}


def _after(flow, step):
    if not flow.get(step):
        pytest.skip(f"needs the step '{step}' to pass first")


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
    _after(flow, "dry_run")
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
    _after(flow, "applied")
    assert rcluster.sh("cn01", "id -u crane").returncode == 0  # from %post, even on compute
    assert rcluster.sh("cn02", "id -u crane").returncode != 0  # dpkg never ran it
    shown = rcluster.sh(CONTROL, "stat -c '%U %a' /etc/crane /usr/bin/cranectld").stdout
    assert shown.split("\n")[:2] == ["root 755", "root 755"]


def test_second_apply_changes_nothing_and_dry_run_is_clean(rcluster, flow):
    _after(flow, "applied")
    pids = {node: formula.main_pid(rcluster, node, unit) for node, unit in SERVICES.items()}
    again = formula.apply(rcluster)
    assert formula.failures(again) == {}
    assert formula.changed(again) == {}
    dry = formula.apply(rcluster, test=True)
    assert formula.failures(dry) == {}
    assert formula.changed(dry) == {}
    assert formula.results(dry) == {True}
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
    _after(flow, "idempotent")
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
    _after(flow, "upgraded")
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
    _after(flow, "idempotent")
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
    again = formula.apply(rcluster)
    assert formula.failures(again) == {}
    assert formula.changed(again) == {}
    dry = formula.apply(rcluster, test=True)
    assert formula.changed(dry) == {}
    assert formula.results(dry) == {True}
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
