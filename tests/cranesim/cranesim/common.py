"""Pieces shared by every simulated program: logging, YAML loading, hosts, memory, RPC.

Test hooks (honoured only by the simulator, never by CraneSched):

* ``CRANESIM_HOSTNAME`` replaces ``gethostname()``;
* ``CRANESIM_HOSTS`` names a hosts(5)-style file that replaces the system resolver.
"""

import contextlib
import datetime
import errno
import fcntl
import functools
import ipaddress
import json
import os
import re
import socket
import socketserver
import sys
import threading
import zlib

import yaml

LEVELS = ["trace", "debug", "info", "warn", "error", "critical", "off"]
_LETTER = {"trace": "T", "debug": "D", "info": "I", "warn": "W", "error": "E", "critical": "C"}
_SPD_NAME = {"warn": "warning"}


# --------------------------------------------------------------------------- logging
class Logger:
    """spdlog look-alike: before ``init`` it is spdlog's default stdout logger, afterwards
    it writes CraneSched's pattern ``[%L %C-%m-%d %H:%M:%S.%e %s:%#][default] %v`` to the
    log file and to stderr."""

    def __init__(self):
        self.level = "info"
        self.path = None
        self.file = None
        self.console = True

    def init(self, level, path):
        """Open the log file like spdlog's rotating sink; abort like an uncaught spdlog_ex."""
        self.level = level
        # spdlog ignores create_dir failures and fails on open instead
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            msg = f"Failed opening file {path} for writing: {os.strerror(exc.errno)}"
            abort_uncaught("spdlog::spdlog_ex", msg)
        self.path = path

    def detach_console(self):
        """After daemonizing the standard streams are closed."""
        self.console = False

    def log(self, level, msg, src="main.cpp:0"):
        """Write one record at ``level`` (trace..critical)."""
        if self.file is None:
            self._log_default(level, msg)
            return
        if LEVELS.index(level) < LEVELS.index(self.level):
            return
        now = datetime.datetime.now()
        stamp = now.strftime("%y-%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}"
        line = f"[{_LETTER[level]} {stamp} {src}][default] {msg}\n"
        self.file.write(line)
        self.file.flush()
        if self.console:
            _write(sys.stderr, line)

    def _log_default(self, level, msg):
        now = datetime.datetime.now()
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}"
        _write(sys.stdout, f"[{stamp}] [{_SPD_NAME.get(level, level)}] {msg}\n")

    # log.info(msg, src) and the like: one record at that level
    trace = functools.partialmethod(log, "trace")
    debug = functools.partialmethod(log, "debug")
    info = functools.partialmethod(log, "info")
    warn = functools.partialmethod(log, "warn")
    error = functools.partialmethod(log, "error")
    critical = functools.partialmethod(log, "critical")


def _write(stream, text):
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


def die(log, msg, src="main.cpp:0", level="error"):
    """``CRANE_ERROR(msg); std::exit(1);``"""
    log.log(level, msg, src)
    sys.exit(1)


def die_stderr(msg):
    """``fmt::print(stderr, msg); std::exit(1);``"""
    _write(sys.stderr, msg)
    sys.exit(1)


def die_silent():
    """``std::exit(1)`` with nothing logged."""
    sys.exit(1)


def abort_uncaught(exc_type, what):
    """An uncaught C++ exception: std::terminate prints this and raises SIGABRT."""
    _write(
        sys.stderr,
        f"terminate called after throwing an instance of '{exc_type}'\n  what():  {what}\n",
    )
    os.abort()


# --------------------------------------------------------------------------- YAML
def load_yaml(path, log, what="config"):
    """LoadFile with CraneSched's three outcomes: missing/unreadable exit, syntax aborts."""
    label = "Config" if what == "config" else "Database config"
    if not os.path.exists(path):
        die(log, f"{label} file '{path}' not existed", level="critical")
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError:
        open_label = "config" if what == "config" else "database config"
        die(log, f"Can't open {open_label} file {path}: bad file: {path}", level="critical")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        abort_uncaught("YAML::ParserException", f"yaml-cpp: error {exc}")
    return data if isinstance(data, dict) else {}


def as_str(value, key="value"):
    """``node.as<std::string>()``: scalars convert, maps and lists abort."""
    if isinstance(value, (dict, list)):
        abort_uncaught("YAML::TypedBadConversion<std::string>", "yaml-cpp: error: bad conversion")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def as_uint(value):
    """``node.as<uint32_t>()``: a non-integer aborts."""
    if isinstance(value, bool) or not re.fullmatch(r"\+?\d+", str(value).strip()):
        abort_uncaught("YAML::TypedBadConversion<unsigned int>", "yaml-cpp: error: bad conversion")
    return int(str(value))


def as_bool(value):
    """``node.as<bool>()``."""
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "yes", "on", "y"):
        return True
    if text in ("false", "no", "off", "n"):
        return False
    abort_uncaught("YAML::TypedBadConversion<bool>", "yaml-cpp: error: bad conversion")
    return False


def stoul(value):
    """``std::stoul(str)``: leading digits are used, none at all aborts."""
    match = re.match(r"\s*([+-]?\d+)", as_str(value))
    if not match:
        abort_uncaught("std::invalid_argument", "stoul")
    number = int(match.group(1))
    return number % (1 << 64)


def config_crc(config):
    """CRC32 of the dumped config (key order and values count, comments do not)."""
    dumped = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    return zlib.crc32(dumped.encode())


def value_or(config, key, default):
    """``YamlValueOr``: the default only when the key is absent."""
    value = config.get(key) if isinstance(config, dict) else None
    return default if value is None else value


