"""Upgrade rows: the formula's rolling upgrade against all-at-once, on the same test cluster.

Both runs use the upgrade engine (``salt-run crane.upgrade``) on the same nodes, from the same
converged start (packages at the older version the simulator's repository serves, every
compute node idle) to the newer one: first ``strategy=rolling`` (a canary, then batches of
one), then, after every node is rebooted bare and converged again, ``strategy=all-at-once``
(CraneSched's stop-everything procedure). While each runs, ``cinfo --json`` on the control node
is sampled every half second; ``bench.availability.availability`` turns the
samples into the figures: total time, the longest a single node could not take jobs, and the
most nodes unavailable at once. Seconds when cinfo did not answer (cranectld restarting) are
counted apart and given in the notes.

When the runner (``salt/_runners/crane.py`` with ``upgrade``) is
not there, the rows say so; nothing is estimated.
"""

import json
import pathlib
import subprocess
import sys
import threading
import time

import crane_cinfo

from bench import REPO
from bench.availability import availability
from bench.converge import apply, reboot_bare, wait_all_idle, why_no_cluster
from bench.registry import benchmark
from bench.table import Row
from tests.cluster import harness
from tests.cluster.spec import isolated_spec

SECTION = "upgrade"
CLUSTER_NAME = "cfbench2"
SUBNET = "10.213.31.0/24"
RUNNER = REPO / "salt" / "_runners" / "crane.py"
RUN_TIMEOUT = 1800
SAMPLE_EVERY = 0.5
STRATEGIES = ("rolling", "all-at-once")
FIGURES = (
    ("total time", "s"),
    ("longest single node unavailable", "s"),
    ("most nodes unavailable at once", "nodes"),
)


def log(message):
    print(f"[upgrade] {message}", file=sys.stderr, flush=True)


def engine():
    """``(availability, "")`` or ``(None, why the rows cannot be measured)``."""
    if not RUNNER.exists() or "def upgrade(" not in RUNNER.read_text():
        return None, "not available yet: the upgrade runner (salt-run crane.upgrade) is missing"
    return availability, ""


def unmeasured(reason):
    return [
        Row(SECTION, f"rolling vs all-at-once: {figure}", None, unit, note=reason)
        for figure, unit in FIGURES
    ]


class Sampler(threading.Thread):
    """``cinfo --json`` on the control node every half second: ``[(seconds, nodes or None)]``."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster, self.samples, self.halt = cluster, [], threading.Event()
        self.epochs = []  # wall-clock time of each sample, to match the engine's step times
        self.control = cluster.spec.hostnames("control")[0]

    def read(self):
        try:
            result = self.cluster.sh(self.control, "cinfo --json", timeout=10)
        except subprocess.SubprocessError:
            return None
        if result.returncode != 0:
            return None
        try:
            partitions = crane_cinfo.parse_cinfo_json(result.stdout)
        except crane_cinfo.CinfoParseError:
            return None
        return crane_cinfo.nodes_from_partitions(partitions)

    def run(self):
        began = time.monotonic()
        while not self.halt.is_set():
            epoch, nodes = time.time(), self.read()
            self.samples.append((time.monotonic() - began, nodes))
            self.epochs.append(epoch)
            self.halt.wait(SAMPLE_EVERY)

    def stop(self):
        self.halt.set()
        self.join()
        return self.samples


def salt_run(cluster, *args):
    """``salt-run --out=json ARGS`` on the cluster's master: (seconds, CompletedProcess)."""
    venv_bin = pathlib.Path(sys.executable).parent
    cmd = [sys.executable, str(venv_bin / "salt-run"), "-c", str(cluster.master_dir)]
    cmd += ["--out=json", "--timeout=900", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT)
    return time.perf_counter() - start, proc


def sync_master(cluster):
    """The formula's runner and utilities onto the master (``salt-run saltutil.sync_all``)."""
    _seconds, proc = salt_run(cluster, "saltutil.sync_all")
    try:
        synced = json.loads(proc.stdout)
    except ValueError:
        synced = None
    if proc.returncode != 0 or not isinstance(synced, dict):
        raise RuntimeError(
            f"salt-run saltutil.sync_all failed: {(proc.stderr or proc.stdout)[-300:]}"
        )


def salt_run_upgrade(cluster, version, strategy):
    """``salt-run crane.upgrade``: (wall seconds, the engine's report)."""
    seconds, proc = salt_run(cluster, "crane.upgrade", f"version={version}", f"strategy={strategy}")
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(
            f"crane.upgrade {strategy}: no JSON (exit {proc.returncode}): {proc.stdout[-300:]!r}"
        ) from None
    if not isinstance(report, dict) or not report.get("ok"):
        summary = report.get("summary") if isinstance(report, dict) else report
        raise RuntimeError(f"crane.upgrade {strategy} failed: {str(summary)[:400]}")
    return seconds, report


