"""
CraneSched's config.yaml rules, checked before anything changes on a node.

Pure Python: loaded by Salt's loader as a ``_utils`` module (``__utils__["crane_config.*"]``)
and imported directly by tests. Each rule mirrors a reason for which cranectld, craned or the
Go CLIs refuse to start or silently misbehave; every message names the key and, for node
settings, the node group, and quotes CraneSched's own log line where there is one.
"""

import difflib
import ipaddress
import os
import re
import sys

# Siblings by name; the folder stays on sys.path (README, "How the utilities load").
_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
if _FOLDER not in sys.path:
    sys.path.append(_FOLDER)

import crane_gres  # noqa: E402
import crane_hostlist  # noqa: E402
import yaml  # noqa: E402

MEMORY_RE = re.compile(r"^\d+[KMBG]$")
MEMORY_SUBSTRING_RE = re.compile(r"\d+[KMBG]")
DEBUG_LEVELS = ("trace", "debug", "info", "warn", "error", "off")
PORT_KEYS = {
    "CraneCtldListenPort": 10011,
    "CraneCtldForInternalListenPort": 10013,
    "CranedListenPort": 10010,
}
CFORED_PORT = 10012  # hard-coded in cfored
DEFAULT_BASE_DIR = "/var/crane/"  # CraneBaseDir when the config leaves it out
# The Go CLIs and cfored have no default for these: every Go tool exits 1 when
# CraneCtldForInternalListenPort is missing, and none has a default CraneCtldListenPort.
PORTS_REQUIRED_BY_CLIS = ("CraneCtldListenPort", "CraneCtldForInternalListenPort")
LISTEN_ADDRESS_KEYS = ("CraneCtldListenAddr", "CranedListen")
# Keys CraneSched's docs or sample config name but no daemon reads (the daemons' own key
# names are in the messages).
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


# --- the key table -------------------------------------------------------------------------
#
# How CraneSched reads every key of config.yaml (cranectld, craned, the Go CLIs and cfored) and
# of database.yaml. Kinds:
#   text  a string: names, paths, secrets, free text. The pillar is read as YAML 1.1, so an
#         unquoted 0123 arrives as 83, 1:30 as 90, yes as true; the admin's text is lost and
#         the formula cannot write it back: any non-string is refused ("quote it").
#   word  a string from a fixed set (``choices``, matched exactly as CraneSched does). Where
#         exactly one choice is a word YAML 1.1 reads as false (off, OFF), that false is
#         written back as that word: nothing else could have been meant.
#   bool, int, port, mem   a boolean; an integer (``unsigned``: not negative); a port (an
#         integer or its digits); a memory size string (checked by ``memory_problem``).
#   map   a mapping of further keys.
#   list  a sequence of text; ``table`` a sequence of mappings whose keys follow as ``Key[].x``.
# ``cli``: the Go CLIs (cinfo, ccontrol, …) and cfored decode it with yaml.v3 into a typed Go
# field (bool, int, uint64, struct, slice). yaml.v3 refuses a quoted "true" or "60" there
# ("Config syntax error", exit 2) where the daemons accept it; a Go string field takes any
# scalar. ``secret``: the value never appears in a message.


class Key:
    """One row of the key table."""

    def __init__(self, kind, *, cli=False, choices=(), unsigned=True, secret=False):
        self.kind = kind
        self.cli = cli
        self.choices = tuple(choices)
        self.unsigned = unsigned
        self.secret = secret

    @property
    def false_word(self):
        """The one choice YAML 1.1 reads as false, if there is exactly one."""
        words = [c for c in self.choices if c.lower() in YAML11_FALSE_WORDS]
        return words[0] if len(words) == 1 else None


YAML11_FALSE_WORDS = ("off", "no", "false")
TEXT, WORD, BOOL, INT, PORT, MEM = "text", "word", "bool", "int", "port", "mem"
MAP, LIST, TABLE = "map", "list", "table"
_DEBUG = Key(WORD, choices=DEBUG_LEVELS)


def _t(**kw):
    return Key(TEXT, **kw)


def _b(cli=False):
    return Key(BOOL, cli=cli)


def _i(cli=False, unsigned=True):
    return Key(INT, cli=cli, unsigned=unsigned)


