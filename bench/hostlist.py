"""Host-list rows: expand+compress, ours against python-hostlist and ClusterShell's NodeSet.

Two workloads: CraneSched's own unit-test expression (105,000 hosts), and a 10,000-node list
pasted from cinfo (the NODELIST of every row, joined with ", "). Before timing, every
contender must produce exactly our host set from the expression, and its folded string
must expand back to that set; a contender that cannot parse the form is told so in its row.
"""

import importlib.metadata
import random
from collections.abc import Callable
from dataclasses import dataclass

import crane_hostlist

from bench.registry import benchmark, compare
from bench.table import Row

try:
    import hostlist
except ImportError as exc:
    hostlist, HOSTLIST_IMPORT_ERROR = None, exc
try:
    import ClusterShell
    from ClusterShell.NodeSet import NodeSet
except ImportError as exc:
    NodeSet, NODESET_IMPORT_ERROR = None, exc

SECTION = "host lists"
CRANE_TEST_EXPR = "a[01-99]s[01-05]c[001-100],a[30-40,501-600]s[03-07]c[201-300]"
QUICK_EXPR = "a[01-03]s[01-02]c[001-005],a[30-31,501-502]s[03-04]c[201-205]"
# cinfo-style cluster, partition -> (name prefix, number width, node count): 10,000 nodes
# named prefix + fixed-width number, the form CraneSched's compression round-trips.
FULL_CLUSTER = {
    "CPU": ("cn", 4, 8192),
    "GPU": ("gpu", 4, 1024),
    "FAT": ("fat", 3, 512),
    "AMD": ("amd", 3, 272),
}
QUICK_CLUSTER = {"CPU": ("cn", 4, 120), "GPU": ("gpu", 4, 40), "FAT": ("fat", 3, 40)}
STATES = ("idle", "mix", "alloc", "down", "idle(drain)")
STATE_WEIGHTS = (55, 15, 20, 5, 5)


@dataclass(frozen=True)
class Contender:
    """A host-list implementation: how it expands and how it folds."""

    name: str
    expand: Callable[[str], list]
    compress: Callable[[list], str]


def contenders():
    """Ours first, then the baselines that are importable; plus notes on missing ones."""
    found = [Contender("crane_hostlist", crane_hostlist.expand, crane_hostlist.compress)]
    missing = {}
    if hostlist is None:
        missing["python-hostlist"] = f"not installed ({HOSTLIST_IMPORT_ERROR})"
    else:
        version = importlib.metadata.version("python-hostlist")
        name = f"python-hostlist {version}"
        found.append(Contender(name, hostlist.expand_hostlist, hostlist.collect_hostlist))
    if NodeSet is None:
        missing["ClusterShell NodeSet"] = f"not installed ({NODESET_IMPORT_ERROR})"
    else:
        found.append(
            Contender(
                f"ClusterShell {ClusterShell.__version__} NodeSet",
                lambda text: list(NodeSet(text)),
                lambda hosts: str(NodeSet.fromlist(hosts)),
            )
        )
    return found, missing


def cinfo_paste(cluster, seed=2026):
    """A host list as an admin pastes it from cinfo: every NODELIST, joined with ", ".

    In each partition, runs of neighbouring nodes share a state, as jobs take consecutive
    nodes; each (partition, state) row's NODELIST is CraneSched's compressed form.
    Returns (text, node count, NODELIST count).
    """
    rng = random.Random(seed)
    nodelists = []
    for prefix, width, count in cluster.values():
        nodes = [f"{prefix}{number:0{width}d}" for number in range(1, count + 1)]
        rows = {state: [] for state in STATES}
        index = 0
        while index < len(nodes):
            run = rng.randint(1, 40)
            rows[rng.choices(STATES, STATE_WEIGHTS)[0]] += nodes[index : index + run]
            index += run
        nodelists += [crane_hostlist.compress(names) for names in rows.values() if names]
    total = sum(count for _, _, count in cluster.values())
    return ", ".join(nodelists), total, len(nodelists)


def accepted_form(contender, text, expected):
    """The form of ``text`` the contender expands to ``expected`` (sorted), and a note.

    Tries the text as given, then with blanks removed; ``(None, reason)`` if neither works.
    Also checks that the contender's folded string expands back to the same hosts.
    """
    problems = []
    for form, candidate in (("as given", text), ("blanks removed", text.replace(" ", ""))):
        if form == "blanks removed" and candidate == text:
            continue
        try:
            hosts = contender.expand(candidate)
        except Exception as exc:  # a baseline's own parse error
            problems.append(f"{form}: {type(exc).__name__}: {exc}")
            continue
        if sorted(hosts) != expected:
            strays = sorted(set(hosts) - set(expected)) or sorted(set(expected) - set(hosts))
            example = f", e.g. {strays[0]!r}" if strays else ""
            problems.append(f"{form}: {len(hosts):,} hosts but not the same set{example}")
            continue
        folded = contender.compress(hosts)
        if sorted(contender.expand(folded)) != expected:
            return None, f"its folded string does not expand back to the {len(expected)} hosts"
        if form == "as given":
            return candidate, ""
        return candidate, (
            f"cannot take the list as pasted ({problems[-1]}); without blanks it gives the "
            f"same {len(expected):,} hosts, so it is timed on that"
        )
    return None, "cannot parse it: " + "; ".join(problems)


def workload_rows(label, text, repeats):
    """Rows comparing expand+compress of ``text`` by ours and by each baseline."""
    found, missing = contenders()
    ours, baselines = found[0], found[1:]
    expected = sorted(ours.expand(text))
    if sorted(ours.expand(ours.compress(expected))) != expected:
        raise AssertionError(f"our folded form of {label} does not expand back")
    forms, notes = {ours.name: text}, dict(missing)
    for contender in baselines:
        form, notes[contender.name] = accepted_form(contender, text, expected)
        if form is not None:
            forms[contender.name] = form
    runs = {
        contender.name: (lambda c=contender, t=forms[contender.name]: c.compress(c.expand(t)))
        for contender in found
        if contender.name in forms
    }
    medians = compare(runs, repeats)
    same = f"same {len(expected):,} hosts from each; folded forms expand back to them"
    rows = []
    for name in [contender.name for contender in baselines] + list(missing):
        note = notes[name] or same
        if name in medians:
            note = f"median of {repeats} runs each; {note}"
        rows.append(
            Row(
                section=SECTION,
                figure=f"expand+compress: {label}",
                ours=medians[ours.name] * 1000,
                unit="ms",
                baseline=name,
                baseline_value=medians[name] * 1000 if name in medians else None,
                note=note,
            )
        )
    return rows


@benchmark("hostlist")
def hostlist_rows(quick):
    """(a) CraneSched's unit-test expression, (b) a 10,000-node list pasted from cinfo."""
    expr = QUICK_EXPR if quick else CRANE_TEST_EXPR
    count = len(crane_hostlist.expand(expr))
    cluster = QUICK_CLUSTER if quick else FULL_CLUSTER
    paste, nodes, lists = cinfo_paste(cluster)
    rows = workload_rows(f"CraneSched unit-test expression, {count:,} hosts", expr, 3)
    families = "/".join(prefix for prefix, _, _ in cluster.values())
    label = f"cinfo paste, {nodes:,} {families} nodes, {lists} NODELISTs joined by ', '"
    rows += workload_rows(label, paste, 3 if quick else 5)
    return rows
