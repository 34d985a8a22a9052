"""Config at scale: rendering ``crane`` for big clusters, and validating their config.

For each cluster (nodes named ``cn0001``..., split into node groups, some with GPUs, and
partitions covering the groups) the control node's ``state.show_sls crane`` runs in a fresh
``salt-call --local`` process with its own config, file_roots and pillar_roots; its CPU time
(user + system, steadier than wall time on a shared host; wall time is in the note) and peak
RSS (both from ``wait4``) are compared with a ``salt-call`` of a trivial SLS that
writes the same config.yaml straight from the pillar with ``file.serialize``: Salt's own cost of
the same pillar, without the formula's logic. The rendered config.yaml is checked to keep every
node group as its compressed host list (never expanded) and its size is reported.

In-process rows time ``crane_config.validate`` (against expanding every host list of the
config, the least any check of node names must do) and the execution module's
``crane.settings`` (what map.jinja calls; against ``yaml.safe_dump`` of the same config).
"""

import copy
import importlib.util
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import crane_config
import crane_hostlist
import yaml

from bench import REPO
from bench.registry import benchmark, compare
from bench.table import Row

SECTION = "config scale"
FULL_SIZES = [(10, 1), (1000, 1), (1000, 100), (1000, 1000), (10000, 1), (10000, 100)]
FULL_SIZES += [(10000, 1000)]
QUICK_SIZES = [(10, 1), (40, 1), (40, 4)]
CONTROL = "cranectl"
LOGIN = "login01"
CONFIG_STATE = "crane-config-file-config-file-managed"
BASELINE_SLS = "bench_plain_config"
# Trivial SLS: the same config.yaml, straight from the pillar, through Salt's serializer.
BASELINE_TEXT = """\
bench-plain-config-yaml:
  file.serialize:
    - name: /etc/crane/config.yaml
    - serializer: yaml
    - dataset: {{ pillar["crane"]["config"] | json }}
"""
GRAINS = {
    "id": CONTROL,
    "host": CONTROL,
    "nodename": CONTROL,
    "fqdn": CONTROL,
    "os": "Debian",
    "os_family": "Debian",
    "osmajorrelease": 12,
    "osfinger": "Debian-12",
}
SALT_CALL_TIMEOUT = 900
MIB = 1024 * 1024


# --- pillars -------------------------------------------------------------------------------


def node_names(nodes):
    """``cn0001``..., at least four digits."""
    width = max(4, len(str(nodes)))
    return [f"cn{number:0{width}d}" for number in range(1, nodes + 1)]


def split(items, parts):
    """``items`` in ``parts`` contiguous slices of (nearly) equal length."""
    size, extra = divmod(len(items), parts)
    slices, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        slices.append(items[start:end])
        start = end
    return slices


def cluster_config(nodes, groups):
    """A realistic config.yaml: ``groups`` node groups over ``nodes`` nodes.

    The last tenth of the groups (when there are ten or more) are GPU groups with gres;
    partitions: up to four CPU partitions over the CPU groups, one GPU partition.
    """
    names = node_names(nodes)
    slices = split(names, groups)
    gpu_from = groups - groups // 10 if groups >= 10 else groups
    node_groups = []
    for index, members in enumerate(slices):
        group = {"name": crane_hostlist.compress(members), "cpu": 64, "memory": "256G"}
        if index >= gpu_from:
            group.update(cpu=96, memory="1024G")
            group["gres"] = [
                {
                    "name": "gpu",
                    "type": "a100",
                    "EnvInjector": "nvidia",
                    "DeviceFileRegex": "/dev/nvidia[0-7]",
                }
            ]
        node_groups.append(group)
    cpu_nodes = [name for members in slices[:gpu_from] for name in members]
    gpu_nodes = [name for members in slices[gpu_from:] for name in members]
    partitions = []
    for index, members in enumerate(split(cpu_nodes, min(4, gpu_from))):
        if members:
            nodes_expr = crane_hostlist.compress(members)
            partitions.append({"name": f"CPU{index + 1}", "nodes": nodes_expr, "priority": 5})
    if gpu_nodes:
        partitions.append({"name": "GPU", "nodes": crane_hostlist.compress(gpu_nodes)})
    example = yaml.safe_load((REPO / "pillar" / "crane" / "cluster.sls").read_text())
    config = copy.deepcopy(example["crane"]["config"])
    config.update(
        ClusterName=f"bench_{nodes}_{groups}",
        ControlMachine=CONTROL,
        Nodes=node_groups,
        Partitions=partitions,
        DefaultPartition=partitions[0]["name"],
    )
    return config