def _m(cli=False):
    return Key(MAP, cli=cli)


CONFIG_KEYS = {
    # cluster (cranectld, craned, CLIs)
    "ClusterName": _t(),
    "ControlMachine": _t(),
    "CraneBaseDir": _t(),
    "DbConfigPath": _t(),
    "CompressedRpc": _b(),
    "IgnoreConfigInconsistency": _b(),
    # cranectld
    "CraneCtldLogFile": _t(),
    "CraneCtldDebugLevel": _DEBUG,
    "CraneCtldMutexFilePath": _t(),
    "CraneCtldListenAddr": _t(),
    "CraneCtldListenPort": Key(PORT),
    "CraneCtldForInternalListenPort": Key(PORT),
    "CraneCtldForeground": _b(),
    "CraneCtld": _m(),
    "CraneCtld.CranedTimeout": _i(),
    "CraneCtld.MaxLogFileSize": Key(MEM),
    "CraneCtld.MaxLogFileNum": _i(),
    "CraneCtld.ThreadPoolSize": _i(),
    "CraneCtld.SchedulerRpcThreadPoolSize": _i(),
    "CraneCtld.StatusChangeFlushTimeoutMs": _i(),
    "CraneCtld.StatusChangeBatchNum": _i(),
    "CraneCtld.JobRequeue": _b(),
    "CraneCtld.MaxRequeueCount": _i(unsigned=False),
    "JobSubmitLuaScript": _t(),
    "Keepalived": _m(),
    "Keepalived.CraneSharedBaseDir": _t(),
    "Keepalived.CraneCtldAliveFile": _t(),
    "PriorityType": _t(),
    "PriorityFavorSmall": _b(),
    "PriorityMaxAge": _t(),
    "PriorityWeightAge": _i(),
    "PriorityWeightFairShare": _i(),
    "PriorityWeightJobSize": _i(),
    "PriorityWeightPartition": _i(),
    "PriorityWeightQoS": _i(),
    "PendingQueueMaxSize": _i(),
    "ScheduledBatchSize": _i(),
    "Licenses": Key(TABLE),
    "Licenses[].name": _t(),
    "Licenses[].quantity": _i(),
    "AllLicenseResourcesAbsolute": _b(),
    "RejectJobsBeyondCapacity": _b(),
    "JobFileAppend": _b(),
    "TrackWCKey": _b(),
    "DefaultPartition": _t(),
    "Preempt": _m(),
    "Preempt.PreemptType": Key(WORD, choices=PREEMPT_TYPES),
    "Preempt.PreemptMode": Key(WORD, choices=PREEMPT_MODES),
    # craned
    "CranedLogFile": _t(),
    "CranedDebugLevel": _DEBUG,
    "CranedMutexFilePath": _t(),
    "CranedUnixSockPath": _t(),
    "CranedForPamUnixSockPath": _t(),
    "CranedScriptDir": _t(),
    "CranedListen": _t(),
    "CranedListenPort": Key(PORT),
    "CranedForeground": _b(),
    "EnableSlurmCompatibleEnv": _b(),
    "Craned": _m(),
    "Craned.PingInterval": _i(),
    "Craned.CraneCtldTimeout": _i(),
    "Craned.MaxLogFileSize": Key(MEM),
    "Craned.MaxLogFileNum": _i(),
    "Craned.NodeHealthCheckInterval": _i(),
    "Craned.ThreadPoolSize": _i(),
    "Supervisor": _m(),
    "Supervisor.Path": _t(),
    "Supervisor.DebugLevel": _DEBUG,
    "Supervisor.LogDir": _t(),
    "Supervisor.MaxLogFileSize": Key(MEM),
    "Supervisor.MaxLogFileNum": _i(),
    "Supervisor.ThreadPoolSize": _i(),
    "HealthCheck": _m(),
    "HealthCheck.Program": _t(),
    "HealthCheck.Interval": _i(),
    "HealthCheck.NodeState": _t(),
    "HealthCheck.Cycle": _b(),
    # TLS (the CLIs decode the section into a struct with a bool Enabled)
    "TLS": _m(cli=True),
    "TLS.Enabled": _b(cli=True),
    "TLS.DomainSuffix": _t(),
    "TLS.AllowedNodes": _t(),
    "TLS.CaFilePath": _t(),
    "TLS.InternalCertFilePath": _t(),
    "TLS.InternalKeyFilePath": _t(),
    "TLS.ExternalCertFilePath": _t(),
    "TLS.ExternalKeyFilePath": _t(),
    "TLS.UserTlsCertPath": _t(),
    # job lifecycle hooks (the CLIs decode the timeouts into uint64)
    "JobLifecycleHook": _m(cli=True),
    "JobLifecycleHook.Prolog": _t(),
    "JobLifecycleHook.Epilog": _t(),
    "JobLifecycleHook.TaskProlog": _t(),
    "JobLifecycleHook.TaskEpilog": _t(),
    "JobLifecycleHook.CranectldProlog": _t(),
    "JobLifecycleHook.CranectldEpilog": _t(),
    "JobLifecycleHook.CrunProlog": _t(),
    "JobLifecycleHook.CrunEpilog": _t(),
    "JobLifecycleHook.PrologFlags": _t(),
    "JobLifecycleHook.PrologTimeout": _i(cli=True),
    "JobLifecycleHook.EpilogTimeout": _i(cli=True),
    "JobLifecycleHook.PrologEpilogTimeout": _i(cli=True),
    "JobLifecycleHook.MaxOutputSize": _i(),
    # containers (the CLIs decode UserNsEnabledByDefault into a bool)
    "Container": _m(cli=True),
    "Container.Enabled": _b(),
    "Container.UserNsEnabledByDefault": _b(cli=True),
    "Container.TempDir": _t(),
    "Container.RuntimeEndpoint": _t(),
    "Container.ImageEndpoint": _t(),
    "Container.Dns": _m(),
    "Container.Dns.ClusterDomain": _t(),
    "Container.Dns.Servers": Key(LIST),
    "Container.Dns.Searches": Key(LIST),
    "Container.Dns.Options": Key(LIST),
    "Container.BindFs": _m(),
    "Container.BindFs.Enabled": _b(),
    "Container.BindFs.BindfsBinary": _t(),
    "Container.BindFs.FusermountBinary": _t(),
    "Container.BindFs.MountBaseDir": _t(),
    "Container.SubId": _m(),
    "Container.SubId.Managed": _b(),
    **{
        f"Container.SubId.{mappings}{field}": spec
        for mappings in ("UidMappings", "GidMappings")
        for field, spec in (
            ("", Key(TABLE)),
            ("[].Id", _i()),
            ("[].IdCount", _i()),
            ("[].SubIdStart", _i()),
            ("[].SubIdSize", _i()),
        )
    },
    # the CLIs and cfored only
    "CranedCforedSockPath": _t(),
    "CforedLogDir": _t(),
    "CforedDebugLevel": _DEBUG,
    "Cfored": _m(cli=True),
    "Cfored.DebugLevel": _DEBUG,
    "Cfored.PidFilePath": _t(),
    "Plugin": _m(cli=True),
    "Plugin.Enabled": _b(cli=True),
    "Plugin.PlugindSockPath": _t(),
    "Plugin.PlugindListenAddress": _t(),
    "Plugin.PlugindListenPort": Key(PORT),
    "Plugin.PlugindDebugLevel": _t(),
    "Plugin.Plugins": Key(TABLE, cli=True),
    "Plugin.Plugins[].Name": _t(),
    "Plugin.Plugins[].Path": _t(),
    "Plugin.Plugins[].Config": _t(),
    # node groups and partitions (the CLIs decode Nodes into a slice of structs, cpu an int)
    "Nodes": Key(TABLE, cli=True),
    "Nodes[].name": _t(),
    "Nodes[].cpu": _i(cli=True),
    "Nodes[].memory": Key(MEM),
    "Nodes[].sockets": _i(),
    "Nodes[].gres": Key(TABLE),
    "Nodes[].gres[].name": _t(),
    "Nodes[].gres[].type": _t(),
    "Nodes[].gres[].EnvInjector": _t(),
    "Nodes[].gres[].DeviceFileRegex": _t(),
    "Nodes[].gres[].DeviceFileList": Key(LIST),
    "Nodes[].gres[].DeviceCDIRegex": _t(),
    "Nodes[].gres[].DeviceCDIList": Key(LIST),
    "Nodes[].gres[].DeviceCniPipeline": _t(),
    "Partitions": Key(TABLE),
    "Partitions[].name": _t(),
    "Partitions[].nodes": _t(),
    "Partitions[].priority": _i(),
    "Partitions[].DefaultMemPerCpu": _i(),
    "Partitions[].DefaultMemPerNode": _i(),
    "Partitions[].MaxMemPerCpu": _i(),
    "Partitions[].MaxMemPerNode": _i(),
    "Partitions[].AllowedAccounts": _t(),
    "Partitions[].DeniedAccounts": _t(),
}

