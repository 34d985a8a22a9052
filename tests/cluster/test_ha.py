"""crane:ha on real nodes: two control nodes running Debian's keepalived (VRRP on the private
bridge) with one host folder bound into both as the shared storage, two compute nodes.

Deploy: the master holds the virtual IP and runs cranectld, the backup does not, every compute
node is idle through the VIP's name; a second apply changes nothing and test=True plans
nothing. Failover by fault: cranectld killed on the master (its alive file stays, the check
fails, keepalived moves the VIP, the backup's notify_master starts cranectld on the shared
DB); a job submitted before is still known, and cinfo answers through the VIP with every node
up. ``salt-run crane.status`` names master and backup, ``crane.failover`` moves the role and
back with the same checks, ``crane.health`` warns (exit 0) while the backup's keepalived is
stopped. Before the failovers: a bad HA pillar stops both control nodes at validation; a rolling
upgrade whose backup minion is lost mid-upgrade stops with the master serving, and its re-run
upgrades 1.1.2 -> 1.1.3 (backup, failover, old master, compute nodes) while a thread polls cinfo
through the VIP and records the gaps. One ordered flow on one cluster; a failed step skips the
steps that need it.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from . import formula, pillar
from .conftest import after, booted
from .spec import NodeSpec, env_spec
from .test_upgrade import salt_run

pytestmark = pytest.mark.cluster

PAIR = ("ctl1", "ctl2")
COMPUTE = ("cn01", "cn02")
VIP_NAME = "cranectl"
VIP_HOST = 100  # the VIP is .100 on the cluster's subnet
SHARED = ("shared", "/shared")
NODES = (
    NodeSpec("ctl1", "control", binds=(SHARED,)),
    NodeSpec("ctl2", "control", binds=(SHARED,)),
    NodeSpec("cn01"),
    NodeSpec("cn02"),
)
TIMINGS: dict[str, float] = {}


def ha_spec():
    """Own bridge and subnet (CRANE_FORMULA_HA_NET=name:subnet moves them)."""
    return env_spec(
        "CRANE_FORMULA_HA_NET", "cfha:10.213.71.0/24", NODES, aliases=((VIP_NAME, VIP_HOST),)
    )


def ha_pillar(spec):
    sls, top = pillar.cluster_pillar(spec, pillar.pathlib.Path(__file__).resolve().parents[2])
    crane = sls["crane.cluster"]["crane"]
    crane["login_nodes"] = []
    config = crane["config"]
    config["ControlMachine"] = VIP_NAME
    config["Keepalived"] = {"CraneSharedBaseDir": SHARED[1] + "/"}
    config["Nodes"] = [{"name": "cn[01-02]", "cpu": 2, "memory": "2G"}]
    config["Partitions"] = [{"name": "CPU", "nodes": "cn[01-02]", "priority": 5}]
    config["DefaultPartition"] = "CPU"
    crane["ha"] = {
        "enabled": True,
        "nodes": list(PAIR),
        "vip": f"{spec.alias_address(VIP_NAME)}/24",
        "vip_name": VIP_NAME,
        "interface": "host0",
        "router_id": 71,
        "priorities": {"ctl1": 100, "ctl2": 90},
        "unicast_peers": {node: spec.address(node) for node in PAIR},
    }
    return sls, top


@pytest.fixture(scope="module")
def hcluster():
    spec = ha_spec()
    try:
        with booted(spec, ha_pillar(spec)) as cluster:
            yield cluster
    finally:
        print(f"[cluster] HA timings: {TIMINGS}")


def holds_vip(cluster, node):
    vip = cluster.spec.alias_address(VIP_NAME)
    out = cluster.sh(node, "ip -o -4 addr show dev host0").stdout
    return f" {vip}/" in out


def active(cluster, node, unit="cranectld"):
    return cluster.sh(node, f"systemctl is-active {unit}").stdout.strip() == "active"


def all_idle_via(cluster, node):
    """cinfo on ``node`` (through the VIP name): every compute node idle."""
    result = cluster.sh(node, "cinfo --json")
    if result.returncode != 0:
        return False
    states = {}
    for part in json.loads(result.stdout)["partitions"]:
        for group in part["craned_lists"]:
            for name in cluster.salt(node, "crane.expand_hostlist", group["craned_list_regex"])[
                node
            ]:
                states[name] = group["resource_state"]
    return all(states.get(n) == "CRANE_IDLE" for n in COMPUTE)


def test_deploy_master_runs_cranectld_backup_does_not(hcluster, flow):
    result = formula.timed_apply(hcluster, "ha first apply")
    assert formula.failures(result) == {}
    formula.wait_for("the VIP on ctl1", lambda: holds_vip(hcluster, "ctl1"), limit=60)
    assert not holds_vip(hcluster, "ctl2")
    assert active(hcluster, "ctl1") and not active(hcluster, "ctl2")
    assert active(hcluster, "ctl1", "keepalived") and active(hcluster, "ctl2", "keepalived")
    for node in PAIR:  # keepalived starts cranectld, not the boot
        assert hcluster.sh(node, "systemctl is-enabled cranectld").stdout.strip() == "disabled"
    formula.wait_for("every node idle via the VIP", lambda: all_idle_via(hcluster, "ctl2"))
    for node in PAIR:
        script = hcluster.sh(node, "stat -c '%U %a' /etc/keepalived/crane-on-master.sh").stdout
        assert script.split() == ["root", "755"]
        journal = hcluster.sh(node, "journalctl -u keepalived --no-pager").stdout
        assert "Unsafe permission" not in journal and "disabling" not in journal
    assert hcluster.sh("ctl1", "ls /shared/cranectld").stdout.split().count("cranectld.lock") == 1
    flow["deployed"] = True


def test_second_apply_and_dry_run_change_nothing(hcluster, flow):
    after(flow, "deployed")
    again = formula.apply(hcluster)
    assert formula.failures(again) == {}
    assert formula.changed(again) == {}
    dry = formula.apply(hcluster, test=True)
    assert formula.failures(dry) == {}
    assert formula.results(dry) <= {True}
    assert active(hcluster, "ctl1") and not active(hcluster, "ctl2")
    flow["idempotent"] = True


def test_bad_ha_pillar_fails_validation_with_nothing_changed(hcluster, flow):
    """The shared dir missing, ControlMachine not the VIP name and equal priorities, in one
    pillar: validation names each key on both control nodes, and nothing changes."""
    after(flow, "deployed")
    sls, top = ha_pillar(hcluster.spec)
    crane = sls["crane.cluster"]["crane"]
    crane["config"].pop("Keepalived")
    crane["config"]["ControlMachine"] = "ctl1"
    crane["ha"]["priorities"] = {"ctl1": 100, "ctl2": 100}
    hcluster.write_pillar(sls, top)
    try:
        result = formula.apply(hcluster, "ctl1,ctl2", tgt_type="list")
    finally:
        hcluster.write_pillar(*ha_pillar(hcluster.spec))
    assert formula.changed(result) == {}
    for node in PAIR:
        text = "\n".join(formula.failures(result)[node].values())
        assert "Keepalived.CraneSharedBaseDir: required with crane:ha" in text
        assert "ControlMachine: 'ctl1' is not the virtual IP's name" in text
        assert "crane:ha:priorities: both control nodes have priority 100" in text
    assert active(hcluster, "ctl1") and not active(hcluster, "ctl2")


# compute nodes have no frontend package: the simulator's cinfo from craned's private library
CINFO_ON_COMPUTE = (
    'python3 -IB -c \'import sys; sys.path.insert(0, "/usr/lib/cranesim/craned"); '
    'from cranesim.__main__ import run; sys.exit(run("cinfo", ["-N"]))\''
)


class CinfoPoller(threading.Thread):
    """``cinfo`` through the VIP name from the compute nodes, over and over: ``(time,
    answered)`` samples (epoch seconds, the runner's clock). A sample asks cn01, then cn02:
    while a node's craned package is replaced its copy of cinfo may be missing for a moment,
    and cranectld has answered if either node got an answer."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster, self.samples, self.stopping = cluster, [], threading.Event()

    def run(self):
        while not self.stopping.is_set():
            began = time.time()
            answered = any(self.ask(node) for node in COMPUTE)
            self.samples.append((began, answered))
            self.stopping.wait(0.5)

    def ask(self, node):
        try:
            return self.cluster.sh(node, CINFO_ON_COMPUTE, timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def gaps(self):
        """``[(first failed sample, first answer after it)]``."""
        found, start = [], None
        for when, answered in self.samples:
            if not answered and start is None:
                start = when
            elif answered and start is not None:
                found.append((start, when))
                start = None
        return found + ([(start, None)] if start is not None else [])


def installed(cluster, node):
    pkg = "cranesched-cranectld" if node in PAIR else "cranesched-craned"
    return cluster.sh(node, f"dpkg-query -W -f '${{Version}}' {pkg}").stdout.strip()


def test_backup_minion_lost_mid_upgrade_stops_with_the_master_serving(hcluster, flow):
    """The backup's salt-minion dies while its packages are being installed (an apt hook kills
    every process of the unit, the apply's included, as dpkg starts; a plain stop let the apply
    finish first at random): the run names ctl2 and stops before the failover, with ctl1 still
    serving on 1.1.2, no cranectld on ctl2 and no compute node touched."""
    after(flow, "deployed")
    code, _, err = salt_run(hcluster, "saltutil.sync_all")  # runners and utils on the master
    assert code == 0, err
    hook = "/etc/apt/apt.conf.d/99-test-minion-lost"
    hcluster.sh(
        "ctl2",
        f"echo 'DPkg::Pre-Invoke {{\"systemctl kill -s KILL salt-minion\";}};' > {hook}",
        check=True,
    )
    try:
        code, report, err = salt_run(hcluster, "crane.upgrade", "version=1.1.3", "batch=1")
    finally:
        hcluster.sh("ctl2", f"rm -f {hook}; systemctl start salt-minion", check=True)
    assert code != 0, report
    assert report["Error"].startswith("backup control node ctl2: state.apply crane: no answer")
    assert report["not_reached"] == list(COMPUTE) and "failover" not in report["failed"]
    assert master(hcluster) == "ctl1" and active(hcluster, "ctl1") and not active(hcluster, "ctl2")
    assert all_idle_via(hcluster, "ctl1")
    untouched = ("ctl1", *COMPUTE)  # ctl2's package may have landed before its minion went
    assert {node: installed(hcluster, node) for node in untouched} == dict.fromkeys(
        untouched, "1.1.2"
    )
    formula.wait_for(
        "ctl2's minion", lambda: hcluster.salt("ctl2", "test.ping").get("ctl2") is True
    )
    flow["ha_upgrade_failed"] = True


def test_rolling_upgrade_of_the_pair_keeps_a_controller(hcluster, flow):
    """The re-run after the failure above completes."""
    after(flow, "ha_upgrade_failed")
    code, _, err = salt_run(hcluster, "saltutil.sync_all")  # runners and utils on the master
    assert code == 0, err
    hcluster.sh("ctl1", "cranesim-job --node cn02 --seconds 1", check=True)
    formula.wait_for("the job done", lambda: all(
        job["status"] == "Completed" for job in json.loads(
            hcluster.sh("ctl1", "cranesim-job --list", check=True).stdout)))  # fmt: skip
    before = jobs(hcluster, "ctl1")
    poller = CinfoPoller(hcluster)
    poller.start()
    began = time.monotonic()
    try:
        code, report, err = salt_run(hcluster, "crane.upgrade", "version=1.1.3", "batch=1")
    finally:
        TIMINGS["ha_upgrade_wall"] = time.monotonic() - began
        poller.stopping.set()
        poller.join()
    assert code == 0, (report, err)
    gaps = poller.gaps()
    TIMINGS["ha_upgrade_cinfo_gaps"] = [round(end - start, 1) for start, end in gaps if end]
    print(f"[cluster] HA upgrade: cinfo gaps {TIMINGS['ha_upgrade_cinfo_gaps']}")
    assert gaps and all(end is not None for _, end in gaps)  # cinfo answered again after each
    moving = ("failover", "control old master")  # the steps that move the master role
    switches = [(s["start"], s["end"]) for s in report["steps"] if s["step"].startswith(moving)]
    assert len(gaps) <= len(switches) == 2  # the failover, then the old master's handback
    for start, _ in gaps:  # every gap begins inside a step that moves the master role
        assert any(s <= start <= e for s, e in switches), (gaps, report["steps"])
    assert {node: installed(hcluster, node) for node in (*PAIR, *COMPUTE)} == dict.fromkeys(
        (*PAIR, *COMPUTE), "1.1.3"
    )
    assert master(hcluster) == "ctl1" and active(hcluster, "ctl1") and not active(hcluster, "ctl2")
    assert active(hcluster, "ctl2", "keepalived")  # a ready backup again
    assert report["backup"]["minion"] == "ctl1"
    assert report["backup"]["source"].startswith(SHARED[1] + "/")
    formula.wait_for("every node idle via the VIP", lambda: all_idle_via(hcluster, "ctl2"))
    assert set(before) <= set(jobs(hcluster, "ctl1"))
    sls, top = ha_pillar(hcluster.spec)
    sls["crane.cluster"]["crane"]["version"] = "1.1.3"
    hcluster.write_pillar(sls, top)
    again = formula.apply(hcluster)
    assert formula.failures(again) == {}
    assert formula.changed(again) == {}
    flow["ha_upgraded"] = True


def test_failover_when_cranectld_dies_on_the_master(hcluster, flow):
    after(flow, "deployed")
    submitted = hcluster.sh("ctl1", "cranesim-job --node cn01 --seconds 3600", check=True)
    assert submitted.returncode == 0
    before = json.loads(hcluster.sh("ctl1", "cranesim-job --list", check=True).stdout)
    began = time.monotonic()
    hcluster.sh("ctl1", "systemctl kill -s KILL cranectld", check=True)
    formula.wait_for("the VIP on ctl2", lambda: holds_vip(hcluster, "ctl2"), limit=60)
    TIMINGS["fault_to_vip_moved"] = time.monotonic() - began
    formula.wait_for("cranectld on ctl2", lambda: active(hcluster, "ctl2"), limit=60)

    def cn01_busy_cn02_idle():
        result = hcluster.sh("ctl1", "cinfo -N")  # through the VIP, from the old master
        text = result.stdout if result.returncode == 0 else ""
        return "alloc" in text and "idle" in text and "down" not in text

    formula.wait_for("every node up through the VIP", cn01_busy_cn02_idle)
    TIMINGS["fault_to_cinfo_all_up"] = time.monotonic() - began
    assert not active(hcluster, "ctl1")
    assert hcluster.sh("ctl1", "test -e /var/crane/cranectld/cranectld.alive").returncode == 0
    jobs_now = json.loads(hcluster.sh("ctl2", "cranesim-job --list", check=True).stdout)
    assert [job["job_id"] for job in jobs_now] == [job["job_id"] for job in before]
    assert not holds_vip(hcluster, "ctl1")  # its stale alive file keeps its check failing
    flow["failed_over"] = True


def master(cluster):
    return next(node for node in PAIR if holds_vip(cluster, node))


def one_cranectld_answering(cluster, via):
    """Exactly one cranectld runs, and cinfo through the VIP shows cn01 busy, cn02 idle."""
    if [active(cluster, node) for node in PAIR].count(True) != 1:
        return False
    result = cluster.sh(via, "cinfo -N")
    text = result.stdout if result.returncode == 0 else ""
    return "alloc" in text and "idle" in text and "down" not in text


def test_clearing_the_stale_alive_file_hands_the_role_back(hcluster, flow):
    after(flow, "failed_over")
    before = json.loads(hcluster.sh("ctl2", "cranesim-job --list", check=True).stdout)
    # CraneSched's advice once the crashed node is repaired: delete its alive file. Its
    # check passes again, it preempts with the higher priority, its notify_master waits for
    # the lock that ctl2's notify_backup releases, and starts cranectld.
    hcluster.sh("ctl1", "rm /var/crane/cranectld/cranectld.alive", check=True)
    formula.wait_for("the VIP back on ctl1", lambda: holds_vip(hcluster, "ctl1"), limit=60)
    formula.wait_for("one cranectld", lambda: one_cranectld_answering(hcluster, "ctl2"))
    assert active(hcluster, "ctl1") and not active(hcluster, "ctl2")
    jobs_now = json.loads(hcluster.sh("ctl1", "cranesim-job --list", check=True).stdout)
    assert [job["job_id"] for job in jobs_now] == [job["job_id"] for job in before]
    flow["handed_back"] = True


def jobs(cluster, node):
    return [job["job_id"] for job in json.loads(cluster.sh(node, "cranesim-job --list",
                                                           check=True).stdout)]  # fmt: skip


def test_status_names_master_and_ready_backup(hcluster, flow):
    after(flow, "handed_back")
    code, _, err = salt_run(hcluster, "saltutil.sync_all")  # runners and utils on the master
    assert code == 0, err
    code, data, err = salt_run(hcluster, "crane.status")
    assert code == 0, (data, err)
    assert (data["ha"]["master"], data["ha"]["backup"]) == ("ctl1", "ctl2")
    assert data["warnings"] == [] and data["control"] == "ctl1"
    code, text, _ = salt_run(hcluster, "crane.status", out_json=False)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line[:3] == "ctl"}
    assert rows == {"ctl1": ["master", "active", "active", "-"],
                    "ctl2": ["backup", "active", "inactive", "yes"]}  # fmt: skip
    flow["status"] = True


def test_failover_runner_moves_the_role_and_health_warns(hcluster, flow):
    after(flow, "status")
    before = jobs(hcluster, "ctl1")
    began = time.monotonic()
    code, report, err = salt_run(hcluster, "crane.failover")
    TIMINGS["failover_runner_total"] = time.monotonic() - began
    assert code == 0, (report, err)
    assert (report["from"], report["to"]) == ("ctl1", "ctl2")
    TIMINGS["failover_runner_reported"] = report["seconds"]
    assert holds_vip(hcluster, "ctl2") and not holds_vip(hcluster, "ctl1")
    assert one_cranectld_answering(hcluster, "ctl1") and active(hcluster, "ctl2")
    assert jobs(hcluster, "ctl2") == before
    assert not active(hcluster, "ctl1", "keepalived")  # it would take the role back
    code, verdict, err = salt_run(hcluster, "crane.health")
    assert code == 0, (verdict, err)
    assert verdict["healthy"] is True and verdict["master"] == "ctl2"
    assert verdict["warnings"] == ["backup not ready: ctl1: keepalived is not running"]
    flow["failover_runner"] = True


def test_failover_runner_hands_back(hcluster, flow):
    after(flow, "failover_runner")
    before = jobs(hcluster, "ctl2")
    code, report, err = salt_run(hcluster, "crane.failover", "to=ctl1")
    assert code == 0, (report, err)
    assert (report["from"], report["to"]) == ("ctl2", "ctl1")
    TIMINGS["failback_runner_reported"] = report["seconds"]
    assert holds_vip(hcluster, "ctl1") and not holds_vip(hcluster, "ctl2")
    assert one_cranectld_answering(hcluster, "ctl2") and active(hcluster, "ctl1")
    assert active(hcluster, "ctl2", "keepalived")  # the lower priority: the backup again
    assert jobs(hcluster, "ctl1") == before
    code, verdict, err = salt_run(hcluster, "crane.health")
    assert code == 0 and verdict["warnings"] == [] and verdict["master"] == "ctl1", verdict


def test_failover_when_the_master_node_stops(hcluster, flow):
    after(flow, "failed_over")
    old = master(hcluster)
    other = next(node for node in PAIR if node != old)
    before = json.loads(hcluster.sh(old, "cranesim-job --list", check=True).stdout)
    began = time.monotonic()
    hcluster.stop_node(old)
    formula.wait_for(f"the VIP on {other}", lambda: holds_vip(hcluster, other), limit=60)
    TIMINGS["node_stop_to_vip_moved"] = time.monotonic() - began
    # the node left takes the VIP even with a stale alive file of its own (its priority is
    # lowered, but it is alone); its notify_master finds the shared lock free
    formula.wait_for(f"cranectld on {other}", lambda: active(hcluster, other), limit=60)

    def cn01_busy_cn02_idle():
        result = hcluster.sh(other, "cinfo -N")
        text = result.stdout if result.returncode == 0 else ""
        return "alloc" in text and "idle" in text and "down" not in text

    formula.wait_for("every node up through the VIP", cn01_busy_cn02_idle)
    TIMINGS["node_stop_to_cinfo_all_up"] = time.monotonic() - began
    jobs_now = json.loads(hcluster.sh(other, "cranesim-job --list", check=True).stdout)
    assert [job["job_id"] for job in jobs_now] == [job["job_id"] for job in before]