def cluster_pillar(nodes, groups):
    """The control node's whole pillar: the example's settings with a big cluster config."""
    example = yaml.safe_load((REPO / "pillar" / "crane" / "cluster.sls").read_text())
    database = yaml.safe_load((REPO / "pillar" / "crane" / "database.sls").read_text())
    crane = copy.deepcopy(example["crane"])
    crane.update(database["crane"])
    crane["login_nodes"] = [LOGIN]
    crane["config"] = cluster_config(nodes, groups)
    return {"crane": crane}


def expanded_size(config):
    """Bytes config.yaml would take with one Nodes entry per node (what must never happen)."""
    flat = copy.deepcopy(config)
    flat["Nodes"] = [
        dict(group, name=name)
        for group in config["Nodes"]
        for name in crane_hostlist.expand(group["name"])
    ]
    return len(crane_config.dump(flat).encode())


# --- salt-call in a fresh process ----------------------------------------------------------


class SaltCallRoot:
    """A masterless minion's own directory: config, pillar_roots, a file root for baselines."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.conf = self.root / "conf"
        self.pillar = self.root / "pillar"
        self.states = self.root / "states"
        for path in (self.conf, self.pillar, self.states):
            path.mkdir(parents=True, exist_ok=True)
        (self.states / f"{BASELINE_SLS}.sls").write_text(BASELINE_TEXT)
        (self.pillar / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["cluster"]}}))
        config = {
            "id": CONTROL,
            "file_client": "local",
            "root_dir": str(self.root),
            "cachedir": str(self.root / "cache"),
            "extension_modules": str(self.root / "cache" / "extmods"),
            "pki_dir": str(self.root / "pki"),
            "sock_dir": str(self.root / "run"),
            "log_file": str(self.root / "log" / "minion"),
            "log_level_logfile": "warning",
            "file_roots": {
                "base": [str(REPO / "salt" / "states"), str(REPO / "salt"), str(self.states)]
            },
            "pillar_roots": {"base": [str(self.pillar)]},
            "grains": GRAINS,
        }
        (self.conf / "minion").write_text(yaml.safe_dump(config))
        self.serial = 0

    def set_pillar(self, data):
        # A new file each time: Salt's file client caches by name and modification time.
        for old in self.pillar.glob("cluster*.sls"):
            old.unlink()
        self.serial += 1
        name = f"cluster{self.serial}"
        with open(self.pillar / f"{name}.sls", "w") as handle:
            yaml.safe_dump(data, handle, sort_keys=False)
        (self.pillar / "top.sls").write_text(yaml.safe_dump({"base": {"*": [name]}}))

    def call(self, *args):
        """``salt-call --local ARGS`` in a fresh process.

        Returns (wall seconds, CPU seconds (user + system), peak RSS bytes, parsed output).
        """
        salt_call = pathlib.Path(sys.executable).parent / "salt-call"
        cmd = [sys.executable, str(salt_call), "-c", str(self.conf), "--local", "--out=json"]
        cmd += ["--log-level=quiet", *args]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            try:
                _pid, status, usage = _wait4(proc, SALT_CALL_TIMEOUT)
            except TimeoutError:
                proc.kill()
                proc.wait()
                raise
            seconds = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            text, errors = out.read(), err.read()
        if proc.returncode != 0:
            tail = (errors or text).strip().splitlines()[-3:]
            raise RuntimeError(f"salt-call {' '.join(args)} exited {proc.returncode}: {tail}")
        # ru_maxrss is in KiB on Linux
        cpu = usage.ru_utime + usage.ru_stime
        return seconds, cpu, usage.ru_maxrss * 1024, json.loads(text)["local"]


def _wait4(proc, timeout):
    """``os.wait4`` on the child with a deadline: (pid, status, rusage of that child)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return pid, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError(f"salt-call still running after {timeout}s")
        time.sleep(0.01)


def rendered_config(lowstate):
    """The text ``crane`` would write as config.yaml, from ``state.show_sls`` output."""
    if not isinstance(lowstate, dict) or CONFIG_STATE not in lowstate:
        raise AssertionError(f"state.show_sls crane has no {CONFIG_STATE}: {str(lowstate)[:300]}")
    for arg in lowstate[CONFIG_STATE]["file"]:
        if isinstance(arg, dict) and "contents" in arg:
            return arg["contents"]
    raise AssertionError(f"{CONFIG_STATE} has no contents")


