"""Converge rows: ``state.apply crane`` on a booted test cluster, against a plain SLS.

The cluster (control node, three compute nodes, one with fake GPUs, a login node) boots on a
bridge and subnet of its own (``CRANE_FORMULA_BENCH_NET=name:subnet`` moves them). Figures:

* bare nodes to every compute node idle in cinfo with ``salt '*' state.apply crane``; compared
  with the same nodes rebooted bare (their overlays are discarded) and converged by a plain
  SLS to the same end;
* an idempotent re-apply of ``crane``, compared with applying the plain SLS to the converged
  cluster; the difference is the share of the re-apply spent outside Salt's own work.

The plain SLS is made from each minion's own ``state.show_sls crane``: the same packages, files,
directories, users, grains and services with the same arguments and requisites, as literal
data, minus the formula's logic (its map.jinja/settings, its custom ``crane.*`` states: config
and gres validation, daemon health, the cinfo wait; and its ``test.*`` notices). It lives in a
file root of the benchmark's own, added to the cluster master's file_roots.
"""

import json
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

import crane_cinfo
import yaml

from bench.registry import benchmark
from bench.table import Row
from tests.cluster import demo, harness
from tests.cluster.spec import env_spec

SECTION = "converge"
# Own bridge and subnet; CRANE_FORMULA_BENCH_NET=name:subnet moves them (as for the tests).
NET_ENV = "CRANE_FORMULA_BENCH_NET"
NET_DEFAULT = "cfbench:10.213.30.0/24"
PLAIN_SLS = "bench_plain"
# Salt's own state modules the formula uses; everything else in its lowstate is its logic.
PLAIN_MODULES = {"pkgrepo", "pkg", "file", "user", "group", "service", "grains"}
REQUISITES = ("require", "watch", "onchanges", "onfail", "prereq", "listen", "use")
APPLY_TIMEOUT = 900
IDLE_TIMEOUT = 300
REPEATS = 5
FIGURES = (
    "state.apply crane: bare nodes to all compute nodes idle",
    "state.apply crane: idempotent re-apply",
    "share of the re-apply outside Salt's own work",
)


def log(message):
    print(f"[converge] {message}", file=sys.stderr, flush=True)


def skipped(reason):
    """One row per figure, none measured, each saying why."""
    return [Row(SECTION, figure, None, "s", note=reason) for figure in FIGURES]


def why_no_cluster(quick, rows="these rows boot a test cluster"):
    """Why a bench's cluster rows are not measured now (``--quick``, or nodes cannot be booted
    here), or None."""
    if quick:
        return f"skipped with --quick: {rows}"
    missing = demo.missing_prerequisites()
    if missing:
        return "skipped: nodes cannot be booted here, missing " + "; ".join(missing)
    return None


# --- the plain SLS -------------------------------------------------------------------------


# The formula's states that write a file from data read on the node (database.yaml: the
# secrets never travel in SLS data): the plain SLS writes the same file with file.managed and
# the file's content, read from a converged node, as literal data.
FILE_STATES = {"database_file": {"user": "crane", "group": "crane", "mode": "0600"}}


def plain_states(highstate, files=None):
    """One minion's ``state.show_sls crane`` as a plain SLS: Salt's own states only.
    ``files``: ``{path: content}`` of the files the formula's own file states write."""
    kept = {}
    for state_id, body in highstate.items():
        modules = [key for key in body if not key.startswith("__")]
        if modules == ["crane"] and is_file_state(body["crane"]):
            kept[state_id] = ("file", literal_file(state_id, body["crane"], files or {}))
        elif len(modules) == 1 and modules[0] in PLAIN_MODULES:
            kept[state_id] = (modules[0], body[modules[0]])
    plain = {}
    for state_id, (module, args) in kept.items():
        clean = []
        for arg in args:
            if isinstance(arg, dict) and len(arg) == 1:
                key, value = next(iter(arg.items()))
                if key.removesuffix("_in") in REQUISITES:
                    value = [kept_requisite(req, kept) for req in value]
                    value = [req for req in value if req is not None]
                    if not value:
                        continue
                clean.append({key: value})
            else:
                clean.append(arg)
        plain[state_id] = {module: clean}
    return plain


