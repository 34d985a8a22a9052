"""A plain ``state.apply crane`` never leaves a running cluster worse, on real nodes: an admin's
drain survives a cranectld restart, a deleted csupervisor comes back, a restart skipped by a
failed package step happens on the next run, and the pillar's older pin after a rolling
upgrade is refused instead of silently downgrading every node.

The steps run in order on one cluster (each starts where the previous one left it).
"""

from __future__ import annotations

import copy

import pytest

from . import formula
from .pillar import DATABASE_SLS

pytestmark = pytest.mark.cluster

CONTROL = "cranectl"
COMPUTE = ("cn01", "cn02", "cn03")
DRAINS_RECORD = "/var/crane/crane-formula-drains.json"


def _fast(crane):
    """Short timings: a restarted cranectld sees its nodes again within seconds."""
    crane["config"]["CraneCtld"] = {"CranedTimeout": 6}
    crane["config"]["Craned"] = {"PingInterval": 2}
    crane["verify"] = {"enabled": True, "timeout": 60, "interval": 1}


def _pillar(cluster, edit=None, database=None):
    """The example pillar with short timings, ``edit(crane)`` and database.yaml changes."""

    def change(crane):
        _fast(crane)
        if edit:
            edit(crane)

    sls, top = formula.with_config(cluster, change)
    if database:
        sls = copy.deepcopy(sls)
        sls[DATABASE_SLS]["crane"]["database"].update(database)
    return sls, top


@pytest.fixture(scope="module")
def deployed(cluster):
    cluster.write_pillar(*_pillar(cluster))
    assert formula.failures(formula.apply(cluster)) == {}
    formula.wait_for("every node idle", lambda: formula.all_idle(cluster, COMPUTE))
    yield cluster
    # back to the example's version and config, whatever a step left behind
    cluster.write_pillar(*_pillar(cluster, _both_switches))
    formula.apply(cluster)
    cluster.write_pillar(*formula.example_pillar(cluster))


def _both_switches(crane):
    crane["allow_downgrade"] = True
    crane["restart_on_version"] = True


def _installed(cluster, node, package):
    return cluster.sh(node, f"dpkg-query -W -f '${{Version}}' {package}").stdout.strip()


def _sorted_lines(text):
    return sorted(line for line in text.splitlines() if line.strip())


def test_admin_drain_survives_a_cranectld_restart_by_state_apply(deployed):
    cluster = deployed
    cluster.salt(CONTROL, "crane.drain", "cn03", reason="fan broken")
    assert formula.node_states(cluster)["cn03"]["reason"] == "fan broken"
    # a new DbPassword restarts cranectld, which keeps drains only in memory
    cluster.write_pillar(*_pillar(cluster, database={"DbPassword": "changed-secret"}))
    planned = formula.apply(cluster, CONTROL, test=True)[CONTROL]
    saved = planned["crane-service-cranectld-drains-saved"]
    assert saved["result"] is None
    assert "cn03 ('fan broken')" in saved["comment"]
    assert "changed-secret" not in repr(planned)

    pid = formula.main_pid(cluster, CONTROL, "cranectld")
    result = formula.apply(cluster, CONTROL)
    assert formula.failures(result) == {}
    assert "changed-secret" not in repr(result)
    assert formula.main_pid(cluster, CONTROL, "cranectld") != pid, "cranectld not restarted"
    state = formula.node_states(cluster)["cn03"]
    assert (state["control"], state["reason"]) == ("drain", "fan broken")
    assert cluster.sh(CONTROL, f"test -e {DRAINS_RECORD}").returncode != 0, "record left"
    assert (
        "DbPassword: changed-secret"
        in cluster.sh(CONTROL, "cat /etc/crane/database.yaml", check=True).stdout
    )
    shown = cluster.salt(CONTROL, "crane.database_text")[CONTROL]
    assert "changed-secret" not in shown and "DbPassword: <redacted>" in shown

    cluster.salt(CONTROL, "crane.resume", "cn03")
    assert formula.node_states(cluster)["cn03"]["control"] == "none"


def test_a_deleted_csupervisor_is_restored_and_craned_restarts(deployed):
    cluster = deployed
    cluster.sh("cn01", "rm /usr/libexec/csupervisor", check=True)
    result = formula.apply(cluster, "cn01")
    assert formula.failures(result) == {}
    restored = result["cn01"]["crane-package-restore-craned-crane-package-restored"]
    assert restored["result"] is True
    assert restored["comment"].startswith("cranesched-craned: /usr/libexec/csupervisor missing")
    stat = cluster.sh("cn01", "stat -c '%a %U' /usr/libexec/csupervisor", check=True).stdout
    assert stat.split() == ["755", "root"]
    cluster.sh("cn01", "systemctl restart craned", check=True)
    formula.wait_for("cn01 idle after restart", lambda: formula.all_idle(cluster, COMPUTE))
    assert cluster.sh("cn01", "systemctl is-active craned").stdout.strip() == "active"
    assert formula.changed(formula.apply(cluster, "cn01")) == {}


