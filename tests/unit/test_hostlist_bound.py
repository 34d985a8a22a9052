"""One bound for every host-list expansion: the size is computed before any name is built,
so a typo such as ``cn[1-99999999]`` fails at once, naming the expression, wherever it is
given (validation, crane.expand_hostlist, crane.drain, crane.health, the runner)."""

import copy
import tracemalloc

import crane_cinfo
import crane_config
import crane_engine
import crane_hostlist
import pytest
from crane_hostlist import MAX_HOSTS, HostListError, count, expand
from salt.exceptions import CommandExecutionError

from tests.support.caller import example_pillar
from tests.support.dunder import load
from tests.support.fake_cluster import FakeCluster
from tests.unit.test_module_crane import CINFO_JSON

TYPO = "cn[1-99999999]"


def test_the_bound_is_far_above_any_real_cluster():
    assert MAX_HOSTS >= 1_000_000


def test_a_typo_fails_before_any_name_is_built():
    tracemalloc.start()
    try:
        with pytest.raises(HostListError) as info:
            expand(TYPO)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.expr == TYPO
    assert f"expands to 99999999 hosts, more than {MAX_HOSTS} hosts" in str(info.value)
    assert peak < 1_000_000  # bytes: nothing of the 100 million names was allocated


def test_the_bound_covers_products_and_all_items_together():
    with pytest.raises(HostListError, match="expands to 1000000000000 hosts"):
        expand("r[1-1000000]n[1-1000000]")
    half = MAX_HOSTS // 2 + 1
    with pytest.raises(HostListError, match=f"expands to {2 * half} hosts"):
        expand(f"a[1-{half}],b[1-{half}]")


def test_a_caller_may_lower_the_bound_but_never_raise_it():
    assert len(expand("cn[1-100]", max_hosts=100)) == 100
    with pytest.raises(HostListError, match="more than 99 hosts"):
        expand("cn[1-100]", max_hosts=99)
    with pytest.raises(HostListError, match=f"more than {MAX_HOSTS} hosts"):
        expand(f"cn[1-{MAX_HOSTS + 1}]", max_hosts=10 * MAX_HOSTS)


def test_count_without_building():
    assert count("r[1-4]n[1-4],x,cn[01-03].ib") == 20
    assert count(TYPO) == 99999999
    assert count("cn[5-3]") == 0


def test_an_empty_product_builds_nothing():
    tracemalloc.start()
    try:
        assert expand("cn[1-900000]x[3-1]") == []
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.fixture
def crane_module():
    pillar = example_pillar(control=True)
    calls = []

    def run_all(argv, **kwargs):
        calls.append(argv)
        return {"retcode": 0, "stdout": "", "stderr": ""}

    pillar["crane"]["bin_dir"] = "/bin"
    module = load(
        "_modules",
        __salt__={"cmd.run_all": run_all},
        __pillar__=pillar,
        __grains__={"host": "cranectl", "nodename": "cranectl", "id": "cranectl"},
    )
    return module, calls


def test_expand_hostlist_names_the_expression(crane_module):
    crane, _calls = crane_module
    with pytest.raises(CommandExecutionError, match=r"'cn\[1-99999999\]': expands to 99999999"):
        crane.expand_hostlist(TYPO)


def test_drain_and_health_go_through_the_same_bound(crane_module):
    crane, calls = crane_module
    with pytest.raises(CommandExecutionError, match="expands to 99999999 hosts"):
        crane.drain(TYPO, "fan broken")
    with pytest.raises(CommandExecutionError, match="expands to 100000000 hosts"):
        crane.drain(["cn01", TYPO], "fan broken")  # all items together
    assert calls == []  # ccontrol never ran
    with pytest.raises(CommandExecutionError, match="expands to 99999999 hosts"):
        crane.health(nodes=TYPO)


def test_health_allow_down_goes_through_the_bound(monkeypatch):
    pillar = example_pillar(control=True)
    pillar["crane"]["bin_dir"] = "/bin"
    crane = load(
        "_modules",
        __salt__={"cmd.run_all": lambda argv, **kw: {"retcode": 0, "stdout": "{}", "stderr": ""}},
        __pillar__=pillar,
        __grains__={"host": "cranectl", "nodename": "cranectl", "id": "cranectl"},
    )
    partitions = crane_cinfo.parse_cinfo_json(CINFO_JSON)  # cn03 is down
    monkeypatch.setattr(crane, "cinfo", lambda: partitions)
    with pytest.raises(CommandExecutionError, match="expands to 99999999 hosts"):
        crane.health(allow_down=TYPO)


def test_engine_allow_down_fails_naming_the_expression(tmp_path):
    cluster = FakeCluster(tmp_path / "state")
    report = crane_engine.run(cluster, "upgrade", "1.1.3", {"allow_down": TYPO})
    assert report["retcode"] == 1
    assert report["Error"].startswith(f"allow_down={TYPO!r} is not a host list")
    assert "expands to 99999999 hosts" in report["Error"]
    changing = ("state.apply", "service.stop", "crane.drain")
    assert not [c for c in cluster.log if c[0] in changing]


def test_a_typo_in_nodes_is_a_validation_error_naming_the_group():
    crane = copy.deepcopy(example_pillar(control=True)["crane"])
    crane["config"]["Nodes"][0]["name"] = TYPO
    crane["config"]["Partitions"][0]["nodes"] = TYPO
    result = crane_config.validate(crane["config"])
    assert not result["valid"]
    assert any(
        e.startswith(f"Nodes[0] '{TYPO}' name: invalid host list") and "99999999 hosts" in e
        for e in result["errors"]
    ), result["errors"]
    assert any(e.startswith("Partitions[0] 'CPU' nodes:") for e in result["errors"])
    assert crane_config.compute_hosts(crane["config"]) == ["cn03"]
    assert crane_hostlist.compress(crane_config.compute_hosts(crane["config"])) == "cn03"
