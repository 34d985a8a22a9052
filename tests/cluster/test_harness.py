"""The test cluster itself: nodes, names, network, fake GPUs, pillar, and a clean teardown."""

from __future__ import annotations

import json
import pathlib

import pytest

from . import procs
from .conftest import require_cluster_environment
from .harness import Cluster, teardown
from .spec import NodeSpec, isolated_spec

pytestmark = pytest.mark.cluster


def test_nodes_have_their_hostnames(cluster):
    names = cluster.spec.hostnames()
    seen = {name: cluster.sh(name, "hostname", check=True).stdout.strip() for name in names}
    assert seen == {name: name for name in names}
    assert cluster.salt("*", "grains.get", "host") == {name: name for name in names}


def test_every_minion_answers(cluster):
    assert cluster.salt("*", "test.ping") == dict.fromkeys(cluster.spec.hostnames(), True)


def test_nodes_reach_each_other_by_name(cluster):
    names = cluster.spec.hostnames()
    for name in names:
        others = " ".join(n for n in names if n != name)
        script = f"for h in {others} salt; do ping -c1 -W2 $h >/dev/null || echo $h; done"
        unreachable = cluster.sh(name, script).stdout.split()
        assert unreachable == [], f"{name} cannot reach {unreachable}"


def test_gpu_devices_only_where_configured(cluster):
    for node in cluster.spec.nodes:
        out = cluster.sh(node.hostname, "stat -c '%F %t:%T' /dev/nvidia* 2>/dev/null").stdout
        expected = [f"character special file c3:{minor:x}" for minor in range(node.gpus)]
        assert out.splitlines() == expected, node.hostname


def test_demo_shape_has_one_gpu_node_with_four_gpus(cluster):
    gpus = {n.hostname: n.gpus for n in cluster.spec.nodes if n.gpus}
    assert gpus == {"cn03": 4}


def test_database_pillar_only_on_control_nodes(cluster):
    database = cluster.salt("*", "pillar.get", "crane:database", unmask=True)
    controls = set(cluster.spec.hostnames("control"))
    assert controls
    assert {name for name, data in database.items() if data} == controls


def test_pillar_points_every_node_at_the_local_repo(cluster):
    urls = cluster.salt("*", "pillar.get", "crane:install:repo:url", unmask=True)
    assert urls == dict.fromkeys(cluster.spec.hostnames(), cluster.spec.repo_url())


def test_repo_is_served_to_nodes(cluster):
    name = cluster.spec.hostnames()[0]
    fetch = f"python3 -c \"import urllib.request as u; u.urlopen('{cluster.spec.repo_url()}')\""
    assert cluster.sh(name, fetch).returncode == 0


def test_write_pillar_reaches_minions(cluster):
    from . import pillar  # noqa: PLC0415

    sls, top = pillar.cluster_pillar(cluster.spec, cluster.repo_root)
    sls["crane.cluster"]["crane"]["probe"] = "changed"
    try:
        cluster.write_pillar(sls, top)
        probes = cluster.salt("*", "pillar.get", "crane:probe", unmask=True)
        assert probes == dict.fromkeys(cluster.spec.hostnames(), "changed")
    finally:
        cluster.write_pillar(*pillar.cluster_pillar(cluster.spec, cluster.repo_root))


def test_restarted_node_comes_back_clean_and_teardown_leaves_nothing():
    """A separate short-lived cluster: a node restarts from the clean image, and after the
    cluster exits nothing of it (processes, links, mounts, cgroups, devices) remains."""
    require_cluster_environment()
    spec = isolated_spec("cftdown", "10.213.9.0/24", nodes=(NodeSpec("gpu01", gpus=1),))
    with Cluster(spec, log=lambda msg: None) as short:
        short.sh("gpu01", "touch /root/marker", check=True)
        first = short.state
        short.stop_node("gpu01")
        assert not procs.is_running(first["nodes"]["gpu01"]["leader"])
        short.start_node("gpu01")
        assert short.salt("gpu01", "test.ping") == {"gpu01": True}
        assert short.sh("gpu01", "test -e /root/marker").returncode == 1
        state = short.state
        assert pathlib.Path(f"/sys/class/net/{spec.bridge}").exists()
        assert (short.run_dir / "dev" / "gpu01" / "nvidia0").is_char_device()
        assert state["bridge_ports"]
    run_dir = state["run_dir"]
    records = [r for node in (first, state) for rs in node["nodes"].values() for r in rs.values()]
    records += state["services"]
    assert [r for r in records if procs.is_running(r)] == []
    assert not pathlib.Path(f"/sys/class/net/{spec.bridge}").exists()
    assert [p for p in state["bridge_ports"] if procs.link_exists(p)] == []
    assert run_dir not in pathlib.Path("/proc/self/mountinfo").read_text()
    assert [c for c in state["cgroups"] if pathlib.Path(c).exists()] == []
    assert not pathlib.Path(run_dir).exists()
    assert _processes_mentioning(run_dir) == []


def test_teardown_removes_a_node_link_the_kernel_has_not_freed_yet(tmp_path):
    """A killed node's veth goes only when the kernel frees its network namespace, later under
    load: teardown deletes what it recorded, both ends (a veth pair stands in for it)."""
    require_cluster_environment()
    link, peer = "cftd-late0", "cftd-late1"
    procs.ip("link", "add", link, "type", "veth", "peer", "name", peer)
    try:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        state = {"name": "cftd", "run_dir": str(run_dir), "bridge": "cftd0", "nodes": {}}
        state["bridge_ports"] = [link]
        (run_dir / "state.json").write_text(json.dumps(state))
        assert teardown(run_dir) == []
        assert not procs.link_exists(link)
        assert not procs.link_exists(peer)
    finally:
        if procs.link_exists(link):
            procs.ip("link", "del", link)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
