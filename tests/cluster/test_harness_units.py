"""The harness's pure parts (no root, no nodes): spec, pillar generation, rootfs cache."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from . import pillar, rootfs
from .spec import ClusterSpec, NodeSpec, demo_spec, isolated_spec


def test_addresses_start_at_eleven_and_host_is_one():
    spec = demo_spec()
    assert spec.host_address == "10.213.7.1"
    assert [spec.address(h) for h in spec.hostnames()] == [f"10.213.7.{i}" for i in range(11, 16)]


def test_spec_rejects_bad_shapes():
    node = NodeSpec("n1")
    with pytest.raises(ValueError, match="/24"):
        ClusterSpec("x", (node,), "x0", "10.1.0.0/16")
    with pytest.raises(ValueError, match="duplicate"):
        ClusterSpec("x", (node, node), "x0", "10.1.0.0/24")
    with pytest.raises(ValueError, match="role"):
        NodeSpec("n2", role="storage")


def test_isolated_spec_keeps_demo_shape_on_other_network():
    demo, tests = demo_spec(), isolated_spec()
    assert tests.nodes == demo.nodes
    assert tests.bridge != demo.bridge
    assert tests.subnet != demo.subnet


def _example(tmp_path: pathlib.Path, cluster: dict, database: dict) -> pathlib.Path:
    crane = tmp_path / "pillar" / "crane"
    crane.mkdir(parents=True)
    (crane / "cluster.sls").write_text(yaml.safe_dump(cluster))
    (crane / "database.sls").write_text(yaml.safe_dump(database))
    return tmp_path


def test_example_pillar_gets_local_repo_and_database_only_on_control(tmp_path):
    cluster = {"crane": {"install": {"method": "repo", "repo": {"url": "http://x/"}}}}
    root = _example(tmp_path, cluster, {"crane": {"database": {"DbName": "d"}}})
    spec = demo_spec()
    sls, top = pillar.cluster_pillar(spec, root)
    repo = sls["crane.cluster"]["crane"]["install"]["repo"]
    assert repo == {"url": spec.repo_url(), "trusted": True}
    assert sls["crane.database"] == {"crane": {"database": {"DbName": "d"}}}
    assert top == {"base": {"*": ["crane.cluster"], "cranectl": ["crane.database"]}}


def test_placeholder_pillar_when_example_is_missing(tmp_path):
    spec = demo_spec()
    sls, top = pillar.cluster_pillar(spec, tmp_path)
    config = sls["crane.cluster"]["crane"]["config"]
    assert config["ControlMachine"] == "cranectl"
    assert [n["name"] for n in config["Nodes"]] == ["cn01", "cn02", "cn03"]
    assert config["Nodes"][2]["gres"][0]["DeviceFileRegex"] == "/dev/nvidia[0-3]"
    assert top["base"]["cranectl"] == ["crane.database"]


def test_rpm_nodes_get_the_yum_repository_and_rocky_runtime_names(tmp_path):
    nodes = (
        NodeSpec("cranectl", "control", family="RedHat"),
        NodeSpec("cn01", family="RedHat"),
        NodeSpec("cn02"),
    )
    spec = ClusterSpec("x", nodes, "x0", "10.1.2.0/24")
    assert spec.repo_url("RedHat") == "http://10.1.2.1:8080/rpm/"
    sls, top = pillar.cluster_pillar(spec, tmp_path)
    rpm = sls[pillar.REDHAT_SLS]["crane"]
    assert rpm["install"]["repo"] == {"url": spec.repo_url("RedHat"), "gpgcheck": False}
    assert rpm["runtime_packages"]["craned"] == ["python3", "python3-pyyaml"]
    assert top["base"]["cranectl"] == ["crane.database", pillar.REDHAT_SLS]
    assert top["base"]["cn01"] == [pillar.REDHAT_SLS]
    assert "cn02" not in top["base"]
    with pytest.raises(ValueError, match="family"):
        NodeSpec("n3", family="Arch")


def test_debian_only_cluster_has_no_rpm_pillar(tmp_path):
    sls, _ = pillar.cluster_pillar(demo_spec(), tmp_path)
    assert pillar.REDHAT_SLS not in sls


def test_rpm_recipe_is_the_debian_base_plus_rpm_and_dnf():
    assert rootfs.recipe_hash(rootfs.RPM_RECIPE) != rootfs.recipe_hash(rootfs.RECIPE)
    assert set(rootfs.RPM_RECIPE["packages"]) - set(rootfs.RECIPE["packages"]) == {"rpm", "dnf"}
    assert "/bin/sh" in rootfs.RPM_RECIPE["rpm_base"]["cranesim-node-provides"]


def test_write_tree_replaces_old_files(tmp_path):
    pillar.write_tree(tmp_path, {"crane.old": {"a": 1}}, {"base": {"*": ["crane.old"]}})
    pillar.write_tree(tmp_path, {"crane.cluster": {"crane": {"v": 2}}}, {"base": {}})
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.sls")) == [
        "crane/cluster.sls",
        "top.sls",
    ]
    assert yaml.safe_load((tmp_path / "crane/cluster.sls").read_text()) == {"crane": {"v": 2}}


def test_recipe_hash_follows_the_recipe():
    changed = dict(rootfs.RECIPE, packages=[*rootfs.RECIPE["packages"], "vim"])
    assert rootfs.recipe_hash(changed) != rootfs.recipe_hash()
    assert rootfs.recipe_hash(dict(rootfs.RECIPE)) == rootfs.recipe_hash()


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """A cache in tmp_path whose 'debootstrap' writes one file, or fails when told to."""
    monkeypatch.setenv(rootfs.CACHE_ENV, str(tmp_path))
    calls = {"n": 0, "fail": False}

    def debootstrap(dest, _recipe):
        calls["n"] += 1
        dest.mkdir(parents=True)
        (dest / "half-written").write_text("x")
        if calls["fail"]:
            raise RuntimeError("mirror unreachable")

    monkeypatch.setattr(rootfs, "_debootstrap", debootstrap)
    monkeypatch.setattr(rootfs, "_post_steps", lambda root, recipe: None)
    return calls


def test_rootfs_is_built_once_then_reused(fake_build):
    path, seconds = rootfs.ensure_rootfs(log=lambda m: None)
    assert seconds is not None
    assert rootfs.is_built(path)
    again, seconds = rootfs.ensure_rootfs(log=lambda m: None)
    assert (again, seconds, fake_build["n"]) == (path, None, 1)


def test_failed_build_leaves_no_cache(fake_build):
    fake_build["fail"] = True
    with pytest.raises(RuntimeError, match="mirror"):
        rootfs.ensure_rootfs(log=lambda m: None)
    assert [p.name for p in rootfs.cache_root().iterdir() if p.name != ".lock"] == []


def test_changed_recipe_builds_a_new_tree(fake_build):
    first, _ = rootfs.ensure_rootfs(log=lambda m: None)
    changed = dict(rootfs.RECIPE, suite="trixie")
    second, seconds = rootfs.ensure_rootfs(changed, log=lambda m: None)
    assert second != first
    assert seconds is not None
    assert fake_build["n"] == 2


def test_build_removes_trees_of_killed_builds(fake_build):
    stale = rootfs.cache_root() / ".tmp-0123456789abcdef-999999"
    stale.mkdir(parents=True)
    rootfs.ensure_rootfs(log=lambda m: None)
    assert not stale.exists()


def test_new_build_prunes_trees_of_old_recipes(fake_build):
    old, _ = rootfs.ensure_rootfs(dict(rootfs.RECIPE, suite="trixie"), log=lambda m: None)
    new, _ = rootfs.ensure_rootfs(log=lambda m: None)
    assert rootfs.is_built(new)
    assert not old.exists()
