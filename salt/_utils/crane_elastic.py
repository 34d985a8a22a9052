"""Node groups by selector: ``Nodes`` entries that say which minions belong to them.

Pure Python (stdlib only). Loaded by Salt's loader as a ``_utils`` module (the ``crane``
execution module hands it the mine's answers) and imported directly by the tests.

A selector group is a ``Nodes`` entry with ``match`` (a Salt compound target such as
``G@crane:partition:GPU``) instead of ``name``. Its nodes are the minions that match and have
published their facts (mine function ``crane_facts`` = ``crane.node_facts``); ``cpu``,
``memory`` and ``gres`` may be ``auto`` (taken from those facts) or given. A partition may
name the nodes of a selector group with the same ``match``. Resolving turns every selector
group into plain groups (nodes with identical resources merged, host lists compressed, sorted),
so config.yaml holds only keys CraneSched knows and is the same on every node that reads the
same mine.
"""

import os
import sys

# Siblings by name; the folder stays on sys.path (README, "How the utilities load").
_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
if _FOLDER not in sys.path:
    sys.path.append(_FOLDER)

import crane_hostlist  # noqa: E402

AUTO = "auto"
#: memory is published rounded down to a multiple of this many MiB. CraneSched's health check
#: drains a node whose configured memory is more than 0.01 GiB (10.24 MiB) away from its real
#: total (``kMemoryToleranceGB``); 8 MiB is the largest power of two below that, so a rounded
#: value is never above the real memory and always within the tolerance, and nodes whose
#: totals differ by a few pages still land on the same value more often than not.
MEMORY_STEP_MIB = 8
MIXED_WORDS = ("split", "refuse")
RESOURCE_KEYS = ("cpu", "memory", "gres")
#: the partition key that names a selector group's nodes (replaced by ``nodes``)
PARTITION_MATCH = "match"


def round_memory_mib(total_mib):
    """``total_mib`` (MemTotal in MiB, as the ``mem_total`` grain) rounded down to a
    multiple of ``MEMORY_STEP_MIB``."""
    total = int(total_mib)
    return total - total % MEMORY_STEP_MIB


def node_facts(grains, gres, ready=False):
    """What a node publishes in the mine (``crane_facts``): host name (craned matches
    ``gethostname()``), CPUs, memory in MiB (rounded down, see ``MEMORY_STEP_MIB``), the gres
    it discovers, and whether it has joined (a join marked it: its gates passed)."""
    return {
        "host": grains.get("host"),
        "cpu": int(grains.get("num_cpus") or 0),
        "memory": round_memory_mib(grains.get("mem_total") or 0),
        "gres": list(gres or []),
        "ready": bool(ready),
    }


def is_selector(group):
    return isinstance(group, dict) and "match" in group


def selectors(config):
    """The distinct ``match`` expressions of ``config``'s selector groups, in order."""
    found = []
    if not isinstance(config, dict) or not isinstance(config.get("Nodes"), list):
        return found
    for group in config["Nodes"]:
        if is_selector(group) and isinstance(group["match"], str) and group["match"] not in found:
            found.append(group["match"])
    return found


def _label(index, group):
    return f"Nodes[{index}] (match {group.get('match')!r})"


def _group_problems(label, group):
    """Errors in a selector group's own keys (before any node is looked at)."""
    problems = []
    if not isinstance(group["match"], str) or not group["match"].strip():
        problems.append(f"{label}: match must be a non-empty Salt compound target")
    if "name" in group:
        problems.append(f"{label}: give either name or match, not both")
    cpu, memory, gres = group.get("cpu", AUTO), group.get("memory", AUTO), group.get("gres")
    if cpu != AUTO and (isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 1):
        problems.append(f"{label}: cpu must be a positive integer or auto, not {cpu!r}")
    if memory != AUTO and not isinstance(memory, str):
        problems.append(f"{label}: memory must be CraneSched's memory text or auto")
    if gres is not None and gres != AUTO and not isinstance(gres, list):
        problems.append(f"{label}: gres must be a list of gres entries or auto")
    return [f"crane:config: {p}" for p in problems]


def _facts_problem(facts):
    """Why ``facts`` cannot make a node (None when they can)."""
    if not isinstance(facts, dict):
        return "its crane_facts are not a mapping"
    if not isinstance(facts.get("host"), str) or not facts["host"]:
        return "its crane_facts have no host name"
    for key in ("cpu", "memory"):
        value = facts.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"its crane_facts have no usable {key} ({value!r})"
    if not isinstance(facts.get("gres"), list):
        return "its crane_facts have no gres list"
    return None


