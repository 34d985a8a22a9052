"""Behaviour shared by the simulated Go frontend tools: an unreadable config.yaml or a YAML error
exits 2, an empty ``CraneCtldForInternalListenPort`` exits 1."""

import contextlib
import json
import math
import re
import sys

import yaml
from cranesim import VERSION
from cranesim.common import RpcError, rpc_call

DEFAULT_CONFIG = "/etc/crane/config.yaml"
SOURCE_TIME = "Mon, 01 Jan 2024 00:00:00 +0000"

# FE:internal/util/err.go
ERROR_SUCCESS, ERROR_GENERIC, ERROR_CMD_ARG, ERROR_NETWORK, ERROR_BACKEND = 0, 1, 2, 3, 4
ERROR_INVALID_FORMAT, ERROR_SYSTEM = 5, 6
BROKEN = "Connection to CraneCtld is broken."


class CraneError(Exception):
    """``util.CraneError``: an exit code and a message."""

    def __init__(self, code, message=""):
        super().__init__(message)
        self.code = code
        self.message = message


def version_text():
    return f"CraneSched {VERSION}\nSource Time: {SOURCE_TIME}"


def log_error(message):
    """logrus with CraneFormatter: the bare message, newline-terminated, on stderr."""
    sys.stderr.write(message if message.endswith("\n") else message + "\n")
    sys.stderr.flush()


log_info = log_error


def parse_config(path):
    """``util.ParseConfig``: unreadable or invalid → exit 2, no internal port → exit 1."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as exc:
        log_error(f"Failed to read config file {path}: open {path}: {_go_errno(exc)}")
        sys.exit(ERROR_CMD_ARG)
    try:
        _check_go_types(text)
        config = yaml.safe_load(text) or {}
    except (yaml.YAMLError, ValueError) as exc:
        log_error(f"Config syntax error in {path}: {_go_yaml_error(exc)}")
        sys.exit(ERROR_CMD_ARG)
    if not _scalar(config.get("CraneCtldForInternalListenPort")):
        log_error(f"CraneCtldForInternalListenPort is not set in config file {path}")
        sys.exit(ERROR_GENERIC)
    return config


def _go_errno(exc):
    return {2: "no such file or directory", 13: "permission denied"}.get(
        exc.errno, exc.strerror.lower()
    )


def _go_yaml_error(exc):
    if isinstance(exc, GoTypeError):
        return "yaml: unmarshal errors:\n  " + "\n  ".join(exc.errors)
    return f"yaml: {exc}"


class GoTypeError(ValueError):
    """yaml.v3's ``*yaml.TypeError``: every field that did not fit, in document order."""

    def __init__(self, errors):
        super().__init__("; ".join(errors))
        self.errors = errors


# FE internal/util/util.go ``Config`` (and api.PluginMeta) as yaml.v3 sees it: the Go type of
# every field the CLIs and cfored decode. Keys not listed are ignored by yaml.v3.
_STR, _INT, _UINT64, _BOOL = "string", "int", "uint64", "bool"
_PLUGIN_META = ("api.PluginMeta", {"Name": _STR, "Path": _STR, "Config": _STR})
_NODE = ("util.ConfigNodesList", {"name": _STR, "cpu": _INT, "memory": _STR})
GO_CONFIG = (
    "util.Config",
    {
        "ClusterName": _STR,
        "ControlMachine": _STR,
        "CraneCtldListenPort": _STR,
        "CraneCtldForInternalListenPort": _STR,
        "Nodes": ("[]", _NODE),
        "TLS": (
            "util.TLSConfig",
            {
                "Enabled": _BOOL,
                "InternalCertFilePath": _STR,
                "InternalKeyFilePath": _STR,
                "ExternalCertFilePath": _STR,
                "CaFilePath": _STR,
                "DomainSuffix": _STR,
                "UserTlsCertPath": _STR,
            },
        ),
        "CraneBaseDir": _STR,
        "CforedLogDir": _STR,
        "CforedDebugLevel": _STR,
        "CranedCforedSockPath": _STR,
        "JobLifecycleHook": (
            "util.JobLifecycleHookConfig",
            {
                "CrunProlog": _STR,
                "CrunEpilog": _STR,
                "PrologTimeout": _UINT64,
                "EpilogTimeout": _UINT64,
                "PrologEpilogTimeout": _UINT64,
            },
        ),
        "Container": ("util.ContainerConfig", {"UserNsEnabledByDefault": _BOOL}),
        "Plugin": (
            "util.PluginConfig",
            {
                "Enabled": _BOOL,
                "PlugindSockPath": _STR,
                "PlugindListenAddress": _STR,
                "PlugindListenPort": _STR,
                "PlugindDebugLevel": _STR,
                "Plugins": ("[]", _PLUGIN_META),
            },
        ),
        "Cfored": ("util.CforedConfig", {"DebugLevel": _STR, "PidFilePath": _STR}),
    },
)
_NULL = re.compile(r"~|null|Null|NULL|")
_BOOL_WORDS = {"true", "True", "TRUE", "false", "False", "FALSE"}
_INT_RE = re.compile(r"[-+]?(0|[1-9][0-9_]*|0[xX][0-9a-fA-F_]+|0[oO]?[0-7_]+|0[bB][01_]+)")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?")
_FLOAT_SPECIAL = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
# yaml.v3 decodes these strings into a typed bool for YAML 1.1 compatibility, quoted or not
_YAML11_BOOLS = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"} | {
    "n",
    "N",
    "no",
    "No",
    "NO",
    "off",
    "Off",
    "OFF",
}


