"""Scale-out rows: the formula on one control node and 5, 16 and 32 compute nodes booted on this
machine, against a plain SLS doing the same file and service work on the same nodes.

The cluster starts at the smallest size and grows to each next one with ``GROW``
(``grow_by_pillar``: the pillar lists the new nodes; ``bench.onboarding`` grows it by nodes
that join by themselves instead). At every size:

* ``state.apply crane`` re-applied to the converged cluster (0 changes), alternating with the
  plain SLS (``bench.converge.plain_states`` of each minion's ``state.show_sls crane``);
* the first apply: every node rebooted bare, the plain SLS to all idle; rebooted bare again,
  ``crane`` to all idle;
* for each, the wall time and the CPU seconds of the salt-master's process tree (from /proc).

At the largest size, one rolling ``salt-run crane.restart batch=25%``, every node idle in cinfo
before and after. Node cost: a bare compute node's memory and boot time against the test
cluster's usual node (booted first, same shape, same run), and a converged node's memory.
Each figure per node at the largest size against the smallest says whether it grows faster
than linearly.

Sizes: ``CRANE_FORMULA_SCALE_SIZES`` (default ``5,16,32``); network: ``CRANE_FORMULA_SCALE_NET``.
"""

import dataclasses
import itertools
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

import crane_engine

from bench.converge import (
    PLAIN_SLS,
    add_file_root,
    idle_nodes,
    read_files,
    summarize,
    wait_all_idle,
    why_no_cluster,
    write_plain_sls,
)
from bench.registry import benchmark
from bench.table import Row, format_table
from bench.upgrade import salt_run
from tests.cluster.scale import (
    CONTROL,
    ScaleCluster,
    master_pid,
    scale_spec,
    timed,
    tree_cpu_seconds,
)

NAME = "scale-out"
NET_VARIABLE = "CRANE_FORMULA_SCALE_NET"
NET_DEFAULT = "cfscale:10.213.74.0/24"
SIZES_VARIABLE = "CRANE_FORMULA_SCALE_SIZES"
DEFAULT_SIZES = "5,16,32"
REPEATS = 2
RESTART_BATCH = "25%"
APPLY_TIMEOUT = 1200
LINEAR_LIMIT = 1.25  # per-node cost at the largest size over the smallest: above it, superlinear
# pillar overrides of one apply
NO_VERIFY = {"crane": {"verify": {"enabled": False}}}
NO_RESTART = {"crane": {"restart": "never"}}


def log(message):
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


def sizes(text=None):
    """The compute node counts to measure, ascending (``CRANE_FORMULA_SCALE_SIZES``)."""
    text = text if text is not None else os.environ.get(SIZES_VARIABLE, DEFAULT_SIZES)
    try:
        found = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"{SIZES_VARIABLE}={text!r}: give node counts like 5,16,32") from None
    if not found or found[0] < 1 or found[-1] > 99:
        raise ValueError(f"{SIZES_VARIABLE}={text!r}: node counts from 1 to 99")
    return found


# --- one timed call ------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One measured step: wall seconds, the salt-master's CPU seconds, states changed."""

    seconds: float
    master_cpu: float
    changed: int = 0


def measured(cluster, func, *args, **kwargs):
    """``(Run without changes, result)`` of ``func(*args, **kwargs)``."""
    pid = master_pid(cluster)
    before = tree_cpu_seconds(pid)
    seconds, result = timed(func, *args, **kwargs)
    return Run(seconds, tree_cpu_seconds(pid) - before), result


def apply_sls(cluster, sls, targets=None, pillar=None):
    """``salt -L TARGETS state.apply SLS [pillar=...]`` (every node when None): a Run;
    RuntimeError naming the failed states or the nodes that did not answer."""
    targets = targets or cluster.spec.hostnames()
    argv = ["--out=json", "--static", f"--timeout={APPLY_TIMEOUT}", "-L", ",".join(targets)]
    argv += ["state.apply", sls] + ([f"pillar={json.dumps(pillar)}"] if pillar else [])
    run, proc = measured(cluster, cluster.salt_cli, *argv, timeout=APPLY_TIMEOUT + 60)
    try:
        returns = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"state.apply {sls}: no JSON ({proc.stdout[-300:]!r})") from None
    missing = sorted(set(targets) - set(returns))
    if missing:
        raise RuntimeError(f"state.apply {sls}: no answer from {missing}")
    failures = {m: crane_engine.state_failures(r) for m, r in returns.items()}
    failures = {m: f for m, f in failures.items() if f}
    if failures:
        raise RuntimeError(f"state.apply {sls} failed: {str(failures)[:800]}")
    run.changed = summarize(returns)[1]
    if run.changed:
        log(f"state.apply {sls} changed: {changed_states(returns)[:10]}")
    return run


