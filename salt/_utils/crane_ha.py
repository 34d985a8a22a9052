"""A Keepalived control pair (pillar ``crane:ha``): its rules and the facts derived from it.

CraneSched runs one cranectld at a time: the VRRP master holds the virtual IP and starts
cranectld through its ``notify_master`` script; the lock and the embedded DB live in
``Keepalived.CraneSharedBaseDir`` (shared storage), the alive file in the local
``CraneBaseDir``. Every node reaches cranectld through ``ControlMachine``, the VIP's name.
Pure functions: the execution module and the tests call them.
"""

import ipaddress
import os
import sys

# Siblings by name; the folder stays on sys.path (README, "How the utilities load").
_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
if _FOLDER not in sys.path:
    sys.path.append(_FOLDER)

import crane_config  # noqa: E402

PRIORITY_RANGE = (1, 254)  # keepalived: 255 is reserved for the address owner
ROUTER_ID_RANGE = (1, 255)
ALIVE_FILE_DEFAULT = "cranectld/cranectld.alive"
LOCK_FILE_DEFAULT = "cranectld/cranectld.lock"


def enabled(ha):
    """Whether ``crane:ha`` turns the pair on."""
    return isinstance(ha, dict) and ha.get("enabled") is True


def pair(ha):
    """The two control minions' host names (empty when HA is off)."""
    return [str(name) for name in (ha.get("nodes") or [])] if enabled(ha) else []


def problems(ha, config):
    """Errors of an enabled ``crane:ha`` against itself and the cluster config, each naming
    its key (``crane:ha:...`` or the config.yaml key)."""
    if not enabled(ha):
        return []
    errors = []
    nodes = [str(name) for name in (ha.get("nodes") or [])]
    if len(nodes) != 2 or len(set(nodes)) != 2:
        errors.append(
            f"crane:ha:nodes: must name the two control minions (host names), not {nodes or 'none'}"
        )
    errors += _vip_problems(ha, config or {})
    errors += _vrrp_problems(ha, nodes)
    errors += _shared_dir_problems(config or {})
    return errors


def _vip_problems(ha, config):
    errors = []
    try:
        ipaddress.ip_interface(str(ha.get("vip") or ""))
    except ValueError:
        errors.append(
            f"crane:ha:vip: '{ha.get('vip') or ''}' is not an IP address (with an optional "
            "prefix length, e.g. 10.0.0.10/24)"
        )
    vip_name = str(ha.get("vip_name") or "")
    if not vip_name:
        errors.append("crane:ha:vip_name: missing: the host name of the virtual IP")
    control = str(config.get("ControlMachine") or "")
    if vip_name and control != vip_name:
        errors.append(
            f"ControlMachine: '{control}' is not the virtual IP's name crane:ha:vip_name "
            f"'{vip_name}' (craned, cfored and the CLIs must reach whichever node is master)"
        )
    if vip_name in [str(name) for name in (ha.get("nodes") or [])]:
        errors.append(f"crane:ha:vip_name: '{vip_name}' is one of crane:ha:nodes, not a VIP name")
    return errors


def _vrrp_problems(ha, nodes):
    errors = []
    if not str(ha.get("interface") or ""):
        errors.append("crane:ha:interface: missing: the network interface VRRP runs on")
    if not _int_in(ha.get("router_id"), ROUTER_ID_RANGE):
        errors.append(f"crane:ha:router_id: must be an integer 1-255, not {ha.get('router_id')!r}")
    errors += _priority_problems(ha.get("priorities") or {}, nodes)
    peers = ha.get("unicast_peers") or {}
    if not peers and ha.get("multicast") is not True:
        errors.append(
            "crane:ha:unicast_peers: give each control node's address for unicast VRRP, or set "
            "crane:ha:multicast: true to advertise by multicast on crane:ha:interface"
        )
    for node in nodes if peers else []:
        if not crane_config.is_ip_literal(peers.get(node)):
            errors.append(f"crane:ha:unicast_peers:{node}: missing or not an IP address")
    for node in sorted(set(peers) - set(nodes)):
        errors.append(f"crane:ha:unicast_peers:{node}: not one of crane:ha:nodes {nodes}")
    return errors


