"""Nodes that join by themselves, on real nodes: a control node, cn01 running a job, and two
nodes not booted at start whose minion config carries the grain ``crane_partition``. The pillar
selects the GPU group by that grain (cpu, memory and gres auto) and never names the nodes; the
master runs the formula's reactor (``salt/reactor``) on minion start and key deletion.

* gpu05 boots: with no pillar edit it ends idle in cinfo with its discovered GPUs; the join
  restarts cn01's craned (a new process: its config changed) without a drain while the job on
  cn01 keeps running (same job id), and afterwards no restart is due on any node and a plain
  re-apply changes nothing;
* gpu06 matches the A100 group, which names four GPUs, and has two: its own gres gate fails, the
  event ``crane/join/failed`` reports it and no other node's config.yaml changes;
* gpu05's minion stops and its key is deleted: the node is drained and taken out, and cn01's
  craned restarted on the new config."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from . import formula
from .conftest import booted
from .spec import NodeSpec, env_spec

pytestmark = pytest.mark.cluster

CONTROL = "cranectl"
GPU_MATCH = "G@crane_partition:GPU"
A100_MATCH = "G@crane_partition:A100"
NODES = (
    NodeSpec("cranectl", "control"),
    NodeSpec("cn01"),
    NodeSpec("gpu05", gpus=2, boot=False, grains=(("crane_partition", "GPU"),)),
    NodeSpec("gpu06", gpus=2, boot=False, grains=(("crane_partition", "A100"),)),
)
REACTORS = (
    ("salt/minion/*/start", "salt://reactor/join.sls"),
    ("salt/key", "salt://reactor/leave.sls"),
)
A100 = [
    {"name": "gpu", "type": "a100", "EnvInjector": "nvidia", "DeviceFileRegex": "/dev/nvidia[0-3]"}
]
JOIN_LIMIT = 420  # a hung join stops the test; the measured time is printed


def _selectors(crane):
    crane["login_nodes"] = []
    crane["config"]["Nodes"] = [
        {"name": "cn01", "cpu": 2, "memory": "2G"},
        {"match": GPU_MATCH, "cpu": "auto", "memory": "auto", "gres": "auto"},
        {"match": A100_MATCH, "cpu": "auto", "memory": "auto", "gres": A100},
    ]
    crane["config"]["Partitions"] = [
        {"name": "CPU", "nodes": "cn01", "priority": 5},
        {"name": "GPU", "match": GPU_MATCH, "priority": 3},
        {"name": "A100", "match": A100_MATCH, "priority": 3},
    ]
    crane["config"]["DefaultPartition"] = "CPU"
    crane["names"] = {"hosts_file": True}


@pytest.fixture(scope="module")
def ecluster():
    spec = env_spec("CRANE_FORMULA_ELASTIC_NET", "cfel:10.213.72.0/24", NODES, reactors=REACTORS)
    with booted(spec) as cluster:
        cluster.write_pillar(*formula.with_config(cluster, _selectors))
        assert formula.failures(formula.apply(cluster)) == {}
        formula.wait_for("cn01 idle", lambda: formula.all_idle(cluster, ["cn01"]))
        cluster.sh(CONTROL, "cranesim-job --node cn01 --seconds 3600", check=True)
        yield cluster


class EventWatch:
    """``salt-run state.event`` for one tag, started before what fires it."""

    def __init__(self, cluster, tag):
        self.tag = tag
        cmd = [sys.executable, str(cluster.venv / "bin" / "salt-run"), "-c",
               str(cluster.master_dir), "state.event", f"tagmatch={tag}", "count=1"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        time.sleep(2)  # subscribed before the caller acts

    def data(self, timeout=JOIN_LIMIT):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(2)
            self.proc.communicate()
            raise
        # one "tag<TAB>data" line, then the runner's own return
        line = next(x for x in out.splitlines() if x.startswith(self.tag + "\t"))
        return json.loads(line.partition("\t")[2])


def jobs(cluster):
    listed = json.loads(cluster.sh(CONTROL, "cranesim-job --list", check=True).stdout)
    return {job["job_id"]: job.get("status") or job.get("state") for job in listed}


def config_text(cluster, node):
    return cluster.sh(node, "cat /etc/crane/config.yaml", check=True).stdout


def minion_started(cluster, node):
    out = cluster.sh(
        node, 'date -d "$(systemctl show -p ActiveEnterTimestamp --value salt-minion)" +%s.%N',
        check=True,
    ).stdout  # fmt: skip
    return float(out.strip())


def test_gpu_node_joins_by_itself_while_cn01_keeps_its_job(ecluster):
    cluster = ecluster
    jobs_before = jobs(cluster)
    craned_before = formula.main_pid(cluster, "cn01", "craned")
    done = EventWatch(cluster, "crane/join/done")
    cluster.boot_node("gpu05")
    formula.wait_for(
        "gpu05 idle", lambda: formula.all_idle(cluster, ["gpu05"]), limit=JOIN_LIMIT, interval=0.5
    )
    idle_at = time.time()
    seconds = idle_at - minion_started(cluster, "gpu05")
    print(f"\ngpu05: {seconds:.1f}s from its minion's first start to idle in cinfo")
    report = done.data()
    print(f"join done {time.time() - idle_at:.1f}s after gpu05 was idle")
    assert report["minion"] == "gpu05" and report["node"] == "gpu05"
    assert report["restart"]["done"] == ["cn01"], report["restart"]
    shown = cluster.sh(CONTROL, "ccontrol show node gpu05", check=True).stdout
    assert "Gres=gpu:" in shown and ":2" in shown.split("Gres=")[1].split()[0], shown
    assert set(jobs_before.values()) == {"Running"}, jobs_before
    assert jobs(cluster) == jobs_before  # same job ids, still running
    assert formula.main_pid(cluster, "cn01", "craned") not in (0, craned_before)
    for node in (CONTROL, "cn01", "gpu05"):
        assert "gpu05" in config_text(cluster, node), node
    hashes = cluster.salt("*", "crane.config_hash")
    assert len(set(hashes.values())) == 1, hashes
    assert cluster.salt("*", "crane.restart_pending") == {m: {} for m in hashes}
    again = formula.apply(cluster)
    assert formula.failures(again) == {} and formula.changed(again) == {}


def test_node_failing_its_gres_gate_is_reported_and_not_added(ecluster):
    cluster = ecluster
    hashes = cluster.salt("cranectl,cn01", "crane.config_hash", tgt_type="list")
    failed = EventWatch(cluster, "crane/join/failed")
    cluster.boot_node("gpu06")
    report = failed.data()
    assert report["minion"] == "gpu06"
    assert "/dev/nvidia" in report["error"], report
    assert cluster.salt("gpu06", "crane.joined") == {"gpu06": False}
    assert cluster.salt("cranectl,cn01", "crane.config_hash", tgt_type="list") == hashes
    assert "gpu06" not in formula.node_states(cluster)


def test_deleted_key_drains_and_removes_the_node(ecluster):
    cluster = ecluster
    assert "gpu05" in formula.node_states(cluster)
    cluster.sh("gpu05", "systemctl stop salt-minion", check=True)  # else it re-registers
    craned_before = formula.main_pid(cluster, "cn01", "craned")
    left = EventWatch(cluster, "crane/leave/done")
    cluster._salt_key("-y", "-d", "gpu05")
    report = left.data()
    assert report["nodes"] == ["gpu05"]
    assert report["restart"]["done"] == ["cn01"], report["restart"]
    assert formula.main_pid(cluster, "cn01", "craned") not in (0, craned_before)
    assert cluster.salt("cranectl,cn01", "crane.restart_pending", tgt_type="list") == {
        "cranectl": {},
        "cn01": {},
    }
    assert "gpu05" not in formula.node_states(cluster)
    assert "gpu05" not in config_text(cluster, "cn01")
    assert "gpu05" not in config_text(cluster, CONTROL)
