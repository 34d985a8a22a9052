"""Rolling upgrades and restarts on a real cluster: cranectl, cn01-cn04, login01.

The simulator's repository holds 1.1.2 and 1.1.3; the fault test adds a broken 1.1.4 (craned
refuses to start) and then a good 1.1.5. Tests run in file order on one cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import crane_hostlist
import pytest

from bench.availability import availability

from . import pillar
from .conftest import require_cluster_environment
from .harness import Cluster
from .spec import ClusterSpec, NodeSpec, env_spec

pytestmark = pytest.mark.cluster

COMPUTE = ("cn01", "cn02", "cn03", "cn04")
NODES = (
    NodeSpec("cranectl", "control"),
    *(NodeSpec(name) for name in COMPUTE),
    NodeSpec("login01", "login"),
)
CONTROL = "cranectl"
FIGURES: dict[str, dict] = {}


def upgrade_spec() -> ClusterSpec:
    """Own bridge and subnet (CRANE_FORMULA_UPGRADE_NET=name:subnet moves them)."""
    return env_spec("CRANE_FORMULA_UPGRADE_NET", "cfupg:10.213.22.0/24", NODES)


def upgrade_pillar(spec: ClusterSpec):
    """The example pillar with four CPU nodes in one partition, at version 1.1.2."""
    sls, top = pillar.cluster_pillar(spec, pillar.pathlib.Path(__file__).resolve().parents[2])
    crane = sls["crane.cluster"]["crane"]
    crane["version"] = "1.1.2"
    crane["config"]["Nodes"] = [{"name": "cn[01-04]", "cpu": 2, "memory": "2G"}]
    crane["config"]["Partitions"] = [{"name": "CPU", "nodes": "cn[01-04]", "priority": 5}]
    crane["config"]["DefaultPartition"] = "CPU"
    return sls, top


def publish(cluster: Cluster, versions, broken=()) -> None:
    """Rebuild the served repository with these versions (the HTTP server keeps serving it)."""
    from tests.cranesim.build import build_repo  # noqa: PLC0415

    build_repo(cluster.run_dir / "repo", list(versions), broken=list(broken))


def boot(spec: ClusterSpec | None = None) -> Cluster:
    """The cluster deployed at 1.1.2 (``start()`` synced the minions' modules and the master's
    runners and utils)."""
    spec = spec or upgrade_spec()
    cluster = Cluster(spec, log=lambda msg: print(f"[cluster] {msg}"))
    cluster.start()
    try:
        cluster.write_pillar(*upgrade_pillar(spec))
        proc = cluster.salt_cli("--timeout=600", "*", "state.apply", "crane")
        assert proc.returncode == 0, proc.stdout[-4000:]
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def ucluster():
    require_cluster_environment()
    cluster = boot()
    try:
        yield cluster
    finally:
        left = cluster.stop()
        assert not left, f"teardown left behind: {left}"


# --- helpers ------------------------------------------------------------------------------------


def salt_run(cluster: Cluster, *args: str, out_json: bool = True, timeout: float = 1800):
    """``salt-run ARGS`` → (exit code, parsed JSON or stdout text, stderr)."""
    cmd = [sys.executable, str(cluster.venv / "bin" / "salt-run"), "-c", str(cluster.master_dir)]
    cmd += ["--out=json"] if out_json else []
    proc = subprocess.run(
        [*cmd, "--timeout=900", *args], check=False, capture_output=True, text=True, timeout=timeout
    )
    data = proc.stdout
    if out_json:
        data = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, data, proc.stderr


def cinfo_nodes(cluster: Cluster):
    """{node: {"resource", "control", "reason"}} from ``cinfo --json`` on the control node,
    None when cinfo does not answer."""
    proc = cluster.sh(CONTROL, "cinfo --json", timeout=30)
    if proc.returncode != 0:
        return None
    nodes = {}
    for part in json.loads(proc.stdout)["partitions"]:
        for group in part["craned_lists"]:
            for name in expand(group["craned_list_regex"]):
                nodes[name] = {
                    "resource": group["resource_state"].removeprefix("CRANE_").lower(),
                    "control": group["control_state"].removeprefix("CRANE_").lower(),
                    "reason": group["reason"],
                }
    return nodes


def expand(expr: str) -> list[str]:
    return crane_hostlist.expand(expr) if expr else []


def show_nodes(cluster: Cluster) -> dict:
    return cluster.salt(CONTROL, "crane.show_node")[CONTROL]


def versions(cluster: Cluster) -> dict:
    """{node: installed craned/cranectld/frontend version}."""
    out = {}
    for name in cluster.spec.hostnames():
        pkg = {"cranectl": "cranesched-cranectld", "login01": "cranesched-frontend"}.get(
            name, "cranesched-craned"
        )
        out[name] = cluster.sh(name, f"dpkg-query -W -f '${{Version}}' {pkg}").stdout.strip()
    return out


def start_times(cluster: Cluster) -> dict:
    """{node: (craned/cranectld MainPID start time)} to see whether anything restarted."""
    out = {}
    for name in cluster.spec.hostnames():
        unit = {"cranectl": "cranectld", "login01": "cfored"}.get(name, "craned")
        prop = "ExecMainStartTimestampMonotonic"
        out[name] = cluster.sh(name, f"systemctl show -P {prop} {unit}").stdout.strip()
    return out


class Sampler(threading.Thread):
    """Samples cinfo on the control node until stopped: [(epoch seconds, nodes or None)]."""

    def __init__(self, cluster: Cluster):
        super().__init__(daemon=True)
        self.cluster, self.samples, self.halt = cluster, [], threading.Event()

    def run(self):
        while not self.halt.is_set():
            taken = time.time()
            try:
                nodes = cinfo_nodes(self.cluster)
            except (subprocess.SubprocessError, ValueError, KeyError):
                nodes = None
            self.samples.append((taken, nodes))
            self.halt.wait(0.5)

    def stop(self):
        self.halt.set()
        self.join()
        return self.samples


def measure_availability(cluster: Cluster, run, ignore=()):
    """Run ``run()`` while sampling cinfo; returns (its result, availability figures, samples).

    Reusable by a benchmark: the figures are total time, the longest time one node was down
    or drained, and the most nodes unavailable at once."""
    sampler = Sampler(cluster)
    sampler.start()
    try:
        result = run()
    finally:
        samples = sampler.stop()
    return result, availability(samples, ignore=ignore), samples


def drains(cluster: Cluster) -> dict:
    nodes = cinfo_nodes(cluster) or {}
    return {n: s["reason"] for n, s in nodes.items() if s["control"] == "drain"}


def snapshot(cluster: Cluster) -> dict:
    """What an upgrade would change: package versions, daemon start times, drains."""
    return {
        "versions": versions(cluster),
        "started": start_times(cluster),
        "drains": drains(cluster),
    }


def jobs(cluster: Cluster) -> dict:
    listed = json.loads(cluster.sh(CONTROL, "cranesim-job --list", check=True).stdout)
    return {job["job_id"]: job for job in listed}


def orchestrate(cluster: Cluster, sls: str, options: dict, *extra: str):
    """``salt-run state.orchestrate SLS pillar=...`` → (exit code, stdout + stderr)."""
    code, out, err = salt_run(
        cluster, "state.orchestrate", sls, f"pillar={json.dumps({'crane': options})}", *extra,
        out_json=False,
    )  # fmt: skip
    return code, out + err


def set_pillar_version(cluster: Cluster, version: str) -> None:
    sls, top = upgrade_pillar(cluster.spec)
    sls["crane.cluster"]["crane"]["version"] = version
    cluster.write_pillar(sls, top)


def window(report: dict, step: str) -> tuple[float, float]:
    entry = next(s for s in report["steps"] if s["step"] == step)
    return entry["start"], entry["end"]


def outside(samples, start, end):
    """Samples taken outside [start, end] (epoch seconds)."""
    return [(t, n) for t, n in samples if not start <= t <= end]


# --- tests --------------------------------------------------------------------------------------


def test_dry_run_and_test_mode_list_the_plan_and_change_nothing(ucluster):
    before = snapshot(ucluster)
    code, report, err = salt_run(
        ucluster, "crane.upgrade", "version=1.1.3", "batch=2", "dry_run=True"
    )
    assert code == 0, err
    assert report["plan"]["batches"] == [["cn01"], ["cn02", "cn03"], ["cn04"]]
    assert report["plan"]["control"] == {"minion": CONTROL, "todo": True, "from": "1.1.2"}
    assert "canary: cn01" in report["plan_text"]
    code, out = orchestrate(
        ucluster, "crane.orch.upgrade", {"version": "1.1.3", "batch": 2}, "test=True"
    )
    assert code == 0, out
    assert "batch 2: cn02, cn03" in out
    assert "Runner function" not in out  # the engine planned; nothing was executed
    assert snapshot(ucluster) == before


def test_preflight_failure_exits_non_zero_before_touching_a_node(ucluster):
    before = snapshot(ucluster)
    code, report, _ = salt_run(ucluster, "crane.upgrade", "version=1.1.9", "batch=2")
    assert code != 0
    assert "1.1.9 is not installable" in report["failed"]["preflight"]
    assert report["summary"].startswith("FAILED before touching any node")
    code, out = orchestrate(ucluster, "crane.orch.upgrade", {"version": "1.1.9"})
    assert code != 0, out
    assert snapshot(ucluster) == before


def test_rolling_upgrade_keeps_the_cluster_serving(ucluster):
    ucluster.sh(
        CONTROL, 'ccontrol update nodename=cn02 state=drain reason="disk replacement"', check=True
    )
    ucluster.sh(CONTROL, "cranesim-job --node cn04 --seconds 1", check=True)
    time.sleep(2)  # let that job finish: it is a persisted, completed job
    ucluster.sh(CONTROL, "cranesim-job --node cn03 --seconds 30", check=True)
    before_jobs = jobs(ucluster)

    def run():
        return salt_run(ucluster, "crane.upgrade", "version=1.1.3", "batch=2")

    (code, report, err), figures, samples = measure_availability(ucluster, run, ignore=["cn02"])
    FIGURES["rolling"] = figures
    assert code == 0, err
    assert set(versions(ucluster).values()) == {"1.1.3"}
    assert {n: d["version"] for n, d in show_nodes(ucluster).items()} == dict.fromkeys(
        COMPUTE, "1.1.3"
    )
    states = cinfo_nodes(ucluster)
    assert {n: s["resource"] for n, s in states.items()} == dict.fromkeys(COMPUTE, "idle")
    assert drains(ucluster) == {"cn02": "disk replacement"}
    after_jobs = jobs(ucluster)
    assert set(before_jobs) <= set(after_jobs)  # persisted jobs survived cranectld's restart
    assert {j["status"] for j in after_jobs.values()} == {"Completed"}  # waited for, not killed
    backup = report["backup"]
    db_files = [f"embedded.db{name}" for name in ("fix", "resv", "step_fix", "step_var", "var")]
    assert sorted(path.rsplit("/", 1)[1] for path in backup["files"]) == db_files
    listed = ucluster.sh(CONTROL, f"ls {backup['backup']}", check=True).stdout.split()
    assert sorted(listed) == db_files  # every file of the embedded DB prefix, on the node
    start, end = window(report, "control")
    assert all(start <= t <= end for t, nodes in samples if nodes is None)  # only while restarting
    rest = outside(samples, start, end + 3)  # craned re-registers right after cranectld is back
    assert availability(rest, ignore=["cn02"])["max_unavailable"] <= 2
    assert figures["max_unavailable"] >= 1
    ucluster.sh(CONTROL, 'ccontrol update nodename=cn02 state=resume reason=""', check=True)
    set_pillar_version(ucluster, "1.1.3")


def test_canary_failure_stops_the_run_and_a_rerun_completes(ucluster):
    publish(ucluster, ["1.1.2", "1.1.3"], broken=["1.1.4"])
    code, report, _ = salt_run(ucluster, "crane.upgrade", "version=1.1.4", "batch=2")
    assert code != 0
    assert report["failed"].keys() == {"cn01"}
    assert report["failed"]["cn01"].startswith("state.apply crane:")
    assert "csupervisor" in report["failed"]["cn01"]
    assert report["not_reached"] == ["cn02", "cn03", "cn04"]
    # drained before craned was stopped; CraneSched keeps a DOWN node's reason as it was
    assert drains(ucluster)["cn01"].startswith("crane-formula: upgrade to 1.1.4")
    details = show_nodes(ucluster)
    for node in ("cn02", "cn03", "cn04"):
        assert details[node]["version"] == "1.1.3"
        assert details[node]["state"] == "idle[power_idle]"
    code, out = orchestrate(ucluster, "crane.orch.upgrade", {"version": "1.1.4", "batch": 2})
    assert code != 0, out  # the orchestration reports the same failure
    assert "canary failed on cn01" in out

    publish(ucluster, ["1.1.2", "1.1.3", "1.1.5"], broken=["1.1.4"])
    code, report, err = salt_run(ucluster, "crane.upgrade", "version=1.1.5", "batch=2")
    assert code == 0, err
    assert set(versions(ucluster).values()) == {"1.1.5"}
    assert drains(ucluster) == {}
    before = snapshot(ucluster)
    code, report, err = salt_run(ucluster, "crane.upgrade", "version=1.1.5", "batch=2")
    assert code == 0, err
    assert report["plan"]["batches"] == []
    assert report["skipped"] == dict.fromkeys([*COMPUTE, "login01"], "already at 1.1.5")
    assert snapshot(ucluster) == before


def test_all_at_once_upgrade(ucluster):
    publish(ucluster, ["1.1.5", "1.1.6"], broken=["1.1.4"])
    ucluster.sh(
        CONTROL, 'ccontrol update nodename=cn02 state=drain reason="disk replacement"', check=True
    )

    def run():
        return salt_run(ucluster, "crane.upgrade", "version=1.1.6", "strategy=all-at-once")

    (code, report, err), figures, _ = measure_availability(ucluster, run, ignore=["cn02"])
    FIGURES["all-at-once"] = figures
    assert code == 0, err
    assert report["backup"]["backup"]
    assert set(versions(ucluster).values()) == {"1.1.6"}
    assert {n: d["version"] for n, d in show_nodes(ucluster).items()} == dict.fromkeys(
        COMPUTE, "1.1.6"
    )
    assert drains(ucluster) == {"cn02": "disk replacement"}
    assert figures["max_unavailable"] == 3  # every node but the admin's, at once
    ucluster.sh(CONTROL, 'ccontrol update nodename=cn02 state=resume reason=""', check=True)


def test_rolling_restart_orchestration(ucluster):
    code, out = orchestrate(ucluster, "crane.orch.restart", {"batch": 2})
    assert code != 0, out  # the pillar still pins 1.1.3: applying it would change packages
    assert "Set crane:version to the running version first" in out
    set_pillar_version(ucluster, "1.1.6")
    before = start_times(ucluster)
    code, out = orchestrate(ucluster, "crane.orch.restart", {"batch": 2})
    assert code == 0, out
    after = start_times(ucluster)
    assert all(after[n] != before[n] for n in [*COMPUTE, CONTROL])
    assert set(versions(ucluster).values()) == {"1.1.6"}
    assert drains(ucluster) == {}


def test_failure_on_an_admin_drained_node_keeps_the_admins_drain(ucluster):
    """A run failing on a node an admin drained keeps the admin's reason, and the re-run does
    not resume the admin's drain as its own."""
    publish(ucluster, ["1.1.6", "1.1.8"], broken=["1.1.7"])
    ucluster.sh(
        CONTROL, 'ccontrol update nodename=cn03 state=drain reason="fan broken"', check=True
    )
    code, report, _ = salt_run(
        ucluster, "crane.upgrade", "version=1.1.7", "batch=4", "canary=0", "register_timeout=30"
    )
    assert code != 0
    assert report["failed"].keys() == set(COMPUTE)
    assert report["failed"]["cn03"].endswith("(keeps the admin's drain and reason)")
    left = drains(ucluster)
    assert left.pop("cn03") == "fan broken"
    assert all(r.startswith("crane-formula: upgrade to 1.1.7") for r in left.values())
    code, report, err = salt_run(ucluster, "crane.upgrade", "version=1.1.8", "batch=4", "canary=0")
    assert code == 0, err
    assert set(versions(ucluster).values()) == {"1.1.8"}
    assert drains(ucluster) == {"cn03": "fan broken"}
    ucluster.sh(CONTROL, 'ccontrol update nodename=cn03 state=resume reason=""', check=True)
    set_pillar_version(ucluster, "1.1.8")