def is_file_state(args):
    """Whether a ``crane.*`` state's arguments are those of a formula file state."""
    return any(isinstance(arg, str) and arg in FILE_STATES for arg in args)


def kept_requisite(req, kept):
    """A requisite on kept states, on their plain module; None when it names another."""
    if not isinstance(req, dict):
        return req
    if not all(v in kept for v in req.values()):
        return None
    return {kept[v][0]: v for v in req.values()}


def literal_file(state_id, args, files):
    """A formula file state (``crane.database_file``) as ``file.managed`` arguments."""
    function = next(a for a in args if isinstance(a, str))
    options = dict(FILE_STATES[function])
    options.update(next(iter(a.items())) for a in args if isinstance(a, dict) and len(a) == 1)
    path = options.setdefault("name", state_id)
    if path not in files:
        raise RuntimeError(f"the plain SLS needs the content of {path} from a converged node")
    options.update(contents=files[path], show_changes=False)
    return ["managed", *({k: v} for k, v in options.items())]


def file_paths(highstate):
    """Paths of the files the formula's own file states write, in one minion's show_sls."""
    paths = []
    for state_id, body in highstate.items():
        args = body.get("crane") if isinstance(body, dict) else None
        if args and is_file_state(args):
            names = [a["name"] for a in args if isinstance(a, dict) and "name" in a]
            paths.append(names[0] if names else state_id)
    return paths


def read_files(cluster, show_sls):
    """``{minion: {path: content}}`` of those files on the (converged) nodes."""
    found = {}
    for minion, highstate in show_sls.items():
        for path in file_paths(highstate) if isinstance(highstate, dict) else []:
            text = cluster.sh(minion, f"cat {path}", check=True, timeout=30).stdout
            found.setdefault(minion, {})[path] = text
    return found


def write_plain_sls(root, show_sls, files=None):
    """``<root>/bench_plain/init.sls``: each minion's plain states, chosen by its id.
    ``files``: ``{minion: {path: content}}`` (:func:`read_files`)."""
    blocks = []
    for index, (minion, highstate) in enumerate(sorted(show_sls.items())):
        if not isinstance(highstate, dict):
            raise RuntimeError(f"state.show_sls crane failed on {minion}: {highstate}")
        keyword = "if" if index == 0 else "elif"
        states = plain_states(highstate, (files or {}).get(minion))
        text = yaml.safe_dump(states, default_flow_style=False, width=1000)
        blocks.append(f"{{% {keyword} grains['id'] == {json.dumps(minion)} %}}")
        blocks.append(f"{{% raw %}}\n{text}{{% endraw %}}")
    blocks.append("{% endif %}")
    path = pathlib.Path(root) / PLAIN_SLS / "init.sls"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(blocks) + "\n")
    return path


# --- applying and waiting ------------------------------------------------------------------


def summarize(returns):
    """(failed state count, changed state count, seconds in crane.* states) of a state run."""
    failed = changed = 0
    formula_ms = 0.0
    for minion, states in returns.items():
        if not isinstance(states, dict):
            raise RuntimeError(f"{minion} did not run the states: {str(states)[:300]}")
        for key, result in states.items():
            if result.get("result") is False:
                failed += 1
            if result.get("changes"):
                changed += 1
            if key.startswith(("crane_|", "test_|")):
                formula_ms += float(result.get("duration") or 0)
    return failed, changed, formula_ms / 1000


PROFILE = {}  # (sls, minion) -> {state key: [ms, ...]} over the timed re-applies


def record_durations(sls, returns):
    """Each state's duration of one run, kept for :func:`log_profile`."""
    for minion, states in returns.items():
        per_state = PROFILE.setdefault((sls, minion), {})
        for key, result in states.items():
            per_state.setdefault(key, []).append(float(result.get("duration") or 0))


