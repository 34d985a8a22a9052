"""craned's command line and config.yaml checks: each refuse-to-start condition of Craned.cpp's
ParseConfig in source order, from the bad option (exit 1) to "This machine <h> doesn't belong to
any partition"; each check names its source line."""

import os
import sys
from dataclasses import dataclass, field

from cranesim import daemon
from cranesim.common import (
    as_bool,
    as_str,
    bad_debug_level,
    bad_log_size,
    config_crc,
    die,
    die_silent,
    die_stderr,
    gethostname,
    is_ip_literal,
    join_base,
    load_yaml,
    resolve,
    value_or,
)
from cranesim.config import (
    check_listen,
    check_tls_files,
    compress,
    craned_gres,
    parse_node_group,
    partition_nodes,
    uint_or,
)

SRC = "Craned.cpp:900"
VALID_INJECTORS = (None, "", "common", "nvidia", "hip", "ascend")


@dataclass
class CranedConfig:
    """What the simulated craned needs from config.yaml."""

    raw: dict
    base_dir: str
    log_file: str
    debug_level: str
    supervisor_path: str
    ping_interval: int
    health_interval: int
    ctld_timeout: int
    control_machine: str
    internal_port: str
    listen_addr: str
    listen_port: str
    cluster: str
    foreground: bool
    hostname: str = ""
    lock_file: str = ""
    script_dir: str = ""
    pam_socket: str = ""
    crc: int = 0
    node: object = None
    groups: dict = field(default_factory=dict)


HELP = """Craned
Usage:
  craned [OPTION...]

  -f, --config-file arg     Path to configuration file (default: /etc/crane/config.yaml)
  -P, --plugin-config arg   Path to Plugin configuration file (default: /etc/crane/plugin.yaml)
  -l, --listen arg          Listening address, format: <IP>:<port> (default: 0.0.0.0)
  -s, --server-address arg  CraneCtld address, format: <IP>:<port>
  -L, --log-file arg        File path of craned log file (default: /var/crane/craned/craned.log)
  -D, --debug-level arg     <trace|debug|info|warn|error> (default: info)
  -C, --nodeinfo            Print node information and exit
  -v, --version             Display version information
  -h, --help                Display help for Craned
"""


def _add_options(parser):
    parser.add_argument("-f", "--config-file", default="/etc/crane/config.yaml")
    parser.add_argument("-P", "--plugin-config", default="/etc/crane/plugin.yaml")
    parser.add_argument("-l", "--listen", default=None)
    parser.add_argument("-s", "--server-address", default=None)
    parser.add_argument("-L", "--log-file", default=None)
    parser.add_argument("-D", "--debug-level", default=None)
    parser.add_argument("-C", "--nodeinfo", action="store_true")


def parse_args(argv):
    """cxxopts-like options; -h, -v and -C print and exit 0."""
    args = daemon.parse_args("craned", HELP, _add_options, argv)
    if args.nodeinfo:
        print_node_info()
        sys.exit(0)
    return args


def print_node_info():
    """``craned -C``: this host as a Nodes entry (memory in GiB with two decimals)."""
    with open("/proc/meminfo", encoding="utf-8") as stream:
        kib = next(int(line.split()[1]) for line in stream if line.startswith("MemTotal:"))
    print("Nodes:")
    print(f"  - name: {gethostname()}")
    print(f"    cpu: {os.sysconf('SC_NPROCESSORS_ONLN')}")
    print(f"    memory: {kib / (1 << 20):.2f}G")


def load(args, log):
    """craned's ParseConfig: every check in source order; exits on the first failure."""
    raw = load_yaml(args.config_file, log)
    base = as_str(value_or(raw, "CraneBaseDir", "/var/crane/"))
    log_file = args.log_file or join_base(
        base, as_str(value_or(raw, "CranedLogFile", "craned/craned.log"))
    )
    level = args.debug_level or as_str(value_or(raw, "CranedDebugLevel", "info"))
    supervisor = _supervisor_path(raw)
    craned_section = raw.get("Craned") or {}
    if bad_log_size(craned_section):
        die(log, "Illegal memory format.", "Craned.cpp:240")
    if bad_debug_level(level):
        die_stderr(f"Illegal Craned debug-level format: {level}.\n")
    log.init(level, log_file)
    cfg = CranedConfig(
        raw=raw,
        base_dir=base,
        log_file=log_file,
        debug_level=level,
        supervisor_path=supervisor,
        ping_interval=uint_or(craned_section, "PingInterval", 10),
        health_interval=uint_or(craned_section, "NodeHealthCheckInterval", 0),
        ctld_timeout=uint_or(craned_section, "CraneCtldTimeout", 30),
        control_machine="",
        internal_port=as_str(value_or(raw, "CraneCtldForInternalListenPort", "10013")),
        listen_addr=as_str(value_or(raw, "CranedListen", "0.0.0.0")),
        listen_port=as_str(value_or(raw, "CranedListenPort", "10010")),
        cluster="",
        foreground=as_bool(value_or(raw, "CranedForeground", False)),
        crc=config_crc(raw),
    )
    cfg.lock_file = join_base(
        base, as_str(value_or(raw, "CranedMutexFilePath", "craned/craned.lock"))
    )
    cfg.script_dir = join_base(base, as_str(value_or(raw, "CranedScriptDir", "craned/scripts")))
    cfg.pam_socket = join_base(
        base, as_str(value_or(raw, "CranedForPamUnixSockPath", "craned/craned_pam.sock"))
    )
    _check_cluster_keys(args, raw, cfg, log)
    _parse_nodes(raw, cfg, log)
    _parse_partitions(raw, cfg, log)
    _check_misc(raw, log)
    _check_listen(args, cfg, log)
    _check_this_host(cfg, log)
    return cfg


