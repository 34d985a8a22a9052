"""Read CraneSched's ``cinfo`` and ``ccontrol show node`` output and judge cluster health.

Pure logic, standard library only: running the commands is the execution module's job.
Formats follow the CraneSched frontend (``cinfo`` table and ``--json``, ``ccontrol show
node``); every parser raises :class:`CinfoParseError` with a message naming what was wrong.

A *partition* is ``{"name", "default", "state", "groups"}``; each *group* (one cinfo row) is
``{"resource", "control", "power", "state", "count", "nodes", "nodelist", "reason"}`` where
``state`` is the STATE string as cinfo prints it, e.g. ``idle(drain)[power_idle]``.

Public functions: ``parse_cinfo`` / ``parse_cinfo_json`` / ``parse_cinfo_table``,
``nodes_from_partitions``, ``health``, ``parse_show_node``, ``parse_gres``, the state helpers
``state_string`` / ``split_state`` / ``state_tokens`` / ``normalize_state_filter`` /
``state_matches`` / ``filter_nodes``, and ``node_update_args`` / ``parse_node_update`` for
``ccontrol update nodename=… state=drain|resume``.
"""

import json
import os
import re
import sys

# Siblings by name; the folder stays on sys.path (README, "How the utilities load").
_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
if _FOLDER not in sys.path:
    sys.path.append(_FOLDER)

import crane_hostlist  # noqa: E402

# Enum values in proto order (the JSON may carry the number instead of the name).
PARTITION_STATES = ("up", "down")
RESOURCE_STATES = ("idle", "mix", "alloc", "down")
CONTROL_STATES = ("none", "drain", "poweroff", "sleep", "wake", "poweron", "unregister_power")
POWER_STATES = (
    "power_active",
    "power_idle",
    "power_sleeping",
    "power_poweredoff",
    "power_to_sleeping",
    "power_waking_up",
    "power_powering_on",
    "power_powering_off",
)
# Power states in which a node can run jobs.
READY_POWER_STATES = ("power_active", "power_idle")
# cinfo prints "[failed]" for a down node in one of these power states; we read it back
# as the initial power state, the only one a cluster without the power plugin ever has.
FAILED_POWER_STATES = ("power_idle", "power_active")
FAILED_POWER_READ_AS = "power_idle"

# ``cinfo -t`` vocabulary: token -> (field, value).
_FILTER_TOKENS = {
    **{name: ("resource", name) for name in RESOURCE_STATES},
    "none": ("control", "none"),
    "drain": ("control", "drain"),
    "active": ("power", "power_active"),
    "power-idle": ("power", "power_idle"),
    "sleeping": ("power", "power_sleeping"),
    "poweredoff": ("power", "power_poweredoff"),
    "off": ("power", "power_poweredoff"),
    "to-sleep": ("power", "power_to_sleeping"),
    "waking": ("power", "power_waking_up"),
    "oning": ("power", "power_powering_on"),
    "offing": ("power", "power_powering_off"),
}
# Canonical token per (field, value), for the reverse direction ("off" is only an alias).
_TOKEN_OF = {value: token for token, value in _FILTER_TOKENS.items() if token != "off"}

TABLE_HEADER = ("PARTITION", "AVAIL", "NODES", "STATE", "NODELIST")
REASON_HEADER = "REASON"
NO_NODES_STATE = "n/a"
_STATE_RE = re.compile(r"^(?P<resource>[a-z]+)(?:\((?P<control>[a-z_]+)\))?\[(?P<power>[a-z_]+)\]$")


class CinfoParseError(ValueError):
    """cinfo or ccontrol output that does not have the documented shape."""


# --------------------------------------------------------------------------- states


def state_string(resource, control, power, failed=True):
    """Build the STATE string cinfo prints; ``failed=False`` gives ccontrol's form.

    >>> state_string("down", "none", "power_idle")
    'down[failed]'
    """
    text = resource if control == "none" else f"{resource}({control})"
    if failed and resource == "down" and power in FAILED_POWER_STATES:
        return text + "[failed]"
    return f"{text}[{power}]"


