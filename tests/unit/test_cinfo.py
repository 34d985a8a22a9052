"""Parsing ``cinfo`` output: the table (header ``PARTITION AVAIL NODES STATE NODELIST``, one
space between padded columns) and ``--json`` (protojson: proto field names, enums as strings)."""

import json

import crane_cinfo
import pytest
from crane_cinfo import CinfoParseError

# The reference's example: CPU* = cn[15-16] idle, GPU = cn17 never registered, cn18 drained.
REFERENCE_JSON = (
    '{"ok":true,"partitions":[{"name":"CPU*","state":"PARTITION_UP","craned_lists":'
    '[{"resource_state":"CRANE_IDLE","control_state":"CRANE_NONE","power_state":'
    '"CRANE_POWER_IDLE","count":2,"craned_list_regex":"cn[15-16]","reason":""}]},'
    '{"name":"GPU","state":"PARTITION_UP","craned_lists":[{"resource_state":"CRANE_DOWN",'
    '"control_state":"CRANE_NONE","power_state":"CRANE_POWER_IDLE","count":1,'
    '"craned_list_regex":"cn17","reason":""},{"resource_state":"CRANE_IDLE","control_state":'
    '"CRANE_DRAIN","power_state":"CRANE_POWER_IDLE","count":1,"craned_list_regex":"cn18",'
    '"reason":"maintenance"}]}]}'
)

REFERENCE_TABLE = """\
PARTITION AVAIL NODES STATE                   NODELIST
CPU*      up    2     idle[power_idle]        cn[15-16]
GPU       up    1     down[failed]            cn17
GPU       up    1     idle(drain)[power_idle] cn18
"""

# The same as cinfo really prints it: the last column is padded too.
REFERENCE_TABLE_PADDED = (
    "PARTITION AVAIL NODES STATE                   NODELIST \n"
    "CPU*      up    2     idle[power_idle]        cn[15-16]\n"
    "GPU       up    1     down[failed]            cn17     \n"
    "GPU       up    1     idle(drain)[power_idle] cn18     \n"
)

# cinfo -N: the same rows without the header.
REFERENCE_TABLE_NO_HEADER = "".join(REFERENCE_TABLE_PADDED.splitlines(keepends=True)[1:])

# cinfo -R: only drain/down rows, with reasons that contain spaces.
REASON_TABLE = (
    "PARTITION AVAIL NODES STATE                   NODELIST  REASON                \n"
    "GPU       up    1     down[failed]            cn17                            \n"
    "GPU       up    1     idle(drain)[power_idle] cn18      maintenance           \n"
    "CPU*      up    2     idle(drain)[power_idle] cn[15-16] Mem mismatch          \n"
    "CPU*      up    1     mix(drain)[power_idle]  cn19      upgrade to 1.1.3 (salt)\n"
)

# Partitions with no matching node come last as "<name> <avail> 0 n/a".
NO_NODES_TABLE = (
    "PARTITION AVAIL NODES STATE            NODELIST\n"
    "CPU*      up    2     idle[power_idle] cn[01-02]\n"
    "EMPTY     down  0     n/a                      \n"
    "DEBUG     up    0     n/a                      \n"
)


def expected_reference_partitions(reasons=True):
    """The reference example as parsed partitions (a table without -R has no reasons)."""
    return [
        {
            "name": "CPU",
            "default": True,
            "state": "up",
            "groups": [
                {
                    "resource": "idle",
                    "control": "none",
                    "power": "power_idle",
                    "state": "idle[power_idle]",
                    "count": 2,
                    "nodes": ["cn15", "cn16"],
                    "nodelist": "cn[15-16]",
                    "reason": "",
                }
            ],
        },
        {
            "name": "GPU",
            "default": False,
            "state": "up",
            "groups": [
                {
                    "resource": "down",
                    "control": "none",
                    "power": "power_idle",
                    "state": "down[failed]",
                    "count": 1,
                    "nodes": ["cn17"],
                    "nodelist": "cn17",
                    "reason": "",
                },
                {
                    "resource": "idle",
                    "control": "drain",
                    "power": "power_idle",
                    "state": "idle(drain)[power_idle]",
                    "count": 1,
                    "nodes": ["cn18"],
                    "nodelist": "cn18",
                    "reason": "maintenance" if reasons else "",
                },
            ],
        },
    ]