def log_profile(top=12):
    """Where a re-apply's time goes, to stderr: per minion the summed state durations of
    ``crane`` and of the plain SLS, then the slowest states only ``crane`` has."""
    plain_keys, ours = set(), {}
    for (sls, minion), per_state in sorted(PROFILE.items()):
        total = sum(statistics.median(ms) for ms in per_state.values())
        log(f"profile: {sls} on {minion}: states sum to {total:.0f} ms (median per state)")
        if sls == PLAIN_SLS:
            plain_keys.update(per_state)
        else:
            ours.update({(minion, key): statistics.median(ms) for key, ms in per_state.items()})
    own = sorted(((ms, k) for k, ms in ours.items() if k[1] not in plain_keys), reverse=True)
    for minion in sorted({m for _, (m, _) in own}):
        mine = [ms for ms, (m, _) in own if m == minion]
        log(f"profile: crane on {minion}: its own {len(mine)} states sum to {sum(mine):.0f} ms")
    for ms, (minion, key) in own[:top]:
        log(f"profile: {ms:7.0f} ms {minion} {key}")


def apply(cluster, sls, profile=False):
    """``salt '*' state.apply SLS``: (seconds, (failed, changed, crane.* seconds))."""
    argv = ["--out=json", "--static", f"--timeout={APPLY_TIMEOUT}", "*", "state.apply", sls]
    start = time.perf_counter()
    proc = cluster.salt_cli(*argv, timeout=APPLY_TIMEOUT + 60)
    seconds = time.perf_counter() - start
    try:
        returns = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(f"state.apply {sls}: no JSON ({proc.stdout[-300:]!r})") from None
    missing = set(cluster.spec.hostnames()) - set(returns)
    if missing:
        raise RuntimeError(f"state.apply {sls}: no answer from {sorted(missing)}")
    summary = summarize(returns)
    if profile:
        record_durations(sls, returns)
    return seconds, summary


def idle_nodes(cluster):
    """Compute nodes cinfo on the control node shows idle (not drained), or None."""
    control = cluster.spec.hostnames("control")[0]
    result = cluster.sh(control, "cinfo --json", timeout=30)
    if result.returncode != 0:
        return None
    try:
        nodes = crane_cinfo.nodes_from_partitions(crane_cinfo.parse_cinfo_json(result.stdout))
    except crane_cinfo.CinfoParseError:
        return None
    return {name for name, state in nodes.items() if crane_cinfo.state_matches(state, ["idle"])}


def wait_all_idle(cluster, timeout=IDLE_TIMEOUT):
    wanted = set(cluster.spec.hostnames("compute"))
    deadline = time.monotonic() + timeout
    while True:
        idle = idle_nodes(cluster) or set()
        if wanted <= idle:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not idle in cinfo after {timeout}s: {sorted(wanted - idle)}")
        time.sleep(0.5)


def converge(cluster, sls):
    """Seconds from ``state.apply SLS`` on bare nodes until every compute node is idle."""
    start = time.perf_counter()
    apply_seconds, (failed, changed, _) = apply(cluster, sls)
    if failed:
        raise RuntimeError(f"state.apply {sls} on bare nodes: {failed} states failed")
    wait_all_idle(cluster)
    return time.perf_counter() - start, apply_seconds, changed


# --- the benchmark -------------------------------------------------------------------------


class BenchCluster(harness.Cluster):
    """The test cluster, with one more file root on its master for the plain SLS."""

    def __init__(self, spec, extra_root, **kwargs):
        super().__init__(spec, **kwargs)
        self.extra_root = str(extra_root)

    def _start_master(self):
        add_file_root(self, self.extra_root)
        super()._start_master()


def add_file_root(cluster, extra_root):
    """The formula's file roots and ``extra_root`` on the cluster's master (before it starts:
    the master reads master.d/*.conf next to its config file, after it)."""
    roots = [str(cluster.repo_root / "salt" / "states"), str(cluster.repo_root / "salt")]
    roots.append(str(extra_root))
    include = cluster.master_dir / "master.d"
    include.mkdir(parents=True, exist_ok=True)
    (include / "bench.conf").write_text(json.dumps({"file_roots": {"base": roots}}))


def reboot_bare(cluster):
    """Every node rebooted from the clean image (the formula's work is discarded)."""
    for name in cluster.spec.hostnames():
        cluster.stop_node(name)
    for name in cluster.spec.hostnames():
        cluster.start_node(name)


