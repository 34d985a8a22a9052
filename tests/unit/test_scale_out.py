"""The scale-out benchmark's own parts, without nodes: the cluster's shape and pillar, the
light node's files, the CPU and growth arithmetic, and the rows it prints."""

import os
import pathlib

import crane_config
import pytest

from bench import scale_out
from tests.cluster import harness, scale

NET = ("CRANE_FORMULA_UNIT_NET", "cfunit:10.213.250.0/24")


def test_compute_nodes_make_one_compressed_host_list():
    spec = scale.scale_spec(32, *NET)
    assert spec.hostnames("control") == ["cranectl"]
    assert spec.hostnames("compute")[0] == "cn01"
    assert spec.hostnames("compute")[-1] == "cn32"
    assert spec.address("cn32") == "10.213.250.43"


def test_a_smaller_cluster_keeps_every_address():
    full = scale.scale_spec(32, *NET)
    small = scale.first(full, 5)
    assert small.hostnames() == ["cranectl", "cn01", "cn02", "cn03", "cn04", "cn05"]
    assert [small.address(n) for n in small.hostnames()] == [
        full.address(n) for n in small.hostnames()
    ]


def test_pillar_lists_the_nodes_as_one_group_and_is_valid():
    spec = scale.scale_spec(32, *NET)
    sls, top = scale.scale_pillar(spec, harness.REPO_ROOT)
    crane = sls["crane.cluster"]["crane"]
    assert crane["config"]["Nodes"] == [{"name": "cn[01-32]", "cpu": 2, "memory": "2G"}]
    assert crane["config"]["Partitions"][0]["nodes"] == "cn[01-32]"
    assert crane["login_nodes"] == []
    assert crane_config.compute_hosts(crane["config"]) == spec.hostnames("compute")
    verdict = crane_config.validate(crane["config"])
    assert verdict["valid"], verdict["errors"]
    assert top["base"]["cranectl"] == ["crane.database"]


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setenv(harness.RUN_ENV, str(tmp_path))
    made = scale.ScaleCluster(scale.scale_spec(4, *NET), 2, log=lambda _msg: None)
    made.rootfs_by_family = {"Debian": tmp_path / "rootfs"}
    return made


def test_light_nodes_run_the_minion_alone_and_mask_what_tests_never_use(cluster):
    cluster._write_node_files()
    unit = (cluster.run_dir / "etc" / "salt-minion.service").read_text()
    assert "bin/salt-minion --disable-keepalive\n" in unit
    assert "Restart=always" in unit  # systemd does the keepalive's work
    command = cluster._nspawn_command("cn01")
    for masked in scale.MASKED_UNITS:
        assert f"--bind-ro=/dev/null:/etc/systemd/system/{masked}" in command


def test_usual_nodes_stay_as_the_harness_makes_them(cluster):
    cluster.light = False
    cluster._write_node_files()
    unit = (cluster.run_dir / "etc" / "salt-minion.service").read_text()
    assert unit == harness.MINION_UNIT.format(venv=cluster.venv)
    assert not [arg for arg in cluster._nspawn_command("cn01") if "/dev/null" in arg]


def test_every_address_resolves_before_the_node_boots(cluster):
    cluster._write_node_files()
    hosts = (cluster.run_dir / "etc" / "hosts").read_text()
    assert "10.213.250.15\tcn04" in hosts  # not booted: the cluster starts with 2
    assert [(cluster.run_dir / "nodes" / n).is_dir() for n in ("cn02", "cn03")] == [True, False]


def test_extend_writes_the_new_nodes_and_their_pillar(cluster):
    cluster._write_node_files()
    assert cluster.extend(4) == ["cn03", "cn04"]
    assert (cluster.run_dir / "nodes" / "cn04" / "minion.conf").is_file()
    pillar = (cluster.run_dir / "pillar" / "crane" / "cluster.sls").read_text()
    assert "cn[01-04]" in pillar


def _stat(pid, ppid, ticks):
    fields = ["S", str(ppid)] + ["0"] * 9 + [str(t) for t in ticks] + ["0"] * 30
    return f"{pid} (python3 (x)) " + " ".join(fields) + "\n"