def json_reply(partitions, ok=True):
    """A cinfo --json reply with protojson-like irregular whitespace."""
    return json.dumps({"ok": ok, "partitions": partitions}, indent=None, separators=(",  ", ":  "))


def json_group(resource="CRANE_IDLE", control="CRANE_NONE", power="CRANE_POWER_IDLE", **kw):
    group = {
        "resource_state": resource,
        "control_state": control,
        "power_state": power,
        "count": 1,
        "craned_list_regex": "cn01",
        "reason": "",
    }
    group.update(kw)
    return group


def json_partition(groups, name="CPU*", state="PARTITION_UP"):
    return {"name": name, "state": state, "craned_lists": groups}


# ------------------------------------------------------------------ JSON


def test_json_reference_example():
    assert crane_cinfo.parse_cinfo_json(REFERENCE_JSON) == expected_reference_partitions()


def test_json_unstable_whitespace_and_bytes():
    spaced = json.dumps(json.loads(REFERENCE_JSON), indent=3)
    assert crane_cinfo.parse_cinfo_json(spaced) == expected_reference_partitions()
    assert crane_cinfo.parse_cinfo_json(spaced.encode()) == expected_reference_partitions()


@pytest.mark.parametrize("resource", ["idle", "mix", "alloc", "down"])
@pytest.mark.parametrize("control", ["none", "drain"])
def test_json_every_resource_and_control_state(resource, control):
    group = json_group(f"CRANE_{resource.upper()}", f"CRANE_{control.upper()}", reason="r")
    (partition,) = crane_cinfo.parse_cinfo_json(json_reply([json_partition([group])]))
    (parsed,) = partition["groups"]
    assert (parsed["resource"], parsed["control"], parsed["power"]) == (
        resource,
        control,
        "power_idle",
    )
    assert parsed["reason"] == "r"


ALL_POWER = [
    ("CRANE_POWER_ACTIVE", "power_active"),
    ("CRANE_POWER_IDLE", "power_idle"),
    ("CRANE_POWER_SLEEPING", "power_sleeping"),
    ("CRANE_POWER_POWEREDOFF", "power_poweredoff"),
    ("CRANE_POWER_TO_SLEEPING", "power_to_sleeping"),
    ("CRANE_POWER_WAKING_UP", "power_waking_up"),
    ("CRANE_POWER_POWERING_ON", "power_powering_on"),
    ("CRANE_POWER_POWERING_OFF", "power_powering_off"),
]


@pytest.mark.parametrize(("proto_name", "power"), ALL_POWER)
def test_json_every_power_state(proto_name, power):
    group = json_group(power=proto_name)
    (partition,) = crane_cinfo.parse_cinfo_json(json_reply([json_partition([group])]))
    assert partition["groups"][0]["power"] == power
    assert partition["groups"][0]["state"] == f"idle[{power}]"


@pytest.mark.parametrize(
    ("power", "state"),
    [
        ("CRANE_POWER_IDLE", "down[failed]"),
        ("CRANE_POWER_ACTIVE", "down[failed]"),
        ("CRANE_POWER_SLEEPING", "down[power_sleeping]"),
        ("CRANE_POWER_POWEREDOFF", "down[power_poweredoff]"),
    ],
)
def test_json_state_string_matches_cinfo_table(power, state):
    group = json_group("CRANE_DOWN", "CRANE_DRAIN", power)
    (partition,) = crane_cinfo.parse_cinfo_json(json_reply([json_partition([group])]))
    assert partition["groups"][0]["state"] == state.replace("down", "down(drain)")


@pytest.mark.parametrize(
    ("proto_name", "control"),
    [
        ("CRANE_POWEROFF", "poweroff"),
        ("CRANE_SLEEP", "sleep"),
        ("CRANE_WAKE", "wake"),
        ("CRANE_POWERON", "poweron"),
        ("CRANE_UNREGISTER_POWER", "unregister_power"),
    ],
)
def test_json_request_only_control_states_are_read(proto_name, control):
    group = json_group(control=proto_name)
    (partition,) = crane_cinfo.parse_cinfo_json(json_reply([json_partition([group])]))
    assert partition["groups"][0]["control"] == control


def test_json_partition_down_and_numeric_enums():
    group = json_group(3, 1, 0, count=2, craned_list_regex="gpu[1-2]")
    (partition,) = crane_cinfo.parse_cinfo_json(
        json_reply([json_partition([group], name="GPU", state=1)])
    )
    assert partition["state"] == "down"
    assert partition["default"] is False
    parsed = partition["groups"][0]
    assert (parsed["resource"], parsed["control"], parsed["power"]) == (
        "down",
        "drain",
        "power_active",
    )
    assert parsed["nodes"] == ["gpu1", "gpu2"]


