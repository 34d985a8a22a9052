"""
Pure planning logic for rolling upgrades and restarts of a CraneSched cluster.

The engine (``crane_engine``) drives the cluster; everything here works on plain data so it can be
unit tested and reused (batching, canary choice, which drains belong to the formula, versions,
config hashes, plan and summary text).
"""

import math
import os
import re
import sys

# Siblings by name; the folder stays on sys.path (README, "How the utilities load").
_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
if _FOLDER not in sys.path:
    sys.path.append(_FOLDER)

import crane_hostlist  # noqa: E402

REASON_PREFIX = "crane-formula: "
MAX_REASON = 200
STRATEGIES = ("rolling", "all-at-once")


# --- drain reasons --------------------------------------------------------------------------


def drain_reason(action, version=None):
    """The formula's own drain reason, e.g. ``crane-formula: upgrade to 1.1.3``."""
    if action == "upgrade":
        return f"{REASON_PREFIX}upgrade to {version}"
    return f"{REASON_PREFIX}rolling restart"


def is_ours(reason):
    """True when a drain reason was set by the formula (this or an earlier run)."""
    return str(reason or "").startswith(REASON_PREFIX)


def clean_reason(text):
    """A reason ccontrol accepts: one line, no double quote, at most MAX_REASON characters."""
    text = re.sub(r"\s+", " ", str(text).replace('"', "'")).strip()
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def failure_reason(base, step, detail=""):
    """Drain reason of a node the run failed on: what was being done and what went wrong."""
    text = f"{base} failed at {step}"
    return clean_reason(f"{text}: {detail}" if detail else text)


# --- versions --------------------------------------------------------------------------------

# craned's ``Version=`` is CraneSched's VERSION file at build time, not the package version:
# package 1.1.3 may report ``1.1.3.1``, a dev build ``1.1.2+dev``, a build without VERSION a git
# hash; RPM reports ``1.1.3-1`` (version-release), dpkg may add an epoch (``1:1.1.3``).
_RELEASE = re.compile(r"^(?:\d+:)?(\d+\.\d+(?:\.\d+)?)(?=$|[^0-9])")


def release(version):
    """The ``X.Y.Z`` (or ``X.Y``) a version string stands for, or None (a git hash)."""
    found = _RELEASE.match(str(version or "").strip())
    return found.group(1) if found else None


def same_release(current, target):
    """True when ``current`` (package or craned version) is the release ``target`` names."""
    have, want = release(current), release(target)
    if have is None or want is None:
        return str(current or "") == str(target or "") != ""
    return have == want


def version_key(version):
    """Sort key for version strings: numeric parts compare as numbers (1.1.10 > 1.1.9)."""
    parts = re.split(r"[.+~-]", str(release(version) or version or ""))
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]


def as_pinned(installed, pinned):
    """``installed`` as the pin is written: without an epoch, and without the package
    release (``-1``) when the pin has none, so ``1.1.3-1`` matches a pin of ``1.1.3``."""
    version = str(installed).split(":", 1)[-1]
    if "-" not in str(pinned):
        version = version.split("-", 1)[0]
    return version


def is_downgrade(current, target):
    """True when ``target`` is an older release than ``current``; a version without an
    ``X.Y.Z`` (a git hash) cannot be compared and is never called a downgrade."""
    if release(current) is None or release(target) is None:
        return False
    return version_key(target) < version_key(current)


# --- config hashes ---------------------------------------------------------------------------


def odd_hashes(hashes, prefer=None):
    """``(expected, differs)``: the config.yaml hash most nodes have (``prefer``'s on a tie)
    and the sorted minions whose hash is another one. One hand-edited file, wherever it is,
    names that one node, not every other."""
    counts = {}
    for value in hashes.values():
        counts[value] = counts.get(value, 0) + 1
    if not counts:
        return None, []
    top = max(counts.values())
    leaders = [h for h, c in counts.items() if c == top]
    expected = hashes.get(prefer) if hashes.get(prefer) in leaders else sorted(leaders, key=str)[0]
    return expected, sorted(m for m, h in hashes.items() if h != expected)


# --- batches ---------------------------------------------------------------------------------