def test_failed_backup_starts_cranectld_again_and_restores_drains(ucluster):
    ucluster.sh(
        CONTROL, 'ccontrol update nodename=cn02 state=drain reason="disk replacement"', check=True
    )
    ucluster.sh(CONTROL, "mv /var/crane/backup /var/crane/backup.saved && touch /var/crane/backup")
    try:
        code, report, _ = salt_run(ucluster, "crane.restart", "batch=2")
    finally:
        ucluster.sh(
            CONTROL, "rm -f /var/crane/backup && mv /var/crane/backup.saved /var/crane/backup"
        )
    assert code != 0
    assert ucluster.sh(CONTROL, "systemctl is-active cranectld").stdout.strip() == "active"
    assert report["failed"]["cranectl"].startswith("backup of cranectld's DB failed:")
    assert "Traceback" not in report["Error"]
    assert "cranectld: started again after the failure" in report["summary"]
    assert report["not_reached"] == list(COMPUTE)
    assert drains(ucluster) == {"cn02": "disk replacement"}
    ucluster.sh(CONTROL, 'ccontrol update nodename=cn02 state=resume reason=""', check=True)


def test_node_lost_during_the_control_step_is_named_and_drains_restored(ucluster):
    """craned stops on cn04 while cranectld restarts: the run names cn04 (DOWN: CraneSched
    cannot drain it), restores the admin's drain and exits non-zero."""
    ucluster.sh(
        CONTROL, 'ccontrol update nodename=cn02 state=drain reason="disk replacement"', check=True
    )
    halt = threading.Event()

    def stop_craned_when_cranectld_stops():
        while not halt.is_set():
            if ucluster.sh(CONTROL, "systemctl is-active cranectld").returncode != 0:
                ucluster.sh("cn04", "systemctl stop craned")
                return
            halt.wait(0.3)

    watcher = threading.Thread(target=stop_craned_when_cranectld_stops, daemon=True)
    watcher.start()
    try:
        code, report, _ = salt_run(ucluster, "crane.restart", "batch=2", "register_timeout=20")
    finally:
        halt.set()
        watcher.join()
        ucluster.sh("cn04", "systemctl start craned", check=True)
    assert code != 0
    assert "did not register again" in report["failed"]["cn04"]
    assert report["not_drained"] == {"cn04": "down: CraneSched refuses to drain a DOWN node"}
    assert "not drained: cn04" in report["summary"]
    assert drains(ucluster) == {"cn02": "disk replacement"}
    ucluster.sh(CONTROL, 'ccontrol update nodename=cn02 state=resume reason=""', check=True)


