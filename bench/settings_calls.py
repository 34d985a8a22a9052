"""Work done once per run: ``crane.settings`` computations and Salt mine reads in one
``state.apply crane`` on a control node.

The apply runs in this process on a masterless minion (the render and functional tests' own,
``tests/support/caller.py``) with the control node's grains and the example pillar, with
``test=True`` since this host is no node: the same SLS files render and the same states run,
so the formula asks for its settings and the mine as often as in a real run. Automatic gres
mode and ``/etc/hosts`` from the mine are switched on, so the mine is read at all; the mine is
the bench's own ``mine`` module (every node's published data from a table, as a master would
serve it), synced into the minion from a file root of the bench's.

The counting is the bench's: a profile hook on this thread counts the calls of the execution
module's ``settings`` and of ``_settings`` (the computation behind it), of ``_mine`` and of
``mine.get``, whatever loader instance runs them. The product is not changed.
"""

import collections
import json
import pathlib
import shutil
import sys
import tempfile

from bench.registry import benchmark
from bench.table import Row
from tests.support.caller import Minion, example_pillar, node_grains

SECTION = "settings per run"
CONTROL = "cranectl"
COMPUTE = ("cn01", "cn02", "cn03")
LOGIN = "login01"
GPU_NODE = "cn03"
MODULE_FILE = "/crane.py"  # the execution module, as synced into the minion's extmods
MINE_FILE = "/mine.py"  # the bench's mine module, as synced
# function name -> the file it must be in
WATCHED = {
    "settings": MODULE_FILE,
    "_settings": MODULE_FILE,
    "_mine": MODULE_FILE,
    "get": MINE_FILE,
}
MINE_MODULE = '''"""The bench's mine: every node's published data, as a master would serve it."""

import copy

MINE = {mine}


def get(tgt, fun, tgt_type="glob", exclude_minion=False):
    return copy.deepcopy(MINE.get(fun, {{}}))
'''


def mine_data():
    """What the example's mine functions would publish for the demo cluster's five nodes."""
    nodes = (CONTROL, *COMPUTE, LOGIN)
    gpus = [
        {
            "name": "gpu",
            "type": "a100",
            "EnvInjector": "nvidia",
            "DeviceFileRegex": "/dev/nvidia[0-3]",
        }
    ]
    return {
        "crane_host": {node: node for node in nodes},
        "crane_address": {node: [f"10.0.0.{11 + n}"] for n, node in enumerate(nodes)},
        "crane_gres": {node: gpus if node == GPU_NODE else [] for node in COMPUTE},
    }


def control_pillar():
    """The example pillar of the control node, with both mine-backed features on."""
    pillar = example_pillar(control=True)
    crane = pillar["crane"]
    for group in crane["config"]["Nodes"]:
        group.pop("gres", None)  # automatic mode fills them from the mine
    crane["gres"] = {"auto": True}
    crane["names"] = {"check": False, "hosts_file": True}  # this host resolves no node names
    crane["mongodb"] = {"preflight": False}  # and has no MongoDB
    return pillar


class CallCounter:
    """A profile hook counting calls of the watched functions (by name and file)."""

    def __init__(self):
        self.counts = collections.Counter()
        self.mine_functions = collections.Counter()

    def __call__(self, frame, event, _arg):
        if event != "call":
            return
        code = frame.f_code
        suffix = WATCHED.get(code.co_name)
        if suffix is None or not code.co_filename.endswith(suffix):
            return
        self.counts[code.co_name] += 1
        if code.co_name == "get":
            self.mine_functions[frame.f_locals.get("fun")] += 1

    def __enter__(self):
        sys.setprofile(self)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)


def count_one_apply(root):
    """Counts of one ``state.apply crane test=True`` on the control node, and its states."""
    extra = root / "files"
    (extra / "_modules").mkdir(parents=True)
    mine = MINE_MODULE.format(mine=json.dumps(mine_data(), sort_keys=True))
    (extra / "_modules" / "mine.py").write_text(mine)
    minion = Minion(root / "minion")
    minion.base_opts["file_roots"]["base"].append(str(extra))
    grains = node_grains("debian12", CONTROL)
    pillar = control_pillar()
    # the first call syncs the modules and warms the loader; it is not counted
    minion.call("test.ping", grains=grains, pillar=pillar)
    with CallCounter() as counter:
        result = minion.call("state.apply", "crane", grains=grains, pillar=pillar, test=True)
    if not isinstance(result, dict):
        raise RuntimeError(f"state.apply crane test=True did not run: {str(result)[:300]}")
    return counter, result


def check_run(result):
    """The apply ran the whole SLS tree: validation passed, the mine-backed states are there."""
    validation = [s for tag, s in result.items() if "crane-validate-config" in tag]
    if not validation or validation[0]["result"] is False:
        raise RuntimeError(f"validation failed: {validation[0]['comment'] if validation else ''}")
    if not any("crane-names-hosts-" in tag for tag in result):
        raise RuntimeError("no /etc/hosts state from the mine: the mine was not read")


def rows(counter, result):
    counts = counter.counts
    per_function = ", ".join(f"{fun} {n}" for fun, n in sorted(counter.mine_functions.items()))
    states = len(result)
    return [
        Row(
            SECTION,
            "crane.settings computations per state.apply crane, control node",
            counts["_settings"],
            "",
            "crane.settings calls in the same run",
            counts["settings"],
            f"expected 1; state.apply crane test=True in-process ({states} states), counted by a "
            "profile hook of the bench's",
        ),
        Row(
            SECTION,
            "Salt mine reads per state.apply crane, control node (gres:auto, names:hosts_file)",
            sum(counter.mine_functions.values()),
            "",
            "mine lookups the formula asked for",
            counts["_mine"],
            f"expected 1 per mine function; per function: {per_function or 'none'}",
        ),
    ]


@benchmark("settings per run")
def settings_calls_rows(quick):
    """One counted apply: the same with --quick (it takes seconds)."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="crane-bench-settings-"))
    try:
        counter, result = count_one_apply(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    check_run(result)
    return rows(counter, result)
