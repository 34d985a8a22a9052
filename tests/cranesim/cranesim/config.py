"""config.yaml rules shared by the simulated cranectld and craned: ``Nodes``, ``Partitions`` and
``gres`` parsing, the TLS files and the listening address."""

from dataclasses import dataclass, field

from cranesim import hostlist
from cranesim.common import (
    abort_uncaught,
    as_bool,
    as_str,
    as_uint,
    die,
    die_silent,
    is_ip_literal,
    parse_memory,
    stoul,
    valid_port,
)

SRC = "CraneCtld.cpp:470"


@dataclass
class NodeSpec:
    """One host of ``Nodes`` after expansion."""

    name: str
    cpu: int
    memory: int
    sockets: int = 1
    gres: list = field(default_factory=list)  # [(name, type, [device paths...]), ...]
    partitions: list = field(default_factory=list)


def expand(expr, dialect=hostlist.CPP):
    """Host-list expansion; None when the expression does not parse."""
    return hostlist.expand(expr, dialect)


def compress(names, dialect=hostlist.CPP):
    return hostlist.compress(list(names), dialect)


def required(value):
    """A key that ``node["k"].as<std::string>()`` reads unconditionally: null aborts."""
    if value is None:
        abort_uncaught(
            "YAML::InvalidNode",
            "invalid node; this may result from using a map iterator as a sequence iterator, or "
            "vice-versa",
        )
    return as_str(value)


def parse_node_group(group, log, src=SRC):
    """name/cpu/memory/sockets of one ``Nodes`` entry; returns (names, cpu, mem, sockets)."""
    if not isinstance(group, dict) or group.get("name") is None:
        die_silent()
    names = expand(as_str(group["name"]))
    if names is None:
        die(log, "Illegal node name string format.", src)
    if group.get("cpu") is None:
        die_silent()
    cpu = stoul(group["cpu"])
    if group.get("memory") is None:
        die_silent()
    memory = parse_memory(group["memory"])
    if memory is None:
        die(log, "Illegal memory format.", src)
    return names, cpu, memory, _sockets(group, cpu)


def _sockets(group, cpu):
    raw = group.get("sockets")
    try:
        sockets = int(str(raw)) if raw is not None else 1
    except ValueError:
        return 1
    return 1 if sockets == 0 or sockets > cpu else sockets


def ctld_gres(group, log):
    """cranectld's gres view of one node group: [(name, type, [slot paths])]."""
    result = []
    for gres in group.get("gres") or []:
        name, gtype = required(gres.get("name")), required(gres.get("type"))
        devices = []
        if gres.get("DeviceFileRegex") is not None:
            paths = expand(as_str(gres["DeviceFileRegex"]))
            if paths is None:
                die(log, f"Illegal gres {name}:{gtype} DeviceFileRegex path string format.", SRC)
            devices.extend([p] for p in paths)
        if gres.get("DeviceFileList") is not None:
            devices.extend(_ctld_device_list(gres["DeviceFileList"], name, gtype, log))
        result.append((name, gtype, devices))
    return result


def _ctld_device_list(value, name, gtype, log):
    if not isinstance(value, list):
        die(
            log,
            f"Illegal gres {name}:{gtype} DeviceFileList type. It must be a YAML sequence.",
            SRC,
        )
    devices = []
    for entry in value:
        paths = expand(as_str(entry))
        if paths is None:
            die(log, f"Illegal gres {name}:{gtype} DeviceFileList path string format.", SRC)
        if not paths:
            die(
                log,
                f"Illegal gres {name}:{gtype} DeviceFileList entry expands to empty device file "
                "list.",
                SRC,
            )
        devices.append(paths)
    return devices


def craned_gres(group, log, src="Craned.cpp:830"):
    """craned's stricter gres rules for one node group, run for every group (not only this
    host's): duplicates, CDI, expansions to zero paths, no device file set."""
    seen = set()
    result = []
    for gres in group.get("gres") or []:
        name, gtype = required(gres.get("name")), required(gres.get("type"))
        label = f"{name}:{gtype}"
        if (name, gtype) in seen:
            die(
                log,
                f"Duplicate GRES definition: {label} appears more than once in the same node "
                "group. Each (name, type) pair must be unique.",
                src,
            )
        seen.add((name, gtype))
        cdi = _craned_cdi(gres, label, log, src)
        devices = _craned_devices(gres, label, log, src)
        if cdi is not None and len(cdi) != len(devices):
            die(
                log,
                f"GRES {label} CDI name count ({len(cdi)}) does not match device count "
                f"({len(devices)}). They must be equal.",
                src,
            )
        result.append((name, gtype, devices, gres.get("EnvInjector"), cdi))
    return result


