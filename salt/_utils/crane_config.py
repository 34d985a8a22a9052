"""
CraneSched's config.yaml rules, checked before anything changes on a node.

Pure Python: loaded by Salt's loader as a ``_utils`` module (``__utils__["crane_config.*"]``)
and imported directly by tests. Each rule mirrors a reason for which cranectld, craned or the
Go CLIs refuse to start or silently misbehave; every message names the key and, for node
settings, the node group, and quotes CraneSched's own log line where there is one.
"""

import ipaddress
import os
import re
import sys

import yaml

try:
    import crane_gres
    import crane_hostlist
except ImportError:  # loaded by Salt's loader: the _utils folder is not on sys.path
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import crane_gres
    import crane_hostlist

MEMORY_RE = re.compile(r"^\d+[KMBG]$")
MEMORY_SUBSTRING_RE = re.compile(r"\d+[KMBG]")
DEBUG_LEVELS = ("trace", "debug", "info", "warn", "error", "off")
PORT_KEYS = {
    "CraneCtldListenPort": 10011,
    "CraneCtldForInternalListenPort": 10013,
    "CranedListenPort": 10010,
}
# The Go CLIs and cfored have no default for these (reference §2.5).
PORTS_REQUIRED_BY_CLIS = ("CraneCtldListenPort", "CraneCtldForInternalListenPort")
LISTEN_ADDRESS_KEYS = ("CraneCtldListenAddr", "CranedListen")
DEBUG_LEVEL_KEYS = (
    ("CraneCtldDebugLevel",),
    ("CranedDebugLevel",),
    ("Supervisor", "DebugLevel"),
)
MEMORY_KEYS = (
    ("CraneCtld", "MaxLogFileSize"),
    ("Craned", "MaxLogFileSize"),
    ("Supervisor", "MaxLogFileSize"),
)
# Keys CraneSched's docs or sample name but no daemon reads (reference §10).
IGNORED_KEYS = {
    "CranedListenAddr": "craned reads 'CranedListen'; 'CranedListenAddr' is ignored",
    "InternalCaFilePath": "CraneSched reads 'TLS.CaFilePath'; this key is ignored",
    "ExternalCaFilePath": "CraneSched reads 'TLS.CaFilePath'; this key is ignored",
}
TLS_FILE_KEYS = (
    "CaFilePath",
    "InternalCertFilePath",
    "InternalKeyFilePath",
    "ExternalCertFilePath",
    "ExternalKeyFilePath",
)
DEFAULT_PING_INTERVAL = 10
DEFAULT_CRANED_TIMEOUT = 30
EMBEDDED_DB_BACKENDS = ("Unqlite", "BerkeleyDB")
PREEMPT_TYPES = ("none", "qos", "partition")
PREEMPT_MODES = ("OFF", "CANCEL")
FORCED_TRUE_KEYS = ("CraneCtldForeground", "CranedForeground")


class Report:
    """Collects errors and warnings of one validation run."""

    def __init__(self):
        self.errors = []
        self.warnings = []

    def error(self, where, text):
        self.errors.append(f"{where}: {text}")

    def warn(self, where, text):
        self.warnings.append(f"{where}: {text}")

    def result(self):
        return {"valid": not self.errors, "errors": self.errors, "warnings": self.warnings}


# --- helpers -------------------------------------------------------------------------------


def _get(config, path):
    """Value at a key path such as ('Craned', 'PingInterval'), or None."""
    node = config
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _key(path):
    return ".".join(path)


def _expand(expr):
    """Host-list expansion; returns (names, error message or None)."""
    try:
        return crane_hostlist.expand(str(expr)), None
    except crane_hostlist.HostListError as exc:
        return [], str(exc)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _as_port(value):
    """The port as an int when CraneSched would accept it, else None."""
    text = str(value).strip()
    if not text.isdigit():
        return None
    port = int(text)
    return port if port <= 65535 else None


def _is_ip_literal(value):
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def group_label(index, group):
    """How messages name a node group: its position and its host-list expression."""
    name = group.get("name") if isinstance(group, dict) else None
    return f"Nodes[{index}] '{name}'" if name is not None else f"Nodes[{index}]"


