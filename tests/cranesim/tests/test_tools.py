"""cfored, ``ccontrol -J`` and the apt view of the repository."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess

import pytest

from tests.cranesim import build
from tests.cranesim.tests.harness import free_port, wait_for


def test_cfored_pid_file_socket_port_and_reload(sim):
    port = free_port()
    env = sim.env(CRANESIM_CFORED_LISTEN=f"127.0.0.1:{port}")
    proc = sim.spawn("cfored", ["-C", str(sim.ctld_config_path())], env, "cfored.out")
    base = sim.tmp / "ctld"
    pid_file = base / "cfored" / "cfored.pid"
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() == str(proc.pid))
    sock = base / "craned" / "cfored.sock"
    assert wait_for(sock.exists)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o666
    assert wait_for(lambda: _connects(port))
    reload = sim.run("cfored", "--reload")
    assert reload.returncode == 0
    log = base / "cfored" / "cfored.log"
    assert wait_for(lambda: log.exists() and "Reloading log level." in log.read_text())
    sim.stop(proc, signal.SIGINT)
    assert proc.returncode == 0 and not sock.exists()


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_ccontrol_json_show_node(cluster):
    result = cluster.run("ccontrol", "-J", "show", "node", "cn01")
    assert result.returncode == 0
    [node] = json.loads(result.stdout)["craned_info_list"]
    assert node["hostname"] == "cn01"
    assert node["resource_state"] == "CRANE_IDLE"
    assert node["res_total"]["memory_bytes"] == str(2 << 30)
    assert node["craned_version"] == "1.1.2"


def test_ccontrol_json_update_reports_failures(cluster):
    result = cluster.run("ccontrol", "--json", "update", "nodename=cn03", "state=drain", "reason=r")
    assert result.returncode == 2
    reply = json.loads(result.stdout)
    assert reply["not_modified_nodes"] == ["cn03"]
    assert reply["not_modified_reasons"] == ["Can't change the state of a DOWN node!"]


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_apt_sees_every_version(tmp_path):
    repo = build.build_repo(tmp_path / "repo", ["1.1.2", "1.1.3"])
    state = tmp_path / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "parts"):
        (state / sub).mkdir(parents=True)
    (state / "sources.list").write_text(f"deb [trusted=yes] file://{repo} ./\n")
    options = [
        f"-oDir::Etc::sourcelist={state}/sources.list",
        f"-oDir::Etc::sourceparts={state}/parts",
        f"-oDir::State::Lists={state}/lists",
        f"-oDir::Cache={state}/cache",
        "-oDir::Cache::pkgcache=",
        "-oDir::Cache::srcpkgcache=",
        "-oAPT::Get::List-Cleanup=0",
    ]
    update = subprocess.run(
        ["apt-get", *options, "update"], capture_output=True, text=True, check=False
    )
    assert update.returncode == 0, update.stdout + update.stderr
    policy = subprocess.run(
        ["apt-cache", *options, "madison", "cranesched-craned", "cranesched-cranectld",
         "cranesched-frontend"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    versions = {
        tuple(part.strip() for part in line.split("|")[:2]) for line in policy.stdout.splitlines()
    }
    for package in ("cranesched-craned", "cranesched-cranectld", "cranesched-frontend"):
        assert {(package, "1.1.2"), (package, "1.1.3")} <= versions
