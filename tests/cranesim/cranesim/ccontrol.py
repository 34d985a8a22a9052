"""The simulated ``ccontrol``: ``show node`` (one block per node, tab-indented continuation
lines) and ``update nodename=… state=drain|resume reason=…`` (``reason`` required, exit 2)."""

import datetime
import os
import re
import sys

from cranesim import frontend, hostlist
from cranesim.common import RpcError
from cranesim.frontend import CraneError

# FE:internal/ccontrol/parser.go lexer, in rule order.
TOKEN_RULES = [
    ("ws", r"\s+"),
    ("String", r"""[-+]?("[^"]*"|'[^']*'|""|'')"""),
    ("Ident", r"[\+\-]?[a-zA-Z0-9][a-zA-Z0-9_\+\-\.,:@\[\]T]*"),
    ("Number", r"[-+]?\d+(\.\d+)?"),
    ("Punct", r"[-=,:]"),
]
ENTITIES = [
    "node",
    "partition",
    "job",
    "step",
    "reservation",
    "lic",
    "next-job-id",
    "next-job-db-id",
    "next-step-db-id",
    "partition-acl",
    "job-history",
]
ACTIONS = [
    "show",
    "update",
    "hold",
    "release",
    "suspend",
    "resume",
    "requeue",
    "create",
    "delete",
    "reset",
]
VALUE_TYPES = ("String", "Ident", "Number")
STATES = ["drain", "resume", "on", "off", "sleep", "wake"]
NEW_STATE = {
    "drain": "CRANE_DRAIN",
    "resume": "CRANE_NONE",
    "on": "CRANE_POWERON",
    "off": "CRANE_POWEROFF",
    "sleep": "CRANE_SLEEP",
    "wake": "CRANE_WAKE",
}

HELP = """ccontrol is a command line tool for managing the CraneSched cluster.

Usage:
  ccontrol [flags] <command> [<entity>] [<id>] [key=value ...]

Commands:
  show node [name]
  update nodename=<hostlist> state=<drain|resume> reason=<text>
"""


class Flags:
    json = False
    config = frontend.DEFAULT_CONFIG


# --------------------------------------------------------------------------- command line
def pre_parse_global_flags(args, flags):
    """``preParseGlobalFlags``: -h, -v, -J, --force and -C anywhere on the line."""
    remaining = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            remaining.append(arg)
            i += 1
            continue
        name, _, value = arg.partition("=")
        if name in ("-h", "--help"):
            print(HELP)
            sys.exit(0)
        elif name in ("-v", "--version"):
            print(frontend.version_text())
            sys.exit(0)
        elif name in ("-J", "--json"):
            flags.json = True
        elif name in ("-C", "--config"):
            if value:
                flags.config = value
            elif i + 1 < len(args) and not args[i + 1].startswith("-"):
                flags.config = args[i + 1]
                i += 1
        elif name != "--force":
            remaining.append(arg)
        i += 1
    return remaining


def command_string(args):
    """``getCmdStringByArgs``: re-quote values that contain spaces."""
    out = []
    for arg in args:
        if arg == "":
            out.append('""')
        elif "=" in arg:
            key, value = arg.split("=", 1)
            if value == "":
                out.append(f'{key}=""')
            elif _quoted(value) or " " not in value:
                out.append(arg)
            else:
                out.append(f"{key}={_go_quote(value)}")
        elif " " in arg and not arg.startswith(("'", '"')):
            out.append(_go_quote(arg))
        else:
            out.append(arg)
    return " ".join(out)


def _quoted(value):
    return len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""