DATABASE_KEYS = {
    "CraneEmbeddedDbBackend": Key(WORD, choices=EMBEDDED_DB_BACKENDS),
    "CraneCtldDbPath": _t(),
    "DbUser": _t(secret=True),
    "DbPassword": _t(secret=True),
    "DbHost": _t(),
    "DbPort": Key(PORT),
    "DbReplSetName": _t(),
    "DbName": _t(),
    "JobAggregationTimeoutMs": _i(),
    "JobAggregationBatchSize": _i(),
    "Vault": _m(),
    "Vault.Enabled": _b(),
    "Vault.Addr": _t(),
    "Vault.Port": Key(PORT),
    "Vault.Username": _t(secret=True),
    "Vault.Password": _t(secret=True),
    "Vault.Tls": _b(),
    "Vault.ExpirationMinutes": _i(),
}

# Keys whose type and value rules live with their own checks (node groups, partitions, gres,
# ports), so the table walk only looks for unknown keys below them.
CHECKED_ELSEWHERE = {
    "Nodes",
    "Nodes[].cpu",
    "Nodes[].memory",
    "Nodes[].gres",
    "Nodes[].gres[].DeviceFileList",
    "Partitions",
    "Supervisor",
    *PORT_KEYS,
}


def _cases(word):
    return {word.lower(), word.upper(), word.capitalize()}