@benchmark("converge")
def converge_rows(quick):
    why = why_no_cluster(quick)
    if why:
        return skipped(why)
    spec = env_spec(NET_ENV, NET_DEFAULT)
    extra_root = tempfile.mkdtemp(prefix="crane-bench-plain-")
    try:
        with BenchCluster(spec, extra_root, log=log) as cluster:
            return measure(cluster, extra_root)
    finally:
        shutil.rmtree(extra_root, ignore_errors=True)


def measure(cluster, extra_root):
    spec = cluster.spec
    shape = (
        f"{len(spec.nodes)} nodes: {len(spec.hostnames('compute'))} compute "
        f"({sum(1 for n in spec.nodes if n.gpus)} with GPUs), control, login"
    )
    log("state.apply crane on bare nodes")
    ours_converge, ours_apply, ours_changed = converge(cluster, "crane")
    show = cluster.salt("*", "state.show_sls", "crane", timeout=300)
    write_plain_sls(extra_root, show, read_files(cluster, show))
    log("warm-up: the plain SLS on the converged cluster")
    _seconds, (failed, changed, _) = apply(cluster, PLAIN_SLS)
    if failed:
        raise RuntimeError(f"the plain SLS failed {failed} states on the converged cluster")
    plain_changes = changed
    reapply, plain, crane_state_seconds, reapply_changes = [], [], [], 0
    for round_ in range(REPEATS):
        log(f"re-apply round {round_ + 1}/{REPEATS}")
        seconds, (failed, changed, formula_seconds) = apply(cluster, "crane", profile=True)
        if failed:
            raise RuntimeError(f"re-apply of crane: {failed} states failed")
        reapply.append(seconds)
        crane_state_seconds.append(formula_seconds)
        reapply_changes = max(reapply_changes, changed)
        seconds, (failed, changed, _) = apply(cluster, PLAIN_SLS, profile=True)
        if failed:
            raise RuntimeError(f"plain SLS: {failed} states failed")
        plain.append(seconds)
        plain_changes = max(plain_changes, changed)
    log_profile()
    log("rebooting every node bare; the plain SLS on bare nodes")
    reboot_bare(cluster)
    try:
        plain_converge, plain_apply, _ = converge(cluster, PLAIN_SLS)
        plain_note = f"(plain: {plain_apply:.1f} s)"
    except RuntimeError as exc:  # the re-apply rows still stand
        plain_converge, plain_note = None, f"(plain SLS on bare nodes failed: {exc})"

    ours_re, plain_re = statistics.median(reapply), statistics.median(plain)
    share = (ours_re - plain_re) / ours_re * 100
    boot = cluster.timings.get("boot_to_minions")
    boot_note = f"; nodes booted to minions in {boot:.0f} s (not counted)" if boot else ""
    rows = [
        Row(
            SECTION,
            f"{FIGURES[0]} ({shape})",
            ours_converge,
            "s",
            "plain SLS, same nodes rebooted bare, to all idle",
            plain_converge,
            f"one run each; state.apply returned after {ours_apply:.1f} s "
            f"{plain_note}, then cinfo polled every 0.5 s; "
            f"{ours_changed} states changed{boot_note}",
        ),
        Row(
            SECTION,
            FIGURES[1],
            ours_re,
            "s",
            "plain SLS, same files and services, converged cluster",
            plain_re,
            f"median of {REPEATS} alternating runs; states changed: crane {reapply_changes}, "
            f"plain {plain_changes} (0 = idempotent)",
        ),
        Row(
            SECTION,
            FIGURES[2],
            share,
            "%",
            note=(
                f"(re-apply - plain apply) / re-apply = ({ours_re:.1f} - {plain_re:.1f}) / "
                f"{ours_re:.1f}; the formula's crane.*/test.* states themselves took "
                f"{statistics.median(crane_state_seconds):.1f} s summed over all minions"
            ),
        ),
    ]
    left = cluster.stop()
    if left:
        log(f"teardown left: {left}")
    return rows