def test_json_omitted_zero_values_follow_proto_defaults():
    reply = (
        '{"ok": true, "partitions": [{"name": "CPU", "craned_lists":'
        ' [{"count": 1, "craned_list_regex": "cn01"}]}, {"name": "E"}]}'
    )
    parts = crane_cinfo.parse_cinfo_json(reply)
    group = parts[0]["groups"][0]
    assert parts[0]["state"] == "up"
    assert (group["resource"], group["control"], group["power"], group["reason"]) == (
        "idle",
        "none",
        "power_active",
        "",
    )
    assert parts[1]["groups"] == []


def test_json_partition_without_nodes_and_empty_groups():
    empty = json_group(count=0, craned_list_regex="")
    parts = crane_cinfo.parse_cinfo_json(
        json_reply([json_partition([]), json_partition([empty], name="DEBUG")])
    )
    assert [(p["name"], p["groups"]) for p in parts] == [("CPU", []), ("DEBUG", [])]


def test_json_no_partitions():
    assert crane_cinfo.parse_cinfo_json('{"ok":true,"partitions":[]}') == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("Failed to query cluster information", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"ok": false, "partitions": []}', "not ok"),
        ('{"partitions": []}', "not ok"),
        ('{"ok": "true", "partitions": []}', "not ok"),
        ('{"ok": true, "partitions": {}}', "'partitions' must be a list"),
        ('{"ok": true, "partitions": ["CPU"]}', r"partitions\[0\] must be an object"),
        ('{"ok": true, "partitions": [{"name": 5}]}', "'name' must be a string"),
        ('{"ok": true, "partitions": [{"name": ""}]}', "empty partition name"),
        ('{"ok": true, "partitions": [{"name": "*"}]}', "empty partition name"),
        ('{"ok": true, "partitions": [{"name": "C", "state": "UP"}]}', "unknown state 'UP'"),
        ('{"ok": true, "partitions": [{"name": "C", "craned_lists": 3}]}', "must be a list"),
    ],
)
def test_json_malformed(text, message):
    with pytest.raises(CinfoParseError, match=message):
        crane_cinfo.parse_cinfo_json(text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"count": "1"}, "'count' must be a non-negative integer"),
        ({"count": -1}, "'count' must be a non-negative integer"),
        ({"count": True}, "'count' must be a non-negative integer"),
        ({"resource_state": "CRANE_BUSY"}, "unknown resource_state 'CRANE_BUSY'"),
        ({"resource_state": "IDLE"}, "unknown resource_state 'IDLE'"),
        ({"control_state": 9}, "unknown control_state 9"),
        ({"power_state": "CRANE_POWER_OFF"}, "unknown power_state"),
        ({"craned_list_regex": ["cn01"]}, "'craned_list_regex' must be a string"),
        ({"reason": None}, "'reason' must be a string"),
        ({"count": 3}, "reads back as 1 node"),
        ({"craned_list_regex": "cn[01-02"}, "invalid host list"),
    ],
)
def test_json_malformed_group(change, message):
    text = json_reply([json_partition([json_group(**change)])])
    with pytest.raises(CinfoParseError, match=message) as info:
        crane_cinfo.parse_cinfo_json(text)
    assert "craned_lists[0]" in str(info.value) or "NODELIST" in str(info.value)


def test_parse_error_is_a_value_error():
    assert issubclass(CinfoParseError, ValueError)


# ----------------------------------------------------------------- table


@pytest.mark.parametrize("text", [REFERENCE_TABLE, REFERENCE_TABLE_PADDED])
def test_table_reference_example(text):
    assert crane_cinfo.parse_cinfo_table(text) == expected_reference_partitions(reasons=False)


def test_table_without_header():
    parsed = crane_cinfo.parse_cinfo_table(REFERENCE_TABLE_NO_HEADER, header=False)
    assert parsed == expected_reference_partitions(reasons=False)


def test_table_without_header_refuses_to_take_first_row_as_header():
    with pytest.raises(CinfoParseError, match="unexpected cinfo header"):
        crane_cinfo.parse_cinfo_table(REFERENCE_TABLE_NO_HEADER)