# Spellings yaml-cpp's bool conversion accepts (any of lower, UPPER or Capitalised case).
_YAML_CPP_BOOLS = {
    w for s in ("y", "n", "yes", "no", "true", "false", "on", "off") for w in _cases(s)
}
# Quoted spellings yaml.v3 still decodes into a Go bool (its YAML 1.1 compatibility list).
_YAML_V3_QUOTED_BOOLS = {w for s in ("y", "yes", "on", "n", "no", "off") for w in _cases(s)}
_INT_TEXT = re.compile(r"^\+?[0-9]+$")
_SIGNED_INT_TEXT = re.compile(r"^[+-]?[0-9]+$")


def _kind_name(value):
    """How YAML 1.1 typed a scalar, for messages."""
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return f"a {type(value).__name__}"


def _shown(spec, value):
    return "the value" if spec.secret else f"'{value}'"


def _scalar_problem(spec, value):
    """Why CraneSched (or the CLIs, for ``cli`` keys) would not read ``value`` as meant."""
    if isinstance(value, (dict, list)):
        return f"must be a single value, not a {'mapping' if isinstance(value, dict) else 'list'}"
    if value is None:
        return "has no value (the daemons abort on an empty scalar): give one or leave it out"
    if spec.kind == TEXT and not isinstance(value, str):
        what = "the value" if spec.secret else _kind_name(value)
        return (
            f"YAML 1.1 read {what} here, not the text you wrote (0123 becomes 83, yes becomes "
            "true); CraneSched reads this key as a string: quote it"
        )
    if spec.kind == WORD:
        if isinstance(value, bool):
            return (
                f"YAML 1.1 read {_kind_name(value)} here; CraneSched accepts only "
                f"{', '.join(spec.choices)}: quote it"
            )
        if value not in spec.choices:
            return f"{_shown(spec, value)} must be one of {', '.join(spec.choices)}"
    if spec.kind == BOOL:
        return _bool_problem(spec, value)
    if spec.kind == INT:
        return _int_problem(spec, value)
    if spec.kind == MEM:
        return memory_problem(value)
    if spec.kind == PORT and (isinstance(value, bool) or _as_port(value) is None):
        return f"'{value}' is not a port 0-65535"
    return None


