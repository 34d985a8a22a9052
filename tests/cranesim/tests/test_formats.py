"""Output formats against the reference's own examples, and against the formula's parser."""

import importlib
import json
import sys

import pytest

from tests.cranesim.tests.harness import SIM_ROOT

sys.path.insert(0, str(SIM_ROOT))  # the simulator package lives in its own source folder
cinfo = importlib.import_module("cranesim.cinfo")
ccontrol = importlib.import_module("cranesim.ccontrol")

# cinfo --json as cranectld answers it (protojson, proto names, enum strings, zero values
# emitted) for CPU* = cn[15-16] idle, GPU = cn17 never registered plus cn18 drained
REFERENCE_REPLY = json.loads(
    '{"ok":true,"partitions":[{"name":"CPU*","state":"PARTITION_UP","craned_lists":'
    '[{"resource_state":"CRANE_IDLE","control_state":"CRANE_NONE","power_state":"CRANE_POWER_IDLE",'
    '"count":2,"craned_list_regex":"cn[15-16]","reason":""}]},{"name":"GPU","state":"PARTITION_UP",'
    '"craned_lists":[{"resource_state":"CRANE_DOWN","control_state":"CRANE_NONE",'
    '"power_state":"CRANE_POWER_IDLE","count":1,"craned_list_regex":"cn17","reason":""},'
    '{"resource_state":"CRANE_IDLE","control_state":"CRANE_DRAIN","power_state":"CRANE_POWER_IDLE",'
    '"count":1,"craned_list_regex":"cn18","reason":"maintenance"}]}]}'
)
REFERENCE_TABLE = [
    "PARTITION AVAIL NODES STATE                   NODELIST",
    "CPU*      up    2     idle[power_idle]        cn[15-16]",
    "GPU       up    1     down[failed]            cn17",
    "GPU       up    1     idle(drain)[power_idle] cn18",
]


def test_table_matches_the_reference_example():
    header = ["PARTITION", "AVAIL", "NODES", "STATE", "NODELIST"]
    text = cinfo.render_table(header, cinfo.table_rows(REFERENCE_REPLY, False))
    assert [line.rstrip() for line in text.splitlines()] == REFERENCE_TABLE


@pytest.mark.parametrize(
    ("resource", "control", "power", "text"),
    [
        ("CRANE_MIX", "CRANE_NONE", "CRANE_POWER_IDLE", "mix[power_idle]"),
        ("CRANE_ALLOC", "CRANE_DRAIN", "CRANE_POWER_IDLE", "alloc(drain)[power_idle]"),
        ("CRANE_DOWN", "CRANE_DRAIN", "CRANE_POWER_ACTIVE", "down(drain)[failed]"),
        ("CRANE_DOWN", "CRANE_NONE", "CRANE_POWER_SLEEPING", "down[power_sleeping]"),
    ],
)
def test_state_strings(resource, control, power, text):
    group = {"resource_state": resource, "control_state": control, "power_state": power}
    assert cinfo.state_string(group) == text


def test_empty_partitions_come_last_as_na_and_reason_filter():
    reply = {"partitions": [{"name": "EMPTY", "state": "PARTITION_DOWN", "craned_lists": []},
                            *REFERENCE_REPLY["partitions"]]}  # fmt: skip
    rows = cinfo.table_rows(reply, False)
    assert rows[-1] == ["EMPTY", "down", "0", "n/a", ""]
    reasons = cinfo.table_rows(reply, True)
    assert [r[3] for r in reasons] == ["down[failed]", "idle(drain)[power_idle]"]


def test_show_node_state_has_no_failed_substitution():
    node = {
        "resource_state": "CRANE_DOWN",
        "control_state": "CRANE_DRAIN",
        "power_state": "CRANE_POWER_IDLE",
    }
    assert ccontrol.node_state(node) == "down(drain)[power_idle]"


def test_command_string_requotes_values_with_spaces():
    assert ccontrol.command_string(["update", "nodename=cn01", "reason=disk failed", "x="]) == (
        'update nodename=cn01 reason="disk failed" x=""'
    )
    assert ccontrol.parse_command('update nodename=cn[01-02] reason="disk failed"') == (
        "update",
        "",
        "",
        {"nodename": "cn[01-02]", "reason": "disk failed"},
    )


def test_the_formula_parser_reads_simulator_output(cluster):
    parser = pytest.importorskip("crane_cinfo")
    json_parts = parser.parse_cinfo_json(cluster.run("cinfo", "--json").stdout)
    table_parts = parser.parse_cinfo_table(cluster.run("cinfo").stdout)
    for parts in (json_parts, table_parts):
        [cpu] = parts
        assert cpu["name"] == "CPU" and cpu["default"] is True
        assert [g["nodes"] for g in cpu["groups"]] == [["cn01", "cn02"], ["cn03"]]
