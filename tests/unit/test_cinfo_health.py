"""Health verdicts and state filters built on parsed cinfo output."""

import crane_cinfo
import pytest

HEADER = "PARTITION AVAIL NODES STATE                   NODELIST  REASON\n"


def cluster(*rows):
    """Parsed partitions from cinfo -R style rows."""
    return crane_cinfo.parse_cinfo_table(HEADER + "".join(row + "\n" for row in rows))


# The brief's example: six nodes, cn03 down, cn01 drained for maintenance.
EXAMPLE = (
    "CPU* up 4 idle[power_idle] cn[02,04-06]",
    "CPU* up 1 idle(drain)[power_idle] cn01 maintenance",
    "CPU* up 1 down[failed] cn03",
)


def test_all_up_is_healthy():
    report = crane_cinfo.health(cluster("CPU* up 6 idle[power_idle] cn[01-06]"), "cn[01-06]")
    assert report == {
        "healthy": True,
        "up": ["cn01", "cn02", "cn03", "cn04", "cn05", "cn06"],
        "missing": [],
        "down": [],
        "drained": {},
        "not_ready": {},
        "unexpected": [],
        "summary": "6/6 nodes up",
    }


def test_example_summary_and_categories():
    report = crane_cinfo.health(cluster(*EXAMPLE), "cn[01-06]")
    assert report["healthy"] is False
    assert report["down"] == ["cn03"]
    assert report["drained"] == {"cn01": "maintenance"}
    assert report["summary"] == "5/6 nodes up; down: cn03; drained: cn01 (maintenance)"


def test_missing_node_is_unhealthy():
    report = crane_cinfo.health(cluster("CPU* up 2 idle[power_idle] cn[01-02]"), "cn[01-03]")
    assert report["healthy"] is False
    assert report["missing"] == ["cn03"]
    assert report["summary"] == "2/3 nodes up; missing: cn03"


def test_unexpected_node_is_reported_but_not_unhealthy():
    report = crane_cinfo.health(cluster("CPU* up 3 mix[power_idle] cn[01-03]"), ["cn01", "cn02"])
    assert report["healthy"] is True
    assert report["unexpected"] == ["cn03"]
    assert report["summary"] == "2/2 nodes up; unexpected: cn03"


def test_down_node_is_unhealthy():
    report = crane_cinfo.health(
        cluster("CPU* up 1 alloc[power_active] cn01", "CPU* up 1 down[failed] cn02"), "cn[01-02]"
    )
    assert report["healthy"] is False
    assert report["down"] == ["cn02"]
    assert report["up"] == ["cn01"]


def test_drained_nodes_grouped_by_reason_in_summary():
    report = crane_cinfo.health(
        cluster(
            "CPU* up 2 idle(drain)[power_idle] cn[01-02] Mem mismatch",
            "CPU* up 1 alloc(drain)[power_idle] cn03 upgrade 1.1.3",
            "CPU* up 1 idle(drain)[power_idle] cn04",
        ),
        "cn[01-04]",
    )
    assert report["drained"] == {
        "cn01": "Mem mismatch",
        "cn02": "Mem mismatch",
        "cn03": "upgrade 1.1.3",
        "cn04": "",
    }
    assert report["summary"] == (
        "4/4 nodes up; drained: cn[01-02] (Mem mismatch), cn03 (upgrade 1.1.3), cn04"
    )


def test_down_and_drained_node_is_in_both():
    report = crane_cinfo.health(cluster("CPU* up 1 down(drain)[failed] cn01 upgrade"), "cn01")
    assert report["down"] == ["cn01"]
    assert report["drained"] == {"cn01": "upgrade"}
    assert report["not_ready"] == {}
    assert report["summary"] == "0/1 nodes up; down: cn01; drained: cn01 (upgrade)"


@pytest.mark.parametrize(
    "power",
    [
        "power_sleeping",
        "power_poweredoff",
        "power_to_sleeping",
        "power_waking_up",
        "power_powering_on",
        "power_powering_off",
    ],
)
def test_node_not_ready_by_power_state(power):
    report = crane_cinfo.health(cluster(f"CPU* up 1 idle[{power}] cn01"), "cn01")
    assert report["not_ready"] == {"cn01": f"idle[{power}]"}
    assert report["healthy"] is False
    assert report["summary"] == f"1/1 nodes up; not ready: cn01 (idle[{power}])"


def test_down_node_in_power_state_is_down_not_not_ready():
    report = crane_cinfo.health(cluster("CPU* up 1 down[power_poweredoff] cn01"), "cn01")
    assert report["down"] == ["cn01"]
    assert report["not_ready"] == {}


def test_allowances():
    parts = cluster(*EXAMPLE)
    assert crane_cinfo.health(parts, "cn[01-06]", allow_down="cn03")["healthy"] is False
    assert crane_cinfo.health(parts, "cn[01-06]", allow_drained=["cn01"])["healthy"] is False
    report = crane_cinfo.health(parts, "cn[01-06]", allow_down=["cn03"], allow_drained="cn01")
    assert report["healthy"] is True
    # The facts are still reported.
    assert report["down"] == ["cn03"]
    assert report["drained"] == {"cn01": "maintenance"}


def test_allowance_for_other_nodes_does_not_help():
    report = crane_cinfo.health(
        cluster(*EXAMPLE), "cn[01-06]", allow_down="cn[04-06]", allow_drained=True
    )
    assert report["healthy"] is False


def test_allow_not_ready():
    parts = cluster("CPU* up 1 idle[power_sleeping] cn01")
    assert crane_cinfo.health(parts, "cn01", allow_not_ready=True)["healthy"] is True