def _bool_problem(spec, value):
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if spec.cli and value not in _YAML_V3_QUOTED_BOOLS:
            return (
                f"the quoted '{value}' is refused by the Go CLIs (\"Config syntax error\"); "
                "write true or false without quotes"
            )
        if value in _YAML_CPP_BOOLS:
            return None
    return f"'{value}' is not a boolean: write true or false without quotes"


def _int_problem(spec, value):
    if isinstance(value, int) and not isinstance(value, bool):
        if spec.unsigned and value < 0:
            return f"'{value}' must not be negative"
        return None
    if isinstance(value, str):
        if spec.cli:
            return (
                f"the quoted '{value}' is refused by the Go CLIs (\"Config syntax error\"); "
                "write the integer without quotes"
            )
        if (_INT_TEXT if spec.unsigned else _SIGNED_INT_TEXT).match(value.strip()):
            return None
    return f"'{value}' must be an integer without quotes"


def _table_item_label(pattern, label, index, item):
    if pattern == "Nodes":
        return group_label(index, item)
    if pattern == "Partitions" and isinstance(item, dict) and item.get("name") is not None:
        return f"Partitions[{index}] '{item['name']}'"
    return f"{label}[{index}]"


def _join(label, key, in_table):
    if not label:
        return str(key)
    return f"{label} {key}" if in_table else f"{label}.{key}"


def _nearest(key, known):
    """The known key ``key`` most likely meant, or None."""
    text = str(key)
    for candidate in known:
        if candidate.lower() == text.lower():
            return candidate
    found = difflib.get_close_matches(text, known, n=1, cutoff=0.75)
    return found[0] if found else None


def _children(table, pattern):
    prefix = f"{pattern}." if pattern else ""
    names = []
    for path in table:
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            if "." not in rest and "[" not in rest:
                names.append(rest)
    return names


def _walk_mapping(walk, data, pattern, label, in_table):
    """Check each key of ``data`` (at ``pattern`` in the table), reporting under ``label``."""
    table, report = walk
    known = _children(table, pattern)
    for key, value in data.items():
        path = f"{pattern}.{key}" if pattern else str(key)
        where = _join(label, key, in_table)
        spec = table.get(path)
        if spec is None:
            if str(key) not in IGNORED_KEYS:
                best = _nearest(key, known)
                hint = f"; did you mean '{best}'?" if best else ""
                report.warn(where, f"not a key CraneSched reads, so it has no effect{hint}")
            continue
        _walk_value(walk, spec, value, path, where)


def _walk_value(walk, spec, value, path, where):
    report = walk[1]
    elsewhere = path in CHECKED_ELSEWHERE
    if spec.kind == MAP:
        if isinstance(value, dict):
            _walk_mapping(walk, value, path, where, False)
        elif value is not None and not elsewhere:
            report.error(where, f"must be a mapping of {path}'s keys, not {_kind_name(value)}")
    elif spec.kind == TABLE:
        if isinstance(value, list):
            for index, item in enumerate(value):
                item_label = _table_item_label(path, where, index, item)
                if isinstance(item, dict):
                    _walk_mapping(walk, item, f"{path}[]", item_label, True)
                elif not elsewhere:
                    report.error(item_label, "must be a mapping")
        elif value is not None and not elsewhere:
            report.error(where, f"must be a list, not {_kind_name(value)}")
    elif spec.kind == LIST:
        if not elsewhere and not (value is None or isinstance(value, list)):
            report.error(where, f"must be a list, not {_kind_name(value)}")
    elif not elsewhere:
        problem = _scalar_problem(spec, value)
        if problem:
            report.error(where, problem)


def _check_key_table(config, report):
    _walk_mapping((CONFIG_KEYS, report), config, "", "", False)


# --- YAML 1.1 words ------------------------------------------------------------------------


def spell_false_words(data, table=None, pattern=""):
    """``data`` with each YAML 1.1 false in a word key written back as that key's one false
    word (``CranedDebugLevel: off`` arrives as false, is written ``off``), and notes saying so.
    """
    table = CONFIG_KEYS if table is None else table
    notes = []
    return _spelled(data, table, pattern, notes), notes