def changed_states(returns):
    """``minion: state id`` of each state that changed something."""
    return [f"{minion}: {result.get('__id__', key)}" for minion, states in sorted(returns.items())
            for key, result in states.items() if result.get("changes")]  # fmt: skip


def converge_bare(cluster, sls):
    """Every node rebooted bare, then ``state.apply SLS`` until every compute node is idle:
    ``(Run to all idle, bare compute node memory)``."""
    cluster.reboot_bare()
    bare = memory_summary(cluster, cluster.spec.hostnames("compute"))
    pid, began = master_pid(cluster), time.perf_counter()
    before = tree_cpu_seconds(pid)
    run = apply_sls(cluster, sls)
    wait_all_idle(cluster)
    run.seconds = time.perf_counter() - began
    run.master_cpu = tree_cpu_seconds(pid) - before
    return run, bare


def rolling_restart(cluster):
    """``salt-run crane.restart batch=25%``: a Run; RuntimeError when the engine failed."""
    run, (_seconds, proc) = measured(
        cluster, salt_run, cluster, "crane.restart", f"batch={RESTART_BATCH}"
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"crane.restart: no JSON: {proc.stdout[-300:]!r}") from None
    if not isinstance(report, dict) or not report.get("ok"):
        summary = report.get("summary") if isinstance(report, dict) else report
        raise RuntimeError(f"crane.restart batch={RESTART_BATCH} failed: {str(summary)[:400]}")
    return run


def check_idle(cluster, when):
    """Every compute node idle in cinfo now; RuntimeError naming the others."""
    wanted = set(cluster.spec.hostnames("compute"))
    idle = idle_nodes(cluster) or set()
    if not wanted <= idle:
        raise RuntimeError(f"{when}: not idle in cinfo: {sorted(wanted - idle)}")


# --- growing ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Growth:
    """New nodes, seconds from their boot until every compute node is idle, and by phase."""

    new: list
    seconds: float
    phases: dict


def grow_by_pillar(cluster, size):
    """Add compute nodes the way it is done today: boot them with the pillar listing them,
    ``crane`` on the control node (cranectld restarts with the new config; its verify step
    would wait for nodes not set up yet, so it is off), ``crane`` on every compute node with
    restarts held back (the new craned start, the running ones keep running with the old
    config), then a rolling ``crane.restart`` so every daemon runs the new config."""
    began = time.perf_counter()
    new = cluster.extend(size)
    phases = {"boot": timed(cluster.boot_nodes, new)[0]}
    cluster.salt("*", "saltutil.refresh_pillar", wait=True)
    phases["control"] = apply_sls(cluster, "crane", [CONTROL], NO_VERIFY).seconds
    phases["compute"] = apply_sls(
        cluster, "crane", cluster.spec.hostnames("compute"), NO_RESTART
    ).seconds
    phases["restart"] = rolling_restart(cluster).seconds
    idle_began = time.perf_counter()
    wait_all_idle(cluster)
    phases["idle"] = time.perf_counter() - idle_began
    return Growth(new, time.perf_counter() - began, phases)


# Onboarding by the reactor swaps this for a function of the same shape.
GROW = grow_by_pillar


# --- memory ------------------------------------------------------------------------------------


def memory_summary(cluster, hostnames):
    """Median MiB over the nodes: ``{"pss", "rss", "tmpfs"}``."""
    each = [cluster.node_memory(name) for name in hostnames]
    return {key: statistics.median(m[key] for m in each) for key in ("pss", "rss", "tmpfs")}


def mem_available():
    """The host's MemAvailable, MiB."""
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def default_node_cost(spec, size):
    """Boot time and bare compute node memory of the test cluster's usual nodes."""
    with ScaleCluster(spec, size, light=False, log=log) as cluster:
        memory = memory_summary(cluster, cluster.spec.hostnames("compute"))
        return cluster.timings["boot_to_minions"], memory


# --- the benchmark -------------------------------------------------------------------------


class ScaleBenchCluster(ScaleCluster):
    """The scale cluster, with one more file root on its master for the plain SLS."""

    def __init__(self, full_spec, size, extra_root, **kwargs):
        super().__init__(full_spec, size, **kwargs)
        self.extra_root = extra_root

    def _start_master(self):
        add_file_root(self, self.extra_root)
        super()._start_master()