def test_allowances_never_excuse_missing_nodes():
    report = crane_cinfo.health(
        cluster("CPU* up 1 idle[power_idle] cn01"),
        "cn[01-02]",
        allow_down=True,
        allow_drained=True,
        allow_not_ready=True,
    )
    assert report["healthy"] is False
    assert report["missing"] == ["cn02"]


def test_expected_defaults_to_listed_nodes():
    report = crane_cinfo.health(cluster(*EXAMPLE))
    assert report["missing"] == []
    assert report["unexpected"] == []
    assert report["summary"] == "5/6 nodes up; down: cn03; drained: cn01 (maintenance)"


def test_expected_nodes_as_list_of_host_lists():
    report = crane_cinfo.health(cluster(*EXAMPLE), ["cn[01-03]", "cn04", "cn[05-07]"])
    assert report["missing"] == ["cn07"]


def test_shared_node_counted_once():
    parts = crane_cinfo.parse_cinfo_table(
        "CPU* up 2 idle[power_idle] cn[01-02]\nGPU up 1 idle[power_idle] cn02\n", header=False
    )
    assert crane_cinfo.health(parts, "cn[01-02]")["summary"] == "2/2 nodes up"


def test_partitions_without_nodes_and_empty_cluster():
    parts = crane_cinfo.parse_cinfo_table("DEBUG up 0 n/a\n", header=False)
    report = crane_cinfo.health(parts, "cn01")
    assert report["missing"] == ["cn01"]
    assert report["summary"] == "0/1 nodes up; missing: cn01"
    assert crane_cinfo.health([], None)["healthy"] is True


def test_invalid_expected_nodes():
    with pytest.raises(ValueError, match="invalid host list"):
        crane_cinfo.health([], "cn[01-02")


# ----------------------------------------------------------- state filters

IDLE = {"resource": "idle", "control": "none", "power": "power_idle"}
DRAINED_MIX = {"resource": "mix", "control": "drain", "power": "power_idle"}
DOWN = {"resource": "down", "control": "none", "power": "power_active"}
SLEEPING = {"resource": "idle", "control": "none", "power": "power_sleeping"}


def test_state_tokens():
    assert crane_cinfo.state_tokens(IDLE) == {"idle", "none", "power-idle"}
    assert crane_cinfo.state_tokens(DRAINED_MIX) == {"mix", "drain", "power-idle"}
    assert crane_cinfo.state_tokens(DOWN) == {"down", "none", "active"}
    poweroff = {"resource": "down", "control": "none", "power": "power_poweredoff"}
    assert crane_cinfo.state_tokens(poweroff) == {"down", "none", "poweredoff"}


def test_normalize_state_filter():
    assert crane_cinfo.normalize_state_filter(["IDLE", " Mix", "alloc"]) == ["alloc", "idle", "mix"]
    assert crane_cinfo.normalize_state_filter("idle,off,,drain") == ["drain", "idle", "poweredoff"]
    with pytest.raises(ValueError, match="unknown node state\\(s\\) busy, failed"):
        crane_cinfo.normalize_state_filter(["idle", "busy", "failed"])


def test_state_matches_like_cinfo_t():
    responding = ["idle", "mix", "alloc"]
    assert crane_cinfo.state_matches(IDLE, responding)
    # cinfo -t idle,mix,alloc keeps drained nodes: control is not filtered.
    assert crane_cinfo.state_matches(DRAINED_MIX, responding)
    assert not crane_cinfo.state_matches(DOWN, responding)
    assert not crane_cinfo.state_matches(DRAINED_MIX, [*responding, "none"])
    assert crane_cinfo.state_matches(DRAINED_MIX, ["drain"])
    assert not crane_cinfo.state_matches(SLEEPING, ["idle", "power-idle", "active"])
    assert crane_cinfo.state_matches(SLEEPING, "sleeping")
    assert crane_cinfo.state_matches(SLEEPING, [])


def test_filter_nodes():
    nodes = {"cn01": IDLE, "cn02": DRAINED_MIX, "cn03": DOWN}
    assert sorted(crane_cinfo.filter_nodes(nodes, ["idle", "mix", "alloc"])) == ["cn01", "cn02"]
    assert sorted(crane_cinfo.filter_nodes(nodes, "down")) == ["cn03"]


@pytest.mark.parametrize(
    ("parts", "cinfo", "ccontrol"),
    [
        (("idle", "none", "power_idle"), "idle[power_idle]", "idle[power_idle]"),
        (("alloc", "drain", "power_idle"), "alloc(drain)[power_idle]", "alloc(drain)[power_idle]"),
        (("down", "none", "power_idle"), "down[failed]", "down[power_idle]"),
        (("down", "drain", "power_active"), "down(drain)[failed]", "down(drain)[power_active]"),
        (("down", "none", "power_sleeping"), "down[power_sleeping]", "down[power_sleeping]"),
    ],
)
def test_state_string_and_split_state(parts, cinfo, ccontrol):
    assert crane_cinfo.state_string(*parts) == cinfo
    assert crane_cinfo.state_string(*parts, failed=False) == ccontrol
    split = crane_cinfo.split_state(ccontrol)
    assert (split["resource"], split["control"], split["power"]) == parts
    assert split["state"] == ccontrol


def test_lists_in_natural_order():
    parts = crane_cinfo.parse_cinfo_table(
        "CPU* up 3 down[failed] n[9-11]\nCPU* up 1 down[failed] m2\n", header=False
    )
    report = crane_cinfo.health(parts, "n[8-11],m2,m10")
    assert report["down"] == ["m2", "n9", "n10", "n11"]
    assert report["missing"] == ["m10", "n8"]


def test_expected_nodes_are_bounded():
    with pytest.raises(ValueError, match="more than"):
        crane_cinfo.health([], "cn[1-99999999999]")