def _spelled(data, table, pattern, notes):
    if isinstance(data, list):
        return [_spelled(item, table, f"{pattern}[]", notes) for item in data]
    if not isinstance(data, dict):
        return data
    result = {}
    for key, value in data.items():
        path = f"{pattern}.{key}" if pattern else str(key)
        spec = table.get(path)
        result[key] = value
        if spec is not None and spec.kind == WORD and value is False and spec.false_word:
            notes.append(
                f"{path}: YAML 1.1 read '{spec.false_word}' as false; written as "
                f"'{spec.false_word}'"
            )
            result[key] = spec.false_word
        elif spec is not None and spec.kind in (MAP, TABLE):
            result[key] = _spelled(value, table, path, notes)
    return result


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


def port(config, key):
    """The TCP port ``key`` (a key of PORT_KEYS) of a config, CraneSched's default if unset."""
    return int(config.get(key) or PORT_KEYS[key])


def daemon_ports(config, services):
    """The TCP ports the daemons ``services`` (cranectld, craned, cfored) listen on."""
    ports = []
    if "cranectld" in services:
        ports += [
            port(config, "CraneCtldListenPort"),
            port(config, "CraneCtldForInternalListenPort"),
        ]
    if "craned" in services:
        ports.append(port(config, "CranedListenPort"))
    if "cfored" in services:
        ports.append(CFORED_PORT)
    return sorted(set(ports))


def base_dir(config):
    """CraneBaseDir of a config, CraneSched's default when unset."""
    return str(config.get("CraneBaseDir") or DEFAULT_BASE_DIR)


def ctld_base_dir(config):
    """Where cranectld keeps its state: Keepalived.CraneSharedBaseDir with HA, else
    CraneBaseDir."""
    shared = (config.get("Keepalived") or {}).get("CraneSharedBaseDir")
    return str(shared) if shared else base_dir(config)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _as_port(value):
    """The port as an int when CraneSched would accept it, else None."""
    text = str(value).strip()
    if not text.isdigit():
        return None
    port = int(text)
    return port if port <= 65535 else None


def is_ip_literal(value):
    """Whether ``value`` is an IPv4 or IPv6 address literal."""
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
        if key in config and not is_ip_literal(config[key]):
            report.error(
                key,
                f"'{config[key]}' must be an IPv4 or IPv6 literal, not a host name "
                '(CraneSched: "Listening address is invalid.")',
            )


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
    names, problem = crane_hostlist.try_expand(group["name"])
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
    names, problem = crane_hostlist.try_expand(nodes)
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
    if _is_on(_get(config, ("Container", "Enabled"))) and not _get(
        config, ("Container", "RuntimeEndpoint")
    ):
        report.error("Container.RuntimeEndpoint", "required when Container.Enabled is true")
    flags = {
        f.strip().lower()
        for f in str(_get(config, ("JobLifecycleHook", "PrologFlags")) or "").split(",")
    }
    if {"runinjob", "serial"} <= flags:
        report.error("JobLifecycleHook.PrologFlags", "RunInJob and Serial cannot be set together")
    licenses = config.get("Licenses")
    for index, lic in enumerate(licenses if isinstance(licenses, list) else []):
        if not isinstance(lic, dict) or "name" not in lic or "quantity" not in lic:
            report.error(f"Licenses[{index}]", "needs both name and quantity")
    _check_tls(config, report)
    _check_preempt(config, report)


def _is_on(value):
    """A boolean as the daemons convert it (yaml-cpp also takes y, yes, on, true as text)."""
    if isinstance(value, str):
        return value.strip().lower() in ("y", "yes", "on", "true")
    return bool(value)


def _check_tls(config, report):
    if not _is_on(_get(config, ("TLS", "Enabled"))):
        return
    for key in TLS_FILE_KEYS:
        if not _get(config, ("TLS", key)):
            report.error(
                f"TLS.{key}", f'required when TLS is enabled ("UseTls is true, but {key} is empty")'
            )
    allowed = _get(config, ("TLS", "AllowedNodes"))
    if allowed:
        _names, problem = crane_hostlist.try_expand(allowed)
        if problem:
            report.error("TLS.AllowedNodes", problem)