def _priority_problems(priorities, nodes):
    errors = []
    for node in nodes:
        if not _int_in(priorities.get(node), PRIORITY_RANGE):
            errors.append(
                f"crane:ha:priorities:{node}: must be an integer 1-254, "
                f"not {priorities.get(node)!r}"
            )
    for node in sorted(set(priorities) - set(nodes)):
        errors.append(f"crane:ha:priorities:{node}: not one of crane:ha:nodes {nodes}")
    values = [priorities.get(node) for node in nodes]
    if len(values) == 2 and values[0] == values[1] and _int_in(values[0], PRIORITY_RANGE):
        errors.append(
            f"crane:ha:priorities: both control nodes have priority {values[0]}; give the one "
            "that should be master the higher priority"
        )
    return errors


def _shared_dir_problems(config):
    keepalived = config.get("Keepalived")
    shared = keepalived.get("CraneSharedBaseDir") if isinstance(keepalived, dict) else None
    if not shared:
        return [
            "Keepalived.CraneSharedBaseDir: required with crane:ha: the directory on shared "
            "storage (mounted on both control nodes) that holds cranectld's lock and embedded DB"
        ]
    if not str(shared).startswith("/"):
        return [f"Keepalived.CraneSharedBaseDir: '{shared}' must be an absolute path"]
    return []


def _int_in(value, bounds):
    return (
        isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]
    )


def minion_problems(ha, config, host_names):
    """A minion named like ``ControlMachine`` (the VIP name) that is not in the pair."""
    if not enabled(ha):
        return []
    names = {str(n) for n in host_names if n}
    control = str((config or {}).get("ControlMachine") or "")
    if control in names and control not in pair(ha):
        return [
            f"crane:ha:nodes: this minion ({control}) is ControlMachine but not one of the "
            f"control pair {pair(ha)}: with crane:ha, ControlMachine is the virtual IP's name"
        ]
    return []


# --- facts for the states and templates ----------------------------------------------------


def _join(base, rel):
    """std::filesystem ``base / rel`` as CraneSched joins them (an absolute ``rel`` wins)."""
    rel = str(rel)
    if rel.startswith("/"):
        return rel
    return str(base).rstrip("/") + "/" + rel


def paths(config):
    """Where cranectld keeps its shared and local files with a ``Keepalived:`` section:
    ``{'shared_dir', 'lock_file', 'alive_file'}`` (CraneCtld.cpp's rules)."""
    config = config or {}
    keepalived = config.get("Keepalived") if isinstance(config.get("Keepalived"), dict) else {}
    shared = str(keepalived.get("CraneSharedBaseDir") or "")
    base = str(config.get("CraneBaseDir") or "/var/crane/")
    lock = config.get("CraneCtldMutexFilePath") or LOCK_FILE_DEFAULT
    alive = keepalived.get("CraneCtldAliveFile") or ALIVE_FILE_DEFAULT
    return {
        "shared_dir": shared,
        "lock_file": _join(shared, lock) if shared else "",
        "alive_file": _join(base, alive),
    }


def vrrp(ha, host):
    """This node's VRRP settings: state, priority, unicast source and peers."""
    nodes = pair(ha)
    priorities = ha.get("priorities") or {}
    mine = priorities.get(host, 0)
    others = [node for node in nodes if node != host]
    peers = ha.get("unicast_peers") or {}
    highest = all(mine > priorities.get(node, 0) for node in others)
    return {
        "state": "MASTER" if highest else "BACKUP",
        "priority": mine,
        "unicast_src": str(peers.get(host, "")) if peers else "",
        "unicast_peers": [str(peers[node]) for node in others if node in peers],
        "vip_address": vip_address(ha),
    }


def vip_address(ha):
    """The VIP without its prefix length ("" when it is not an address: validation says so)."""
    try:
        return str(ipaddress.ip_interface(str(ha.get("vip") or "")).ip)
    except ValueError:
        return ""


def derive(ha, config, host_names):
    """What ``crane.settings`` adds for the pair on a minion: ``errors`` (the pair's rules
    and this minion's), and ``facts`` for the templates (paths, VRRP, VIP), or None when
    HA is off."""
    if not enabled(ha):
        return {"errors": [], "facts": None}
    errors = problems(ha, config) + minion_problems(ha, config, host_names)
    host = next((str(name) for name in host_names if str(name) in pair(ha)), "")
    facts = {**paths(config), **vrrp(ha, host), "host": host}
    return {"errors": errors, "facts": facts}