def _go_quote(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tokenize(text):
    tokens, pos = [], 0
    while pos < len(text):
        for kind, pattern in TOKEN_RULES:
            match = re.compile(pattern).match(text, pos)
            if match and match.end() > pos:
                if kind != "ws":
                    tokens.append((kind, match.group(0), pos))
                pos = match.end()
                break
        else:
            raise ValueError(f'1:{pos + 1}: invalid input text "{text[pos : pos + 10]}"')
    return tokens


def parse_command(text):
    """The participle grammar for ``show`` and ``update``; returns (action, entity, id, kv)."""
    tokens = tokenize(text)
    if not tokens or tokens[0][1] not in ACTIONS:
        where = (
            f'1:{tokens[0][2] + 1}: unexpected token "{tokens[0][1]}"'
            if tokens
            else '1:1: unexpected token "<EOF>"'
        )
        raise ValueError(where)
    action = tokens[0][1]
    if action == "show":
        return _parse_show(tokens)
    kvs, rest = _parse_kv(tokens[1:])
    if rest:
        raise ValueError(f'1:{rest[0][2] + 1}: unexpected token "{rest[0][1]}"')
    return action, "", "", kvs


def _parse_show(tokens):
    if len(tokens) < 2 or tokens[1][1] not in ENTITIES:
        bad = tokens[1] if len(tokens) > 1 else ("", "<EOF>", len(tokens[0][1]))
        raise ValueError(f'1:{bad[2] + 1}: unexpected token "{bad[1]}" (expected EntityType)')
    ident = ""
    rest = tokens[2:]
    if rest and rest[0][0] in VALUE_TYPES:
        ident, rest = rest[0][1], rest[1:]
    if rest:
        raise ValueError(f'1:{rest[0][2] + 1}: unexpected token "{rest[0][1]}"')
    return "show", tokens[1][1], ident, {}


def _parse_kv(tokens):
    kvs = {}
    while len(tokens) >= 2 and tokens[0][0] == "Ident":
        key = tokens[0][1]
        if tokens[1][1] == "=" and len(tokens) >= 3 and tokens[2][0] in VALUE_TYPES:
            kvs[key] = _unquote(tokens[2][1])
            tokens = tokens[3:]
        elif tokens[1][0] in VALUE_TYPES:
            kvs[key] = _unquote(tokens[1][1])
            tokens = tokens[2:]
        else:
            break
    return kvs, tokens


def _unquote(value):
    return value[1:-1] if _quoted(value) else value


# --------------------------------------------------------------------------- update node
def execute_update(kvs, config, flags):
    for key, value in kvs.items():
        if key.lower() in ("node", "nodename"):
            return update_node(kvs, value, config, flags)
    for key in kvs:
        if key.lower() in ("job", "jobid", "partition", "partitionname"):
            raise CraneError(frontend.ERROR_CMD_ARG, f"updating {key} is not simulated\n")
    raise CraneError(frontend.ERROR_CMD_ARG, "unknown attribute to modify\n")


def update_node(kvs, node_name, config, flags):
    """``executeUpdateNodeCommand``: note that both ``state`` and ``reason`` keys are required."""
    if not kvs:
        raise CraneError(frontend.ERROR_CMD_ARG, "no attributes to modify\n")
    lowered = {k.lower() for k in kvs}
    missing = [f for f in ("state", "reason") if f not in lowered]
    if missing:
        raise CraneError(frontend.ERROR_CMD_ARG, f"missing required fields: {', '.join(missing)}\n")
    if node_name == "":
        raise CraneError(frontend.ERROR_CMD_ARG, "node name not specified\n")
    state = reason = ""
    for key, value in kvs.items():
        low = key.lower()
        if low == "state":
            state = value
        elif low == "reason":
            reason = value
        elif low not in ("nodename", "node"):
            raise CraneError(frontend.ERROR_CMD_ARG, f"unknown attribute to modify: {key}\n")
    try:
        change_node_state(node_name, state, reason, config, flags)
    except CraneError as err:
        raise CraneError(
            frontend.ERROR_CMD_ARG, f"change node state failed: {err.message}\n"
        ) from None


def change_node_state(node_regex, state, reason, config, flags):
    """``ChangeNodeState``."""
    names = hostlist.expand(node_regex, hostlist.GO)
    if names is None:
        raise CraneError(frontend.ERROR_CMD_ARG, f"Invalid node pattern: {node_regex}.")
    if not names:
        raise CraneError(frontend.ERROR_CMD_ARG, "No node provided.")
    state = state.lower()
    if state not in STATES:
        raise CraneError(
            frontend.ERROR_CMD_ARG,
            f"Invalid state given: {state}. Valid states are: {', '.join(STATES)}.",
        )
    if state == "drain" and reason == "":
        raise CraneError(frontend.ERROR_CMD_ARG, "You must specify a reason when draining a node.")
    request = {
        "op": "modify_node",
        "uid": os.getuid(),
        "craned_ids": names,
        "new_state": NEW_STATE[state],
        "reason": reason if state == "drain" else "",
    }
    try:
        reply = frontend.call_ctld(config, request)
    except RpcError:
        raise CraneError(
            frontend.ERROR_NETWORK, f"Failed to modify node state: {frontend.BROKEN}"
        ) from None
    if flags.json:
        print(
            frontend.json_line(
                {
                    k: reply[k]
                    for k in ("modified_nodes", "not_modified_nodes", "not_modified_reasons")
                }
            )
        )
        if reply["not_modified_nodes"]:
            raise CraneError(frontend.ERROR_BACKEND)
        return
    summarize(reply)


def summarize(reply):
    """``SummarizeReply`` for ModifyCranedStateReply."""
    if reply["modified_nodes"]:
        print(
            f"Nodes {', '.join(reply['modified_nodes'])} modified successfully, please wait for a "
            "few "
            "minutes for the node state to fully update."
        )
        sys.stdout.flush()
    failed = zip(reply["not_modified_nodes"], reply["not_modified_reasons"], strict=True)
    msg = "".join(f"Failed to modify node: {node}. Reason: {why}.\n" for node, why in failed)
    if msg:
        raise CraneError(frontend.ERROR_BACKEND, msg)


# --------------------------------------------------------------------------- show node
def show_node(name, config, flags):
    """``executeShowNodeCommand``."""
    try:
        reply = frontend.call_ctld(config, {"op": "query_craned_info", "craned_name": name})
    except RpcError:
        raise CraneError(
            frontend.ERROR_GENERIC, f"show nodes failed: Failed to show nodes: {frontend.BROKEN}\n"
        ) from None
    nodes = reply.get("craned_info_list", [])
    if flags.json:
        print(frontend.json_line({"craned_info_list": [protojson_node(n) for n in nodes]}))
        return
    if not nodes:
        if not name:
            print("No node is available.")
            return
        raise CraneError(frontend.ERROR_GENERIC, f"show nodes failed: Node {name} not found.\n")
    sys.stdout.write("".join(node_details(n) for n in nodes))


def node_state(node):
    """``formatNodeState``: enum names minus ``CRANE_``; no ``[failed]`` here."""
    text = node["resource_state"][6:].lower()
    if node["control_state"] != "CRANE_NONE":
        text += f"({node['control_state'][6:].lower()})"
    return text + f"[{node['power_state'][6:].lower()}]"


def mem_mb(value):
    return "0" if value == 0 else f"{value // (1024 * 1024)}M"


def gres_text(gres):
    parts = [f"{name}:{gtype}:{count}" for name, gtype, count in gres if count]
    return ", ".join(parts) if parts else "None"


def local_time(epoch):
    if not epoch or epoch < 315532800:  # before 1980-01-01
        return "unknown"
    return datetime.datetime.fromtimestamp(int(epoch)).strftime("%Y-%m-%d %H:%M:%S")


def node_details(node):
    """``printNodeDetails``, byte for byte."""
    total, alloc, avail = node["res_total"], node["res_alloc"], node["res_avail"]
    os_desc = node["system_desc"] if len(node["system_desc"]) > 2 else "unknown"
    return (
        f"NodeName={node['hostname']} State={node_state(node)} "
        f"CPU={total['cpu_count']:.2f} AllocCPU={abs(alloc['cpu_count']):.2f} "
        f"FreeCPU={abs(avail['cpu_count']):.2f}\n"
        f"\tRealMemory={mem_mb(total['memory_bytes'])} AllocMem={mem_mb(alloc['memory_bytes'])} "
        f"FreeMem={mem_mb(avail['memory_bytes'])}\n"
        f"\tGres={gres_text(total['gres'])} AllocGres={gres_text(alloc['gres'])} "
        f"FreeGres={gres_text(avail['gres'])}\n"
        f"\tSockets={node['sockets']}\n"
        f"\tPartition={','.join(node['partition_names'])} RunningJob={node['running_job_num']} "
        f"Version={node['craned_version'] or 'unknown'}\n"
        f"\tOs={os_desc}\n"
        f"\tBootTime={local_time(node['system_boot_time'])} "
        f"CranedStartTime={local_time(node['craned_start_time'])}\n"
        f"\tLastBusyTime={local_time(node['last_busy_time'])}\n"
    )


def _rfc3339(epoch):
    stamp = datetime.datetime.fromtimestamp(int(epoch or 0), tz=datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _res_json(res):
    gres = {}
    for name, gtype, count in res["gres"]:
        gres.setdefault(name, {"type_slots_map": {}})["type_slots_map"][gtype] = {
            "slots": [str(i) for i in range(count)]
        }
    return {
        "cpu_count": float(res["cpu_count"]),
        "memory_bytes": str(res["memory_bytes"]),
        "gres": {"name_type_map": gres},
    }


def protojson_node(node):
    """Approximate protojson ``CranedInfo``: proto names, enum strings, int64 as strings."""
    return {
        "hostname": node["hostname"],
        "resource_state": node["resource_state"],
        "control_state": node["control_state"],
        "power_state": node["power_state"],
        "res_total": _res_json(node["res_total"]),
        "res_alloc": _res_json(node["res_alloc"]),
        "res_avail": _res_json(node["res_avail"]),
        "partition_names": node["partition_names"],
        "running_job_num": node["running_job_num"],
        "craned_version": node["craned_version"],
        "system_desc": node["system_desc"],
        "craned_start_time": _rfc3339(node["craned_start_time"]),
        "system_boot_time": _rfc3339(node["system_boot_time"]),
        "last_busy_time": _rfc3339(node["last_busy_time"]),
        "state_reason": node["state_reason"],
        "node_topo_info": {"sockets": node["sockets"]},
    }


# --------------------------------------------------------------------------- main
def execute(command, config, flags):
    action, entity, ident, kvs = command
    if action == "update":
        return execute_update(kvs, config, flags)
    if action == "show" and entity == "node":
        return show_node(ident, config, flags)
    raise CraneError(
        frontend.ERROR_CMD_ARG, f"{action} {entity} is not simulated\n".replace("  ", " ")
    )


def main(argv=None):
    """Entry point of /usr/bin/ccontrol (``ParseCmdArgs``)."""
    flags = Flags()
    args = pre_parse_global_flags(sys.argv[1:] if argv is None else argv, flags)
    if not args:
        print(HELP)
        return 0
    try:
        command = parse_command(command_string(args))
    except ValueError as exc:
        frontend.log_error(f"Error: command format is incorrect {exc}")
        return frontend.ERROR_CMD_ARG
    config = frontend.parse_config(flags.config)
    try:
        execute(command, config, flags)
    except CraneError as err:
        if err.message:
            frontend.log_error(err.message)
        return err.code
    return frontend.ERROR_SUCCESS
