"""Onboarding rows: the scale cluster grown by nodes that join by themselves.

The cluster starts with the control node and the first size's compute nodes named in the pillar
(``cn[01-05]``); every further node boots with the grain ``crane_partition: CPU``, which a node
group by selector (cpu and memory ``auto``) and the CPU partition take, so no pillar edit adds
it. The master runs the formula's join reactor. At every further size the new nodes boot
(``BOOT_BATCH`` at a time, as a rack is powered on) and the run waits until every compute node
is idle in cinfo and no join is queued or running; the join time per node is that over the
number of new nodes, with the master's CPU and the number of cranectld starts (one per
cluster-wide join step: nodes started together join together). At every size, ``state.apply
crane`` re-applied (0 changes) alternating with the plain SLS doing the same file and service
work, wall time and master CPU; at the largest size one rolling ``crane.restart batch=25%``,
every node idle before and after.

Sizes: ``CRANE_FORMULA_SCALE_SIZES`` (as the scale-out rows); network:
``CRANE_FORMULA_ONBOARD_NET``.
"""

import dataclasses
import itertools
import sys
import time

from bench.converge import (
    PLAIN_SLS,
    add_file_root,
    idle_nodes,
    read_files,
    wait_all_idle,
    why_no_cluster,
    write_plain_sls,
)
from bench.registry import benchmark
from bench.scale_out import (
    REPEATS,
    RESTART_BATCH,
    ScaleBenchCluster,
    apply_sls,
    check_idle,
    in_cluster,
    linearity,
    median,
    per_node_growth,
    rolling_restart,
    sizes,
)
from bench.table import Row
from tests.cluster import harness
from tests.cluster.scale import (
    CONTROL,
    compute_names,
    first,
    master_pid,
    scale_pillar,
    tree_cpu_seconds,
)
from tests.cluster.spec import NodeSpec, env_spec

NAME = "onboarding"
NET_VARIABLE = "CRANE_FORMULA_ONBOARD_NET"
NET_DEFAULT = "cfonb:10.213.75.0/24"
GRAIN = ("crane_partition", "CPU")
MATCH = "G@crane_partition:CPU"
REACTORS = (("salt/minion/*/start", "salt://reactor/join.sls"),)
JOIN_TIMEOUT = 3600  # only stops a hung run; the seconds taken are the figure
QUIET = 10  # seconds with no join queued or running before the joins count as ended


def log(message):
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


def onboard_spec(steps):
    """The control node, ``steps[0]`` compute nodes named in the pillar, and the rest up to
    ``steps[-1]`` with the selector's grain."""
    names = compute_names(steps[-1])
    nodes = [NodeSpec(CONTROL, "control")]
    nodes += [NodeSpec(n) for n in names[: steps[0]]]
    nodes += [NodeSpec(n, grains=(GRAIN,)) for n in names[steps[0] :]]
    return env_spec(NET_VARIABLE, NET_DEFAULT, tuple(nodes), reactors=REACTORS)


class OnboardCluster(ScaleBenchCluster):
    """The scale cluster whose pillar names only the first nodes and selects the others."""

    def __init__(self, full_spec, size, extra_root, **kwargs):
        super().__init__(full_spec, size, extra_root, **kwargs)
        self.static = size

    def _start_master(self):
        add_file_root(self, self.extra_root)
        self.write_pillar(*self.onboard_pillar(), refresh=False)
        harness.Cluster._start_master(self)  # not ScaleCluster's: it writes its own pillar

    def onboard_pillar(self):
        sls, top = scale_pillar(first(self.full_spec, self.static), self.repo_root)
        config = sls["crane.cluster"]["crane"]["config"]
        config["Nodes"].append({"match": MATCH, "cpu": "auto", "memory": "auto"})
        config["Partitions"][0]["match"] = MATCH
        return sls, top

    def grow(self, size):
        """The next compute nodes, up to ``size``, in the spec (nothing booted, no pillar
        edit: the selector takes them); their host names."""
        old = set(self.spec.hostnames())
        self.spec = first(self.full_spec, size)
        self._write_node_files()
        return [name for name in self.spec.hostnames() if name not in old]

    @property
    def state_dir(self):
        """The runner's state directory on the master: the run lock and the join queue."""
        return self.master_dir / "root" / "cache" / "crane"

    def joins_busy(self):
        queued = list((self.state_dir / "join-queue").glob("*.json"))
        return bool(queued) or (self.state_dir / "crane-run.lock").exists()

    def cranectld_starts(self, since):
        """How often cranectld started on the control node since ``since`` (epoch seconds)."""
        out = self.sh(
            CONTROL, f"journalctl -u cranectld --since @{int(since)} -o cat --no-pager"
        ).stdout
        return sum(1 for line in out.splitlines() if line.startswith("Started "))


@dataclasses.dataclass
class Onboarded:
    """New nodes; seconds and master CPU from their boot until every node is idle and no
    join runs; cranectld starts meanwhile (cluster-wide join steps)."""

    new: list
    seconds: float
    master_cpu: float
    ctld_starts: int


def wait_joined(cluster, began):
    """Until every compute node is idle and no join has been queued or running for QUIET s."""
    wanted = set(cluster.spec.hostnames("compute"))
    quiet_since = None
    while True:
        idle = idle_nodes(cluster) or set()
        settled = wanted <= idle and not cluster.joins_busy()
        if not settled:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET:
            return time.monotonic() - QUIET
        if time.monotonic() - began > JOIN_TIMEOUT:
            raise RuntimeError(f"joins not done after {JOIN_TIMEOUT}s: {sorted(wanted - idle)}")
        time.sleep(1)