def memory_problem(value):
    """Why CraneSched would reject or misread a memory string, or None when it is fine."""
    text = str(value)
    if MEMORY_RE.match(text):
        return None
    if MEMORY_SUBSTRING_RE.search(text):
        found = MEMORY_SUBSTRING_RE.search(text).group(0)
        return (
            f"'{text}' is read by CraneSched as '{found}' (it takes the first <digits><unit> "
            "substring); write an integer with K, M, B or G, e.g. 1536M"
        )
    return (
        f"'{text}' is rejected by CraneSched (\"Illegal memory format.\"); write an integer "
        "with an upper-case K, M, B or G, e.g. 8G (there is no T and no lower case)"
    )


# --- rules ---------------------------------------------------------------------------------


def _check_cluster_keys(config, report):
    name = config.get("ClusterName")
    if name is None or not str(name).strip():
        report.error("ClusterName", 'missing or empty (CraneSched: "ClusterName is empty.")')
    control = config.get("ControlMachine")
    if control is None or not str(control).strip():
        report.error("ControlMachine", 'missing (craned: "ControlMachine is not configured.")')
    elif not isinstance(control, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]*$", control):
        report.error(
            "ControlMachine",
            f"'{control}' must be a bare host name (craned appends the port itself)",
        )
    base_dir = config.get("CraneBaseDir")
    if base_dir is not None and not str(base_dir).startswith("/"):
        report.error("CraneBaseDir", f"'{base_dir}' must be an absolute path")


def _check_ports(config, report):
    for key in PORT_KEYS:
        if key not in config:
            if key in PORTS_REQUIRED_BY_CLIS:
                report.error(
                    key,
                    "missing; the CLIs (cinfo, ccontrol, …) and cfored have no default for it",
                )
            continue
        if _as_port(config[key]) is None:
            report.error(
                key,
                f"'{config[key]}' is not a port 0-65535 "
                '(CraneSched: "Listening port is invalid.")',
            )


def _check_listen_addresses(config, report):
    for key in LISTEN_ADDRESS_KEYS:
        if key in config and not _is_ip_literal(config[key]):
            report.error(
                key,
                f"'{config[key]}' must be an IPv4 or IPv6 literal, not a host name "
                '(CraneSched: "Listening address is invalid.")',
            )


def _check_enums(config, report):
    for path in DEBUG_LEVEL_KEYS:
        value = _get(config, path)
        if value is not None and value not in DEBUG_LEVELS:
            report.error(_key(path), f"'{value}' must be one of {', '.join(DEBUG_LEVELS)}")
    for path in MEMORY_KEYS:
        value = _get(config, path)
        if value is not None and memory_problem(value):
            report.error(_key(path), memory_problem(value))


def _check_group_resources(label, group, report):
    cpu = group.get("cpu")
    if cpu is None:
        report.error(f"{label} cpu", "missing (the daemons exit without a message)")
    elif not _is_int(cpu) or cpu < 1:
        report.error(
            f"{label} cpu",
            f"'{cpu}' must be an unquoted positive integer (the Go CLIs fail on a quoted or "
            "fractional value; the daemons truncate or abort)",
        )
    memory = group.get("memory")
    if memory is None:
        report.error(f"{label} memory", "missing (the daemons exit without a message)")
    elif memory_problem(memory):
        report.error(f"{label} memory", memory_problem(memory))


def _check_group(index, group, report):
    """One Nodes[] entry; returns the host names it defines."""
    label = group_label(index, group)
    if not isinstance(group, dict):
        report.error(label, "must be a mapping with name, cpu and memory")
        return []
    if not group.get("name"):
        report.error(f"{label} name", "missing (the daemons exit without a message)")
        return []
    names, problem = _expand(group["name"])
    if problem:
        report.error(f"{label} name", f'{problem} (CraneSched: "Illegal node name string format.")')
    for name in names:
        if "[" in name or "]" in name:
            report.warn(
                f"{label} name",
                f"'{name}' keeps its brackets: CraneSched expands a bracket only when it ends "
                "the name or is followed by a '.suffix'",
            )
    _check_group_resources(label, group, report)
    gres = group.get("gres")
    if gres is not None:
        if not isinstance(gres, list):
            report.error(f"{label} gres", "must be a list of gres entries")
        else:
            # these messages name the node group and gres themselves
            report.errors.extend(crane_gres.static_errors(group["name"], gres))
            report.warnings.extend(crane_gres.static_warnings(group["name"], gres))
    return names