def measure_size(cluster, extra_root):
    """Re-applies and first applies at the cluster's current size: a dict of figures."""
    check_idle(cluster, "before the re-applies")
    show = cluster.salt("*", "state.show_sls", "crane", timeout=600)
    write_plain_sls(extra_root, show, read_files(cluster, show))
    warm = apply_sls(cluster, PLAIN_SLS)
    crane, plain = [], []
    for round_ in range(REPEATS):
        log(f"{len(cluster.spec.hostnames('compute'))} nodes: re-apply round {round_ + 1}")
        crane.append(apply_sls(cluster, "crane"))
        plain.append(apply_sls(cluster, PLAIN_SLS))
    log("first apply: plain SLS on bare nodes, then crane on bare nodes")
    plain_first, bare = converge_bare(cluster, PLAIN_SLS)
    crane_first, _ = converge_bare(cluster, "crane")
    converged = memory_summary(cluster, cluster.spec.hostnames("compute"))
    control = cluster.node_memory(CONTROL)
    return {
        "reapply": crane,
        "plain": plain,
        "warm_changed": warm.changed,
        "first": crane_first,
        "plain_first": plain_first,
        "bare": bare,
        "converged": converged,
        "control": control,
    }


def measure(cluster, steps, extra_root):
    figures = {"boot": cluster.timings["boot_to_minions"], "sizes": {}, "growth": {}}
    figures["bare"] = memory_summary(cluster, cluster.spec.hostnames("compute"))
    figures["inotify"] = statistics.median(map(cluster.node_inotify, cluster.spec.hostnames()))
    log(f"{steps[0]} nodes: converging with crane (set-up)")
    apply_sls(cluster, "crane")
    wait_all_idle(cluster)
    for index, size in enumerate(steps):
        if index:
            log(f"growing to {size} compute nodes")
            figures["growth"][size] = GROW(cluster, size)
        figures["sizes"][size] = measure_size(cluster, extra_root)
        log(format_table(size_rows(size, figures["sizes"][size]), title=f"{size} nodes"))
    check_idle(cluster, "before the rolling restart")
    log(f"rolling restart batch={RESTART_BATCH}")
    figures["restart"] = rolling_restart(cluster)
    wait_all_idle(cluster)
    check_idle(cluster, "after the rolling restart")
    figures["mem_available"] = mem_available()
    return figures


@benchmark(NAME)
def scale_rows(quick):
    why = why_no_cluster(quick, "these rows boot up to 33 nodes")
    if why:
        return skipped(why)
    steps = sizes()
    spec = scale_spec(steps[-1], NET_VARIABLE, NET_DEFAULT)
    log(f"the test cluster's usual nodes, {steps[0]} compute: node-cost baseline")
    default = default_node_cost(spec, steps[0])
    host_before = mem_available()
    figures = in_cluster(
        lambda root: ScaleBenchCluster(spec, steps[0], root, log=log),
        "crane-bench-scale-",
        lambda cluster, root: measure(cluster, steps, root),
    )
    figures["host_used"] = host_before - figures["mem_available"]
    return rows_from(figures, default, steps)


def in_cluster(make_cluster, prefix, measure, log=log):
    """``measure(cluster, extra_root)`` in the cluster ``make_cluster(extra_root)`` boots
    (an extra file root made for it), torn down after: what ``measure`` returns."""
    extra_root = tempfile.mkdtemp(prefix=prefix)
    try:
        with make_cluster(extra_root) as cluster:
            figures = measure(cluster, extra_root)
            left = cluster.stop()
        if left:
            log(f"teardown left: {left}")
    finally:
        shutil.rmtree(extra_root, ignore_errors=True)
    return figures


# --- rows ----------------------------------------------------------------------------------------


def skipped(reason):
    return [Row(NAME, "scale-out cluster rows", None, "s", note=reason)]


def median(runs, field):
    return statistics.median(getattr(run, field) for run in runs)


def per_node_growth(small, large, value_small, value_large):
    """Per-node cost at ``large`` nodes over per-node cost at ``small`` (1.0 = linear)."""
    return (value_large / large) / (value_small / small)


def linearity(ratio):
    return "grows faster than linearly" if ratio > LINEAR_LIMIT else "linear or better"


