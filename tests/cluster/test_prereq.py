"""Node prerequisites on real nodes: the cgroup gate and controller unit, the name gate, the
MongoDB preflight, the TLS gate and pam_crane in sshd (SSH from the host with key auth).

The nodes are containers on a hybrid cgroup host and see a hybrid tree (which the gate
reports, and which CraneSched refuses), so the cgroup v2 part runs against a stand-in v2 tree
on cn01: its ``cgroup.controllers`` offers every controller, its ``cgroup.subtree_control``
starts empty, as a booted kernel's does. A node restart cannot show persistence here (the
nodes boot from a volatile overlay, so a restart forgets the whole deployment); the boot is
replayed instead: controllers cleared, the unit and craned stopped, craned started alone.
"""

from __future__ import annotations

import subprocess

import pytest

from . import formula

pytestmark = pytest.mark.cluster

NODE = "cn01"
STANDIN = "/run/crane-cgroup-standin"
UNIT = "crane-cgroup-controllers"
WANTED = ["cpu", "memory", "io", "cpuset", "pids"]


@pytest.fixture(scope="module")
def deployed(cluster):
    cluster.write_pillar(*formula.example_pillar(cluster))
    assert formula.failures(formula.apply(cluster)) == {}
    yield cluster
    cluster.write_pillar(*formula.example_pillar(cluster))


def _snapshot(cluster, node=NODE):
    digest = cluster.salt(node, "crane.config_hash")[node]
    return digest, formula.main_pid(cluster, node, "craned")


def _pillar(cluster, debug_level, **cgroup):
    """The example pillar with a changed config (a reason to restart craned) and crane:cgroup."""

    def edit(crane):
        crane["config"]["CranedDebugLevel"] = debug_level
        crane["cgroup"] = {"manage": True, "root": STANDIN, **cgroup}

    return formula.with_config(cluster, edit)


def _enabled(cluster):
    return cluster.sh(NODE, f"cat {STANDIN}/cgroup.subtree_control", check=True).stdout.split()


def test_the_nodes_real_tree_is_reported_as_hybrid(deployed):
    report = deployed.salt(NODE, "crane.cgroup_check")[NODE]
    assert report["mode"] == "hybrid"
    assert report["errors"][0].startswith(f"{NODE}: /sys/fs/cgroup is a hybrid cgroup tree")


def test_cgroup_gate_then_unit_then_boot(deployed):
    cluster = deployed
    cluster.sh(
        NODE,
        f"mkdir -p {STANDIN} && echo 'cpuset cpu io memory hugetlb pids' > "
        f"{STANDIN}/cgroup.controllers && : > {STANDIN}/cgroup.subtree_control",
        check=True,
    )
    before = _snapshot(cluster)

    # controllers off, no unit to enable them: the gate names them, nothing changes
    cluster.write_pillar(*_pillar(cluster, "debug", enable_controllers=False))
    result = formula.apply(cluster, NODE)
    failed = formula.failures(result)
    assert list(failed) == [NODE]
    gate = failed[NODE]["crane-cgroup-ready"]
    assert f"cgroup v2 controller(s) {', '.join(WANTED)} not enabled" in gate
    assert NODE in gate
    assert "crane-config-file-config-file-managed" in failed[NODE]  # not run: requisite
    assert formula.changed(result) == {}
    assert _snapshot(cluster) == before

    # the formula's unit: test=True plans it without failing, then the apply enables them
    cluster.write_pillar(*_pillar(cluster, "debug"))
    planned = formula.apply(cluster, NODE, test=True)
    assert formula.failures(planned) == {}
    assert (
        "would enable cpu, memory, io, cpuset, pids"
        in planned[NODE]["crane-cgroup-ready"]["comment"]
    )
    assert _enabled(cluster) == []
    result = formula.apply(cluster, NODE)
    assert formula.failures(result) == {}
    assert [w.lstrip("+") for w in _enabled(cluster)] == WANTED
    digest, pid = _snapshot(cluster)
    assert digest != before[0] and pid not in (0, before[1])  # new config, craned restarted

    # switches on: a second apply and test=True change nothing
    assert formula.changed(formula.apply(cluster, NODE)) == {}
    assert formula.results(formula.apply(cluster, NODE, test=True)) == {True}

    # the boot, replayed: the kernel starts with no controller enabled; starting craned
    # alone pulls the unit in first (Wants/After), and the unit is enabled for boot
    assert cluster.sh(NODE, f"systemctl is-enabled {UNIT}").stdout.strip() == "enabled"
    cluster.sh(NODE, f"systemctl stop craned {UNIT}", check=True)
    cluster.sh(NODE, f": > {STANDIN}/cgroup.subtree_control", check=True)
    cluster.sh(NODE, "systemctl start craned", check=True)
    assert [w.lstrip("+") for w in _enabled(cluster)] == WANTED
    assert cluster.sh(NODE, f"systemctl is-active {UNIT} craned").stdout.split() == [
        "active",
        "active",
    ]
    formula.wait_for("cn01 idle again", lambda: formula.all_idle(cluster, [NODE]))

    # clean: the unit and its drop-in go
    cleaned = cluster.salt(NODE, "state.apply", "crane.cgroup.clean")[NODE]
    assert all(state["result"] for state in cleaned.values()), cleaned
    assert cluster.sh(NODE, f"systemctl cat {UNIT}").returncode != 0
    cluster.write_pillar(*formula.example_pillar(cluster))
    assert formula.failures(formula.apply(cluster, NODE)) == {}