def _resolve(node):
    """yaml.v3's tag for a scalar: quoted and block scalars are strings; plain ones follow
    the YAML 1.2 core schema (so ``yes`` and ``on`` are strings, unlike PyYAML)."""
    if node.style is not None:
        return "!!str", node.value
    text = node.value
    if _NULL.fullmatch(text):
        return "!!null", None
    if text in _BOOL_WORDS:
        return "!!bool", text.lower() == "true"
    if _INT_RE.fullmatch(text):
        with contextlib.suppress(ValueError):
            return "!!int", int(text.replace("_", ""), 0)
    if _FLOAT_SPECIAL.fullmatch(text):
        return "!!float", float(text.replace(".", "").lower())
    if _FLOAT_RE.fullmatch(text):
        return "!!float", float(text.replace("_", ""))
    return "!!str", text


def _fits(kind, tag, value):
    """Whether yaml.v3 can store a scalar of this tag/value in a Go field of ``kind``."""
    if kind == _STR:
        return True
    if kind == _BOOL:
        return tag == "!!bool" or (tag == "!!str" and value in _YAML11_BOOLS)
    if tag == "!!float" and math.isfinite(value):
        return kind == _INT or value >= 0
    return tag == "!!int" and (kind == _INT or value >= 0)


def _terror(node, tag, go_type):
    """``decoder.terror``: values longer than 10 characters are cut to 7 plus ``...``."""
    shown = ""
    if tag not in ("!!map", "!!seq"):
        value = node.value
        shown = f" `{value[:7]}...`" if len(value) > 10 else f" `{value}`"
    return f"line {node.start_mark.line + 1}: cannot unmarshal {tag}{shown} into {go_type}"


def _decode(node, kind, errors):
    """Walk ``node`` as yaml.v3 would decode it into ``kind``, collecting its type errors."""
    if isinstance(node, yaml.ScalarNode):
        tag, value = _resolve(node)
        if tag == "!!null":
            return
        if isinstance(kind, tuple) or not _fits(kind, tag, value):
            go_type = _go_type(kind)
            errors.append(_terror(node, tag, go_type))
        return
    tag = "!!map" if isinstance(node, yaml.MappingNode) else "!!seq"
    if isinstance(kind, tuple) and kind[0] == "[]" and tag == "!!seq":
        for item in node.value:
            _decode(item, kind[1], errors)
        return
    if isinstance(kind, tuple) and kind[0] != "[]" and tag == "!!map":
        fields = kind[1]
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value in fields:
                _decode(value, fields[key.value], errors)
        return
    errors.append(_terror(node, tag, _go_type(kind)))


def _go_type(kind):
    if isinstance(kind, tuple):
        return f"[]{kind[1][0]}" if kind[0] == "[]" else kind[0]
    return kind


def _check_go_types(text):
    """``yaml.Unmarshal(confFile, &util.Config{})``: raise GoTypeError like yaml.v3 does when a
    value does not fit its Go field (a quoted ``"true"`` into a bool, ``"2"`` into an int)."""
    root = yaml.compose(text)
    if root is None:
        return
    errors = []
    _decode(root, GO_CONFIG, errors)
    if errors:
        raise GoTypeError(errors)


def _scalar(value):
    return "" if value is None else str(value)


def call_ctld(config, request):
    """One RPC to ControlMachine:CraneCtldListenPort; RpcError means UNAVAILABLE."""
    host = _scalar(config.get("ControlMachine"))
    port = _scalar(config.get("CraneCtldListenPort"))
    if not host or not port:
        raise RpcError("no address")
    return rpc_call(host, port, request, timeout=30)


def json_line(obj):
    """protojson output (single line; parse it, never compare strings)."""
    return json.dumps(obj, separators=(",", ":"))