def size_rows(size, fig):
    label = f"{size} compute nodes + control"
    first, plain_first = fig["first"], fig["plain_first"]
    return [
        Row(NAME, f"first apply, bare to all idle: {label}", first.seconds, "s",
            "plain SLS, same nodes rebooted bare", plain_first.seconds,
            f"{first.seconds / size:.2f} s per compute node; states changed: crane "
            f"{first.changed}, plain {plain_first.changed}"),
        Row(NAME, f"master CPU, first apply: {label}", first.master_cpu, "s",
            "plain SLS", plain_first.master_cpu, "salt-master process tree, user + system"),
        Row(NAME, f"re-apply (idempotent): {label}", median(fig["reapply"], "seconds"), "s",
            "plain SLS, converged cluster", median(fig["plain"], "seconds"),
            f"median of {REPEATS} alternating runs; states changed: crane "
            f"{max(r.changed for r in fig['reapply'])}, plain "
            f"{max(r.changed for r in fig['plain'])} (warm-up plain run: {fig['warm_changed']})"),
        Row(NAME, f"master CPU, re-apply: {label}", median(fig["reapply"], "master_cpu"), "s",
            "plain SLS", median(fig["plain"], "master_cpu"),
            "salt-master process tree, user + system; median"),
    ]  # fmt: skip


def first_seconds(fig, key="first"):
    return fig[key].seconds


def reapply_seconds(fig, key="reapply"):
    return median(fig[key], "seconds")


# figure, its value at one size, the plain SLS's (None: no baseline)
GROWTH_FIGURES = (
    ("first apply", first_seconds, lambda fig: first_seconds(fig, "plain_first")),
    ("master CPU, first apply", lambda fig: fig["first"].master_cpu, None),
    ("re-apply", reapply_seconds, lambda fig: reapply_seconds(fig, "plain")),
    ("master CPU, re-apply", lambda fig: median(fig["reapply"], "master_cpu"), None),
)


def growth_rows(steps, figures):
    small, large = steps[0], steps[-1]
    rows = []
    for figure, ours, plain in GROWTH_FIGURES:
        ratio = per_node_growth(small, large, ours(figures[small]), ours(figures[large]))
        note = f"per node at {large} / per node at {small}; 1.0 = linear: {linearity(ratio)}"
        if plain:
            base = per_node_growth(small, large, plain(figures[small]), plain(figures[large]))
            note += f" (plain SLS: {base:.2f}, {linearity(base)})"
        title = f"growth {small} -> {large} nodes, per node: {figure}"
        rows.append(Row(NAME, title, ratio, "x", note=note))
    return rows


def join_rows(steps, growth):
    rows = []
    for before, size in itertools.pairwise(steps):
        grown = growth[size]
        phases = ", ".join(f"{k} {v:.0f} s" for k, v in grown.phases.items())
        rows.append(Row(
            NAME, f"join time per node, {before} -> {size} ({len(grown.new)} new)",
            grown.seconds / len(grown.new), "s",
            note=f"{GROW.__name__}: boot -> every node idle, {grown.seconds:.0f} s in all "
            f"({phases})",
        ))  # fmt: skip
    return rows


def node_rows(figures, default, steps):
    boot, bare = default
    light = figures["bare"]
    large = figures["sizes"][steps[-1]]
    conv, control = large["converged"], large["control"]
    n = steps[0] + 1
    return [
        Row(NAME, "node cost: bare compute node, PSS of its processes", light["pss"], "MiB",
            "the test cluster's usual node", bare["pss"],
            f"median; RSS {light['rss']:.0f} MiB (usual {bare['rss']:.0f}); RAM file systems "
            f"{light['tmpfs']:.1f} MiB (usual {bare['tmpfs']:.1f}); "
            f"{figures['inotify']:.0f} inotify instances"),
        Row(NAME, f"boot {n} nodes to every minion answering", figures["boot"], "s",
            "the test cluster's usual nodes", boot, f"{n} nodes started together"),
        Row(NAME, f"node cost: converged compute node at {steps[-1]} nodes",
            conv["pss"] + conv["tmpfs"], "MiB",
            note=f"PSS {conv['pss']:.0f} + RAM file systems {conv['tmpfs']:.1f} MiB (median); "
            f"control node {control['pss'] + control['tmpfs']:.0f} MiB; host MemAvailable "
            f"fell by {figures['host_used'] / 1024:.1f} GiB with {steps[-1] + 1} nodes up"),
    ]  # fmt: skip


def rows_from(figures, default, steps):
    rows = node_rows(figures, default, steps)
    for size in steps:
        rows += size_rows(size, figures["sizes"][size])
    rows += join_rows(steps, figures["growth"])
    restart = figures["restart"]
    rows.append(Row(
        NAME, f"rolling restart, crane.restart batch={RESTART_BATCH}: {steps[-1]} compute nodes",
        restart.seconds, "s",
        note="every node idle in cinfo before and after (checked); master CPU "
        f"{restart.master_cpu:.1f} s",
    ))  # fmt: skip
    if len(steps) > 1:
        rows += growth_rows(steps, figures["sizes"])
    return rows