def test_a_restart_skipped_by_a_failed_package_step_happens_next_run(deployed):
    cluster = deployed

    def new_config(crane):
        crane["config"]["Craned"] = {"PingInterval": 3}

    def missing_version(crane):
        new_config(crane)
        crane["version"] = "1.1.9"  # not in the repository
        crane["restart_on_version"] = True

    pids = {node: formula.main_pid(cluster, node, "craned") for node in COMPUTE}
    cluster.write_pillar(*_pillar(cluster, missing_version))
    planned = formula.failures(formula.apply(cluster, "cn*", test=True))  # fails as the run will
    assert set(planned) == set(COMPUTE)
    assert (
        "version 1.1.9 of cranesched-craned is not in the repository"
        in (planned["cn01"]["crane-package-version-checked"])
    )
    failed = formula.failures(formula.apply(cluster, "cn*"))
    assert set(failed) == set(COMPUTE)
    assert "crane-package-install-pkg-installed" in failed["cn01"]
    assert "PingInterval: 3" in cluster.sh("cn01", "cat /etc/crane/config.yaml").stdout
    assert {node: formula.main_pid(cluster, node, "craned") for node in COMPUTE} == pids
    pending = cluster.salt("cn*", "crane.restart_pending")
    assert {node: list(units) for node, units in pending.items()} == {
        node: ["craned"] for node in COMPUTE
    }

    cluster.write_pillar(*_pillar(cluster, new_config))  # the version fixed
    result = formula.apply(cluster, "cn*")
    assert formula.failures(result) == {}
    for node in COMPUTE:
        assert formula.main_pid(cluster, node, "craned") != pids[node], f"{node} not restarted"
    assert cluster.salt("cn*", "crane.restart_pending") == {node: {} for node in COMPUTE}
    formula.wait_for("every node idle", lambda: formula.all_idle(cluster, COMPUTE))
    assert formula.changed(formula.apply(cluster, "cn*")) == {}


def test_no_silent_downgrade_after_a_rolling_upgrade(deployed):
    cluster = deployed
    cluster.write_pillar(*_pillar(cluster))
    assert formula.failures(formula.apply(cluster)) == {}
    formula.wait_for("every node idle", lambda: formula.all_idle(cluster, COMPUTE))
    report = cluster.salt_run("crane.upgrade", "version=1.1.3", timeout=900)
    assert report.get("retcode") == 0, report
    assert _installed(cluster, "cn01", "cranesched-craned").startswith("1.1.3")
    pids = {node: formula.main_pid(cluster, node, "craned") for node in COMPUTE}

    # the pillar still pins 1.1.2
    planned = formula.failures(formula.apply(cluster, test=True))
    result = formula.apply(cluster)
    failed = formula.failures(result)
    for outcome in (planned, failed):
        assert set(outcome) == set(cluster.spec.hostnames())
        comment = outcome["cn01"]["crane-package-version-checked"]
        assert comment.startswith("cn01: cranesched-craned 1.1.3")
        assert "pins 1.1.2" in comment and "crane:allow_downgrade: true" in comment
    for node in COMPUTE:
        assert _installed(cluster, node, "cranesched-craned").startswith("1.1.3"), node
        assert formula.main_pid(cluster, node, "craned") == pids[node], node
    assert _installed(cluster, CONTROL, "cranesched-cranectld").startswith("1.1.3")
    versions = cluster.salt("*", "grains.get", "crane:version")
    assert set(versions.values()) == {"1.1.3"}, (
        "the version grain must not follow a pin that failed"
    )

    # the same version change on running craned nodes is refused too, naming the rolling way
    def older_everywhere_but_craned(crane):
        crane["allow_downgrade"] = True

    cluster.write_pillar(*_pillar(cluster, older_everywhere_but_craned))
    comment = formula.failures(formula.apply(cluster, "cn01", test=True))["cn01"][
        "crane-package-version-checked"
    ]
    assert "salt-run crane.upgrade version=1.1.2" in comment
    assert "crane:restart_on_version: true" in comment

    # asked for explicitly, the downgrade happens
    cluster.write_pillar(*_pillar(cluster, _both_switches))
    assert formula.failures(formula.apply(cluster)) == {}
    for node in COMPUTE:
        assert _installed(cluster, node, "cranesched-craned").startswith("1.1.2"), node
    assert _installed(cluster, CONTROL, "cranesched-cranectld").startswith("1.1.2")