def test_table_with_header_when_told_there_is_none():
    with pytest.raises(CinfoParseError, match="invalid AVAIL 'AVAIL'"):
        crane_cinfo.parse_cinfo_table(REFERENCE_TABLE, header=False)


def test_table_and_json_agree_but_for_reasons():
    from_table = crane_cinfo.parse_cinfo_table(REFERENCE_TABLE)
    from_json = crane_cinfo.parse_cinfo_json(REFERENCE_JSON)
    assert from_table != from_json
    from_json[1]["groups"][1]["reason"] = ""
    assert from_table == from_json


def test_table_reasons_with_spaces():
    parsed = crane_cinfo.parse_cinfo_table(REASON_TABLE)
    reasons = {
        group["nodelist"]: (group["state"], group["reason"])
        for partition in parsed
        for group in partition["groups"]
    }
    assert reasons == {
        "cn17": ("down[failed]", ""),
        "cn18": ("idle(drain)[power_idle]", "maintenance"),
        "cn[15-16]": ("idle(drain)[power_idle]", "Mem mismatch"),
        "cn19": ("mix(drain)[power_idle]", "upgrade to 1.1.3 (salt)"),
    }
    assert [p["name"] for p in parsed] == ["GPU", "CPU"]


def test_table_reasons_without_header():
    body = "".join(REASON_TABLE.splitlines(keepends=True)[1:])
    assert crane_cinfo.parse_cinfo_table(body, header=False) == crane_cinfo.parse_cinfo_table(
        REASON_TABLE
    )


def test_table_extra_text_without_reason_column():
    text = REFERENCE_TABLE.replace("cn18\n", "cn18 maintenance\n")
    with pytest.raises(CinfoParseError, match="more columns than its header"):
        crane_cinfo.parse_cinfo_table(text)


def test_table_partitions_without_nodes():
    parsed = crane_cinfo.parse_cinfo_table(NO_NODES_TABLE)
    assert [(p["name"], p["default"], p["state"], len(p["groups"])) for p in parsed] == [
        ("CPU", True, "up", 1),
        ("EMPTY", False, "down", 0),
        ("DEBUG", False, "up", 0),
    ]


def test_table_down_failed_reads_back_power_and_keeps_raw_state():
    (partition,) = crane_cinfo.parse_cinfo_table(
        "GPU  up 3 down(drain)[failed] gpu[01-03]\n", header=False
    )
    group = partition["groups"][0]
    assert (group["resource"], group["control"], group["power"]) == (
        "down",
        "drain",
        "power_idle",
    )
    assert group["state"] == "down(drain)[failed]"
    assert group["nodes"] == ["gpu01", "gpu02", "gpu03"]


@pytest.mark.parametrize(("_proto", "power"), ALL_POWER)
def test_table_every_power_state(_proto, power):
    (partition,) = crane_cinfo.parse_cinfo_table(f"P up 1 alloc[{power}] cn01\n", header=False)
    assert partition["groups"][0]["power"] == power


def test_table_every_resource_state_in_one_partition():
    text = (
        "PARTITION AVAIL NODES STATE                NODELIST\n"
        "CPU*      up    1     idle[power_idle]     cn01    \n"
        "CPU*      up    1     mix[power_active]    cn02    \n"
        "CPU*      up    1     alloc[power_active]  cn03    \n"
        "CPU*      up    1     down[failed]         cn04    \n"
        "CPU*      up    2     alloc(drain)[power_idle] cn[05-06]\n"
    )
    (partition,) = crane_cinfo.parse_cinfo_table(text)
    assert [g["resource"] for g in partition["groups"]] == ["idle", "mix", "alloc", "down", "alloc"]
    assert partition["groups"][-1]["control"] == "drain"


def test_table_multiple_partitions_sharing_nodes():
    text = (
        "PARTITION AVAIL NODES STATE            NODELIST\n"
        "CPU*      up    4     idle[power_idle] cn[01-04]\n"
        "ALL       up    4     idle[power_idle] cn[01-04]\n"
    )
    parsed = crane_cinfo.parse_cinfo_table(text)
    assert [p["name"] for p in parsed] == ["CPU", "ALL"]
    assert parsed[0]["groups"] == parsed[1]["groups"]


