"""cranectld's command line, config.yaml and database.yaml handling: each refuse-to-start
condition of CraneCtld.cpp's ParseConfig in source order, database.yaml included ("Unknown
Replica Set name" without ``DbReplSetName``); each check names its source line."""

from dataclasses import dataclass, field

from cranesim import daemon
from cranesim.common import (
    abort_uncaught,
    as_bool,
    as_str,
    bad_debug_level,
    bad_log_size,
    config_crc,
    die,
    die_stderr,
    join_base,
    load_yaml,
    value_or,
)
from cranesim.config import (
    NodeSpec,
    check_listen,
    check_tls_files,
    ctld_gres,
    parse_node_group,
    partition_nodes,
    uint_or,
)

DEFAULT_BASE = "/var/crane/"
SRC = "CraneCtld.cpp:475"
_PREEMPT_TYPES = ("none", "qos", "partition")
_PREEMPT_MODES = ("OFF", "CANCEL")


@dataclass
class CtldConfig:
    """What the simulated cranectld needs from its configuration files."""

    raw: dict
    cluster: str
    base_dir: str
    log_file: str
    debug_level: str
    foreground: bool
    listen_addr: str
    listen_port: int
    internal_port: int
    craned_port: int
    craned_timeout: int
    lock_file: str
    db_path: str = ""
    default_partition: str = ""
    ignore_inconsistency: bool = False
    nodes: dict = field(default_factory=dict)  # name -> NodeSpec, config order
    partitions: dict = field(default_factory=dict)  # name -> [node names]
    crc: int = 0
    shared_base: str | None = None
    alive_file: str = ""  # Keepalived.CraneCtldAliveFile under the local CraneBaseDir
    db_backend: str = "Unqlite"
    vault_enabled: bool = False


HELP = """CraneCtld
Usage:
  cranectld [OPTION...]

  -C, --config arg         Path to configuration file (default: /etc/crane/config.yaml)
  -D, --db-config arg      Path to DB configuration file (default: /etc/crane/database.yaml)
  -P, --plugin-config arg  Path to Plugin configuration file (default: /etc/crane/plugin.yaml)
  -l, --listen arg         Listening address, format: <IP>:<port> (default: 0.0.0.0)
  -p, --port arg           Listening port, format: <IP>:<port> (default: 10011)
  -v, --version            Display version information
  -h, --help               Display help for CraneCtld
"""


def _add_options(parser):
    parser.add_argument("-C", "--config", default="/etc/crane/config.yaml")
    parser.add_argument("-D", "--db-config", default=None)
    parser.add_argument("-P", "--plugin-config", default="/etc/crane/plugin.yaml")
    parser.add_argument("-l", "--listen", default=None)
    parser.add_argument("-p", "--port", default=None)


def parse_args(argv):
    """cxxopts-like options; -h/-v print and exit 0."""
    return daemon.parse_args("cranectld", HELP, _add_options, argv)


def load(args, log):
    """Parse and check everything in CraneCtld.cpp's ParseConfig order; exits on error."""
    raw = load_yaml(args.config, log)
    cluster = _cluster_name(raw, log)
    base = as_str(value_or(raw, "CraneBaseDir", DEFAULT_BASE))
    ctld_section = raw.get("CraneCtld") or {}
    _check_log_size(ctld_section, log)
    level = as_str(value_or(raw, "CraneCtldDebugLevel", "info"))
    if bad_debug_level(level):
        die_stderr("Illegal debug-level format.")
    log_file = join_base(base, as_str(value_or(raw, "CraneCtldLogFile", "cranectld/cranectld.log")))
    log.init(level, log_file)
    cfg = CtldConfig(
        raw=raw,
        cluster=cluster,
        base_dir=base,
        log_file=log_file,
        debug_level=level,
        foreground=as_bool(value_or(raw, "CraneCtldForeground", False)),
        listen_addr=as_str(value_or(raw, "CraneCtldListenAddr", "0.0.0.0")),
        listen_port=as_str(value_or(raw, "CraneCtldListenPort", "10011")),
        internal_port=as_str(value_or(raw, "CraneCtldForInternalListenPort", "10013")),
        craned_port=as_str(value_or(raw, "CranedListenPort", "10010")),
        craned_timeout=uint_or(ctld_section, "CranedTimeout", 30),
        lock_file="",
        ignore_inconsistency=as_bool(value_or(raw, "IgnoreConfigInconsistency", False)),
    )
    cfg.crc = config_crc(raw)
    _check_sections(raw, cfg, log)
    _load_db_config(args, raw, cfg, log)
    _apply_listen(args, cfg, log)
    return cfg