def batch_size(batch, total):
    """Nodes per batch from a count (``2``) or a percentage (``25%``) of ``total``; at least 1.

    Raises ValueError for anything else.
    """
    text = str(batch).strip()
    if text.endswith("%"):
        percent = float(text[:-1])
        if not 0 < percent <= 100:
            raise ValueError(f"batch percentage must be in (0, 100]: {batch!r}")
        return max(1, math.ceil(total * percent / 100))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"batch must be a positive count or a percentage: {batch!r}")
    return int(text)


def split_batches(nodes, batch, canary=1):
    """``[[canary...], [batch], ...]``: ``canary`` nodes alone first, then batches of ``batch``.

    ``batch`` is computed over all ``nodes`` (a percentage of the nodes to do).
    """
    nodes = list(nodes)
    size = batch_size(batch, len(nodes))
    canary = max(0, min(int(canary or 0), len(nodes)))
    batches = [nodes[:canary]] if canary else []
    rest = nodes[canary:]
    batches += [rest[i : i + size] for i in range(0, len(rest), size)]
    return [b for b in batches if b]


# --- plan ------------------------------------------------------------------------------------


def build_plan(
    action,
    version,
    strategy,
    control,
    control_version,
    *,
    compute,
    login=None,
    batch=1,
    canary=1,
    allow_down=(),
    done=None,
    drain=True,
):
    """What a run will do, from the cluster's current state.

    ``compute`` maps each compute node to ``{"version", "down", "reason"}`` (installed or
    running craned version, unavailable flag, drain reason or ""); ``login`` maps login
    minions to their installed version. Nodes at the target version, allowed-down nodes and
    the nodes in ``done`` (``{node or minion: why}``, what an unfinished earlier run of the
    same command did) are skipped.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}: {strategy!r}")
    allow_down, done = set(allow_down or ()), dict(done or {})
    skipped, todo = {}, []
    for node in sorted(compute, key=crane_hostlist.natural_key):
        info = compute[node]
        if info.get("down") and node in allow_down:
            skipped[node] = "down, allowed by allow_down: not touched"
        elif action == "upgrade" and same_release(info.get("version"), version):
            skipped[node] = f"already at {version}"
        elif node in done:
            skipped[node] = done[node]
        else:
            todo.append(node)
    if action == "upgrade":
        control_todo = not same_release(control_version, version)
    else:
        control_todo = control not in done
    login = login or {}
    if action == "upgrade":
        login_todo = sorted(m for m, v in login.items() if not same_release(v, version))
        skipped.update({m: f"already at {version}" for m in login if m not in login_todo})
    else:
        login_todo = sorted(m for m in login if m not in done)
        skipped.update({m: done[m] for m in login if m in done})
    if not drain:
        control_todo, login_todo = False, []
    if strategy == "all-at-once":
        batches = [todo] if todo else []
    else:
        batches = split_batches(todo, batch, canary)
    return {
        "action": action,
        "version": version,
        "strategy": strategy,
        "reason": drain_reason(action, version),
        "drain": drain,
        "control": {
            "minion": control,
            "todo": control_todo,
            "from": control_version,
        },
        "login": login_todo,
        "batches": batches,
        "canary": batches[0] if batches and strategy == "rolling" and canary else [],
        "admin_drained": {
            n: i["reason"]
            for n, i in compute.items()
            if i.get("reason") and not is_ours(i["reason"])
        },
        "skipped": skipped,
    }


def render_plan(plan):
    """The plan as text, one step a line."""
    what = f"upgrade to {plan['version']}" if plan["action"] == "upgrade" else "rolling restart"
    if plan.get("drain", True):
        lines = [f"Plan: {what} ({plan['strategy']}), drain reason '{plan['reason']}'"]
        lines += _control_lines(plan, what)
    else:
        lines = [
            "Plan: rolling restart of craned only, no drain (running jobs keep running; "
            "cranectld and login nodes untouched)"
        ]
    if plan["login"]:
        lines.append(f"  2. login: {', '.join(plan['login'])}")
    for index, nodes in enumerate(plan["batches"], 1):
        label = "canary" if index == 1 and plan["canary"] else f"batch {index}"
        lines.append(f"  {label}: {', '.join(nodes)}")
    if not plan["batches"]:
        lines.append("  compute: nothing to do")
    for node, why in sorted(
        plan["skipped"].items(), key=lambda i: crane_hostlist.natural_key(i[0])
    ):
        lines.append(f"  skip {node}: {why}")
    for node, reason in sorted(plan["admin_drained"].items()):
        lines.append(f"  keep drained {node}: '{reason}' (not the formula's drain)")
    return "\n".join(lines)


def _control_lines(plan, what):
    control = plan["control"]
    if plan.get("ha"):
        version = plan["version"] if plan["action"] == "upgrade" else None
        return _pair_lines(plan["ha"], what, version)
    if control["todo"]:
        frm = f" (from {control['from']})" if control["from"] else ""
        return [
            f"  1. control {control['minion']}: back up cranectld's DB, {what}{frm}, "
            "wait for cinfo and the nodes, restore manual drains"
        ]
    why = f"already at {plan['version']}" if plan["action"] == "upgrade" else "done"
    return [f"  1. control {control['minion']}: skipped ({why})"]


def _pair_lines(pair, what, version):
    """The Keepalived pair's steps: backup, failover (DB backup in its gap), old master."""
    master, backup = pair["master"], pair["backup"]
    lines = [f"  1. control pair (crane:ha): master {master}, backup {backup}"]

    def member(minion, label, note):
        if not pair["todo"][minion]:
            why = f"already at {version}" if version else "done"
            return f"     {label} {minion}: skipped ({why})"
        frm = f" (from {pair['from'][minion]})" if pair["from"].get(minion) else ""
        return f"     {label} {minion}: {what}{frm}; {note}"

    lines.append(member(backup, "a. backup", "keepalived keeps its cranectld stopped"))
    if pair["todo"][master]:
        lines.append(
            f"     b. failover {master} -> {backup}: cranectld stopped on {master}, its DB "
            "backed up from the shared directory while no cranectld runs, the VIP moves, wait "
            f"until every node registered with {backup} (the only time no cranectld answers)"
        )
        back = (
            "its higher priority takes the role back (a second failover gap), wait for it"
            if pair["handback"]
            else f"it stays backup of {backup}"
        )
        lines.append(member(master, "c. old master", back))
    else:
        lines.append(f"     b. no failover: {master} stays master")
    return lines


