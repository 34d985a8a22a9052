"""
The firewall rules the crane formula owns, for ufw and firewalld: which rules a node needs
(its CraneSched ports, open to everyone or only from the given networks), which of the rules
present are the formula's, and the commands that add or remove the difference.

Ownership is visible on the node itself, so ``crane.clean`` closes what the formula opened
and nothing an admin opened: ufw rules carry the comment ``crane-formula``; with firewalld
the ports live in a service of that name, added to a zone or named by rich rules. A rule the
admin already has (the same port from the same source) is left to the admin, not duplicated.

Pure functions: the ``crane_firewall`` states run the commands and feed their output here.
"""

import ipaddress
import shlex

# crane:firewall_sources is checked (CIDR form) with the other settings, in crane_config.

MARK = "crane-formula"  # ufw rule comment; firewalld service name
PROTOCOL = "tcp"


# --- whether ufw is on ----------------------------------------------------------------------


def ufw_conf_enabled(text):
    """Whether ufw.conf (a shell file) says ``ENABLED=yes``: ufw's boot script loads its rules
    only then, and ``ufw enable``/``disable`` write it, so with any other word ufw has no
    rules loaded and ``ufw status`` would say inactive."""
    value = None
    for line in text.splitlines():
        key, sep, word = line.strip().partition("=")
        if sep and key == "ENABLED":
            value = word.strip().strip("'\"")
    return value in ("yes", "YES")


# --- the rules a node needs ----------------------------------------------------------------


def _network(text):
    return ipaddress.ip_network(text, strict=False)


def wanted(ports, sources=None):
    """The rules for ``ports``: ``(source network or None for anywhere, port)`` tuples."""
    networks = sorted({_network(s) for s in sources or ()}, key=_sort_key) or [None]
    return [(net, int(port)) for net in networks for port in sorted({int(p) for p in ports})]


def _sort_key(net):
    return (net.version, net) if net is not None else (0, None)


def describe(rule):
    """``10010/tcp from 10.0.0.0/24`` (or ``from anywhere``)."""
    net, port = rule
    return f"{port}/{PROTOCOL} from {net if net is not None else 'anywhere'}"


def plan(present, rules):
    """``(add, remove)``: the ``rules`` missing from ``present`` ({rule: owned by the
    formula}), and the formula's own rules that are no longer wanted."""
    add = [rule for rule in rules if rule not in present]
    remove = [rule for rule, owned in present.items() if owned and rule not in rules]
    return add, remove


# --- ufw -----------------------------------------------------------------------------------


def ufw_args(rule):
    """``ufw`` arguments (after ``allow``/``delete allow``) for one rule."""
    net, port = rule
    if net is None:
        return [f"{port}/{PROTOCOL}"]
    return ["from", str(net), "to", "any", "port", str(port), "proto", PROTOCOL]


def ufw_commands(add, remove):
    """The ``ufw`` command lines: additions first, so a port never closes on the way."""
    commands = [["ufw", "allow", *ufw_args(rule), "comment", MARK] for rule in add]
    return commands + [["ufw", "delete", "allow", *ufw_args(rule)] for rule in remove]


def ufw_present(text):
    """``{rule: owned}`` of the TCP allow rules in ``ufw show added`` output that the formula
    could have written (a port from anywhere, or from one network); others are not listed."""
    present = {}
    for line in text.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        comment = None
        if len(words) > 2 and words[-2] == "comment":
            comment, words = words[-1], words[:-2]
        rule = _ufw_rule(words)
        if rule is not None:
            present[rule] = present.get(rule, False) or comment == MARK
    return present


def _ufw_rule(words):
    if words[:2] != ["ufw", "allow"]:
        return None
    args = words[2:]
    if len(args) == 1 and args[0].endswith(f"/{PROTOCOL}"):
        port = args[0].split("/")[0]
        return (None, int(port)) if port.isdigit() else None
    shape = ["from", None, "to", "any", "port", None, "proto", PROTOCOL]
    if len(args) != len(shape) or any(w and w != a for w, a in zip(shape, args, strict=True)):
        return None
    try:
        net = _network(args[1]) if args[1] != "any" else None
    except ValueError:
        return None
    return (net, int(args[5])) if args[5].isdigit() else None