def test_name_gate_names_what_does_not_resolve(deployed):
    cluster = deployed
    before = _snapshot(cluster)

    def ghost_login(crane):
        crane["config"]["CranedDebugLevel"] = "debug"
        crane["login_nodes"] = [*crane["login_nodes"], "ghost01"]

    cluster.write_pillar(*formula.with_config(cluster, ghost_login))
    result = formula.apply(cluster, NODE)
    failed = formula.failures(result)
    assert list(failed) == [NODE]
    assert f"{NODE} cannot resolve ghost01" in failed[NODE]["crane-names-resolve"]
    assert "crane-config-file-config-file-managed" in failed[NODE]
    assert formula.changed(result) == {}
    assert _snapshot(cluster) == before

    cluster.write_pillar(*formula.example_pillar(cluster))
    result = formula.apply(cluster, NODE)
    assert formula.failures(result) == {}
    assert formula.changed(result) == {}
    gate = result[NODE]["crane-names-resolve"]
    assert gate["result"] is True and "resolves 5 CraneSched host name(s)" in gate["comment"]


CONTROL = "cranectl"
LISTENER = "crane-test-mongodb"
# Any TCP listener stands in for mongod: the nodes have neither MongoDB nor pymongo, so the
# preflight checks that DbHost resolves and DbPort answers.
LISTEN = (
    "import socket, time; s = socket.socket(); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('127.0.0.1', 27017)); s.listen(); time.sleep(86400)"
)


def test_mongodb_preflight_keeps_cranectld_while_nothing_answers(deployed):
    cluster = deployed
    digest = cluster.salt(CONTROL, "crane.config_hash")[CONTROL]
    pid = formula.main_pid(cluster, CONTROL, "cranectld")

    def preflight(crane):
        crane["config"]["CraneCtldDebugLevel"] = "debug"
        crane["mongodb"] = {"preflight": True, "timeout": 2}

    cluster.write_pillar(*formula.with_config(cluster, preflight))
    result = formula.apply(cluster, CONTROL)
    failed = formula.failures(result)
    assert list(failed) == [CONTROL]
    gate = failed[CONTROL]["crane-mongodb-reachable"]
    assert "MongoDB at localhost:27017" in gate and "nothing answers on port 27017" in gate
    assert "change-me" not in gate  # DbPassword of the example
    assert "crane-config-file-database-file-managed" in failed[CONTROL]
    assert formula.changed(result) == {}
    assert cluster.salt(CONTROL, "crane.config_hash")[CONTROL] == digest
    assert formula.main_pid(cluster, CONTROL, "cranectld") == pid

    cluster.sh(CONTROL, f'systemd-run --unit={LISTENER} /usr/bin/python3 -c "{LISTEN}"', check=True)
    try:
        formula.wait_for(
            "the listener", lambda: cluster.salt(CONTROL, "crane.mongodb_check")[CONTROL]["valid"]
        )
        result = formula.apply(cluster, CONTROL)
        assert formula.failures(result) == {}
        assert result[CONTROL]["crane-mongodb-reachable"]["comment"] == (
            "MongoDB at localhost:27017 answers"
        )
        assert formula.main_pid(cluster, CONTROL, "cranectld") != pid  # new config: restarted
        assert formula.changed(formula.apply(cluster, CONTROL)) == {}
        assert formula.results(formula.apply(cluster, CONTROL, test=True)) == {True}
    finally:
        cluster.sh(CONTROL, f"systemctl stop {LISTENER}")
        cluster.write_pillar(*formula.example_pillar(cluster))
    assert formula.failures(formula.apply(cluster, CONTROL)) == {}