def onboard(cluster, size):
    """Boot the nodes up to ``size`` and let them join: an Onboarded."""
    new = cluster.grow(size)
    pid = master_pid(cluster)
    cpu, wall, began = tree_cpu_seconds(pid), time.time(), time.monotonic()
    cluster.boot_nodes(new)
    ended = wait_joined(cluster, began)
    onboarded = Onboarded(
        new, ended - began, tree_cpu_seconds(pid) - cpu, cluster.cranectld_starts(wall)
    )
    check_no_restart_due(cluster)
    return onboarded


def check_no_restart_due(cluster):
    """The joins' closing rolling restarts leave no daemon with its restart still due."""
    due = {m: sorted(d) for m, d in cluster.salt("*", "crane.restart_pending").items() if d}
    if due:
        raise RuntimeError(f"after the joins, restarts still due: {due}")


def reapplies(cluster, extra_root):
    """``crane`` and the plain SLS re-applied, alternating: ``(crane runs, plain runs)``."""
    check_idle(cluster, "before the re-applies")
    show = cluster.salt("*", "state.show_sls", "crane", timeout=600)
    write_plain_sls(extra_root, show, read_files(cluster, show))
    apply_sls(cluster, PLAIN_SLS)  # warm-up
    crane, plain = [], []
    for _round in range(REPEATS):
        crane.append(apply_sls(cluster, "crane"))
        plain.append(apply_sls(cluster, PLAIN_SLS))
    return crane, plain


def measure(cluster, steps, extra_root):
    figures = {"joins": {}, "reapply": {}}
    log(f"{steps[0]} named nodes: converging with crane (set-up)")
    apply_sls(cluster, "crane")
    wait_all_idle(cluster)
    figures["reapply"][steps[0]] = reapplies(cluster, extra_root)
    for size in steps[1:]:
        log(f"booting the nodes up to {size}; they join by themselves")
        figures["joins"][size] = onboard(cluster, size)
        log(f"{size} nodes idle: {figures['joins'][size]}")
        figures["reapply"][size] = reapplies(cluster, extra_root)
    check_idle(cluster, "before the rolling restart")
    figures["restart"] = rolling_restart(cluster)
    wait_all_idle(cluster)
    check_idle(cluster, "after the rolling restart")
    return figures


@benchmark(NAME)
def onboarding_rows(quick):
    why = why_no_cluster(quick, "these rows boot up to 33 nodes")
    if why:
        return [Row(NAME, "onboarding cluster rows", None, "s", note=why)]
    steps = sizes()
    figures = in_cluster(
        lambda root: OnboardCluster(onboard_spec(steps), steps[0], root, log=log),
        "crane-bench-onboard-",
        lambda cluster, root: measure(cluster, steps, root),
        log=log,
    )
    return rows_from(steps, figures)


def rows_from(steps, figures):
    rows = []
    for before, size in itertools.pairwise(steps):
        joined = figures["joins"][size]
        count = len(joined.new)
        rows.append(Row(
            NAME, f"join time per node by onboarding, {before} -> {size} ({count} new)",
            joined.seconds / count, "s",
            note=f"boot -> every node idle, no join running: {joined.seconds:.0f} s in all; "
            f"master CPU {joined.master_cpu / count:.2f} s per node; cluster-wide join steps "
            f"(cranectld starts): {joined.ctld_starts}",
        ))  # fmt: skip
    for size in steps:
        crane, plain = figures["reapply"][size]
        rows.append(Row(
            NAME, f"re-apply (idempotent), grown by onboarding: {size} compute nodes",
            median(crane, "seconds"), "s", "plain SLS, same nodes", median(plain, "seconds"),
            f"median of {REPEATS} alternating runs; states changed: crane "
            f"{max(r.changed for r in crane)}, plain {max(r.changed for r in plain)}",
        ))  # fmt: skip
        rows.append(Row(
            NAME, f"master CPU, re-apply: {size} compute nodes", median(crane, "master_cpu"),
            "s", "plain SLS", median(plain, "master_cpu"), "salt-master process tree; median",
        ))  # fmt: skip
    restart = figures["restart"]
    rows.append(Row(
        NAME, f"rolling restart batch={RESTART_BATCH} after onboarding: {steps[-1]} nodes",
        restart.seconds, "s", note=f"every node idle before and after; master CPU "
        f"{restart.master_cpu:.1f} s",
    ))  # fmt: skip
    rows += growth_rows(steps, figures)
    return rows


def growth_rows(steps, figures):
    """Per-node cost at the largest size over the smallest, for what was measured at both."""
    rows = []
    small, large = steps[0], steps[-1]
    if len(steps) > 2:
        first_join, last_join = figures["joins"][steps[1]], figures["joins"][large]
        ratio = per_node_growth(
            len(first_join.new), len(last_join.new), first_join.seconds, last_join.seconds
        )
        rows.append(Row(
            NAME, f"growth of the join time per node, {steps[1]} -> {large}", ratio, "x",
            note=f"per new node, last growth over first; 1.0 = linear: {linearity(ratio)}",
        ))  # fmt: skip
    for label, field in (("re-apply", "seconds"), ("master CPU, re-apply", "master_cpu")):
        ours = [median(figures["reapply"][n][0], field) for n in (small, large)]
        ratio = per_node_growth(small, large, *ours)
        rows.append(Row(
            NAME, f"growth {small} -> {large} nodes, per node: {label} (onboarded)", ratio, "x",
            note=f"1.0 = linear: {linearity(ratio)}; {ours[0]:.1f} s at {small}, "
            f"{ours[1]:.1f} s at {large}",
        ))  # fmt: skip
    return rows