def _check_nodes(config, report):
    """Nodes[]; returns {host name: group label}."""
    groups = config.get("Nodes")
    if not isinstance(groups, list) or not groups:
        report.error("Nodes", "missing or empty: define at least one node group")
        return {}
    hosts = {}
    for index, group in enumerate(groups):
        for name in _check_group(index, group, report):
            if name in hosts:
                report.error(
                    group_label(index, group),
                    f"node '{name}' is already defined by {hosts[name]}",
                )
            hosts.setdefault(name, group_label(index, group))
    return hosts


def _check_partition_memory(label, partition, report):
    default_cpu = partition.get("DefaultMemPerCpu") or 0
    default_node = partition.get("DefaultMemPerNode") or 0
    if default_cpu and default_node:
        report.error(label, "DefaultMemPerCpu and DefaultMemPerNode are mutually exclusive")
    for max_key, default_key in (
        ("MaxMemPerCpu", "DefaultMemPerCpu"),
        ("MaxMemPerNode", "DefaultMemPerNode"),
    ):
        limit, default = partition.get(max_key) or 0, partition.get(default_key) or 0
        if _is_int(limit) and _is_int(default) and limit and default and limit < default:
            report.error(label, f"{max_key} ({limit}) should not be less than {default_key}")


def _partition_members(label, partition, hosts, report):
    nodes = partition.get("nodes")
    if str(nodes).strip().upper() == "ALL":
        return set(hosts)
    names, problem = _expand(nodes)
    if problem:
        report.error(f"{label} nodes", problem)
    unknown = [name for name in names if name not in hosts]
    if unknown:
        report.error(
            f"{label} nodes",
            f'{crane_hostlist.compress(unknown)} not defined in Nodes (cranectld: "Unknown node '
            f"'{unknown[0]}' found in partition '{partition.get('name')}'.\")",
        )
    if not names:
        report.warn(f"{label} nodes", "the partition has no nodes")
    return set(names) & set(hosts)


def _check_partitions(config, hosts, report):
    """Partitions[]; returns the partition names."""
    partitions = config.get("Partitions")
    if not isinstance(partitions, list) or not partitions:
        report.error("Partitions", "missing or empty: every node must belong to a partition")
        return []
    names, members = [], set()
    for index, partition in enumerate(partitions):
        label = f"Partitions[{index}]"
        if not isinstance(partition, dict) or not partition.get("name"):
            report.error(label, 'missing name (cranectld: "Partition name not found")')
            continue
        label = f"Partitions[{index}] '{partition['name']}'"
        names.append(str(partition["name"]))
        if partition.get("nodes") in (None, ""):
            report.error(f"{label} nodes", "missing")
            continue
        members |= _partition_members(label, partition, hosts, report)
        _check_partition_memory(label, partition, report)
    orphans = sorted(set(hosts) - members)
    if orphans and hosts:
        report.error(
            "Partitions",
            f"nodes {crane_hostlist.compress(orphans)} belong to no partition "
            '(cranectld: "Nodes … not belong to any partition")',
        )
    return names


def _check_default_partition(config, partition_names, report):
    value = config.get("DefaultPartition")
    if value is None:
        report.warn("DefaultPartition", "not set: jobs submitted without -p have no partition")
        return
    first, _, rest = str(value).partition(",")
    if rest:
        report.warn("DefaultPartition", f"only the first value, '{first.strip()}', is used")
    if first.strip() not in partition_names:
        report.error(
            "DefaultPartition",
            f"'{first.strip()}' is not a partition (cranectld: \"Unknown default partition\")",
        )


def _check_timing(config, report):
    ping = _get(config, ("Craned", "PingInterval"))
    timeout = _get(config, ("CraneCtld", "CranedTimeout"))
    for path, value in (
        (("Craned", "PingInterval"), ping),
        (("CraneCtld", "CranedTimeout"), timeout),
    ):
        if value is not None and (not _is_int(value) or value < 1):
            report.error(_key(path), f"'{value}' must be a positive integer number of seconds")
            return
    ping = DEFAULT_PING_INTERVAL if ping is None else ping
    timeout = DEFAULT_CRANED_TIMEOUT if timeout is None else timeout
    if ping >= timeout:
        report.error(
            "Craned.PingInterval",
            f"{ping}s must be shorter than CraneCtld.CranedTimeout ({timeout}s), or healthy "
            "nodes are marked down between pings",
        )