def _cluster_name(raw, log):
    name = raw.get("ClusterName")
    if name is None or not as_str(name):
        die(log, "ClusterName is empty.", "CraneCtld.cpp:140")
    return as_str(name)


def _check_log_size(section, log):
    if bad_log_size(section):
        die(log, "Illegal memory format.", "CraneCtld.cpp:62")


def _check_keepalived(raw, cfg, log):
    """The ``Keepalived`` section: lock and embedded DB move to ``CraneSharedBaseDir``, the
    alive file stays under the local ``CraneBaseDir``. yaml-cpp takes a null section as
    present (and without the key); a null ``CraneSharedBaseDir`` reads as the string "null"."""
    if "Keepalived" not in raw:
        return
    keepalived = raw["Keepalived"]
    if keepalived is not None and not isinstance(keepalived, (dict, list)):
        abort_uncaught(
            "YAML::BadSubscript", 'operator[] call on a scalar (key: "CraneSharedBaseDir")'
        )
    if not isinstance(keepalived, dict) or "CraneSharedBaseDir" not in keepalived:
        die(
            log,
            "Keepalived.CraneSharedBaseDir is not set in configuration file.",
            "CraneCtld.cpp:223",
        )
    shared = keepalived["CraneSharedBaseDir"]
    cfg.shared_base = "null" if shared is None else as_str(shared)
    alive_rel = as_str(value_or(keepalived, "CraneCtldAliveFile", "cranectld/cranectld.alive"))
    cfg.alive_file = join_base(cfg.base_dir, alive_rel)
    lock_rel = as_str(value_or(raw, "CraneCtldMutexFilePath", "cranectld/cranectld.lock"))
    cfg.lock_file = join_base(cfg.shared_base, lock_rel)


def _check_sections(raw, cfg, log):
    lock_rel = as_str(value_or(raw, "CraneCtldMutexFilePath", "cranectld/cranectld.lock"))
    cfg.lock_file = join_base(cfg.base_dir, lock_rel)
    _check_keepalived(raw, cfg, log)
    _check_tls(raw, log)
    _check_licenses(raw.get("Licenses") or [], log)
    _parse_nodes(raw, cfg, log)
    _parse_partitions(raw, cfg, log)
    _check_default_partition(raw, cfg, log)
    _check_preempt(raw.get("Preempt"), log)


def _check_tls(raw, log):
    keys = (
        "CaFilePath",
        "InternalCertFilePath",
        "InternalKeyFilePath",
        "ExternalCertFilePath",
        "ExternalKeyFilePath",
    )
    srcs = ("CraneCtld.cpp:274", "CraneCtld.cpp:284", "CraneCtld.cpp:293")
    check_tls_files(raw, keys, log, srcs)


def _check_licenses(licenses, log):
    for lic in licenses if isinstance(licenses, list) else []:
        if not isinstance(lic, dict) or lic.get("name") is None:
            die(log, "Illegal licenses name format.", "CraneCtld.cpp:440")
        if lic.get("quantity") is None:
            die(log, "Illegal licenses quantity format.", "CraneCtld.cpp:446")


def _parse_nodes(raw, cfg, log):
    for group in raw.get("Nodes") or []:
        names, cpu, memory, sockets = parse_node_group(group, log, SRC)
        gres = ctld_gres(group, log)
        for name in names:
            cfg.nodes[name] = NodeSpec(name, cpu, memory, sockets, gres)


def _parse_partitions(raw, cfg, log):
    without = list(cfg.nodes)
    for part in raw.get("Partitions") or []:
        if not isinstance(part, dict) or part.get("name") is None:
            die(log, "Partition name not found", "CraneCtld.cpp:597")
        name = as_str(part["name"])
        if part.get("nodes") is None:
            die(log, f"The node of the partition {name} was not found", "CraneCtld.cpp:604")
        members = partition_nodes(part["nodes"], list(cfg.nodes), name, log, True)
        _check_partition_mem(part, name, log)
        cfg.partitions[name] = members
        for node in members:
            if name not in cfg.nodes[node].partitions:
                cfg.nodes[node].partitions.append(name)
            if node in without:
                without.remove(node)
    if without:
        die(log, f"Nodes {','.join(without)} not belong to any partition", "CraneCtld.cpp:736")