def _resources(group, facts):
    """The node's resources as this group gives them: (cpu, memory text, gres or None)."""
    cpu = facts["cpu"] if group.get("cpu", AUTO) == AUTO else group["cpu"]
    memory = group.get("memory", AUTO)
    memory = f"{facts['memory']}M" if memory == AUTO else memory
    gres = group.get("gres")
    if gres == AUTO:
        gres = facts["gres"] or None
    return cpu, memory, gres


def _resource_key(resources):
    return repr(resources)


class _Resolution:
    """The state of one resolution: the nodes taken so far and what was found wrong."""

    def __init__(self, candidate):
        self.candidate = candidate
        self.errors, self.warnings = [], []
        self.owner = {}  # host -> label of the group that took it
        self.hosts_by_match = {}

    def members(self, label, answers):
        """``{host: facts}`` of the minions usable for this group, sorted by host."""
        members = {}
        for minion in sorted(answers or {}):
            facts = answers[minion]
            problem = _facts_problem(facts)
            if problem:
                self.warnings.append(f"{label}: minion {minion} left out: {problem}")
                continue
            if not facts.get("ready") and minion != self.candidate:
                self.warnings.append(
                    f"{label}: minion {minion} left out until it has joined (its join has not "
                    "passed the node's own gates yet: crane.orch.join)"
                )
                continue
            members[facts["host"]] = facts
        return members

    def claim(self, label, host):
        """True when ``host`` is free; else an error naming both groups and the node."""
        if host in self.owner:
            self.errors.append(
                f"crane:config: node {host} matches two node groups: {self.owner[host]} and {label}"
            )
            return False
        self.owner[host] = label
        return True


def _split(label, group, members, mixed, resolution):
    """Plain node groups for one selector group: ``[(key, hosts, resources)]``."""
    by_key = {}
    for host, facts in members.items():
        if resolution.claim(label, host):
            resources = _resources(group, facts)
            by_key.setdefault(_resource_key(resources), (resources, []))[1].append(host)
    if mixed == "refuse" and len(by_key) > 1:
        parts = "; ".join(
            f"{crane_hostlist.compress(hosts)}: cpu {r[0]}, memory {r[1]}, gres {r[2]}"
            for r, hosts in sorted(by_key.values(), key=lambda item: repr(item[0]))
        )
        resolution.errors.append(
            f"crane:config: {label}: its nodes disagree ({parts}); crane:elastic:mixed is "
            "refuse (split makes one group per set of resources)"
        )
        return []
    return by_key.values()


def _plain_groups(group, parts):
    extra = {k: v for k, v in group.items() if k not in ("match", *RESOURCE_KEYS)}
    groups = []
    for (cpu, memory, gres), members in parts:
        hosts = sorted(members, key=crane_hostlist.natural_key)
        entry = {"name": crane_hostlist.compress(hosts), "cpu": cpu, "memory": memory}
        if gres:
            entry["gres"] = gres
        entry.update(extra)
        groups.append((crane_hostlist.natural_key(hosts[0]), entry))
    return [entry for _key, entry in sorted(groups, key=lambda item: item[0])]


def _static_hosts(config):
    hosts = {}
    for index, group in enumerate((config or {}).get("Nodes") or []):
        if isinstance(group, dict) and not is_selector(group) and group.get("name") is not None:
            names, _error = crane_hostlist.try_expand(group["name"])
            for host in names:
                hosts.setdefault(host, f"Nodes[{index}] {group['name']!r}")
    return hosts


def _alike_key(group):
    """What a group says but its hosts, or None for a group that cannot take others' hosts."""
    if not isinstance(group, dict) or not isinstance(group.get("name"), str):
        return None
    _names, error = crane_hostlist.try_expand(group["name"])
    if error:
        return None
    return repr(sorted((key, repr(value)) for key, value in group.items() if key != "name"))


