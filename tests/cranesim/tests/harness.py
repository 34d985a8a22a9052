"""Run simulated CraneSched programs on loopback addresses for the tests.

Node names cn01..cn04 resolve to 127.0.0.11..14 through the ``CRANESIM_HOSTS`` test hook, and
each craned gets its own ``CRANESIM_HOSTNAME``.  Every process is started in its own process
group and killed by ``Sim.stop_all``.
"""

import copy
import importlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import yaml

HERE = pathlib.Path(__file__).resolve().parent
SIM_ROOT = HERE.parent
REPO = SIM_ROOT.parent.parent
NODE_IPS = {f"cn0{i}": f"127.0.0.1{i}" for i in range(1, 5)}


def free_port(addresses=("127.0.0.1",)):
    """A TCP port that is currently free on every given loopback address."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if all(_bindable(addr, port) for addr in addresses):
            return port
    raise RuntimeError("no free port")


def _bindable(address, port):
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def wait_for(predicate, timeout=20.0, interval=0.1):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Sim:
    """A temporary simulated cluster: configs, processes and CLI calls."""

    def __init__(self, tmp):
        self.tmp = pathlib.Path(tmp)
        self.procs = []
        self.hosts = self.tmp / "hosts"
        self.hosts.write_text("".join(f"{ip} {name}\n" for name, ip in NODE_IPS.items()))
        self.cgroup = self.tmp / "cgroup"
        self.cgroup.mkdir()
        (self.cgroup / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        self.supervisor = self.tmp / "csupervisor"
        self.supervisor.write_text("#!/bin/sh\n")
        self.ctld_port = free_port()
        self.internal_port = free_port()
        self.craned_port = free_port(tuple(NODE_IPS.values()))
        self.config = self.default_config()
        self.database = {"DbReplSetName": "crane_rs", "CraneCtldDbPath": "cranectld/embedded.db"}

    # ------------------------------------------------------------------ files
    def default_config(self):
        return {
            "ClusterName": "simcluster",
            "ControlMachine": "127.0.0.1",
            "CraneBaseDir": f"{self.tmp}/ctld/",
            "CraneCtldListenAddr": "127.0.0.1",
            "CraneCtldListenPort": self.ctld_port,
            "CraneCtldForInternalListenPort": self.internal_port,
            "CranedListenPort": self.craned_port,
            "CraneCtldForeground": True,
            "CranedForeground": True,
            "CraneCtld": {"CranedTimeout": 3},
            "Craned": {"PingInterval": 1, "CraneCtldTimeout": 3},
            "Supervisor": {"Path": str(self.supervisor)},
            "Nodes": [{"name": "cn[01-03]", "cpu": 2, "memory": "2G"}],
            "Partitions": [{"name": "CPU", "nodes": "ALL"}],
            "DefaultPartition": "CPU",
        }

    def write(self, name, data):
        path = self.tmp / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def ctld_config_path(self):
        return self.write("config.yaml", self.config)

    def node_config(self, node, **changes):
        """The shared config with this node's listen address and base dir."""
        data = copy.deepcopy(self.config)
        data["CranedListen"] = NODE_IPS.get(node, "127.0.0.1")
        data["CraneBaseDir"] = f"{self.tmp}/{node}/"
        data.update(changes)
        return self.write(f"config-{node}.yaml", data)

    # ------------------------------------------------------------------ processes
    def env(self, hostname=None, **extra):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(SIM_ROOT)
        env["CRANESIM_HOSTS"] = str(self.hosts)
        env["CRANESIM_CGROUP_ROOT"] = str(self.cgroup)
        env["CRANESIM_NOFILE"] = "hard"
        env.pop("CRANESIM_HOSTNAME", None)
        if hostname:
            env["CRANESIM_HOSTNAME"] = hostname
        env.update(extra)
        return env

    def spawn(self, program, args, env, log_name):
        out = open(self.tmp / log_name, "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "cranesim", program, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.tmp,  # relative paths a daemon resolves (none, normally) stay in here
        )
        out.close()
        self.procs.append(proc)
        return proc

    def start_ctld(self):
        db = self.write("database.yaml", self.database)
        return self.spawn(
            "cranectld", ["-C", str(self.ctld_config_path()), "-D", str(db)], self.env(), "ctld.out"
        )

    def start_craned(self, node, config=None, **env):
        path = config or self.node_config(node)
        return self.spawn("craned", ["-f", str(path)], self.env(node, **env), f"{node}.out")

    def stop(self, proc, sig=signal.SIGTERM):
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(10)

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def run(self, program, *args, env=None, config=True, timeout=30):
        """Run a program to completion; returns CompletedProcess with text output."""
        argv = [sys.executable, "-m", "cranesim", program]
        if config:
            argv += ["-C", str(self.ctld_config_path())]
        env = env or self.env()
        cmd = [*argv, *args]
        return subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    # ------------------------------------------------------------------ queries
    def cinfo_json(self):
        result = self.run("cinfo", "--json")
        return json.loads(result.stdout) if result.returncode == 0 else None

    def node_states(self):
        """{node: (resource, control)} from ``cinfo --json``."""
        expand = importlib.import_module("tests.cranesim.cranesim.hostlist").expand
        reply = self.cinfo_json() or {"partitions": []}
        states = {}
        for part in reply["partitions"]:
            for group in part["craned_lists"]:
                for name in expand(group["craned_list_regex"]):
                    states[name] = (group["resource_state"], group["control_state"])
        return states

    def wait_state(self, node, resource_state, control="CRANE_NONE", timeout=20):
        return wait_for(lambda: self.node_states().get(node) == (resource_state, control), timeout)

    def log(self, name):
        path = self.tmp / name
        return path.read_text(errors="replace") if path.exists() else ""