def split_state(text):
    """Split a STATE string like ``idle(drain)[power_idle]`` into its three parts.

    Returns ``{"resource", "control", "power", "state"}``. ``[failed]`` (cinfo's form for a
    down node) is read as power ``power_idle``; ``state`` keeps the text as given.
    """
    match = _STATE_RE.match(text.strip())
    if not match:
        raise CinfoParseError(f"invalid node state {text!r}")
    resource, control, power = match.group("resource", "control", "power")
    control = control or "none"
    if power == "failed" and resource == "down":
        power = FAILED_POWER_READ_AS
    _check_member(resource, RESOURCE_STATES, "resource state", text)
    _check_member(control, CONTROL_STATES, "control state", text)
    _check_member(power, POWER_STATES, "power state", text)
    return {"resource": resource, "control": control, "power": power, "state": text.strip()}


def _check_member(value, allowed, what, context):
    if value not in allowed:
        raise CinfoParseError(f"unknown {what} {value!r} in {context!r}")


def state_tokens(node_state):
    """The ``cinfo -t`` tokens a node state matches, e.g. ``{"idle", "drain", "power-idle"}``."""
    fields = ("resource", "control", "power")
    return {
        _TOKEN_OF[(field, node_state[field])]
        for field in fields
        if (field, node_state[field]) in _TOKEN_OF
    }


def normalize_state_filter(states):
    """Validate a ``states`` filter (list or comma-separated string) like ``cinfo -t``.

    Returns a sorted list of lower-case canonical tokens; raises :class:`ValueError` naming
    any unknown token.
    """
    if isinstance(states, str):
        states = states.split(",")
    tokens = [str(token).strip().lower() for token in states if str(token).strip()]
    unknown = [token for token in tokens if token not in _FILTER_TOKENS]
    if unknown:
        known = ", ".join(sorted(_FILTER_TOKENS))
        raise ValueError(f"unknown node state(s) {', '.join(unknown)}; known: {known}")
    return sorted({_TOKEN_OF[_FILTER_TOKENS[token]] for token in tokens})


def state_matches(node_state, states):
    """True if a node state passes a ``states`` filter with ``cinfo -t`` semantics.

    Tokens are grouped by field (resource, control, power); a field the filter does not
    mention matches every value. So ``["idle", "mix", "alloc"]`` also matches drained nodes,
    exactly like ``cinfo -t idle,mix,alloc``; add ``"none"`` to exclude them.
    """
    wanted = {}
    for token in normalize_state_filter(states):
        field, value = _FILTER_TOKENS[token]
        wanted.setdefault(field, set()).add(value)
    return all(node_state[field] in values for field, values in wanted.items())


def filter_nodes(nodes, states):
    """The subset of a ``{node: state}`` mapping whose states pass ``states``."""
    return {name: state for name, state in nodes.items() if state_matches(state, states)}


# --------------------------------------------------------------------------- cinfo


def parse_cinfo(text):
    """Parse cinfo output in either form: ``--json`` if it starts with ``{``, else a table."""
    if isinstance(text, (dict, bytes)) or text.lstrip().startswith("{"):
        return parse_cinfo_json(text)
    return parse_cinfo_table(text)


def _make_group(parts, count, nodelist, reason):
    """One cinfo row as a group dict, with its host list expanded and checked.

    ``parts`` holds ``resource``, ``control`` and ``power``, and ``state`` when the STATE
    text is known (table); otherwise it is built the way cinfo prints it.
    """
    nodes = _expand_nodelist(nodelist, count)
    resource, control, power = parts["resource"], parts["control"], parts["power"]
    return {
        "resource": resource,
        "control": control,
        "power": power,
        "state": parts.get("state") or state_string(resource, control, power),
        "count": count,
        "nodes": nodes,
        "nodelist": nodelist,
        "reason": reason,
    }


