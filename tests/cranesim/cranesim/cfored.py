"""The simulated ``cfored`` (login nodes): reads config.yaml, writes a pid file, listens."""

import argparse
import os
import signal
import socket
import sys
import threading

from cranesim import frontend
from cranesim.common import Logger

CFORED_PORT = 10012  # hard-coded in CraneSched, not configurable
LISTEN_ENV = "CRANESIM_CFORED_LISTEN"  # test hook: "<ip>:<port>" instead of 0.0.0.0:10012


def _paths(config):
    base = str(config.get("CraneBaseDir") or "/var/crane/")
    cfored = config.get("Cfored") if isinstance(config.get("Cfored"), dict) else {}
    pid_rel = str(cfored.get("PidFilePath") or "cfored/cfored.pid")
    sock_rel = str(config.get("CranedCforedSockPath") or "craned/cfored.sock")
    log_dir = str(config.get("CforedLogDir") or "cfored")
    return (
        os.path.join(base, pid_rel),
        os.path.join(base, sock_rel),
        os.path.join(base, log_dir, "cfored.log"),
    )


def reload(config):
    """``cfored --reload``: SIGUSR2 to the pid in the pid file."""
    pid_file, _, _ = _paths(config)
    try:
        with open(pid_file, encoding="utf-8") as stream:
            os.kill(int(stream.read().strip()), signal.SIGUSR2)
    except (OSError, ValueError) as exc:
        frontend.log_error(f"Failed to reload cfored: {exc}")
        return 1
    return 0


def _listen():
    spec = os.environ.get(LISTEN_ENV, f"0.0.0.0:{CFORED_PORT}")
    host, _, port = spec.rpartition(":")
    server = socket.create_server((host, int(port)), reuse_port=False)
    return server


def _accept_loop(server):
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        conn.close()


def serve(config, level):
    pid_file, sock_path, log_file = _paths(config)
    log = Logger()
    log.init(level if level in ("trace", "debug", "info", "warn", "error") else "info", log_file)
    os.makedirs(os.path.dirname(pid_file), exist_ok=True)
    with open(pid_file, "w", encoding="utf-8") as stream:
        stream.write(f"{os.getpid()}\n")
    os.makedirs(os.path.dirname(sock_path), exist_ok=True)
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(sock_path)
    os.chmod(sock_path, 0o666)
    unix.listen()
    server = _listen()
    log.info(
        f"Cfored is listening on {server.getsockname()[0]}:{server.getsockname()[1]}", "cfored.go:0"
    )
    for sock in (server, unix):
        threading.Thread(target=_accept_loop, args=(sock,), daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR2, lambda *_: log.info("Reloading log level.", src="cfored.go:0"))
    stop.wait()
    os.unlink(sock_path)
    return 0


def main(argv=None):
    """Entry point of /usr/bin/cfored."""
    parser = argparse.ArgumentParser(prog="cfored", add_help=True)
    parser.add_argument("-C", "--config", default=frontend.DEFAULT_CONFIG)
    parser.add_argument("-D", "--debug-level", default="info")
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("-v", "--version", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(frontend.version_text())
        return 0
    config = frontend.parse_config(args.config)
    if args.reload:
        return reload(config)
    return serve(config, args.debug_level)
