"""The simulated ``cinfo``: table, ``--json``, filters and exit codes (4 when the reply is not
ok, 0 with a message when no partition matches)."""

import argparse
import datetime
import re
import sys
import time

from cranesim import frontend, hostlist
from cranesim.common import RpcError
from cranesim.frontend import CraneError

RESOURCE = {"idle": "CRANE_IDLE", "mix": "CRANE_MIX", "alloc": "CRANE_ALLOC", "down": "CRANE_DOWN"}
CONTROL = {"none": "CRANE_NONE", "drain": "CRANE_DRAIN"}
POWER = {
    "active": "CRANE_POWER_ACTIVE",
    "power-idle": "CRANE_POWER_IDLE",
    "sleeping": "CRANE_POWER_SLEEPING",
    "poweredoff": "CRANE_POWER_POWEREDOFF",
    "off": "CRANE_POWER_POWEREDOFF",
    "to-sleep": "CRANE_POWER_TO_SLEEPING",
    "waking": "CRANE_POWER_WAKING_UP",
    "oning": "CRANE_POWER_POWERING_ON",
    "offing": "CRANE_POWER_POWERING_OFF",
}
ALL_POWER = list(dict.fromkeys(POWER.values()))


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CraneError(frontend.ERROR_GENERIC, f"Error: {message}")


def build_parser():
    parser = _Parser(prog="cinfo", add_help=False)
    parser.add_argument("-C", "--config", default=frontend.DEFAULT_CONFIG)
    parser.add_argument("-d", "--dead", action="store_true")
    parser.add_argument("-r", "--responding", action="store_true")
    parser.add_argument("-t", "--states", action="append", default=[])
    parser.add_argument("-p", "--partition", action="append", default=[])
    parser.add_argument("-n", "--nodes", action="append", default=[])
    parser.add_argument("-i", "--iterate", type=int, default=0)
    parser.add_argument("-N", "--noheader", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("-o", "--format", default="")
    parser.add_argument("-R", "--list-reasons", action="store_true")
    parser.add_argument("-v", "--version", action="store_true")
    parser.add_argument("-h", "--help", action="store_true")
    return parser


def _split(values):
    """cobra StringSlice: repeatable and comma separated."""
    return [item for value in values for item in value.split(",")]


def _convert(states, table, kind):
    """``ConvertStates``: keep this group's states, skip the other groups', reject unknowns."""
    result = []
    for state in states:
        lowered = state.lower()
        if lowered in table:
            result.append(table[lowered])
        elif lowered not in RESOURCE and lowered not in CONTROL and lowered not in POWER:
            raise CraneError(frontend.ERROR_CMD_ARG, f"Invalid {kind} state given: {state}")
    return result


def build_request(args):
    """``FillReqByFilterFlag``."""
    states = _split(args.states)
    resources = _convert(states, RESOURCE, "resource")
    controls = _convert(states, CONTROL, "control")
    powers = _convert(states, POWER, "power")
    if not resources:
        if args.responding:
            resources = ["CRANE_IDLE", "CRANE_MIX", "CRANE_ALLOC"]
        elif args.dead:
            resources = ["CRANE_DOWN"]
        else:
            resources = list(RESOURCE.values())
    return {
        "op": "query_cluster_info",
        "filter_partitions": _non_empty(_split(args.partition), "Empty partition name is ignored."),
        "filter_nodes": _non_empty(_split(args.nodes), "Empty node name is ignored."),
        "filter_craned_resource_states": resources,
        "filter_craned_control_states": controls or list(CONTROL.values()),
        "filter_craned_power_states": powers or ALL_POWER,
    }


def _non_empty(items, warning):
    kept = []
    for item in items:
        if item:
            kept.append(item)
        else:
            frontend.log_error(warning)
    return kept


def _lower(enum, prefix):
    return enum[len(prefix) :].lower()


def state_string(group):
    """``BuildStateString``: ``res(ctrl)[power]`` with ``[failed]`` for down nodes."""
    text = _lower(group["resource_state"], "CRANE_")
    if group["control_state"] != "CRANE_NONE":
        text += f"({_lower(group['control_state'], 'CRANE_')})"
    power = f"[{_lower(group['power_state'], 'CRANE_')}]"
    if group["resource_state"] == "CRANE_DOWN" and group["power_state"] in (
        "CRANE_POWER_IDLE",
        "CRANE_POWER_ACTIVE",
    ):
        power = "[failed]"
    return text + power


def table_rows(reply, with_reason):
    """``FindTableDataByReply``: rows of matching groups, then empty partitions as n/a."""
    rows, empty = [], []
    for part in reply.get("partitions", []):
        avail = _lower(part["state"], "PARTITION_")
        groups = [g for g in part.get("craned_lists", []) if g["count"] > 0]
        for group in groups:
            row = [
                part["name"],
                avail,
                str(group["count"]),
                state_string(group),
                group["craned_list_regex"],
            ]
            rows.append([*row, group["reason"]] if with_reason else row)
        if not groups:
            row = [part["name"], avail, "0", "n/a", ""]
            empty.append([*row, ""] if with_reason else row)
    rows += empty
    if with_reason:
        rows = [row for row in rows if re.search("(drain|down)", row[3])]
    return rows


def render_table(header, rows):
    """Borderless tablewriter (v0.0.5, ``SetNoWhiteSpace``): left aligned, every cell padded
    to its column's widest and followed by the table padding " ", the last one too."""
    all_rows = ([header] if header else []) + rows
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(all_rows[0]))]
    return "".join(
        "".join(cell.ljust(w) + " " for cell, w in zip(row, widths, strict=True)) + "\n"
        for row in all_rows
    )