def test_tls_files_missing_keep_cranectld_and_name_each_file(deployed):
    cluster = deployed
    digest = cluster.salt(CONTROL, "crane.config_hash")[CONTROL]
    pid = formula.main_pid(cluster, CONTROL, "cranectld")
    paths = {
        "CaFilePath": "/etc/crane/tls/ca.pem",
        "InternalCertFilePath": "/etc/crane/tls/internal.pem",
        "InternalKeyFilePath": "/etc/crane/tls/internal.key",
        "ExternalCertFilePath": "/etc/crane/tls/external.pem",
        "ExternalKeyFilePath": "/etc/crane/tls/external.key",
    }

    def tls_on(crane):
        crane["config"]["TLS"] = {"Enabled": True, "DomainSuffix": "crane.local", **paths}

    cluster.write_pillar(*formula.with_config(cluster, tls_on))
    try:
        result = formula.apply(cluster, CONTROL)
        failed = formula.failures(result)
        assert list(failed) == [CONTROL]
        gate = failed[CONTROL]["crane-tls-ready"]
        for key, path in paths.items():
            assert f"{CONTROL}: {path} (TLS.{key}): No such file or directory" in gate
        assert "crane-config-file-config-file-managed" in failed[CONTROL]
        assert formula.changed(result) == {}
        assert cluster.salt(CONTROL, "crane.config_hash")[CONTROL] == digest
        assert formula.main_pid(cluster, CONTROL, "cranectld") == pid
    finally:
        cluster.write_pillar(*formula.example_pillar(cluster))


COMPUTE = ("cn01", "cn02", "cn03")


def _every_switch_on(crane):
    """Every prerequisite switch these nodes can run. Left off, and why: chrony (no mirror to
    install it from, no CAP_SYS_TIME in a container), TLS (the simulator's cranectld, like
    CraneSched's, needs Vault with TLS), the managed MongoDB (no server can be installed) and
    plugins (the simulator has no cplugind)."""
    crane["names"] = {"check": True, "hosts_file": True}
    # bpffs cannot be mounted inside a container: the cgroup gate and unit run, the mount not
    crane["cgroup"] = {"manage": True, "root": STANDIN, "bpffs": False}
    crane["mongodb"] = {"preflight": True, "timeout": 2}


def test_every_switch_on_then_test_mode_and_reapply_change_nothing(deployed):
    cluster = deployed
    for node in COMPUTE:
        cluster.sh(
            node,
            f"mkdir -p {STANDIN} && echo 'cpuset cpu io memory hugetlb pids' > "
            f"{STANDIN}/cgroup.controllers && : > {STANDIN}/cgroup.subtree_control",
            check=True,
        )
    cluster.sh(CONTROL, f'systemd-run --unit={LISTENER} /usr/bin/python3 -c "{LISTEN}"', check=True)
    cluster.write_pillar(*formula.with_config(cluster, _every_switch_on))
    try:
        cluster.salt("*", "mine.update")
        formula.wait_for(
            "the listener", lambda: cluster.salt(CONTROL, "crane.mongodb_check")[CONTROL]["valid"]
        )
        first = formula.apply(cluster)
        assert formula.failures(first) == {}
        for node in COMPUTE:
            assert first[node]["crane-cgroup-ready"]["result"] is True
        assert "answers" in first[CONTROL]["crane-mongodb-reachable"]["comment"]
        planned = formula.apply(cluster, test=True)
        assert formula.failures(planned) == {}
        assert formula.changed(planned) == {}
        assert formula.results(planned) == {True}
        assert formula.changed(formula.apply(cluster)) == {}
    finally:
        cluster.sh(CONTROL, f"systemctl stop {LISTENER}")
        for node in COMPUTE:
            cluster.salt(node, "state.apply", "crane.cgroup.clean")
        cluster.write_pillar(*formula.example_pillar(cluster))
    assert formula.failures(formula.apply(cluster)) == {}


PAM_NODE = "cn02"
PAM_USER, PAM_UID = "alice", 2001
SSHD = "/etc/pam.d/sshd"


def _pam_pillar(cluster, **pam):
    """PAM on, with cinfo on compute nodes (the gate asks it whether the node is up)."""

    def edit(crane):
        crane["pam"] = {"manage": True, "timeout": 60, "interval": 1, **pam}
        crane["role_packages"] = {"compute": ["craned", "frontend"]}

    return formula.with_config(cluster, edit)