def _expand_nodelist(nodelist, count):
    """The names of a NODELIST that must name ``count`` nodes."""
    try:
        nodes = crane_hostlist.expand(nodelist, max_hosts=count)
    except crane_hostlist.HostListError as exc:
        raise CinfoParseError(f"cinfo NODELIST of {count} node(s): {exc}") from exc
    if len(nodes) != count:
        # e.g. cn1-ib,cn2-ib is printed as cn[1-2]-ib, which reads back as one literal name
        raise CinfoParseError(
            f"cinfo NODELIST {nodelist!r} reads back as {len(nodes)} node(s) but NODES is"
            f" {count} (a likely cause: names with text after the number that does not start"
            " with '.' do not survive cinfo's host-list compression)"
        )
    return nodes


def _make_partition(raw_name, state):
    """A partition dict; the trailing ``*`` of the default partition becomes ``default``."""
    name = raw_name[:-1] if raw_name.endswith("*") else raw_name
    if not name:
        raise CinfoParseError(f"empty partition name {raw_name!r}")
    return {"name": name, "default": raw_name.endswith("*"), "state": state, "groups": []}


# ----------------------------------------------------------------- cinfo --json


def parse_cinfo_json(text):
    """Parse ``cinfo --json`` (a protojson ``QueryClusterInfoReply``) into partitions.

    Fields left out follow protobuf defaults (zero value), enums may be names or numbers.
    Raises :class:`CinfoParseError` for invalid JSON, ``ok`` not true, or a wrong shape.
    """
    reply = _load_json(text)
    if reply.get("ok") is not True:
        raise CinfoParseError(f"cinfo reply is not ok (ok={reply.get('ok')!r})")
    return [
        _json_partition(item, index)
        for index, item in enumerate(_json_list(reply, "partitions", "reply"))
    ]


def _load_json(text):
    if isinstance(text, dict):
        return text
    try:
        reply = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise CinfoParseError(f"cinfo --json output is not valid JSON: {exc}") from exc
    if not isinstance(reply, dict):
        raise CinfoParseError("cinfo --json output is not a JSON object")
    return reply


def _json_list(obj, key, where):
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise CinfoParseError(f"{where}: {key!r} must be a list, got {type(value).__name__}")
    return value


def _json_partition(item, index):
    where = f"partitions[{index}]"
    if not isinstance(item, dict):
        raise CinfoParseError(f"{where} must be an object")
    name = _json_str(item, "name", where)
    state = _json_enum(item, "state", "PARTITION_", PARTITION_STATES, where)
    partition = _make_partition(name, state)
    groups = _json_list(item, "craned_lists", where)
    for number, group in enumerate(groups):
        parsed = _json_group(group, f"{where}.craned_lists[{number}]")
        if parsed is not None:
            partition["groups"].append(parsed)
    return partition


