"""pam_crane: craned's PAM socket, the helper, and the compiled module inside a real libpam
stack (pam_start_confdir), against a simulated cluster on loopback."""

import ctypes
import json
import os
import pwd
import stat
import sys

import pytest

from tests.cranesim import build
from tests.cranesim.tests.harness import SIM_ROOT

NOBODY = pwd.getpwnam("nobody").pw_uid
REJECTED = (
    "You don't have any active job on this node. Your SSH request was rejected by Crane PAM Module."
)


def helper(cluster, *args):
    return cluster.run("cranesim-pam", *args, config=False)


def submit(cluster, uid, node="cn01", seconds=60):
    result = cluster.run("cranesim-job", "--node", node, "--seconds", str(seconds), "--uid", uid)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[1])


def test_craned_serves_pam_on_its_socket_root_only(cluster):
    path = cluster.tmp / "cn01" / "craned" / "craned_pam.sock"
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600


def test_helper_lets_in_only_a_user_with_a_job_on_the_node(cluster):
    config = str(cluster.node_config("cn01"))
    assert helper(cluster, "account", config, "4242", "10.0.0.1").returncode == 1
    job = submit(cluster, "4242")
    submit(cluster, "4343", node="cn02")
    allowed = helper(cluster, "account", config, "4242", "10.0.0.1")
    assert (allowed.returncode, allowed.stdout) == (0, f"{job}\n")
    assert helper(cluster, "account", config, "4343", "10.0.0.1").returncode == 1
    assert helper(cluster, "session", config, "", "", str(job)).returncode == 0
    assert helper(cluster, "session", config, "", "", "999").returncode == 1


def test_helper_without_config_or_craned(cluster):
    assert helper(cluster, "account", str(cluster.tmp / "none.yaml"), "1", "").returncode == 2
    config = str(cluster.node_config("cn01"))
    submit(cluster, "4242")
    cluster.stop(cluster.procs[1])  # cn01's craned
    assert helper(cluster, "account", config, "4242", "10.0.0.1").returncode == 1


# --- the module in a real PAM stack ----------------------------------------------------------


class Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_char_p), ("resp_retcode", ctypes.c_int)]


CONV = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(ctypes.POINTER(Message)),
    ctypes.POINTER(ctypes.POINTER(Response)),
    ctypes.c_void_p,
)


class Conv(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata_ptr", ctypes.c_void_p)]


PAM_SUCCESS, PAM_PERM_DENIED, PAM_SESSION_ERR, PAM_RHOST = 0, 6, 14, 4


class Stack:
    """One PAM transaction of ``service`` from ``confdir`` (libpam's pam_start_confdir)."""

    libpam = ctypes.CDLL("libpam.so.0")
    libc = ctypes.CDLL(None)

    def __init__(self, confdir, user):
        self.messages = []
        self.libc.calloc.restype = ctypes.c_void_p
        self.conv_fn = CONV(self._conv)
        self.conv = Conv(self.conv_fn, None)
        self.handle = ctypes.c_void_p()
        rc = self.libpam.pam_start_confdir(
            b"sshd", user.encode(), ctypes.byref(self.conv), str(confdir).encode(),
            ctypes.byref(self.handle),
        )  # fmt: skip
        assert rc == PAM_SUCCESS
        self.libpam.pam_set_item(self.handle, PAM_RHOST, b"10.0.0.1")

    def _conv(self, count, messages, responses, _data):
        for i in range(count):
            self.messages.append(messages[i].contents.msg.decode())
        # libpam frees the answers: they must come from malloc
        responses[0] = ctypes.cast(
            self.libc.calloc(count, ctypes.sizeof(Response)), ctypes.POINTER(Response)
        )
        return PAM_SUCCESS

    def account(self):
        return self.libpam.pam_acct_mgmt(self.handle, 0)

    def session(self):
        return self.libpam.pam_open_session(self.handle, 0)

    def close(self):
        self.libpam.pam_end(self.handle, PAM_SUCCESS)


@pytest.fixture
def stack(cluster, tmp_path, monkeypatch):
    """A PAM service ``sshd`` with the compiled pam_crane.so as CraneSched's guide puts it."""
    wrapper = tmp_path / "helper"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m cranesim cranesim-pam "$@"\n')
    wrapper.chmod(0o755)
    module = tmp_path / "pam_crane.so"
    module.write_bytes(build.pam_module(helper=str(wrapper)))
    monkeypatch.setenv("PYTHONPATH", str(SIM_ROOT))
    confdir = tmp_path / "pam.d"
    confdir.mkdir()
    control = "[success=ok module_unknown=ignore default=bad]"
    arg = f"config_path={cluster.node_config('cn01')}"
    (confdir / "sshd").write_text(
        f"account {control} {module} {arg}\naccount required pam_permit.so\n"
        f"session {control} {module} {arg}\nsession required pam_permit.so\n"
    )
    opened = []

    def start(user):
        opened.append(Stack(confdir, user))
        return opened[-1]

    yield start
    for one in opened:
        one.close()


def test_module_refuses_a_user_without_a_job_and_says_why(stack):
    pam = stack("nobody")
    assert pam.account() == PAM_PERM_DENIED
    assert pam.messages == [REJECTED]


def test_module_lets_in_a_user_with_a_job_and_opens_the_session(cluster, stack):
    submit(cluster, str(NOBODY))
    pam = stack("nobody")
    assert pam.account() == PAM_SUCCESS
    assert pam.session() == PAM_SUCCESS
    assert pam.messages == []


def test_module_lets_root_in_without_asking(cluster, stack):
    cluster.stop(cluster.procs[1])  # cn01's craned: nobody could answer
    pam = stack("root")
    assert pam.account() == PAM_SUCCESS
    assert pam.session() == PAM_SUCCESS
    assert stack("nobody").account() == PAM_PERM_DENIED


def test_module_lets_only_root_in_when_the_config_is_unreadable(cluster, stack, tmp_path):
    submit(cluster, str(NOBODY))
    os.rename(cluster.tmp / "config-cn01.yaml", tmp_path / "moved.yaml")
    assert stack("nobody").account() == PAM_SESSION_ERR
    assert stack("root").account() == PAM_SUCCESS


def test_jobs_remember_their_uid(cluster):
    submit(cluster, "4242")
    jobs = json.loads(cluster.run("cranesim-job", "--list").stdout)
    assert [job["uid"] for job in jobs] == [4242]
