"""The onboarding benchmark's own parts, without nodes: the cluster's shape, its pillar (the
first nodes named, the rest taken by the selector), the join wait and the rows."""

import crane_config
import crane_elastic
import pytest

from bench import onboarding, scale_out
from tests.cluster import harness

STEPS = [5, 16, 32]


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setenv(harness.RUN_ENV, str(tmp_path))
    monkeypatch.setenv(onboarding.NET_VARIABLE, "cfunit:10.213.250.0/24")
    spec = onboarding.onboard_spec(STEPS)
    made = onboarding.OnboardCluster(spec, STEPS[0], str(tmp_path / "extra"), log=lambda _m: None)
    made.rootfs_by_family = {"Debian": tmp_path / "rootfs"}
    return made


def test_the_first_nodes_are_named_and_the_others_carry_the_selector_grain(cluster):
    nodes = {n.hostname: n for n in cluster.full_spec.nodes}
    assert [n for n in nodes if nodes[n].grains] == [f"cn{i:02d}" for i in range(6, 33)]
    assert nodes["cn06"].grains == (onboarding.GRAIN,)
    assert cluster.spec.hostnames("compute") == [f"cn{i:02d}" for i in range(1, 6)]
    assert cluster.full_spec.reactors == onboarding.REACTORS


def test_pillar_names_the_first_nodes_and_selects_the_rest_and_stays_valid(cluster):
    sls, _top = cluster.onboard_pillar()
    config = sls["crane.cluster"]["crane"]["config"]
    assert config["Nodes"][0]["name"] == "cn[01-05]"
    assert config["Nodes"][1] == {"match": onboarding.MATCH, "cpu": "auto", "memory": "auto"}
    facts = {f"cn{i:02d}": {"host": f"cn{i:02d}", "cpu": 2, "memory": 4096, "gres": [],
                            "ready": True} for i in (6, 7)}  # fmt: skip
    resolved, errors, _warnings = crane_elastic.resolve(config, {onboarding.MATCH: facts})
    assert errors == []
    assert resolved["Partitions"][0]["nodes"] == "cn[01-07]"
    assert crane_config.validate(resolved)["valid"]


def test_growing_writes_the_new_nodes_and_leaves_the_pillar_alone(cluster):
    cluster._write_node_files()
    cluster.write_pillar(*cluster.onboard_pillar(), refresh=False)
    pillar = (cluster.run_dir / "pillar" / "crane" / "cluster.sls").read_text()
    assert cluster.grow(7) == ["cn06", "cn07"]
    assert (cluster.run_dir / "nodes" / "cn07" / "minion.conf").is_file()
    assert "crane_partition" in (cluster.run_dir / "nodes" / "cn07" / "minion.conf").read_text()
    assert (cluster.run_dir / "pillar" / "crane" / "cluster.sls").read_text() == pillar


def test_joins_count_as_busy_while_one_is_queued_or_the_lock_is_held(cluster):
    state = cluster.state_dir
    assert not cluster.joins_busy()
    (state / "join-queue").mkdir(parents=True)
    (state / "join-queue" / "cn06.json").write_text("{}")
    assert cluster.joins_busy()
    (state / "join-queue" / "cn06.json").unlink()
    (state / "crane-run.lock").write_text("{}")
    assert cluster.joins_busy()


def _runs(seconds, cpu):
    return [scale_out.Run(seconds, cpu), scale_out.Run(seconds, cpu)]


def test_rows_give_the_join_time_per_node_and_say_what_grows_faster_than_linearly():
    figures = {
        "joins": {
            16: onboarding.Onboarded(["x"] * 11, 110.0, 11.0, 2),
            32: onboarding.Onboarded(["x"] * 16, 480.0, 16.0, 2),  # 30 s per node, was 10
        },
        "reapply": {
            5: (_runs(5.0, 1.0), _runs(4.0, 0.5)),
            16: (_runs(16.0, 3.2), _runs(12.0, 2.0)),
            32: (_runs(32.0, 6.4), _runs(25.0, 4.0)),
        },
        "restart": scale_out.Run(120.0, 9.0),
    }
    rows = onboarding.rows_from(STEPS, figures)
    joins = [r for r in rows if r.figure.startswith("join time per node")]
    assert [r.ours for r in joins] == [pytest.approx(10.0), pytest.approx(30.0)]
    assert "cranectld starts): 2" in joins[0].note
    growth = {r.figure: r for r in rows if r.unit == "x"}
    join_growth = next(r for f, r in growth.items() if "join time" in f)
    assert join_growth.ours == pytest.approx(3.0) and "faster than linearly" in join_growth.note
    reapply = next(r for f, r in growth.items() if f.endswith("re-apply (onboarded)"))
    assert reapply.ours == pytest.approx(1.0) and "linear or better" in reapply.note
    assert all(r.ours is not None for r in rows)


def test_quick_run_boots_nothing():
    rows = onboarding.onboarding_rows(quick=True)
    assert [row.ours for row in rows] == [None]
    assert "--quick" in rows[0].note