def _check_preempt(config, report):
    preempt = config.get("Preempt")
    if not isinstance(preempt, dict):
        return
    kind, mode = preempt.get("PreemptType", "none"), preempt.get("PreemptMode", "OFF")
    if kind not in PREEMPT_TYPES or mode not in PREEMPT_MODES:
        return  # the key table names the bad value
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
        got = "" if not config else f" (it is {_kind_name(config)})"
        report.error(
            "crane:config", f"missing or not a mapping: the pillar must hold config.yaml{got}"
        )
        return report.result()
    config, _notes = spell_false_words(config)
    _check_key_table(config, report)
    _check_cluster_keys(config, report)
    _check_ports(config, report)
    _check_listen_addresses(config, report)
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
    found = Report()
    _walk_mapping((DATABASE_KEYS, found), database, "", "", False)
    report.errors += [f"crane:database:{text}" for text in found.errors]
    report.warnings += [f"crane:database:{text}" for text in found.warnings]
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
    trailing '/' on CraneBaseDir (CraneSched concatenates paths to it); and it writes back the
    word YAML 1.1 turned into false where only one word was possible (``spell_false_words``).
    """
    if not isinstance(config, dict):
        return {}, []  # validation names the problem
    prepared, notes = spell_false_words(config)
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


REDACTED = "<redacted>"
SECRET_WORDS = ("password", "passwd", "secret", "token")


def secret_words():
    """Words that mark a key whose value is secret."""
    return SECRET_WORDS


def redact(data, words=SECRET_WORDS):
    """A copy of ``data`` with the value of every key naming one of ``words`` (any case)
    replaced by ``<redacted>``, at any depth."""
    if isinstance(data, dict):
        return {
            key: REDACTED if any(w in str(key).lower() for w in words) else redact(value, words)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [redact(item, words) for item in data]
    return data


def dump(data, header=None):
    """YAML text of a config mapping, byte-identical for equal data."""
    text = yaml.safe_dump(
        _canonical(data), default_flow_style=False, sort_keys=False, allow_unicode=True, width=1000
    )
    return f"{header}\n{text}" if header else text


# --- roles ---------------------------------------------------------------------------------


def compute_hosts(config):
    """Every host name of Nodes[].name, in config order."""
    hosts = {}  # a dict keeps config order and finds a repeated name in constant time
    for group in (config or {}).get("Nodes") or []:
        if isinstance(group, dict) and group.get("name"):
            names, _problem = crane_hostlist.try_expand(group["name"])
            hosts.update(dict.fromkeys(names))
    return list(hosts)


def control_hosts(config, ha_pair=()):
    """ControlMachine, or with a Keepalived pair (``ha_pair``, the two minions of
    ``crane:ha:nodes``) those two: ControlMachine is then the virtual IP's name."""
    if ha_pair:
        return list(ha_pair)
    control = (config or {}).get("ControlMachine")
    return [str(control)] if control else []


def roles(config, host_names, login_nodes=(), ha_pair=()):
    """Roles of a minion known by any of ``host_names`` (short name, node name)."""
    names = {str(n) for n in host_names if n}
    found = []
    if names & set(control_hosts(config, ha_pair)):
        found.append("control")
    if names & set(compute_hosts(config)):
        found.append("compute")
    logins = set()
    for expr in login_nodes or ():
        logins.update(crane_hostlist.try_expand(expr)[0])
    if names & logins:
        found.append("login")
    return found


# --- the formula's own settings ------------------------------------------------------------

# Formula switches that take one of a few words (their meaning: parameters/defaults.yaml).
FORMULA_CHOICES = {
    "restart": ("on_change", "never"),
    "install:method": ("repo", "files", "binaries"),
    "heal:mode": ("heal", "report"),
}
# Sections holding CraneSched's own files, checked key by key by ``validate``.
FILE_SECTIONS = {"config": "config.yaml", "database": "database.yaml"}


def check_settings(pillar, defaults=None):
    """The pillar ``crane`` checked against the formula's defaults (their types, their keys)
    and ``FORMULA_CHOICES``, before anything is merged or rendered.

    Returns ``(usable, errors, warnings)``: ``usable`` is the pillar without the values that
    are refused (so the templates still render and the validation state can fail with the
    errors); each message names the key as ``crane:a:b``.
    """
    errors, warnings = [], []
    if pillar is None:
        return {}, errors, warnings
    if not isinstance(pillar, dict):
        errors.append(
            f"crane: must be a mapping of the formula's settings, not {_kind_name(pillar)}"
        )
        return {}, errors, warnings
    usable = _settings_walk(pillar, defaults, "crane", (errors, warnings))
    return usable, errors, warnings