def _check_supervisor(config, report):
    supervisor = config.get("Supervisor")
    if not isinstance(supervisor, dict):
        report.error(
            "Supervisor",
            'missing; craned refuses to start (craned: "No Supervisor configuration found.")',
        )


def _check_optional_sections(config, report):
    keepalived = config.get("Keepalived")
    if keepalived is not None and not _get(config, ("Keepalived", "CraneSharedBaseDir")):
        report.error("Keepalived.CraneSharedBaseDir", "required when a Keepalived section exists")
    health = config.get("HealthCheck")
    if health is not None and not _get(config, ("HealthCheck", "Program")):
        report.error(
            "HealthCheck.Program", 'required (craned: "HealthCheckProgram is not configured")'
        )
    if _get(config, ("Container", "Enabled")) and not _get(
        config, ("Container", "RuntimeEndpoint")
    ):
        report.error("Container.RuntimeEndpoint", "required when Container.Enabled is true")
    flags = {
        f.strip().lower()
        for f in str(_get(config, ("JobLifecycleHook", "PrologFlags")) or "").split(",")
    }
    if {"runinjob", "serial"} <= flags:
        report.error("JobLifecycleHook.PrologFlags", "RunInJob and Serial cannot be set together")
    for index, lic in enumerate(config.get("Licenses") or []):
        if not isinstance(lic, dict) or "name" not in lic or "quantity" not in lic:
            report.error(f"Licenses[{index}]", "needs both name and quantity")
    _check_tls(config, report)
    _check_preempt(config, report)


def _check_tls(config, report):
    if not _get(config, ("TLS", "Enabled")):
        return
    for key in TLS_FILE_KEYS:
        if not _get(config, ("TLS", key)):
            report.error(
                f"TLS.{key}", f'required when TLS is enabled ("UseTls is true, but {key} is empty")'
            )
    allowed = _get(config, ("TLS", "AllowedNodes"))
    if allowed:
        _names, problem = _expand(allowed)
        if problem:
            report.error("TLS.AllowedNodes", problem)


def _check_preempt(config, report):
    preempt = config.get("Preempt")
    if not isinstance(preempt, dict):
        return
    kind, mode = preempt.get("PreemptType", "none"), preempt.get("PreemptMode", "OFF")
    if kind not in PREEMPT_TYPES:
        report.error("Preempt.PreemptType", f"'{kind}' must be one of {', '.join(PREEMPT_TYPES)}")
    if mode not in PREEMPT_MODES:
        report.error("Preempt.PreemptMode", f"'{mode}' must be one of {', '.join(PREEMPT_MODES)}")
    if (kind == "none") != (mode == "OFF"):
        report.error("Preempt", "PreemptType and PreemptMode must be both disabled or both set")


def _check_ignored_keys(config, report):
    for key, why in IGNORED_KEYS.items():
        if key in config:
            report.warn(key, why)
    for key in FORCED_TRUE_KEYS:
        if key in config and config[key] is not True:
            report.warn(key, "forced to true: under systemd the daemon must not fork")


def validate(config, database=None):
    """Check a cluster config (and optionally database.yaml data) against CraneSched's rules.

    Returns ``{"valid": bool, "errors": [...], "warnings": [...]}``.
    """
    report = Report()
    if not isinstance(config, dict) or not config:
        report.error("crane:config", "missing or not a mapping: the pillar must hold config.yaml")
        return report.result()
    _check_cluster_keys(config, report)
    _check_ports(config, report)
    _check_listen_addresses(config, report)
    _check_enums(config, report)
    hosts = _check_nodes(config, report)
    _check_default_partition(config, _check_partitions(config, hosts, report), report)
    _check_timing(config, report)
    _check_supervisor(config, report)
    _check_optional_sections(config, report)
    _check_ignored_keys(config, report)
    if database is not None:
        _check_database(database, report)
    return report.result()