def _json_group(group, where):
    """One ``craned_lists`` entry as a group, or ``None`` for an empty one."""
    if not isinstance(group, dict):
        raise CinfoParseError(f"{where} must be an object")
    count = group.get("count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise CinfoParseError(f"{where}: 'count' must be a non-negative integer, got {count!r}")
    if count == 0:
        return None  # cinfo skips empty groups as well
    parts = {
        "resource": _json_enum(group, "resource_state", "CRANE_", RESOURCE_STATES, where),
        "control": _json_enum(group, "control_state", "CRANE_", CONTROL_STATES, where),
        "power": _json_enum(group, "power_state", "CRANE_", POWER_STATES, where),
    }
    nodelist = _json_str(group, "craned_list_regex", where)
    return _make_group(parts, count, nodelist, _json_str(group, "reason", where))


def _json_str(obj, key, where):
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise CinfoParseError(f"{where}: {key!r} must be a string, got {value!r}")
    return value


def _json_enum(obj, key, prefix, values, where):
    """An enum field as our lower-case name; accepts the proto name or its number."""
    raw = obj.get(key, 0)
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(values):
        return values[raw]
    if isinstance(raw, str) and raw.startswith(prefix):
        name = raw[len(prefix) :].lower()
        if name in values:
            return name
    raise CinfoParseError(f"{where}: unknown {key} {raw!r}")


# ------------------------------------------------------------------ cinfo table


def parse_cinfo_table(text, header=True):
    """Parse cinfo's table output (plain, ``-N`` with ``header=False``, ``-R``) into partitions.

    Rows of the same partition are merged in order; a partition printed as ``n/a`` has no
    groups. Empty output (cinfo found no matching partition) gives ``[]``.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    with_reason = None  # unknown without a header: any text after NODELIST is the reason
    if header and lines:
        with_reason = _read_header(lines.pop(0))
    partitions = {}
    for line in lines:
        name, state, group = _table_row(line, with_reason)
        partition = partitions.get(name)
        if partition is None:
            partition = partitions[name] = _make_partition(name, state)
        elif partition["state"] != state:
            raise CinfoParseError(f"partition {name!r} is both {partition['state']} and {state}")
        if group is not None:
            partition["groups"].append(group)
    return list(partitions.values())


def _read_header(line):
    """Check the header line; returns True when it has the ``-R`` REASON column."""
    columns = tuple(line.split())
    if columns == TABLE_HEADER:
        return False
    if columns == (*TABLE_HEADER, REASON_HEADER):
        return True
    raise CinfoParseError(
        f"unexpected cinfo header {line.strip()!r}; expected {' '.join(TABLE_HEADER)} [REASON]"
    )


def _table_row(line, with_reason):
    """One table row as ``(partition name, avail, group or None)``."""
    fields = line.split(None, 5)
    if len(fields) < 4:
        raise CinfoParseError(f"cinfo row has too few columns: {line!r}")
    name, avail, count_text, state = fields[:4]
    if avail not in PARTITION_STATES:
        raise CinfoParseError(f"invalid AVAIL {avail!r} in cinfo row {line!r}")
    count = _table_count(count_text, line)
    if state == NO_NODES_STATE:
        if count != 0 or len(fields) > 4:
            raise CinfoParseError(f"invalid cinfo row for a partition without nodes: {line!r}")
        return name, avail, None
    if len(fields) < 5:
        raise CinfoParseError(f"cinfo row has no NODELIST: {line!r}")
    reason = fields[5].rstrip() if len(fields) > 5 else ""
    if reason and with_reason is False:
        raise CinfoParseError(f"cinfo row has more columns than its header: {line!r}")
    return name, avail, _make_group(split_state(state), count, fields[4], reason)


def _table_count(text, line):
    if not text.isdigit():
        raise CinfoParseError(f"invalid NODES {text!r} in cinfo row {line!r}")
    return int(text)


# --------------------------------------------------------------------------- nodes


def nodes_from_partitions(partitions):
    """Flatten partitions into ``{node: {"resource", "control", "power", "state", "reason",
    "partitions"}}``; a node listed in several partitions appears once, with every partition
    name in ``partitions`` (its state is the same in each, so the first row wins)."""
    nodes = {}
    for partition in partitions:
        for group in partition["groups"]:
            for name in group["nodes"]:
                node = nodes.setdefault(name, _node_state(group))
                if partition["name"] not in node["partitions"]:
                    node["partitions"].append(partition["name"])
    return nodes


def _node_state(group):
    state = {key: group[key] for key in ("resource", "control", "power", "state", "reason")}
    state["partitions"] = []
    return state


# -------------------------------------------------------------------------- health


def health(partitions, expected_nodes=None, *, allow_down=(), allow_drained=(), allow_not_ready=()):
    """Judge the cluster from parsed cinfo partitions against the configured nodes.

    ``expected_nodes`` is a host-list string or a list of names/host lists (``None``: every
    listed node). Returns ``{"healthy", "up", "missing", "down", "drained", "not_ready",
    "unexpected", "summary"}``: ``drained`` maps node to reason and ``not_ready`` maps node
    to state for nodes that are up and not drained but whose power or control state keeps
    them from running jobs (sleeping, powered off, in transition). A node down and drained
    is in both ``down`` and ``drained``. Healthy means no node is missing and every down,
    drained or not-ready node is allowed by ``allow_down``, ``allow_drained`` or
    ``allow_not_ready`` (host list, names, or ``True`` for any node). Nodes listed but not
    expected are reported and do not make the cluster unhealthy.
    """
    nodes = nodes_from_partitions(partitions)
    expected = set(nodes) if expected_nodes is None else _name_set(expected_nodes)
    listed = _sorted_names(expected & nodes.keys())
    report = {
        "missing": _sorted_names(expected - nodes.keys()),
        "down": [name for name in listed if nodes[name]["resource"] == "down"],
        "drained": {
            name: nodes[name]["reason"] for name in listed if nodes[name]["control"] == "drain"
        },
        "not_ready": {name: nodes[name]["state"] for name in listed if _is_not_ready(nodes[name])},
        "unexpected": _sorted_names(nodes.keys() - expected),
    }
    report["up"] = [name for name in listed if name not in report["down"]]
    report["healthy"] = not report["missing"] and all(
        _all_allowed(report[key], allowed)
        for key, allowed in (
            ("down", allow_down),
            ("drained", allow_drained),
            ("not_ready", allow_not_ready),
        )
    )
    report["summary"] = _summary(report, len(expected))
    return report


def _sorted_names(names):
    """Names in natural order: cn9 before cn10."""
    return sorted(names, key=crane_hostlist.natural_key)


def _is_not_ready(node):
    """Up and not drained, yet unable to run jobs."""
    if node["resource"] == "down" or node["control"] == "drain":
        return False
    return node["power"] not in READY_POWER_STATES or node["control"] != "none"


def _name_set(names):
    """Node names from a host-list string or an iterable of names / host lists.

    Raises ``crane_hostlist.HostListError`` (a :class:`ValueError`) for a bad host list or
    one that expands past ``crane_hostlist.MAX_HOSTS`` names, all items together.
    """
    if isinstance(names, str):
        names = [names]
    return set(crane_hostlist.expand(",".join(str(item) for item in names)))


def _all_allowed(names, allowed):
    if allowed is True:
        return True
    if not allowed:
        return not names
    return set(names) <= _name_set(allowed)


def _summary(report, expected_count):
    """One line, e.g. ``5/6 nodes up; down: cn03; drained: cn01 (maintenance)``."""
    parts = [f"{len(report['up'])}/{expected_count} nodes up"]
    if report["missing"]:
        parts.append("missing: " + crane_hostlist.compress(report["missing"]))
    if report["down"]:
        parts.append("down: " + crane_hostlist.compress(report["down"]))
    if report["drained"]:
        parts.append("drained: " + _names_with_detail(report["drained"]))
    if report["not_ready"]:
        parts.append("not ready: " + _names_with_detail(report["not_ready"]))
    if report["unexpected"]:
        parts.append("unexpected: " + crane_hostlist.compress(report["unexpected"]))
    return "; ".join(parts)


def _names_with_detail(details):
    """``{node: text}`` as ``cn[01-02] (text), cn05`` (nodes grouped by identical text)."""
    by_detail = {}
    for name, detail in sorted(details.items()):
        by_detail.setdefault(detail, []).append(name)
    items = []
    for detail, names in by_detail.items():
        hosts = crane_hostlist.compress(names)
        items.append(f"{hosts} ({detail})" if detail else hosts)
    return ", ".join(items)


# --------------------------------------------------------------- ccontrol show node

NO_NODE_MESSAGE = "No node is available."
UNKNOWN = "unknown"
_KEY_RE = re.compile(r"(?:^|(?<=\s))([A-Z][A-Za-z]*)=")
# Keys whose value runs to the end of the line (it may contain anything).
_WHOLE_LINE_KEYS = ("Os",)


def parse_show_node(text):
    """Parse ``ccontrol show node`` output into ``{node: details}``.

    Each block starts with ``NodeName=`` and continues on tab-indented lines. ``details``
    holds the state parts (as :func:`split_state`), ``cpu``/``alloc_cpu``/``free_cpu``
    (float), ``real_memory_mb``/``alloc_mem_mb``/``free_mem_mb`` (int),
    ``gres``/``alloc_gres``/``free_gres`` (``{"name:type": count}``), ``sockets``,
    ``partitions`` (list), ``running_jobs``, ``version``, ``os``, ``boot_time``,
    ``craned_start_time``, ``last_busy_time`` (``None`` where ccontrol prints ``unknown``),
    ``registered`` (False for a node that never registered) and ``fields`` (every raw
    ``Key=value``). "No node is available." gives ``{}``.
    """
    if text.strip() == NO_NODE_MESSAGE:
        return {}
    nodes = {}
    for fields in _node_blocks(text):
        node = _node_details(fields)
        if node["name"] in nodes:
            raise CinfoParseError(f"node {node['name']!r} is shown twice")
        nodes[node["name"]] = node
    return nodes


def _node_blocks(text):
    """The ``{key: value}`` fields of each block, in order."""
    blocks = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("NodeName="):
            blocks.append({})
        elif not line[0].isspace() or not blocks:
            raise CinfoParseError(f"unexpected line in ccontrol show node output: {line!r}")
        _read_fields(line.strip(), blocks[-1])
    return blocks


def _read_fields(line, fields):
    """Add the ``Key=value`` pairs of one line; values may contain spaces."""
    for key in _WHOLE_LINE_KEYS:
        if line.startswith(key + "="):
            fields[key] = line[len(key) + 1 :].strip()
            return
    matches = list(_KEY_RE.finditer(line))
    if not matches or matches[0].start() != 0:
        raise CinfoParseError(f"expected Key=value in ccontrol show node line {line!r}")
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(line)
        fields[match.group(1)] = line[match.end() : end].strip()


def _node_details(fields):
    """One block's fields as the details dict described in :func:`parse_show_node`."""
    for key in ("NodeName", "State"):
        if not fields.get(key):
            raise CinfoParseError(f"ccontrol show node block without {key}: {fields!r}")
    node = {"name": fields["NodeName"], **split_state(fields["State"])}
    for key, out, convert in _SHOW_NODE_FIELDS:
        node[out] = _convert_field(fields, key, convert)
    node["partitions"] = [name for name in fields.get("Partition", "").split(",") if name]
    node["registered"] = node["version"] is not None or node["craned_start_time"] is not None
    node["fields"] = fields
    return node


def _convert_field(fields, key, convert):
    """``convert(value)`` of a field, ``None`` if it is absent."""
    if key not in fields:
        return None
    try:
        return convert(fields[key])
    except ValueError as exc:
        raise CinfoParseError(f"invalid {key}={fields[key]!r}: {exc}") from exc


def _memory_mb(text):
    """ccontrol memory: ``<N>M`` or ``0``."""
    if text == "0":
        return 0
    if not (text.endswith("M") and text[:-1].isdigit()):
        raise ValueError("expected <N>M or 0")
    return int(text[:-1])


def parse_gres(text):
    """ccontrol's Gres list (``None`` or ``gpu:a100:4, gpu:h100:2``) as ``{"gpu:a100": 4, …}``."""
    if text.strip() in ("", "None"):
        return {}
    gres = {}
    for item in text.split(","):
        name, _, count = item.strip().rpartition(":")
        if not name or not count.isdigit():
            raise ValueError(f"bad gres entry {item.strip()!r}")
        gres[name] = gres.get(name, 0) + int(count)
    return gres


def _known(value):
    """``None`` where ccontrol prints ``unknown``."""
    return None if value == UNKNOWN else value


# (ccontrol key, our key, converter) for every field of a show node block but the first two.
_SHOW_NODE_FIELDS = (
    ("CPU", "cpu", float),
    ("AllocCPU", "alloc_cpu", float),
    ("FreeCPU", "free_cpu", float),
    ("RealMemory", "real_memory_mb", _memory_mb),
    ("AllocMem", "alloc_mem_mb", _memory_mb),
    ("FreeMem", "free_mem_mb", _memory_mb),
    ("Gres", "gres", parse_gres),
    ("AllocGres", "alloc_gres", parse_gres),
    ("FreeGres", "free_gres", parse_gres),
    ("Sockets", "sockets", int),
    ("RunningJob", "running_jobs", int),
    ("Version", "version", _known),
    ("Os", "os", _known),
    ("BootTime", "boot_time", _known),
    ("CranedStartTime", "craned_start_time", _known),
    ("LastBusyTime", "last_busy_time", _known),
)


# ------------------------------------------------------- ccontrol update nodename=

NODE_UPDATE_STATES = ("drain", "resume")
_MODIFIED_RE = re.compile(r"^Nodes (?P<nodes>.+?) modified successfully", re.MULTILINE)
_NOT_MODIFIED_RE = re.compile(
    r"Failed to modify node: (?P<node>\S+?)\. Reason: (?P<reason>.*)\.[ \t]*$", re.MULTILINE
)


def node_update_args(nodes, state, reason=None):
    """The ``ccontrol`` arguments that drain or resume ``nodes`` (host list or names).

    ccontrol re-lexes its arguments: an unquoted value must be a plain word, and a quoted
    one may contain anything but a double quote. So the reason is always passed quoted,
    and one with a double quote or a line break is refused (:class:`ValueError`), as is a
    drain without a reason. ccontrol wants the ``reason`` key for resume too (an empty one).
    """
    state = str(state).lower()
    if state not in NODE_UPDATE_STATES:
        raise ValueError(f"node state must be one of {', '.join(NODE_UPDATE_STATES)}: {state!r}")
    names = _sorted_names(_name_set(nodes))
    if not names:
        raise ValueError("no node given")
    args = ["update", "nodename=" + _round_trip_hostlist(names), "state=" + state]
    # ccontrol requires the reason key for every state change; resume sends an empty one.
    text = _checked_reason(reason) if state == "drain" else ""
    args.append(f'reason="{text}"')
    return args


def _round_trip_hostlist(names):
    """A host list that expands back to ``names``: compressed if that is safe, else a,b,c."""
    compressed = crane_hostlist.compress(names)
    if sorted(crane_hostlist.expand(compressed)) == sorted(names):
        return compressed
    return ",".join(names)


def _checked_reason(reason):
    reason = "" if reason is None else str(reason).strip()
    if not reason:
        raise ValueError("draining a node needs a reason")
    if any(char in reason for char in '"\r\n'):
        raise ValueError(f"a drain reason cannot contain a double quote or line break: {reason!r}")
    return reason


def parse_node_update(text):
    """What ``ccontrol update nodename=… state=…`` did, from its stdout and stderr.

    Returns ``{"modified": [names], "failed": {name: reason}}``; e.g. a down node fails with
    "Can't change the state of a DOWN node!".
    """
    modified = []
    for match in _MODIFIED_RE.finditer(text):
        modified.extend(name.strip() for name in match.group("nodes").split(","))
    failed = {m.group("node"): m.group("reason") for m in _NOT_MODIFIED_RE.finditer(text)}
    return {"modified": modified, "failed": failed}