def _ssh(cluster, user, key):
    """``ssh user@node`` from the host with key auth; (exit code, output)."""
    result = subprocess.run(
        [
            "ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20",
            f"{user}@{cluster.spec.address(PAM_NODE)}", "echo in as $(id -un)",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return result.returncode, result.stdout.strip()


def _crane_lines(cluster):
    text = cluster.sh(PAM_NODE, f"cat {SSHD}", check=True).stdout
    return [line for line in text.splitlines() if "pam_crane" in line or "uid eq 0" in line]


@pytest.fixture
def ssh_key(deployed, tmp_path):
    """A key pair on the host, authorised for root and for a plain user on the PAM node."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    deployed.sh(
        PAM_NODE,
        f"id {PAM_USER} || useradd -m -u {PAM_UID} -s /bin/sh {PAM_USER}; "
        f"for home in /root /home/{PAM_USER}; do mkdir -p $home/.ssh && "
        f"echo '{public}' > $home/.ssh/authorized_keys; done; "
        f"chown -R {PAM_USER}: /home/{PAM_USER}/.ssh; systemctl is-active ssh",
        check=True,
    )
    return key


def test_pam_lets_in_only_users_with_a_job_and_root_always(deployed, ssh_key):
    cluster = deployed
    original = cluster.sh(PAM_NODE, f"cat {SSHD}", check=True).stdout
    assert _ssh(cluster, PAM_USER, ssh_key) == (0, f"in as {PAM_USER}")  # no pam_crane yet
    try:
        # cluster down (cranectld stopped): the gate names the node, sshd's file stays
        cluster.write_pillar(*_pam_pillar(cluster, timeout=2))
        cluster.sh(CONTROL, "systemctl stop cranectld", check=True)
        try:
            result = formula.apply(cluster, PAM_NODE)
        finally:
            cluster.sh(CONTROL, "systemctl start cranectld", check=True)
        failed = formula.failures(result)
        assert list(failed) == [PAM_NODE]
        gate = failed[PAM_NODE]["crane-pam-sshd-crane-pam-configured"]
        assert f"would refuse every user's SSH on {PAM_NODE}" in gate
        assert f"{PAM_NODE}: cannot ask cranectld whether the node is up" in gate
        assert cluster.sh(PAM_NODE, f"cat {SSHD}", check=True).stdout == original
        computes = [n.hostname for n in cluster.spec.nodes if n.hostname.startswith("cn")]
        formula.wait_for("every node up again", lambda: formula.all_idle(cluster, computes))

        # cluster up: the lines go where CraneSched's guide puts them (Debian: absolute path)
        cluster.write_pillar(*_pam_pillar(cluster))
        result = formula.apply(cluster, PAM_NODE)
        assert formula.failures(result) == {}
        assert "crane-pam-sshd-crane-pam-configured" in formula.changed(result)[PAM_NODE]
        module = "[success=ok module_unknown=ignore default=bad] /usr/lib64/security/pam_crane.so"
        lines = cluster.sh(PAM_NODE, f"cat {SSHD}", check=True).stdout.splitlines()
        assert lines[lines.index("@include common-account") - 1] == f"account    {module}"
        assert lines[lines.index("@include common-session") + 3] == f"session    {module}"

        # switch on: a second apply and test=True change nothing
        assert formula.changed(formula.apply(cluster, PAM_NODE)) == {}
        assert formula.results(formula.apply(cluster, PAM_NODE, test=True)) == {True}

        # no job: refused; root: in; a job of the user's on the node: in
        assert _ssh(cluster, PAM_USER, ssh_key) == (255, "")
        journal = cluster.sh(PAM_NODE, "journalctl -q --no-pager -t sshd", check=True).stdout
        assert f"[Crane] Rejected ssh connection of uid {PAM_UID}" in journal
        assert _ssh(cluster, "root", ssh_key) == (0, "in as root")
        job = cluster.sh(
            CONTROL,
            f"cranesim-job --node {PAM_NODE} --seconds 45 --uid {PAM_UID}",
            check=True,
        )
        assert "submitted" in job.stdout
        assert _ssh(cluster, PAM_USER, ssh_key) == (0, f"in as {PAM_USER}")
        assert _ssh(cluster, "root", ssh_key) == (0, "in as root")
        # the job ends: refused again
        formula.wait_for(f"{PAM_NODE} idle", lambda: formula.all_idle(cluster, [PAM_NODE]))
        assert _ssh(cluster, PAM_USER, ssh_key) == (255, "")

        # craned down: the user is refused, root still gets in
        cluster.sh(PAM_NODE, "systemctl stop craned", check=True)
        try:
            assert _ssh(cluster, PAM_USER, ssh_key) == (255, "")
            assert _ssh(cluster, "root", ssh_key) == (0, "in as root")
        finally:
            cluster.sh(PAM_NODE, "systemctl start craned", check=True)

        # clean removes exactly the formula's lines
        cleaned = cluster.salt(PAM_NODE, "state.apply", "crane.pam.clean")[PAM_NODE]
        assert all(state["result"] for state in cleaned.values()), cleaned
        assert cluster.sh(PAM_NODE, f"cat {SSHD}", check=True).stdout == original
        assert _ssh(cluster, PAM_USER, ssh_key) == (0, f"in as {PAM_USER}")
    finally:
        cluster.write_pillar(*formula.example_pillar(cluster))
        cluster.salt(PAM_NODE, "state.apply", "crane.pam.clean")
        cluster.sh(PAM_NODE, "apt-get remove -y -qq cranesched-frontend")
    formula.wait_for(f"{PAM_NODE} up", lambda: formula.all_idle(cluster, [PAM_NODE]))
    assert formula.failures(formula.apply(cluster, PAM_NODE)) == {}