def _settings_walk(data, defaults, where, found):
    errors, warnings = found
    usable = {}
    for key, value in data.items():
        path = f"{where}:{key}"
        problem = _setting_problem(path, key, value, defaults, warnings)
        if problem:
            errors.append(f"{path}: {problem}")
            continue
        default = defaults.get(key) if isinstance(defaults, dict) else None
        nested = isinstance(default, dict) and default and isinstance(value, dict)
        usable[key] = _settings_walk(value, default, path, found) if nested else value
    return usable


def _setting_problem(path, key, value, defaults, warnings):
    """Why ``value`` is refused, or None (an unknown key only warns)."""
    relative = path.removeprefix("crane:")
    if relative in FILE_SECTIONS:
        if value is None or isinstance(value, dict):
            return None
        return (
            f"must be a mapping (the content of {FILE_SECTIONS[relative]}), not {_kind_name(value)}"
        )
    if isinstance(defaults, dict) and defaults and key not in defaults:
        best = _nearest(key, [str(k) for k in defaults])
        hint = f"; did you mean '{best}'?" if best else ""
        warnings.append(f"{path}: not a setting of the formula, so it has no effect{hint}")
        return None
    default = defaults.get(key) if isinstance(defaults, dict) else None
    problem = _setting_type_problem(default, value)
    if problem is None and relative in FORMULA_CHOICES and value not in FORMULA_CHOICES[relative]:
        problem = f"'{value}' must be one of {', '.join(FORMULA_CHOICES[relative])}"
    if problem is None and relative == "firewall_sources":
        problem = "; ".join(_cidr_problems(value)) or None
    return problem


def _cidr_problems(sources):
    """Why entries of ``crane:firewall_sources`` are not networks in CIDR form."""
    problems = []
    for item in sources or ():
        if not isinstance(item, str):
            problems.append(f"{item!r} is not a network in CIDR form: quote it, e.g. '10.0.0.0/24'")
            continue
        try:
            ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            problems.append(f"'{item}' is not a network in CIDR form, e.g. 10.0.0.0/24 ({exc})")
    return problems


def _setting_type_problem(default, value):
    """Why ``value`` cannot stand where the formula's default is ``default``."""
    if default is None or value is None:
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        wanted = "true or false"
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        wanted = "a number"
    elif isinstance(default, str):
        ok = isinstance(value, str)
        wanted = "a string (quote it: YAML 1.1 reads 1.10 as the number 1.1)"
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
        wanted = "a mapping"
    elif isinstance(default, list):
        ok = isinstance(value, list)
        wanted = "a list"
    else:
        return None
    return None if ok else f"must be {wanted}, not {_kind_name(value)}"


# --- crane.clean ---------------------------------------------------------------------------

# Trees no CraneSched data directory may be or contain: removing one breaks the node.
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root",
                "/run", "/sbin", "/sys", "/usr")  # fmt: skip
SYSTEM_DIRS = ("/var/lib", "/var/log", "/var/cache", "/var/spool", "/var/tmp", "/var/run",
               "/var/mail", "/var/backups", "/var/opt", "/var/local", "/home", "/srv", "/opt",
               "/mnt", "/media", "/tmp")  # fmt: skip


def data_dir_refusal(path):
    """Why ``crane.clean`` with ``remove_data`` must not remove ``path`` (CraneBaseDir), or
    None when it may: the path must be absolute, at least two levels deep, and neither a
    system directory nor inside a system tree."""
    text = str(path or "")
    if not text.startswith("/"):
        return f"CraneBaseDir '{text}' is not an absolute path"
    normal = os.path.normpath(text)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    depth = len([part for part in normal.split("/") if part])
    inside = [tree for tree in SYSTEM_TREES if normal == tree or normal.startswith(tree + "/")]
    if depth < 2 or normal in SYSTEM_DIRS:
        why = "a system directory"
    elif inside:
        why = f"inside {inside[0]}"
    else:
        return None
    return (
        f"refusing to remove CraneBaseDir '{text}' (crane:clean:remove_data): it is {why}; "
        "set CraneBaseDir to CraneSched's own directory (e.g. /var/crane/) or remove it by hand"
    )
