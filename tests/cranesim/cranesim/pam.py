"""The decision behind cranesim's ``pam_crane.so`` (packaging/pam_crane.c runs this helper).

    pam_crane_helper account <config.yaml> <uid> <remote address> ""
    pam_crane_helper session <config.yaml> "" "" <job id>

As CraneSched's ``PamUtil.cpp``: read ``CraneBaseDir`` and ``CranedForPamUnixSockPath`` from
config.yaml (exit 2 when that fails: only root may log in), then ask craned over
``CraneBaseDir + CranedForPamUnixSockPath`` whether the user has a job on this node (exit 0,
printing the job id) or not (exit 1; also when craned does not answer). ``session`` asks craned
to take the SSH process into that job (exit 0) or fails (exit 1).
"""

import json
import socket
import sys

import yaml

EXIT_OK, EXIT_REJECTED, EXIT_NO_CONFIG = 0, 1, 2
DEFAULT_SOCKET = "craned/craned_pam.sock"


def socket_path(config_path):
    """``CraneBaseDir + CranedForPamUnixSockPath`` (a plain concatenation, as in
    CraneSched), or None when the config cannot be read."""
    try:
        with open(config_path, encoding="utf-8") as stream:
            config = yaml.safe_load(stream)
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    base = str(config.get("CraneBaseDir") or "/var/crane/")
    return base + str(config.get("CranedForPamUnixSockPath") or DEFAULT_SOCKET)


def ask_craned(path, request, timeout=5):
    """One JSON line to craned's PAM socket and its reply; None when craned does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            conn.sendall(json.dumps(request).encode() + b"\n")
            reply = conn.makefile("rb").readline()
        return json.loads(reply)
    except (OSError, ValueError):
        return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    phase, config_path, uid, address, job_id = (list(argv) + [""] * 5)[:5]
    path = socket_path(config_path)
    if path is None:
        return EXIT_NO_CONFIG
    if phase == "account":
        request = {"op": "query_step_from_port", "uid": int(uid or -1), "address": address}
    else:
        request = {"op": "migrate_ssh_proc", "job_id": int(job_id or 0)}
    reply = ask_craned(path, request)
    if not reply or not reply.get("ok"):
        return EXIT_REJECTED
    if reply.get("job_id") is not None:
        print(reply["job_id"])
    return EXIT_OK