def _check_partition_mem(part, name, log):
    def mb(key):
        return uint_or(part, key, 0)

    if mb("DefaultMemPerCpu") and mb("DefaultMemPerNode"):
        die(
            log,
            f"The partition {name} DefaultMemPerCpu and DefaultMemPerNode are mutually exclusive.",
            src="CraneCtld.cpp:680",
        )
    for unit, src in (("Cpu", "CraneCtld.cpp:707"), ("Node", "CraneCtld.cpp:716")):
        default = mb(f"DefaultMemPer{unit}")
        if default and (limit := mb(f"MaxMemPer{unit}")) and limit < default:
            die(
                log,
                f"The partition {name} MaxMemPer{unit} {limit}MB should not be less than "
                f"DefaultMemPer{unit} {default}MB.",
                src=src,
            )


def _check_default_partition(raw, cfg, log):
    if raw.get("DefaultPartition") is None:
        return
    values = as_str(raw["DefaultPartition"]).split(",")
    cfg.default_partition = values[0].strip()
    if len(values) > 1:
        log.error(
            f"Default partition contains multiple values. '{cfg.default_partition}' is used",
            src="CraneCtld.cpp:749",
        )
    if cfg.default_partition not in cfg.partitions:
        die(log, f"Unknown default partition {cfg.default_partition}", "CraneCtld.cpp:758")


def _check_preempt(preempt, log):
    if not isinstance(preempt, dict):
        return
    ptype = as_str(preempt.get("PreemptType") or "none")
    pmode = as_str(preempt.get("PreemptMode") or "OFF")
    if ptype not in _PREEMPT_TYPES:
        die(
            log,
            f"Unknown PreemptType '{ptype}'. Valid: none|qos|partition",
            src="CraneCtld.cpp:795",
            level="critical",
        )
    if pmode not in _PREEMPT_MODES:
        die(
            log,
            f"Unknown PreemptMode '{pmode}'. Valid: OFF|CANCEL",
            src="CraneCtld.cpp:814",
            level="critical",
        )
    if (ptype == "none") != (pmode == "OFF"):
        names = {"none": "PREEMPT_NONE", "qos": "PREEMPT_QOS", "partition": "PREEMPT_PARTITION"}
        modes = {"OFF": "PREEMPT_MODE_OFF", "CANCEL": "PREEMPT_MODE_CANCEL"}
        die(
            log,
            f"Preempt config inconsistent: PreemptType={names[ptype]}, "
            f"PreemptMode={modes[pmode]}. Both must be 'none'/'OFF' or both must be set.",
            src="CraneCtld.cpp:825",
            level="critical",
        )


def _load_db_config(args, raw, cfg, log):
    path = args.db_config or as_str(value_or(raw, "DbConfigPath", "/etc/crane/database.yaml"))
    db = load_yaml(path, log, what="database")
    if db.get("DbReplSetName") is None:
        die(log, "Unknown Replica Set name", "CraneCtld.cpp:886")
    vault = db.get("Vault")
    if vault is not None:
        if not isinstance(vault, dict) or vault.get("Username") is None:
            die(log, "Unknown Vault Username", "CraneCtld.cpp:923")
        if vault.get("Password") is None:
            die(log, "Unknown Vault Password", "CraneCtld.cpp:931")
    cfg.db_backend = as_str(value_or(db, "CraneEmbeddedDbBackend", "Unqlite"))
    rel = as_str(value_or(db, "CraneCtldDbPath", "cranectld/embedded.db"))
    cfg.db_path = join_base(cfg.shared_base or cfg.base_dir, rel)
    cfg.vault_enabled = isinstance(vault, dict) and as_bool(vault.get("Enabled", False))


def _apply_listen(args, cfg, log):
    if args.listen:
        cfg.listen_addr = args.listen
    if args.port:
        cfg.listen_port = args.port
    check_listen(cfg, log, ("CraneCtld.cpp:986", "CraneCtld.cpp:993"))