def test_tree_cpu_counts_the_process_and_its_descendants_only(tmp_path):
    tree = {10: (1, (100, 50, 7, 3)), 11: (10, (10, 10, 0, 0)), 12: (11, (5, 0, 0, 0))}
    tree[20] = (1, (999, 999, 0, 0))  # not ours
    for pid, (ppid, ticks) in tree.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(_stat(pid, ppid, ticks))
    seconds = scale.tree_cpu_seconds(10, proc=tmp_path)
    assert seconds == pytest.approx((160 + 20 + 5) / os.sysconf("SC_CLK_TCK"))


def test_memory_of_a_live_process_is_read():
    fields = scale.smaps_rollup(os.getpid())
    assert fields["Pss"] > 0
    assert scale.smaps_rollup(2**22 + 1) == {}


def test_sizes_from_the_environment():
    assert scale_out.sizes("32,5,16") == [5, 16, 32]
    for bad in ("", "five", "0,5", "5,120"):
        with pytest.raises(ValueError, match=scale_out.SIZES_VARIABLE):
            scale_out.sizes(bad)


def _figures(size, first, reapply, cpu):
    run = scale_out.Run
    return {
        "first": run(first, cpu * 2, 40),
        "plain_first": run(first * 0.9, cpu, 30),
        "reapply": [run(reapply, cpu, 0), run(reapply * 1.1, cpu, 0)],
        "plain": [run(reapply / 2, cpu / 2, 0)] * 2,
        "warm_changed": 0,
        "converged": {"pss": 90.0, "rss": 150.0, "tmpfs": 12.0},
        "control": {"pss": 100.0, "rss": 160.0, "tmpfs": 14.0},
    }


def test_rows_say_what_grows_faster_than_linearly():
    # 5 -> 32 nodes: first apply per node the same, re-apply per node three times as long
    sizes = {5: _figures(5, 50.0, 10.0, 4.0), 32: _figures(32, 320.0, 192.0, 25.6)}
    rows = scale_out.growth_rows([5, 32], sizes)
    by_figure = {row.figure.split(": ")[-1]: row for row in rows}
    assert by_figure["first apply"].ours == pytest.approx(1.0)
    assert "linear or better" in by_figure["first apply"].note
    assert by_figure["re-apply"].ours == pytest.approx(3.0)
    assert by_figure["re-apply"].note.split(" (plain")[0].endswith("grows faster than linearly")
    assert by_figure["master CPU, re-apply"].ours == pytest.approx(1.0)


def test_rows_of_a_whole_run():
    sizes = {5: _figures(5, 50.0, 10.0, 4.0), 16: _figures(16, 160.0, 32.0, 12.8)}
    growth = {16: scale_out.Growth(["cn06"] * 11, 110.0, {"boot": 20.0, "restart": 50.0})}
    figures = {
        "boot": 12.0,
        "inotify": 5,
        "bare": {"pss": 70.0, "rss": 130.0, "tmpfs": 3.0},
        "sizes": sizes,
        "growth": growth,
        "restart": scale_out.Run(60.0, 8.0),
        "host_used": 4096.0,
    }
    default = (15.0, {"pss": 98.0, "rss": 180.0, "tmpfs": 3.0})
    rows = scale_out.rows_from(figures, default, [5, 16])
    figures_named = [row.figure for row in rows]
    assert sum("re-apply (idempotent)" in f for f in figures_named) == 2
    join = next(row for row in rows if row.figure.startswith("join time per node"))
    assert join.ours == pytest.approx(10.0)
    assert "grow_by_pillar" in join.note
    cost = rows[0]
    assert (cost.ours, cost.baseline_value) == (70.0, 98.0)
    assert all(row.ours is not None for row in rows)


def test_quick_run_boots_nothing():
    rows = scale_out.scale_rows(quick=True)
    assert [row.ours for row in rows] == [None]
    assert "--quick" in rows[0].note


def test_light_unit_fails_loudly_when_the_harness_unit_changes(cluster, monkeypatch):
    monkeypatch.setattr(harness, "MINION_UNIT", "[Service]\nExecStart=/bin/true\n")
    with pytest.raises(harness.ClusterError, match="salt-minion"):
        cluster._write_node_files()
    assert pathlib.Path(cluster.run_dir).is_dir()


def test_booting_stops_before_root_runs_out_of_inotify_instances(tmp_path):
    limit = tmp_path / "max_user_instances"
    limit.write_text("10\n")
    with pytest.raises(harness.ClusterError, match=r"fs\.inotify\.max_user_instances=10"):
        scale.check_inotify(100, limit)
    limit.write_text("1000000\n")
    scale.check_inotify(2, limit)
