"""Driving the formula on a test cluster: ``state.apply crane`` and reading its results."""

from __future__ import annotations

import copy
import time

from . import pillar
from .harness import Cluster, ClusterError

APPLY_TIMEOUT = 600
SPENT: dict[str, float] = {}  # label -> seconds of the first call with that label, for reports


def apply(cluster: Cluster, target: str = "*", test: bool = False, tgt_type: str = "glob", **kw):
    """``state.apply crane`` → ``{minion: {state id: result}}``; a minion whose run did not
    compile returns its error list instead."""
    args = {"test": True} if test else {}
    raw = cluster.salt(
        target, "state.apply", "crane", tgt_type=tgt_type, timeout=APPLY_TIMEOUT, **args, **kw
    )
    return {minion: _by_id(states) for minion, states in raw.items()}


def timed_apply(cluster: Cluster, label: str, *args, **kw):
    """:func:`apply`, recording its wall time under ``label``."""
    began = time.monotonic()
    result = apply(cluster, *args, **kw)
    SPENT.setdefault(label, time.monotonic() - began)
    return result


def _by_id(states):
    if not isinstance(states, dict):
        return states
    return {body.get("__id__", key): body for key, body in states.items()}


def failures(result) -> dict[str, dict[str, str]]:
    """``{minion: {state id: comment}}`` of every state whose result is False."""
    found = {}
    for minion, states in result.items():
        if not isinstance(states, dict):
            found[minion] = {"(render)": str(states)}
            continue
        bad = {sid: s["comment"] for sid, s in states.items() if s["result"] is False}
        if bad:
            found[minion] = bad
    return found


def changed(result) -> dict[str, list[str]]:
    """``{minion: [state ids]}`` of states reporting changes."""
    found = {}
    for minion, states in result.items():
        ids = sorted(sid for sid, s in states.items() if s.get("changes"))
        if ids:
            found[minion] = ids
    return found


def results(result) -> set:
    """Every distinct ``result`` value over all minions and states."""
    return {s["result"] for states in result.values() for s in states.values()}


def assert_settled(cluster: Cluster, target: str = "*") -> None:
    """A converged cluster: a second apply changes nothing and fails nothing, and
    ``test=True`` then plans nothing and reports every state True."""
    again = apply(cluster, target)
    assert failures(again) == {}
    assert changed(again) == {}
    dry = apply(cluster, target, test=True)
    assert failures(dry) == {}
    assert changed(dry) == {}
    assert results(dry) == {True}


def example_pillar(cluster: Cluster) -> tuple[dict, dict]:
    """The pillar the cluster started with: ``(sls, top)``."""
    return pillar.cluster_pillar(cluster.spec, cluster.repo_root)


def with_config(cluster: Cluster, edit) -> tuple[dict, dict]:
    """The example pillar with ``edit(crane_pillar)`` applied to a copy."""
    sls, top = example_pillar(cluster)
    sls = copy.deepcopy(sls)
    edit(sls["crane.cluster"]["crane"])
    return sls, top


def node_group(crane: dict, name: str) -> dict:
    """The ``Nodes`` entry named ``name`` of a crane pillar."""
    return next(g for g in crane["config"]["Nodes"] if g["name"] == name)


def wait_for(what: str, probe, limit: float = 180, interval: float = 1):
    """Poll ``probe()`` until it returns something true; that value.  ``limit`` only stops a
    hung cluster: tests assert what happened, not how fast."""
    deadline = time.monotonic() + limit
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ClusterError(f"gave up waiting for {what}; last answer {value!r}")
        time.sleep(interval)


def node_states(cluster: Cluster, control: str = "cranectl") -> dict:
    """``crane.nodes`` on the control node: ``{node: {resource, control, power, ...}}``."""
    return cluster.salt(control, "crane.nodes").get(control) or {}


def main_pid(cluster: Cluster, node: str, unit: str) -> int:
    out = cluster.sh(node, f"systemctl show -p MainPID --value {unit}", check=True).stdout
    return int(out.strip() or 0)


def all_idle(cluster: Cluster, nodes) -> bool:
    states = node_states(cluster)
    if not isinstance(states, dict):  # cranectld still starting: Salt returned its error text
        return False
    return all(states.get(n, {}).get("state", "").startswith("idle") for n in nodes)