def check_compressed(text, config):
    """Node groups and partitions in the rendered config.yaml are the pillar's host lists."""
    written = yaml.safe_load(text)
    want = [group["name"] for group in config["Nodes"]]
    got = [group.get("name") for group in written.get("Nodes") or []]
    if got != want:
        raise AssertionError(
            f"config.yaml has {len(got)} node groups, the pillar {len(want)}: node groups "
            "were not written as given (expanded or changed)"
        )
    partitions = [p["nodes"] for p in config["Partitions"]]
    if [p.get("nodes") for p in written.get("Partitions") or []] != partitions:
        raise AssertionError("config.yaml partitions' node lists differ from the pillar's")


def measure_render(root, nodes, groups, repeats):
    """Median time and peak RSS of show_sls crane and of the baseline, and the config size."""
    pillar = cluster_pillar(nodes, groups)
    root.set_pillar(pillar)
    samples = {"ours": [], "baseline": []}
    text = None
    for _ in range(repeats):
        seconds, cpu, rss, lowstate = root.call("state.show_sls", "crane")
        text = rendered_config(lowstate)
        samples["ours"].append((seconds, rss, cpu))
        seconds, cpu, rss, lowstate = root.call("state.show_sls", BASELINE_SLS)
        if "bench-plain-config-yaml" not in lowstate:
            raise AssertionError(f"baseline SLS did not render: {str(lowstate)[:300]}")
        samples["baseline"].append((seconds, rss, cpu))
    check_compressed(text, pillar["crane"]["config"])
    medians = {
        name: (
            statistics.median(s for s, _, _ in values),
            statistics.median(r for _, r, _ in values),
            statistics.median(c for _, _, c in values),
        )
        for name, values in samples.items()
    }
    return medians, text, pillar


# --- in-process: validate and settings -----------------------------------------------------


class _Utils(dict):
    """``__utils__`` for the execution module outside Salt: ``"mod.func"`` from salt/_utils."""

    def __missing__(self, key):
        module, _, func = key.partition(".")
        value = getattr(importlib.import_module(module), func)
        self[key] = value
        return value