def test_dead_minion_mid_run_ends_the_run_and_is_named(ucluster):
    """cn03's minion stops while the run is on cn02: the run stops at cn03 within the
    documented bound, cn03 keeps running craned and is drained with why."""
    halt = threading.Event()

    def stop_minion_when_cn02_is_drained():
        while not halt.is_set():
            if "cn02" in drains(ucluster):
                ucluster.sh("cn03", "systemctl stop salt-minion")
                return
            halt.wait(0.3)

    watcher = threading.Thread(target=stop_minion_when_cn02_is_drained, daemon=True)
    watcher.start()
    try:
        began = time.monotonic()
        code, report, _ = salt_run(ucluster, "crane.restart", "batch=1", "canary=0")
        took = time.monotonic() - began
    finally:
        halt.set()
        watcher.join()
        ucluster.sh("cn03", "systemctl start salt-minion", check=True)
        ucluster.wait_for_minions(["cn03"])
    assert code != 0
    assert report["failed"].keys() == {"cn03"}
    assert report["failed"]["cn03"].startswith("stop craned: no answer")
    assert drains(ucluster)["cn03"].startswith("crane-formula: rolling restart failed at stop")
    print(f"restart with a minion dying mid-run: {took:.1f}s")
    code, report, err = salt_run(ucluster, "crane.restart", "batch=1", "canary=0")
    assert code == 0, err
    assert drains(ucluster) == {}