# --- firewalld -----------------------------------------------------------------------------


def rich_rule(net):
    """The rich rule letting ``net`` reach the formula's service (firewalld's own spelling,
    as ``--list-rich-rules`` prints it back)."""
    family = "ipv6" if net.version == 6 else "ipv4"
    return f'rule family="{family}" source address="{net}" service name="{MARK}" accept'


def service_query():
    """The command printing the ports of the formula's service (non-zero exit: no service)."""
    return ["firewall-cmd", "--permanent", f"--service={MARK}", "--get-ports"]


def service_ports(text):
    """The TCP ports in :func:`service_query` output."""
    suffix = f"/{PROTOCOL}"
    return sorted(int(item[: -len(suffix)]) for item in text.split() if item.endswith(suffix))


def zone_entries(networks):
    """What a zone holds for the formula: ``service`` (open to all) or rich rules."""
    nets = [net for net in networks if net is not None]
    return [rich_rule(net) for net in nets] if nets else ["service"]


def zones_present(text):
    """``{zone: [entries]}``: every zone, with the formula's service and rich rules in it,
    from ``firewall-cmd --list-all-zones`` output."""
    found, zone, in_rich = {}, None, False
    for line in text.splitlines():
        if line and not line[0].isspace():
            zone, in_rich = line.split()[0], False
            found[zone] = []
            continue
        stripped = line.strip()
        key, _, value = stripped.partition(":")
        if zone is None or not stripped:
            continue
        if key == "services" and not line.startswith("\t"):
            found[zone] += ["service"] if MARK in value.split() else []
            in_rich = False
        elif key == "rich rules" and not line.startswith("\t"):
            in_rich = True
        elif in_rich and line.startswith("\t") and f'service name="{MARK}"' in stripped:
            found[zone].append(stripped)
        elif not line.startswith("\t"):
            in_rich = False
    return found


def firewalld_changes(zones, zone, networks, service_ports, ports):
    """``(commands, added, removed)`` for the permanent configuration: the service holds
    ``ports``, ``zone`` holds exactly the entries for ``networks``, no other zone holds any
    (``zones`` is :func:`zones_present`; ``service_ports`` is None when the service does not
    exist). ``ports`` empty: remove everything, service included."""
    base = ["firewall-cmd", "--permanent"]
    commands, added, removed = [], [], []
    want = set(ports)
    if want and service_ports is None:
        commands.append([*base, f"--new-service={MARK}"])
    have = set(service_ports or ())
    for port in sorted(want - have):
        commands.append([*base, f"--service={MARK}", f"--add-port={port}/{PROTOCOL}"])
        added.append(f"service {MARK}: {port}/{PROTOCOL}")
    entries = zone_entries(networks) if want else []
    for name, present in sorted(zones.items()):
        for entry in present:
            if name != zone or entry not in entries:
                commands.append([*base, f"--zone={name}", *_zone_flag("remove", entry)])
                removed.append(f"zone {name}: {_entry_text(entry)}")
    for entry in entries:
        if entry not in zones.get(zone, []):
            commands.append([*base, f"--zone={zone}", *_zone_flag("add", entry)])
            added.append(f"zone {zone}: {_entry_text(entry)}")
    for port in sorted(have - want) if want else ():
        commands.append([*base, f"--service={MARK}", f"--remove-port={port}/{PROTOCOL}"])
        removed.append(f"service {MARK}: {port}/{PROTOCOL}")
    if not want and service_ports is not None:
        commands.append([*base, f"--delete-service={MARK}"])
        removed.append(f"service {MARK}")
    return commands, added, removed


def _zone_flag(verb, entry):
    if entry == "service":
        return [f"--{verb}-service={MARK}"]
    return [f"--{verb}-rich-rule={entry}"]


def _entry_text(entry):
    return f"service {MARK}" if entry == "service" else entry
