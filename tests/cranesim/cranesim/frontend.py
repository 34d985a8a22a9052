"""Behaviour shared by the simulated Go frontend tools (reference §2.6 "Go tools", §7.2)."""

import json
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
        config = yaml.safe_load(text) or {}
        _check_go_types(config)
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
    if isinstance(exc, ValueError):
        return f"yaml: unmarshal errors:\n  {exc}"
    return f"yaml: {exc}"


def _check_go_types(config):
    """yaml.v3 into the Go Config struct: Nodes[].cpu must be an integer."""
    if not isinstance(config, dict):
        raise ValueError("cannot unmarshal into util.Config")
    for node in config.get("Nodes") or []:
        cpu = node.get("cpu") if isinstance(node, dict) else None
        if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int)):
            tag = "!!str" if isinstance(cpu, str) else "!!float"
            raise ValueError(f"cannot unmarshal {tag} `{cpu}` into int")


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