def _supervisor_path(raw):
    section = raw.get("Supervisor")
    if section is None:
        die_stderr("No Supervisor configuration found.\n")
    section = section if isinstance(section, dict) else {}
    path = as_str(value_or(section, "Path", "/usr/libexec/csupervisor"))
    if not os.path.exists(path):
        die_stderr(f"csupervisor {path} does not exist\n")
    level = as_str(value_or(section, "DebugLevel", "trace"))
    if bad_debug_level(level):
        die_stderr(
            f"Illegal Supervisor debug-level: {level}, should be one of trace,, debug, info, "
            "warn, error, off.\n"
        )
    if bad_log_size(section):
        die_stderr("Illegal memory format.\n")
    return path


def _check_cluster_keys(args, raw, cfg, log):
    _check_tls(raw, log)
    machine = args.server_address or (
        as_str(raw["ControlMachine"]) if raw.get("ControlMachine") is not None else ""
    )
    if not machine:
        die(log, "ControlMachine is not configured.", "Craned.cpp:713")
    cfg.control_machine = machine
    cluster = as_str(raw["ClusterName"]) if raw.get("ClusterName") is not None else ""
    if not cluster:
        die(log, "Cluster name is empty.", "Craned.cpp:723")
    cfg.cluster = cluster
    health = raw.get("HealthCheck")
    if health is not None and not as_str((health or {}).get("Program") or ""):
        die(log, "HealthCheckProgram is not configured", "Craned.cpp:736")


def _check_tls(raw, log):
    keys = ("InternalCertFilePath", "InternalKeyFilePath", "CaFilePath")
    check_tls_files(raw, keys, log, ("Craned.cpp:690", "Craned.cpp:695", "Craned.cpp:700"))


def _parse_nodes(raw, cfg, log):
    """Every node group is checked, and every node name must resolve."""
    for group in raw.get("Nodes") or []:
        names, cpu, memory, sockets = parse_node_group(group, log, SRC)
        gres = craned_gres(group, log)
        for name in names:
            _resolve_node_name(name, log)
            cfg.groups[name] = {"cpu": cpu, "memory": memory, "sockets": sockets, "gres": gres}


def _resolve_node_name(name, log):
    if is_ip_literal(name):
        log.info(
            f"Node name `{name}` is a valid ip address and doesn't need resolving.",
            src="Craned.cpp:1005",
        )
        return
    address = resolve(name)
    if address is None:
        die(log, f"Init error: Cannot resolve hostname of `{name}`", "Craned.cpp:996")
    log.info(f"Resolve hostname `{name}` to `{address}`", src="Craned.cpp:983")


def _parse_partitions(raw, cfg, log):
    for part in raw.get("Partitions") or []:
        if not isinstance(part, dict) or part.get("name") is None or part.get("nodes") is None:
            die_silent()
        name = as_str(part["name"])
        for node in partition_nodes(part["nodes"], list(cfg.groups), name, log, False):
            cfg.groups[node].setdefault("partitions", []).append(name)


def _check_misc(raw, log):
    container = raw.get("Container")
    enabled = isinstance(container, dict) and as_bool(container.get("Enabled", False))
    if enabled and not container.get("RuntimeEndpoint"):
        die(log, "RuntimeEndpoint is not configured.", "Craned.cpp:1060")
    hooks = raw.get("JobLifecycleHook")
    flags = as_str((hooks or {}).get("PrologFlags") or "") if isinstance(hooks, dict) else ""
    tokens = {t.strip().lower() for t in flags.split(",")}
    if "runinjob" in tokens and "serial" in tokens:
        die(log, "Cannot set RunInJob and Serial flags at the same time.", "Craned.cpp:1118")


def _check_listen(args, cfg, log):
    if args.listen:
        cfg.listen_addr, cfg.listen_port = args.listen, "10010"
    check_listen(cfg, log, ("Craned.cpp:1179", "Craned.cpp:1185"))


def _check_this_host(cfg, log):
    host = gethostname()
    cfg.hostname = host
    if host not in cfg.groups:
        die(log, f"This machine {host} is not contained in Nodes!", "Craned.cpp:1199")
    log.info(f"Found this machine {host} in Nodes", src="Craned.cpp:1203")
    node = cfg.groups[host]
    for name, gtype, devices, injector, _cdi in node["gres"]:
        for paths in devices:
            _check_device(name, gtype, paths, injector, log)
    if not node.get("partitions"):
        die(log, f"This machine {host} doesn't belong to any partition", "Craned.cpp:1299")
    cfg.node = node


def _check_device(name, gtype, paths, injector, log):
    if injector not in VALID_INJECTORS:
        shown = ", ".join(f'"{p}"' for p in paths)
        die(log, f"Invalid injector type:{injector} for device [{shown}].", "Craned.cpp:1216")
    for path in paths:
        try:
            os.stat(path)
        except OSError as exc:
            log.error(
                f"Failed to stat device file {path} err:{os.strerror(exc.errno)}",
                src="DeviceManager.cpp:97",
            )
            die(log, f"Access Device {name}:{gtype}:{compress(paths)} failed.", "Craned.cpp:1224")