def _check_database(database, report):
    if not isinstance(database, dict):
        report.error("crane:database", "must be a mapping (the content of database.yaml)")
        return
    if not database.get("DbReplSetName"):
        report.error(
            "crane:database:DbReplSetName",
            'required (cranectld: "Unknown Replica Set name"); MongoDB must run as a replica set',
        )
    backend = database.get("CraneEmbeddedDbBackend")
    if backend is not None and backend not in EMBEDDED_DB_BACKENDS:
        report.error(
            "crane:database:CraneEmbeddedDbBackend",
            f"'{backend}' must be one of {', '.join(EMBEDDED_DB_BACKENDS)}",
        )
    vault = database.get("Vault")
    if vault is not None and not (
        isinstance(vault, dict) and vault.get("Username") and vault.get("Password")
    ):
        report.error(
            "crane:database:Vault",
            "needs Username and Password whenever the section exists, even when disabled",
        )
    for key in ("DbUser", "DbPassword"):
        if re.search(r"[@:/?#%\[\]]", str(database.get(key) or "")):
            report.error(
                f"crane:database:{key}",
                "contains one of @ : / ? # % [ ]; cranectld puts it into the MongoDB URI "
                "without escaping",
            )


# --- rendering -----------------------------------------------------------------------------


def prepare(config):
    """The config as the formula writes it, and notes on what the formula changed.

    The formula only enforces what systemd needs: both daemons in the foreground, and a
    trailing '/' on CraneBaseDir (CraneSched concatenates paths to it).
    """
    prepared = dict(config or {})
    notes = []
    for key in FORCED_TRUE_KEYS:
        if prepared.get(key) is not True:
            notes.append(f"{key} set to true (the systemd units need the daemon in the foreground)")
            prepared[key] = True
    base_dir = prepared.get("CraneBaseDir")
    if isinstance(base_dir, str) and not base_dir.endswith("/"):
        notes.append(
            f"CraneBaseDir '{base_dir}' given a trailing '/' "
            "(CraneSched joins paths by concatenation)"
        )
        prepared["CraneBaseDir"] = base_dir + "/"
    return prepared, notes


def _canonical(data):
    """Mappings with sorted keys ('name' first), so every node writes the same bytes."""
    if isinstance(data, dict):
        keys = sorted(data, key=lambda k: (k != "name", str(k)))
        return {k: _canonical(data[k]) for k in keys}
    if isinstance(data, list):
        return [_canonical(item) for item in data]
    return data


# Recent dumps by the repr of their canonical data. One state run renders map.jinja once per
# SLS file, and each render dumps the same config again; the pure-Python YAML emitter is the
# formula's largest cost for big configs, a repr of the data a small fraction of it. Equal reprs
# of plain pillar data (str, int, float, bool, None, dates, lists, dicts) give equal YAML.
_DUMPS = {}
_DUMPS_KEPT = 4


def dump(data, header=None):
    """YAML text of a config mapping, byte-identical for equal data."""
    canonical = _canonical(data)
    key = repr(canonical)
    text = _DUMPS.get(key)
    if text is None:
        text = yaml.safe_dump(
            canonical, default_flow_style=False, sort_keys=False, allow_unicode=True, width=1000
        )
        _DUMPS[key] = text
        for old in list(_DUMPS)[:-_DUMPS_KEPT]:
            _DUMPS.pop(old, None)
    return f"{header}\n{text}" if header else text


# --- roles ---------------------------------------------------------------------------------


def compute_hosts(config):
    """Every host name of Nodes[].name, in config order."""
    hosts = {}  # a dict keeps config order and finds a repeated name in constant time
    for group in (config or {}).get("Nodes") or []:
        if isinstance(group, dict) and group.get("name"):
            names, _problem = _expand(group["name"])
            hosts.update(dict.fromkeys(names))
    return list(hosts)


def control_hosts(config):
    """ControlMachine (a single host; HA peers share it through Keepalived's VIP name)."""
    control = (config or {}).get("ControlMachine")
    return [str(control)] if control else []


def roles(config, host_names, login_nodes=()):
    """Roles of a minion known by any of ``host_names`` (short name, node name)."""
    names = {str(n) for n in host_names if n}
    found = []
    if names & set(control_hosts(config)):
        found.append("control")
    if names & set(compute_hosts(config)):
        found.append("compute")
    logins = set()
    for expr in login_nodes or ():
        logins.update(_expand(expr)[0])
    if names & logins:
        found.append("login")
    return found
