"""What cranectld and craned do alike: the command line, start-up, the stop signals.

Both daemons follow the same ``main``: parse the options (cxxopts: a bad option prints the
error and the help and exits 1, ``-h``/``-v`` print and exit 0), parse the config (every
failure exits before anything is created), take the singleton lock, daemonize unless the
config asks for the foreground, serve until SIGTERM or SIGINT, release the lock."""

import argparse
import os
import signal
import sys
import threading

from cranesim import VERSION
from cranesim.common import Logger, daemonize, flock_singleton


class _Parser(argparse.ArgumentParser):
    """cxxopts' reaction to a bad option: the message and the help on the logger, exit 1."""

    def __init__(self, prog, help_text):
        super().__init__(prog=prog, add_help=False)
        self.help_text = help_text

    def error(self, message):
        Logger().error(f"{message}\n{self.help_text}")
        sys.exit(1)


def parse_args(prog, help_text, add_options, argv):
    """Options added by ``add_options(parser)``, then ``-v``/``-h``, which print and exit 0."""
    parser = _Parser(prog, help_text)
    add_options(parser)
    parser.add_argument("-v", "--version", action="store_true")
    parser.add_argument("-h", "--help", action="store_true")
    args = parser.parse_args(argv)
    if args.help:
        print(help_text)
        sys.exit(0)
    if args.version:
        print(f"Version: {VERSION}")
        sys.exit(0)
    return args


def stop_event():
    """An event set by SIGTERM or SIGINT: the daemons' serving loops end on it."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run(name, config, start_server, argv):
    """The daemons' shared ``main``; ``name`` is how the singleton lock names the program."""
    log = Logger()
    args = config.parse_args(sys.argv[1:] if argv is None else argv)
    cfg = config.load(args, log)
    lock_fd = flock_singleton(cfg.lock_file, log, name)
    if not cfg.foreground:
        daemonize()
        log.detach_console()
    start_server(cfg, log)
    os.close(lock_fd)
    return 0