# --- summary ---------------------------------------------------------------------------------


def summary(report):
    """Closing text: what was done, what failed and what the admin must do next.

    ``report`` holds ``plan``, ``ok``, ``done`` (nodes), ``failed`` ({node or step: text}),
    ``not_reached`` (nodes), ``skipped`` ({node: why}) and ``pillar_version``.
    """
    plan = report["plan"]
    if report.get("dry_run"):
        status = "DRY RUN, nothing changed: "
    else:
        status = "SUCCESS: " if report["ok"] else "FAILED: "
    lines = [status + render_plan(plan).splitlines()[0]]
    if report.get("done"):
        lines.append(f"done: {', '.join(report['done'])}")
    for what, text in report.get("failed", {}).items():
        lines.append(f"failed: {what}: {text}")
    if report.get("skipped"):
        lines += [f"skipped: {n}: {why}" for n, why in report["skipped"].items()]
    if report.get("not_reached"):
        lines.append(f"not reached (untouched): {', '.join(report['not_reached'])}")
    for node, why in (report.get("not_drained") or {}).items():
        lines.append(f"not drained: {node}: {why}")
    for node, reason in (report.get("drains_pending") or {}).items():
        lines.append(
            f"drain pending: {node} is down (CraneSched refuses to drain a DOWN node); the drain "
            f"record keeps '{reason}' and crane.drains_restore drains it again once it is up"
        )
    if report.get("drains_error"):
        lines.append(f"drains NOT restored: {report['drains_error']}")
    if report.get("cranectld"):
        lines.append(f"cranectld: {report['cranectld']}")
    lines += next_steps(report)
    return "\n".join(lines)


def next_steps(report):
    plan, steps = report["plan"], []
    version, pillar = plan["version"], report.get("pillar_version")
    if not report["ok"]:
        steps.append(
            "next: fix the cause above; nodes that failed stay drained (a reason starting "
            f"'{REASON_PREFIX}', or the admin's own) unless listed as not drained above. Run "
            "the same command again: nodes already done are skipped."
        )
    if plan["action"] == "upgrade" and pillar is not None and str(pillar) != str(version):
        steps.append(
            f"next: set crane:version to '{version}' in the pillar. Until then a plain "
            f"`state.apply crane` pins '{pillar or 'unset'}' and would change the packages back."
        )
    return steps