def test_table_empty_output_means_no_matching_partition():
    assert crane_cinfo.parse_cinfo_table("") == []
    assert crane_cinfo.parse_cinfo_table("\n", header=False) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CPU up 2\n", "too few columns"),
        ("CPU maybe 2 idle[power_idle] cn[01-02]\n", "invalid AVAIL 'maybe'"),
        ("CPU up two idle[power_idle] cn[01-02]\n", "invalid NODES 'two'"),
        ("CPU up 2 idle[power_idle]\n", "no NODELIST"),
        ("CPU up 2 idle cn[01-02]\n", "invalid node state 'idle'"),
        ("CPU up 2 busy[power_idle] cn[01-02]\n", "unknown resource state 'busy'"),
        ("CPU up 2 idle(held)[power_idle] cn[01-02]\n", "unknown control state 'held'"),
        ("CPU up 2 idle[failed] cn[01-02]\n", "unknown power state 'failed'"),
        ("CPU up 2 idle[power_idle] cn[01-03]\n", "NODELIST of 2 node.* more than 2 hosts"),
        ("CPU up 2 idle[power_idle] cn01\n", "reads back as 1 node"),
        ("CPU up 2 idle[power_idle] cn[1-2]-ib\n", "do not survive cinfo's host-list compression"),
        ("CPU up 2 idle[power_idle] cn[01-02\n", "invalid host list"),
        ("CPU up 1 n/a\n", "partition without nodes"),
        ("CPU up 1 idle[power_idle] cn1\nCPU down 1 mix[power_idle] cn2\n", "both up and down"),
    ],
)
def test_table_malformed(text, message):
    with pytest.raises(CinfoParseError, match=message):
        crane_cinfo.parse_cinfo_table(text, header=False)


@pytest.mark.parametrize(
    "text",
    [
        "PARTITION AVAIL NODES STATE TIMELIMIT NODELIST\n",
        "PARTITION AVAIL NODES STATE\n",
        "Failed to query cluster information: Connection to CraneCtld is broken.\n",
    ],
)
def test_table_bad_header(text):
    with pytest.raises(CinfoParseError, match="unexpected cinfo header"):
        crane_cinfo.parse_cinfo_table(text)


def test_parse_cinfo_detects_the_form():
    assert crane_cinfo.parse_cinfo(REFERENCE_JSON) == expected_reference_partitions()
    assert crane_cinfo.parse_cinfo("  " + REFERENCE_JSON) == expected_reference_partitions()
    assert crane_cinfo.parse_cinfo(REFERENCE_TABLE) == expected_reference_partitions(False)


# ----------------------------------------------------------------- nodes


def test_nodes_from_reference_example():
    nodes = crane_cinfo.nodes_from_partitions(expected_reference_partitions())
    assert nodes == {
        "cn15": {
            "resource": "idle",
            "control": "none",
            "power": "power_idle",
            "state": "idle[power_idle]",
            "reason": "",
            "partitions": ["CPU"],
        },
        "cn16": {
            "resource": "idle",
            "control": "none",
            "power": "power_idle",
            "state": "idle[power_idle]",
            "reason": "",
            "partitions": ["CPU"],
        },
        "cn17": {
            "resource": "down",
            "control": "none",
            "power": "power_idle",
            "state": "down[failed]",
            "reason": "",
            "partitions": ["GPU"],
        },
        "cn18": {
            "resource": "idle",
            "control": "drain",
            "power": "power_idle",
            "state": "idle(drain)[power_idle]",
            "reason": "maintenance",
            "partitions": ["GPU"],
        },
    }


def test_nodes_shared_by_partitions_appear_once():
    text = (
        "PARTITION AVAIL NODES STATE                   NODELIST  REASON\n"
        "CPU*      up    2     idle[power_idle]        cn[01-02]       \n"
        "CPU*      up    1     idle(drain)[power_idle] cn03      disk  \n"
        "GPU       up    1     idle[power_idle]        cn02            \n"
        "GPU       up    1     idle(drain)[power_idle] cn03      disk  \n"
    )
    nodes = crane_cinfo.nodes_from_partitions(crane_cinfo.parse_cinfo_table(text))
    assert sorted(nodes) == ["cn01", "cn02", "cn03"]
    assert nodes["cn01"]["partitions"] == ["CPU"]
    assert nodes["cn02"]["partitions"] == ["CPU", "GPU"]
    assert nodes["cn03"]["partitions"] == ["CPU", "GPU"]
    assert nodes["cn03"]["reason"] == "disk"


def test_nodes_from_no_partitions():
    assert crane_cinfo.nodes_from_partitions([]) == {}