def _merge_alike(nodes, derived):
    """``nodes`` with each group built from a selector merged into the first group alike but
    for its hosts (same cpu, memory, gres and other keys): a named group if there is one (it
    keeps its place), else the first such built group. Named groups are never merged."""
    keys = [_alike_key(group) for group in nodes]
    into = {}  # alike key -> position of the group that takes the built groups' hosts
    for index in sorted(range(len(nodes)), key=lambda i: (i in derived, i)):
        if keys[index] is not None:
            into.setdefault(keys[index], index)
    gained = {}  # taking position -> hosts of the built groups merged into it
    for index in sorted(derived):
        taker = into.get(keys[index], index)
        if taker != index:
            gained.setdefault(taker, []).extend(crane_hostlist.expand(nodes[index]["name"]))
    merged = []
    for index, group in enumerate(nodes):
        if index in derived and into.get(keys[index], index) != index:
            continue
        merged.append(_with_hosts(group, gained[index]) if index in gained else group)
    return merged


def _with_hosts(group, hosts):
    every = set(crane_hostlist.expand(group["name"])) | set(hosts)
    return {**group, "name": crane_hostlist.compress(sorted(every, key=crane_hostlist.natural_key))}


def resolve(config, answers, *, candidate=None, mixed="split"):
    """``(config, errors, warnings)``: ``config`` with every selector group replaced by plain
    groups built from ``answers`` (``{match: {minion: facts}}``, the mine's answer for each
    selector) and every partition's ``match`` by its nodes. A minion whose facts are unusable
    or that has not joined (``ready``; ``candidate``, the minion being joined, counts as
    joined) is left out with a warning; a node matching two groups is an error naming both;
    a selector group with no node yet is left out with a warning; groups alike but for their
    hosts are merged (``_merge_alike``). ``config`` is not changed."""
    if not isinstance(config, dict) or not selectors(config):
        return config, [], []
    resolution = _Resolution(candidate)
    if mixed not in MIXED_WORDS:
        resolution.errors.append(
            f"crane:elastic:mixed: {mixed!r} is not one of {', '.join(MIXED_WORDS)}"
        )
        mixed = "refuse"
    for host, label in _static_hosts(config).items():
        resolution.owner[host] = label
    nodes, derived = [], set()  # derived: positions in nodes of groups built from a selector
    for index, group in enumerate(config.get("Nodes") or []):
        if not is_selector(group):
            nodes.append(group)
            continue
        label = _label(index, group)
        problems = _group_problems(label, group)
        if problems:
            resolution.errors.extend(problems)
            if isinstance(group["match"], str):  # its partitions: no second error
                resolution.hosts_by_match.setdefault(group["match"], [])
            continue
        members = resolution.members(label, answers.get(group["match"]))
        resolved = _plain_groups(group, _split(label, group, members, mixed, resolution))
        if not resolved:
            resolution.warnings.append(f"{label}: no node has joined yet; the group is left out")
        hosts = [h for entry in resolved for h in crane_hostlist.expand(entry["name"])]
        resolution.hosts_by_match.setdefault(group["match"], []).extend(hosts)
        derived.update(range(len(nodes), len(nodes) + len(resolved)))
        nodes.extend(resolved)
    resolved_config = {**config, "Nodes": _merge_alike(nodes, derived)}
    if "Partitions" in config:
        resolved_config["Partitions"] = _partitions(config["Partitions"], resolution)
    return resolved_config, resolution.errors, resolution.warnings


def _partitions(partitions, resolution):
    """Partitions with ``match`` replaced by the nodes of the selector groups with that
    ``match`` (joined to their own ``nodes``); one left with no node at all is left out."""
    if not isinstance(partitions, list):
        return partitions
    result = []
    for index, partition in enumerate(partitions):
        if not isinstance(partition, dict) or PARTITION_MATCH not in partition:
            result.append(partition)
            continue
        label = f"Partitions[{index}] {partition.get('name')!r}"
        match = partition[PARTITION_MATCH]
        if match not in resolution.hosts_by_match:
            resolution.errors.append(
                f"crane:config: {label}: match {match!r} is the match of no node group"
            )
            continue
        hosts = list(resolution.hosts_by_match[match])
        if partition.get("nodes") not in (None, ""):
            names, _error = crane_hostlist.try_expand(partition["nodes"])
            hosts.extend(names)
        entry = {k: v for k, v in partition.items() if k != PARTITION_MATCH}
        if not hosts:
            resolution.warnings.append(f"{label}: no node has joined yet; left out")
            continue
        entry["nodes"] = crane_hostlist.compress(sorted(set(hosts), key=crane_hostlist.natural_key))
        result.append(entry)
    return result