def output_table(reply, args):
    header = ["PARTITION", "AVAIL", "NODES", "STATE", "NODELIST"]
    if args.list_reasons:
        header.append("REASON")
    rows = table_rows(reply, args.list_reasons)
    if not rows:
        frontend.log_info("No matching partitions were found for the given filter.")
    else:
        sys.stdout.write(render_table(None if args.noheader else header, rows))
        sys.stdout.flush()
    if args.nodes:
        _report_missing_nodes(reply, args)


def _report_missing_nodes(reply, args):
    found = set()
    for part in reply.get("partitions", []):
        for group in part.get("craned_lists", []):
            if group["count"] > 0:
                found.update(hostlist.expand(group["craned_list_regex"], hostlist.GO) or [])
    requested = hostlist.expand(",".join(n for n in _split(args.nodes) if n), hostlist.GO) or []
    missing = [n for n in requested if n not in found]
    if missing:
        frontend.log_info(
            "Requested nodes do not exist or do not meet the given filter condition: "
            f"{hostlist.compress(missing, hostlist.GO)}."
        )


def query(config, args):
    request = build_request(args)
    try:
        reply = frontend.call_ctld(config, request)
    except RpcError:
        frontend.log_error(f"Failed to query cluster information: {frontend.BROKEN}")
        raise CraneError(frontend.ERROR_NETWORK) from None
    if args.json:
        print(frontend.json_line(reply))
        if not reply.get("ok"):
            raise CraneError(frontend.ERROR_BACKEND, "Backend returned non-ok status")
        return
    if args.format:
        raise CraneError(
            frontend.ERROR_INVALID_FORMAT, "--format is not supported by the simulator."
        )
    output_table(reply, args)


def run(argv):
    args = build_parser().parse_args(argv)
    if args.help:
        print("Display the state of partitions and nodes\n\nUsage:\n  cinfo [flags]")
        return
    if args.version:
        print(frontend.version_text())
        return
    exclusive = [
        name
        for name, on in (
            ("dead", args.dead),
            ("responding", args.responding),
            ("states", bool(args.states)),
        )
        if on
    ]
    if len(exclusive) > 1:
        raise CraneError(
            frontend.ERROR_GENERIC,
            "Error: if any flags in the group [states responding dead] are set none of the others "
            f"can be; [{' '.join(sorted(exclusive))}] were all set",
        )
    config = frontend.parse_config(args.config)
    if not args.iterate:
        query(config, args)
        return
    while True:
        print(str(datetime.datetime.now())[:19])
        query(config, args)
        time.sleep(args.iterate)
        print()


def main(argv=None):
    """Entry point of /usr/bin/cinfo."""
    try:
        run(sys.argv[1:] if argv is None else argv)
    except CraneError as err:
        if err.message:  # cobra prints argument errors itself, prefixed with "Error: "
            prefix = "Error: " if err.code == frontend.ERROR_CMD_ARG else ""
            frontend.log_error(prefix + err.message)
        return err.code
    return frontend.ERROR_SUCCESS
