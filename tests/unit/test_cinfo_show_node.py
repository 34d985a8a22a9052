"""Parsing ``ccontrol show node``: one block per node, ``NodeName=<host> State=<res>[(<ctrl>)]
[<power>] CPU=…`` followed by tab-indented continuation lines, no blank line between blocks."""

import crane_cinfo
import pytest
from crane_cinfo import CinfoParseError

CN15 = (
    "NodeName=cn15 State=idle[power_idle] CPU=2.00 AllocCPU=0.00 FreeCPU=2.00\n"
    "\tRealMemory=2048M AllocMem=0 FreeMem=2048M\n"
    "\tGres=None AllocGres=None FreeGres=None\n"
    "\tSockets=1\n"
    "\tPartition=CPU,ALL RunningJob=0 Version=1.1.2+dev\n"
    "\tOs=Linux 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\n"
    "\tBootTime=2026-07-01 08:00:00 CranedStartTime=2026-07-01 08:01:02\n"
    "\tLastBusyTime=2026-07-01 08:01:02\n"
)

CN18_DRAINED_GPU = (
    "NodeName=cn18 State=mix(drain)[power_active] CPU=16.00 AllocCPU=4.00 FreeCPU=12.00\n"
    "\tRealMemory=65536M AllocMem=8192M FreeMem=57344M\n"
    "\tGres=gpu:a100:4, gpu:h100:2 AllocGres=gpu:a100:1 FreeGres=gpu:a100:3, gpu:h100:2\n"
    "\tSockets=2\n"
    "\tPartition=GPU RunningJob=1 Version=1.1.3\n"
    "\tOs=Linux 5.14.0-427.13.1.el9_4.x86_64 #1 SMP PREEMPT_DYNAMIC Wed May 1 19:11:28 UTC 2024\n"
    "\tBootTime=2026-07-01 08:00:00 CranedStartTime=2026-07-02 09:30:00\n"
    "\tLastBusyTime=2026-07-02 10:00:00\n"
)

# A node that never registered since cranectld started (note "Os=unknown  ").
CN17_UNREGISTERED = (
    "NodeName=cn17 State=down[power_idle] CPU=8.00 AllocCPU=0.00 FreeCPU=0.00\n"
    "\tRealMemory=16384M AllocMem=0 FreeMem=0\n"
    "\tGres=gpu:a100:4 AllocGres=None FreeGres=None\n"
    "\tSockets=1\n"
    "\tPartition=GPU RunningJob=0 Version=unknown\n"
    "\tOs=unknown  \n"
    "\tBootTime=unknown CranedStartTime=unknown\n"
    "\tLastBusyTime=unknown\n"
)


def test_one_block():
    (name, node), *rest = crane_cinfo.parse_show_node(CN15).items()
    assert rest == []
    assert name == "cn15"
    expected = {
        "name": "cn15",
        "resource": "idle",
        "control": "none",
        "power": "power_idle",
        "state": "idle[power_idle]",
        "cpu": 2.0,
        "alloc_cpu": 0.0,
        "free_cpu": 2.0,
        "real_memory_mb": 2048,
        "alloc_mem_mb": 0,
        "free_mem_mb": 2048,
        "gres": {},
        "alloc_gres": {},
        "free_gres": {},
        "sockets": 1,
        "running_jobs": 0,
        "partitions": ["CPU", "ALL"],
        "version": "1.1.2+dev",
        "os": "Linux 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
        "boot_time": "2026-07-01 08:00:00",
        "craned_start_time": "2026-07-01 08:01:02",
        "last_busy_time": "2026-07-01 08:01:02",
        "registered": True,
    }
    assert {key: node[key] for key in expected} == expected
    assert node["fields"]["Version"] == "1.1.2+dev"
    assert node["fields"]["BootTime"] == "2026-07-01 08:00:00"


def test_several_blocks_without_blank_lines():
    nodes = crane_cinfo.parse_show_node(CN15 + CN18_DRAINED_GPU + CN17_UNREGISTERED)
    assert list(nodes) == ["cn15", "cn18", "cn17"]


def test_drained_node_with_gres_list():
    node = crane_cinfo.parse_show_node(CN18_DRAINED_GPU)["cn18"]
    assert (node["resource"], node["control"], node["power"]) == ("mix", "drain", "power_active")
    assert node["gres"] == {"gpu:a100": 4, "gpu:h100": 2}
    assert node["alloc_gres"] == {"gpu:a100": 1}
    assert node["free_gres"] == {"gpu:a100": 3, "gpu:h100": 2}
    assert (node["cpu"], node["alloc_cpu"], node["free_cpu"]) == (16.0, 4.0, 12.0)
    assert (node["alloc_mem_mb"], node["running_jobs"], node["sockets"]) == (8192, 1, 2)
    assert node["version"] == "1.1.3"


def test_unregistered_node():
    node = crane_cinfo.parse_show_node(CN17_UNREGISTERED)["cn17"]
    assert node["state"] == "down[power_idle]"
    assert node["resource"] == "down"
    assert node["power"] == "power_idle"
    assert node["registered"] is False
    for key in ("version", "os", "boot_time", "craned_start_time", "last_busy_time"):
        assert node[key] is None, key
    assert node["gres"] == {"gpu:a100": 4}
    assert node["free_gres"] == {}


def test_docs_form_without_sockets_line():
    text = CN15.replace("\tSockets=1\n", "")
    node = crane_cinfo.parse_show_node(text)["cn15"]
    assert node["sockets"] is None
    assert node["version"] == "1.1.2+dev"


def test_node_in_no_partition_and_name_only_gres():
    text = CN15.replace("Partition=CPU,ALL", "Partition=").replace(
        "Gres=None", "Gres=gpu:2, fpga:xilinx:1"
    )
    node = crane_cinfo.parse_show_node(text)["cn15"]
    assert node["partitions"] == []
    assert node["gres"] == {"gpu": 2, "fpga:xilinx": 1}


def test_no_node_available():
    assert crane_cinfo.parse_show_node("No node is available.\n") == {}
    assert crane_cinfo.parse_show_node("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("show nodes failed: Node cn99 not found.\n", "unexpected line"),
        ("\tRealMemory=2048M AllocMem=0 FreeMem=2048M\n", "unexpected line"),
        (CN15.replace("State=idle[power_idle] ", ""), "without State"),
        (CN15.replace("State=idle[power_idle]", "State=idle"), "invalid node state"),
        (CN15.replace("CPU=2.00", "CPU=two"), "invalid CPU='two'"),
        (CN15.replace("RealMemory=2048M", "RealMemory=2G"), "invalid RealMemory='2G'"),
        (CN15.replace("Gres=None", "Gres=gpu:a100:four"), "bad gres entry 'gpu:a100:four'"),
        (CN15.replace("Gres=None", "Gres=gpu"), "bad gres entry 'gpu'"),
        (CN15.replace("RunningJob=0", "RunningJob=x"), "invalid RunningJob"),
        (CN15.replace("\tSockets=1", "\tsockets 1"), "expected Key=value"),
        (CN15 + CN15, "shown twice"),
    ],
)
def test_malformed(text, message):
    with pytest.raises(CinfoParseError, match=message):
        crane_cinfo.parse_show_node(text)


def test_parse_gres():
    assert crane_cinfo.parse_gres("None") == {}
    assert crane_cinfo.parse_gres("gpu:a100:4, gpu:h100:2") == {"gpu:a100": 4, "gpu:h100": 2}
    with pytest.raises(ValueError, match="bad gres entry"):
        crane_cinfo.parse_gres("gpu:a100:4,")