def converged(cluster):
    """Every node at the pillar's version, every compute node idle."""
    _seconds, (failed, _changed, _) = apply(cluster, "crane")
    if failed:
        raise RuntimeError(f"state.apply crane: {failed} states failed before the upgrade")
    wait_all_idle(cluster)


def measure_strategy(cluster, availability, version, strategy):
    sampler = Sampler(cluster)
    sampler.start()
    try:
        seconds, report = salt_run_upgrade(cluster, version, strategy)
    finally:
        samples = sampler.stop()
    figures = availability(samples)
    figures["by_step"] = by_step(availability, samples, sampler.epochs, report.get("steps"))
    figures["wall"] = seconds
    figures["engine_seconds"] = report.get("seconds")
    figures["samples"] = len(samples)
    return figures


def by_step(availability, samples, epochs, steps):
    """``[(step name, most nodes unavailable at once during it)]`` from the engine's steps."""
    result = []
    for step in steps or []:
        start, end = step.get("start"), step.get("end")
        if start is None or end is None:
            continue
        during = [
            sample for sample, when in zip(samples, epochs, strict=True) if start <= when <= end
        ]
        if during:
            result.append((step.get("step"), availability(during)["max_unavailable"]))
    return result


@benchmark("upgrade")
def upgrade_rows(quick):
    availability, why = engine()
    if availability is None:
        return unmeasured(why)
    why = why_no_cluster(quick)
    if why:
        return unmeasured(why)
    spec = isolated_spec(CLUSTER_NAME, SUBNET)
    old, new = spec.repo_versions[0], spec.repo_versions[-1]
    figures = {}
    with harness.Cluster(spec, log=log) as cluster:
        sync_master(cluster)
        for index, strategy in enumerate(STRATEGIES):
            if index:
                log("rebooting every node bare for the next strategy")
                reboot_bare(cluster)
                cluster.sync_all()
            log(f"converging at {old}; then crane.upgrade {new} strategy={strategy}")
            converged(cluster)
            figures[strategy] = measure_strategy(cluster, availability, new, strategy)
        left = cluster.stop()
        if left:
            log(f"teardown left: {left}")
    return rows_from(figures, spec, old, new)


def rows_from(figures, spec, old, new):
    rolling, at_once = figures["rolling"], figures["all-at-once"]
    compute = len(spec.hostnames("compute"))

    def steps(fig):
        return ", ".join(f"{name} {count}" for name, count in fig["by_step"]) or "not reported"

    def gaps(fig):
        total = sum(fig["control_gaps"])
        return f"cinfo silent {total:.1f} s in {len(fig['control_gaps'])} gap(s)"

    context = (
        f"{old} -> {new}, {compute} compute nodes + control + login; rolling = canary then "
        "batches of 1"
    )
    longest = {
        name: f"{fig['longest_node']['node']}" if fig["longest_node"]["node"] else "none"
        for name, fig in figures.items()
    }
    values = {
        "total time": (rolling["wall"], at_once["wall"]),
        "longest single node unavailable": (
            rolling["longest_node"]["seconds"],
            at_once["longest_node"]["seconds"],
        ),
        "most nodes unavailable at once": (
            float(rolling["max_unavailable"]),
            float(at_once["max_unavailable"]),
        ),
    }
    notes = {
        "total time": (
            f"{context}; wall time of salt-run crane.upgrade (engine's own count: rolling "
            f"{rolling['engine_seconds']} s, all-at-once {at_once['engine_seconds']} s)"
        ),
        "longest single node unavailable": (
            f"down or drained in cinfo, sampled every {SAMPLE_EVERY} s; longest: rolling "
            f"{longest['rolling']}, all-at-once {longest['all-at-once']}; rolling "
            f"{gaps(rolling)}, all-at-once {gaps(at_once)} (not counted as node time)"
        ),
        "most nodes unavailable at once": (
            f"of {compute} compute nodes, from {rolling['samples']} / {at_once['samples']} "
            f"cinfo samples; by engine step: rolling {steps(rolling)}; all-at-once "
            f"{steps(at_once)}"
        ),
    }
    return [
        Row(
            SECTION,
            f"rolling vs all-at-once: {figure}",
            values[figure][0],
            unit,
            "all-at-once, same nodes",
            values[figure][1],
            notes[figure],
        )
        for figure, unit in FIGURES
    ]
