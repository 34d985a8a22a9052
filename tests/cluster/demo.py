"""The demo cluster: ``python -m tests.cluster.demo up|down|status|shell NODE [CMD...]``.

``up`` boots the demo shape (cranectl, cn01-cn03 with 4 fake GPUs on cn03, login01), applies
the formula from the master and leaves the cluster running; ``down`` removes it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time

from . import harness, procs
from .spec import demo_spec

REQUIRED_COMMANDS = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "nsenter": "util-linux",
    "ip": "iproute2",
}
APPLY_TIMEOUT = 600


def missing_prerequisites() -> list[str]:
    """What this host lacks to run the demo, one human-readable line each."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root privileges (run as root)")
    for command, package in REQUIRED_COMMANDS.items():
        if shutil.which(command) is None:
            missing.append(f"the {command} command (Debian package {package})")
    if sys.prefix == sys.base_prefix:
        missing.append("the project's virtualenv (run through `make demo`)")
    if shutil.which("salt-master", path=os.path.join(sys.prefix, "bin")) is None:
        missing.append("Salt in the virtualenv (`make venv`)")
    return missing


def cmd_up(_args) -> int:
    """Boot the demo, apply the formula, print how to use it; the cluster stays up."""
    missing = missing_prerequisites()
    if missing:
        print("cannot start the demo, missing:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2
    spec = demo_spec()
    cluster = harness.Cluster(spec)
    try:
        cluster.start()
        _print_timings(cluster)
        applied = apply_formula(cluster)
        show_cinfo(cluster)
    except KeyboardInterrupt:
        print("\ninterrupted: tearing the demo down", file=sys.stderr)
        cluster.stop()
        return 130
    cluster.detach()
    print_usage(cluster)
    return 0 if applied else 1


def apply_formula(cluster: harness.Cluster) -> bool:
    """``salt '*' state.apply crane`` with Salt's own output; True when every state passed."""
    print("\n==> salt '*' state.apply crane", flush=True)
    proc = cluster.salt_cli(
        f"--timeout={APPLY_TIMEOUT}", "--state-output=mixed", "*", "state.apply", "crane",
        capture=False,
    )  # fmt: skip
    ok = proc.returncode == 0
    print(f"==> state.apply {'succeeded' if ok else f'FAILED (salt exit code {proc.returncode})'}")
    return ok


def show_cinfo(cluster: harness.Cluster) -> None:
    """Print ``cinfo`` as seen on the control node(s), whatever it says."""
    for control in cluster.spec.hostnames("control"):
        print(f"\n==> cinfo on {control}", flush=True)
        result = cluster.sh(control, "cinfo", timeout=60)
        sys.stdout.write(result.stdout + result.stderr)
        if result.returncode != 0:
            print(f"(cinfo exited with {result.returncode})")


def print_usage(cluster: harness.Cluster) -> None:
    spec = cluster.spec
    salt = f"{sys.prefix}/bin/salt -c {cluster.master_dir}"
    first = spec.hostnames()[1 if len(spec.nodes) > 1 else 0]
    print(f"\nThe demo cluster is running on bridge {spec.bridge} ({spec.subnet}):")
    for node in spec.nodes:
        gpus = f", {node.gpus} GPUs" if node.gpus else ""
        print(f"  {node.hostname:10} {spec.address(node.hostname):15} {node.role}{gpus}")
    print("\nGet a shell on a node:")
    demo = f"{sys.prefix}/bin/python -m tests.cluster.demo"
    print(f"  cd {harness.REPO_ROOT} && {demo} shell {first}")
    print(f"  {shlex.join([*cluster.nsenter_command(first), '/bin/bash', '-l'])}")
    print(f"Drive it from the master:\n  {salt} '*' test.ping")
    print("Status: python -m tests.cluster.demo status    Tear down: make demo-down")


def cmd_down(_args) -> int:
    """Tear the demo down, including leftovers of a crashed run."""
    run_dir = harness.run_dir_for(demo_spec().name)
    began = time.monotonic()
    left = harness.teardown(run_dir)
    if left is None:
        print("the demo cluster is not running")
        return 0
    if left:
        print("could not remove:\n  " + "\n  ".join(left), file=sys.stderr)
        return 1
    print(f"the demo cluster is gone ({time.monotonic() - began:.1f}s)")
    return 0


def cmd_status(_args) -> int:
    """Which recorded processes run, and which minions answer."""
    spec = demo_spec()
    try:
        cluster = harness.Cluster.attach(spec)
    except harness.ClusterError as exc:
        print(exc)
        return 3
    state = cluster.state
    for name in spec.hostnames():
        node = state["nodes"].get(name, {})
        up = "nspawn" in node and procs.is_running(node["nspawn"])
        print(f"node    {name:10} {spec.address(name):15} {'running' if up else 'stopped'}")
    for service in state["services"]:
        running = "running" if procs.is_running(service) else "stopped"
        print(f"service {service['name']:10} pid {service['pid']:<10} {running}")
    answers = cluster.salt("*", "test.ping", timeout=5)
    print("minions answering:", ", ".join(sorted(m for m, ok in answers.items() if ok is True)))
    return 0


def cmd_shell(args) -> int:
    """Replace this process by a shell (or the given command) inside a node."""
    cluster = harness.Cluster.attach(demo_spec())
    command = args.command or ["/bin/bash", "-l"]
    argv = [*cluster.nsenter_command(args.node), *command]
    os.execvp(argv[0], argv)
    return 0  # not reached


def _print_timings(cluster: harness.Cluster) -> None:
    built = cluster.timings.get("rootfs_build")
    rootfs_note = f"built in {built:.0f}s" if built else "reused from cache"
    print(f"node rootfs {cluster.rootfs} ({rootfs_note})")
    print(f"nodes booted, all minions answer after {cluster.timings['boot_to_minions']:.1f}s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.demo", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up", help="boot the demo cluster and apply the formula")
    sub.add_parser("down", help="tear the demo cluster down")
    sub.add_parser("status", help="show what runs")
    shell = sub.add_parser("shell", help="open a shell (or run a command) in a node")
    shell.add_argument("node")
    shell.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    actions = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "shell": cmd_shell}
    return actions[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