def _craned_cdi(gres, label, log, src):
    has_regex = gres.get("DeviceCDIRegex") is not None
    has_list = gres.get("DeviceCDIList") is not None
    if has_regex and has_list:
        die(
            log,
            f"GRES {label} has both DeviceCDIRegex and DeviceCDIList configured. Only one is "
            "allowed.",
            src,
        )
    if has_regex:
        names = expand(as_str(gres["DeviceCDIRegex"]))
        if names is None:
            die(log, f"Illegal gres {label} DeviceCDIRegex string format.", src)
        return names
    if has_list and isinstance(gres["DeviceCDIList"], list):
        return [as_str(item) for item in gres["DeviceCDIList"]]
    return None


def _craned_devices(gres, label, log, src):
    devices = []
    configured = False
    if gres.get("DeviceFileRegex") is not None:
        configured = True
        paths = expand(as_str(gres["DeviceFileRegex"]))
        if paths is None:
            die(log, f"Illegal gres {label} DeviceFileRegex path string format.", src)
        if not paths:
            die(log, f"GRES {label} DeviceFileRegex expanded to zero paths.", src)
        devices.extend([p] for p in paths)
    if isinstance(gres.get("DeviceFileList"), list):
        configured = True
        for entry in gres["DeviceFileList"]:
            paths = expand(as_str(entry))
            if paths is None:
                die(log, f"Illegal gres {label} DeviceFileList path string format.", src)
            if not paths:
                die(log, f"GRES {label} DeviceFileList entry expanded to zero paths.", src)
            devices.append(paths)
    if not configured:
        die(
            log,
            "At least one of DeviceFileRegex or DeviceFileList must be configured for GRES "
            f"{label} device.",
            src,
        )
    return devices


def partition_nodes(nodes_value, all_nodes, part_name, log, disallow_unknown):
    """``util::PartitionNodesProcess``; returns the member names or exits."""
    text = as_str(nodes_value).strip()
    if text.lower() == "all":
        return list(all_nodes)
    names = expand(text)
    if names is None:
        die(log, "Illegal node name string format.", "String.cpp:838")
    if not names:
        log.warn(f"No nodes in partition '{part_name}'.", src="String.cpp:849")
    members = []
    for name in names:
        if name in all_nodes:
            members.append(name)
        elif disallow_unknown:
            die(
                log,
                f"Unknown node '{name}' found in partition '{part_name}'. It must be defined in "
                "the Nodes section of the configuration file.",
                src="String.cpp:860",
            )
        else:
            log.warn(
                f"Node '{name}' in partition '{part_name}' is not defined in the Nodes section, "
                "skipped.",
                src="String.cpp:866",
            )
    return members


def uint_or(config, key, default):
    value = config.get(key) if isinstance(config, dict) else None
    return default if value is None else as_uint(value)


def tls_enabled(raw):
    """``TLS.Enabled`` of config.yaml (a missing or non-map ``TLS`` is off)."""
    tls = raw.get("TLS")
    return isinstance(tls, dict) and as_bool(tls.get("Enabled", False))


def check_tls_files(raw, keys, log, srcs):
    """With ``TLS.Enabled`` every file named by ``keys`` must be set, readable and not empty;
    ``srcs`` are the sources of those three errors, the daemons check alike."""
    if not tls_enabled(raw):
        return
    tls = raw["TLS"]
    unset, unreadable, empty = srcs
    for key in keys:
        path = as_str(tls.get(key) or "")
        if not path:
            die(log, f"UseTls is true, but {key} is empty", unset)
        try:
            with open(path, encoding="utf-8") as stream:
                content = stream.read()
        except OSError as exc:
            die(log, f"Read {key} error: {exc.strerror}", unreadable)
        if not content:
            die(log, f"UseTls is true, but the file specified by {key} is empty", empty)


def check_listen(cfg, log, srcs):
    """The listening address must be an IP literal and the port a valid port."""
    address_src, port_src = srcs
    if not is_ip_literal(cfg.listen_addr):
        die(log, "Listening address is invalid.", address_src)
    if not valid_port(cfg.listen_port):
        die(log, "Listening port is invalid.", port_src)