def test_second_run_refuses_while_one_runs(ucluster):
    ucluster.sh(CONTROL, "cranesim-job --node cn01 --seconds 40", check=True)
    first = subprocess.Popen(
        [sys.executable, str(ucluster.venv / "bin" / "salt-run"), "-c", str(ucluster.master_dir),
         "--out=json", "crane.restart", "drain_timeout=120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while "cn01" not in drains(ucluster) and time.monotonic() < deadline:
            time.sleep(0.5)  # the first run waits for cn01's job now
        code, report, _ = salt_run(ucluster, "crane.restart")
        assert code != 0
        assert report["Error"].startswith("another crane.restart is in progress (pid")
    finally:
        out, err = first.communicate(timeout=900)
    assert first.returncode == 0, err
    assert json.loads(out)["ok"] is True


def test_busy_node_stops_the_run_or_is_skipped(ucluster):
    ucluster.sh(CONTROL, "cranesim-job --node cn02 --seconds 240", check=True)
    code, report, _ = salt_run(ucluster, "crane.restart", "batch=2", "drain_timeout=5")
    assert code != 0
    assert report["failed"] == {"cn02": "drain: jobs still running after 5s"}
    assert report["not_reached"] == ["cn04"]
    assert drains(ucluster) == {
        "cn02": "crane-formula: rolling restart failed at drain: jobs still running after 5s"
    }
    code, report, err = salt_run(
        ucluster, "crane.restart", "batch=2", "drain_timeout=5", "skip_busy=True"
    )
    assert code == 0, err
    assert report["skipped"].pop("cn02") == "jobs still running after 5s"
    # the failed run restarted cranectld, login01 and cn01: its record makes the re-run skip them
    assert not report["plan"]["control"]["todo"]
    assert sorted(report["skipped"]) == ["cn01", "login01"]
    assert all(why.startswith("done by the unfinished run") for why in report["skipped"].values())
    assert drains(ucluster) == {}
    assert [j["status"] for j in jobs(ucluster).values() if j["node"] == "cn02"][-1] == "Running"


def test_report_figures():
    """Rolling vs all-at-once on the same cluster (printed for the record; pytest -s)."""
    for name, figures in FIGURES.items():
        print(
            f"{name}: total {figures['total']:.1f}s, longest node unavailable "
            f"{figures['longest_node']['seconds']:.1f}s ({figures['longest_node']['node']}), "
            f"most unavailable at once {figures['max_unavailable']}, "
            f"cinfo gaps {[round(g, 1) for g in figures['control_gaps']]}"
        )