# --------------------------------------------------------------------------- memory
def parse_memory(text):
    """``util::ParseMemory``: regex_search ``(\\d+)([KMBG])``; bytes or None."""
    match = re.search(r"(\d+)([KMBG])", as_str(text))
    if not match:
        return None
    factor = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2)]
    return int(match.group(1)) * factor


def bad_log_size(section):
    """Whether a section's ``MaxLogFileSize`` is given and no memory size (each daemon then
    exits with "Illegal memory format.")."""
    size = section.get("MaxLogFileSize") if isinstance(section, dict) else None
    return size is not None and parse_memory(size) is None


def bad_debug_level(level):
    """Whether a debug level is refused: not a spdlog level, or ``critical`` (no daemon takes
    it)."""
    return level not in LEVELS or level == "critical"


# --------------------------------------------------------------------------- hosts
def gethostname():
    """``gethostname()``, overridable for tests with CRANESIM_HOSTNAME."""
    return os.environ.get("CRANESIM_HOSTNAME") or socket.gethostname()


def is_ip_literal(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _hosts_override(name):
    """Look ``name`` up in the CRANESIM_HOSTS file, which replaces the system resolver."""
    with open(os.environ["CRANESIM_HOSTS"], encoding="utf-8") as stream:
        for line in stream:
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2 and name in fields[1:]:
                return fields[0]
    return None


def resolve(name):
    """Address of ``name`` (IPv4 preferred) or None; IP literals are returned as given."""
    if is_ip_literal(name):
        return name
    if os.environ.get("CRANESIM_HOSTS"):
        return _hosts_override(name)
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return infos[0][4][0] if infos else None


# --------------------------------------------------------------------------- RPC
class RpcError(Exception):
    """The peer could not be reached (gRPC UNAVAILABLE)."""


def rpc_call(host, port, request, timeout=5.0):
    """Send one JSON request line, return the JSON reply line."""
    address = resolve(host) if host else None
    if address is None:
        raise RpcError(f"cannot resolve {host}")
    try:
        with socket.create_connection((address, int(port)), timeout=timeout) as conn:
            conn.sendall(json.dumps(request).encode() + b"\n")
            data = _read_line(conn)
    except OSError as exc:
        raise RpcError(str(exc)) from exc
    if not data:
        raise RpcError("connection closed")
    return json.loads(data)


def _read_line(conn):
    chunks = []
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def dispatch(handlers, req):
    """Answer ``req`` with the handler its ``op`` names, or with an "unknown op" error."""
    handler = handlers.get(req.get("op"))
    return handler(req) if handler else {"ok": False, "error": "unknown op"}


def _line_handler(handler):
    """A socketserver handler class answering one JSON line with ``handler``."""

    class _Handler(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            if not line:
                return
            try:
                reply = handler(json.loads(line))
            except Exception as exc:  # keep the daemon alive
                reply = {"ok": False, "error": f"internal error: {exc}"}
            on_close = reply.pop("on_close", None)
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()
            if on_close is None:
                return
            with contextlib.suppress(OSError):  # a long-lived channel: wait for the peer's EOF
                while self.rfile.read(1):
                    pass
            on_close()

    return _Handler


def _serve(server, name):
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return server


def serve_forever(address, port, handler, name):
    """Bind ``address:port`` and answer JSON lines with ``handler`` on threads.

    Returns the server object; raises OSError when the bind fails."""

    class _Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

    return _serve(_Server((address, int(port)), _line_handler(handler)), name)


def serve_unix(path, handler, name, mode=0o600):
    """Answer JSON lines on the unix socket ``path`` (replacing a stale one), chmod ``mode``
    as gRPC's unix listeners in CraneSched are. Raises OSError when the bind fails."""

    class _Server(socketserver.ThreadingUnixStreamServer):
        daemon_threads = True

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = _Server(path, _line_handler(handler))
    os.chmod(path, mode)
    return _serve(server, name)


# --------------------------------------------------------------------------- test knobs
KNOBS_FILE = "/etc/cranesim/knobs"  # KEY=VALUE lines; the environment wins over the file


def knob(name, default=None):
    """A simulator knob from the environment or, for daemons started by systemd, from
    ``CRANESIM_KNOBS_FILE`` (default /etc/cranesim/knobs), read at each start."""
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get("CRANESIM_KNOBS_FILE", KNOBS_FILE)
    try:
        with open(path, encoding="utf-8") as stream:
            for line in stream:
                key, sep, value = line.strip().partition("=")
                if sep and key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return default


def knob_seconds(name, default=None):
    """A knob in seconds (float), or ``default`` when unset or empty."""
    value = knob(name)
    return default if value in (None, "") else float(value)


# --------------------------------------------------------------------------- misc
def valid_port(value):
    """CraneSched's port check: digits within 0-65535."""
    text = as_str(value)
    return bool(re.fullmatch(r"\d{1,5}", text)) and int(text) <= 65535


def daemonize():
    """``StartDaemon()``: fork, parent exit(0), setsid, chdir /, close std streams."""
    if os.fork() > 0:
        os._exit(0)
    os.umask(0)
    os.setsid()
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)


def flock_singleton(path, log, name):
    """``CheckSingleton``: create the folder (silent exit), take an exclusive flock."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    except OSError:
        die_silent()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno == errno.EWOULDBLOCK:
            die(log, f"There is another {name} instance running. Exiting...", level="critical")
        die(log, f"Failed to lock {path}: {os.strerror(exc.errno)}. Exiting...", level="critical")
    return fd


def create_folders_for_file(path):
    """``util::os::CreateFoldersForFile``."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:
        return False
    return True


def join_base(base, rel):
    """std::filesystem ``base / rel``: an absolute ``rel`` wins."""
    return os.path.join(base, rel)