def load_execution_module(pillar):
    """salt/_modules/crane.py as the control node's minion would run it (dunders injected)."""
    spec = importlib.util.spec_from_file_location(
        "bench_crane_module", REPO / "salt" / "_modules" / "crane.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__utils__ = _Utils()
    module.__grains__ = dict(GRAINS)
    module.__pillar__ = pillar
    module.__context__ = {}
    module.__opts__ = {"test": False}
    return module


def parameter_layers():
    """The defaults and Debian layers map.jinja passes to crane.settings."""
    params = REPO / "salt" / "states" / "crane" / "parameters"
    defaults = yaml.safe_load((params / "defaults.yaml").read_text())["values"]
    debian = yaml.safe_load((params / "os_family" / "Debian.yaml").read_text())["values"]
    return defaults, debian


def expand_all(config):
    """Every host list of the config expanded: the floor of any check of node names."""
    names = [crane_hostlist.expand(group["name"]) for group in config["Nodes"]]
    names += [crane_hostlist.expand(p["nodes"]) for p in config["Partitions"]]
    return names


def measure_in_process(pillar, repeats):
    """Median seconds of validate, its floor, settings and its baseline, on one pillar."""
    config = pillar["crane"]["config"]
    result = crane_config.validate(config)
    if not result["valid"]:
        raise AssertionError(f"benchmark pillar is invalid: {result['errors'][:3]}")
    module = load_execution_module(pillar)
    defaults, debian = parameter_layers()
    data = module.settings(defaults, debian, pillar["crane"])
    if data["roles"] != ["control"]:
        raise AssertionError(f"crane.settings gave roles {data['roles']}, expected control")
    return compare(
        {
            "validate": lambda: crane_config.validate(config),
            "expand": lambda: expand_all(config),
            "settings": lambda: module.settings(defaults, debian, pillar["crane"]),
            "dump": lambda: yaml.safe_dump(config, default_flow_style=False),
        },
        repeats,
    )


# --- rows ----------------------------------------------------------------------------------


def label(nodes, groups):
    return f"{nodes:,} nodes in {groups:,} group{'s' if groups > 1 else ''}"


def growth_notes(figures):
    """For each size, how a figure grew from the next smaller size with the same groups.

    ``figures``: {(nodes, groups): value}. Returns {(nodes, groups): "x12 for x10 nodes"}.
    """
    notes = {}
    for (nodes, groups), value in figures.items():
        smaller = [n for (n, g) in figures if g == groups and n < nodes]
        if not smaller:
            continue
        base = max(smaller)
        if value > 0 and figures[(base, groups)] > 0:
            growth = value / figures[(base, groups)]
            notes[(nodes, groups)] = f"x{growth:.1f} for x{nodes // base} nodes"
        else:
            notes[(nodes, groups)] = f"no growth measurable against {base:,} nodes (noise)"
    return notes


@benchmark("config scale")
def config_scale_rows(quick):
    """show_sls crane vs a file.serialize SLS (time, peak RSS, size); validate; settings."""
    sizes = QUICK_SIZES if quick else FULL_SIZES
    repeats = 1 if quick else 5
    inproc_repeats = 3 if quick else 5
    root_dir = tempfile.mkdtemp(prefix="crane-bench-config-")
    try:
        root = SaltCallRoot(root_dir)
        root.call("saltutil.sync_all")
        render, inproc = {}, {}
        for nodes, groups in sizes:
            render[(nodes, groups)] = measure_render(root, nodes, groups, repeats)
            pillar = render[(nodes, groups)][2]
            inproc[(nodes, groups)] = measure_in_process(pillar, inproc_repeats)
    finally:
        shutil.rmtree(root_dir, ignore_errors=True)
    return render_rows(render, repeats) + in_process_rows(inproc, inproc_repeats)


def render_rows(render, repeats):
    runs = f"median of {repeats} fresh salt-call run{'s' if repeats > 1 else ''}"
    # CPU time of the process (user + system): the other processes of a busy host barely
    # move it, unlike wall time, so the overhead and its growth are taken from it.
    overhead = {key: m["ours"][2] - m["baseline"][2] for key, (m, _, _) in render.items()}
    growth = growth_notes(overhead)
    rss_growth = growth_notes({k: m["ours"][1] for k, (m, _, _) in render.items()})
    rows = []
    for (nodes, groups), (medians, text, pillar) in render.items():
        key = (nodes, groups)
        ours, base = medians["ours"], medians["baseline"]
        note = (
            f"{runs}; user+system CPU of the process (wall {ours[0] * 1000:,.0f} vs "
            f"{base[0] * 1000:,.0f} ms); formula overhead {overhead[key] * 1000:,.0f} ms CPU"
        )
        if key in growth:
            note += f" ({growth[key]})"
        rows.append(
            Row(
                SECTION,
                f"show_sls crane, control node, {label(nodes, groups)}: CPU time",
                ours[2] * 1000,
                "ms",
                "show_sls of file.serialize from pillar",
                base[2] * 1000,
                note,
            )
        )
        note = f"peak RSS of the salt-call process, {runs}"
        if key in rss_growth:
            note += f"; {rss_growth[key]}"
        rows.append(
            Row(
                SECTION,
                f"show_sls crane, control node, {label(nodes, groups)}: peak memory",
                ours[1] / MIB,
                "MiB",
                "show_sls of file.serialize from pillar",
                base[1] / MIB,
                note,
            )
        )
        config = pillar["crane"]["config"]
        plain = len(yaml.safe_dump(config, default_flow_style=False).encode())
        rows.append(
            Row(
                SECTION,
                f"rendered config.yaml, {label(nodes, groups)}: size",
                len(text.encode()) / 1024,
                "KiB",
                "pillar config as plain YAML",
                plain / 1024,
                f"{groups:,} node groups kept compressed (checked); "
                f"expanded it would be {expanded_size(config) / 1024:,.0f} KiB",
            )
        )
    return rows


def in_process_rows(inproc, repeats):
    rows = []
    validate_growth = growth_notes({k: m["validate"] for k, m in inproc.items()})
    settings_growth = growth_notes({k: m["settings"] for k, m in inproc.items()})
    for (nodes, groups), medians in inproc.items():
        key = (nodes, groups)
        extra = f"; {validate_growth[key]}" if key in validate_growth else ""
        rows.append(
            Row(
                SECTION,
                f"crane_config.validate, {label(nodes, groups)}",
                medians["validate"] * 1000,
                "ms",
                "expanding every host list of the config",
                medians["expand"] * 1000,
                f"in-process, median of {repeats} runs{extra}",
            )
        )
        extra = f"; {settings_growth[key]}" if key in settings_growth else ""
        rows.append(
            Row(
                SECTION,
                f"crane.settings (map.jinja's call), control node, {label(nodes, groups)}",
                medians["settings"] * 1000,
                "ms",
                "yaml.safe_dump of the same config",
                medians["dump"] * 1000,
                f"in-process, median of {repeats} runs; each the first call of a state run (the "
                f"later renders of the run reuse its config's YAML){extra}",
            )
        )
    return rows
