"""`state.apply crane` on a control minion with a bad crane:ha: the validation state fails
naming the key, and nothing else changes (test=True: every other state plans nothing; a real
run stops at validation)."""

import os
import pwd
import shutil
import tempfile

import pytest

from tests.functional.test_validate_state import apply, only_validation_ran, validation_comment
from tests.support.caller import example_pillar
from tests.support.ha import ha_pillar

CASES = {
    "shared dir missing": (
        lambda crane: crane["config"].pop("Keepalived"),
        "Keepalived.CraneSharedBaseDir: required with crane:ha",
    ),
    "ControlMachine not the VIP name": (
        lambda crane: crane["config"].update(ControlMachine="ctl1"),
        "ControlMachine: 'ctl1' is not the virtual IP's name crane:ha:vip_name 'cranectl'",
    ),
    "same priority": (
        lambda crane: crane["ha"].update(priorities={"ctl1": 100, "ctl2": 100}),
        "crane:ha:priorities: both control nodes have priority 100",
    ),
    "no peers or multicast": (
        lambda crane: crane["ha"].update(unicast_peers={}),
        "crane:ha:unicast_peers: give each control node's address for unicast VRRP",
    ),
}


def bad(case):
    crane = ha_pillar(example_pillar(control=True))["crane"]
    CASES[case][0](crane)
    return crane


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_ha_pillar_fails_validation_naming_the_key(local_minion, case):
    comment = validation_comment(apply(local_minion, bad(case), "ctl1", test=True))
    assert CASES[case][1] in comment


def test_real_apply_with_bad_ha_pillar_changes_nothing(local_minion, tmp_path):
    crane = bad("same priority")
    crane["config_dir"] = str(tmp_path / "etc")
    crane["ha"]["config_file"] = str(tmp_path / "keepalived.conf")
    comment = only_validation_ran(apply(local_minion, crane, "ctl2"))
    assert CASES["same priority"][1] in comment
    assert not (tmp_path / "etc").exists() and not (tmp_path / "keepalived.conf").exists()


def test_minion_named_like_the_vip_outside_the_pair_fails(local_minion):
    crane = ha_pillar(example_pillar(control=True))["crane"]
    comment = validation_comment(apply(local_minion, crane, "cranectl", test=True))
    assert "crane:ha:nodes: this minion (cranectl) is ControlMachine but not one of" in comment


@pytest.fixture
def shared_dir():
    """A directory user crane can reach and write (pytest's tmp_path is root-only)."""
    path = tempfile.mkdtemp(prefix="crane-ha-shared-", dir="/tmp")
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path)


def test_valid_pair_compiles_and_plans_with_test_true(local_minion, shared_dir):
    crane = ha_pillar(example_pillar(control=True), require_mount=False)["crane"]
    crane["config"]["Keepalived"]["CraneSharedBaseDir"] = shared_dir + "/"
    result = apply(local_minion, crane, "ctl1", test=True)
    assert isinstance(result, dict), result
    by_id = {tag.split("_|-")[1]: state for tag, state in result.items()}
    gate = by_id["crane-ha-shared-dir-ready"]
    if pwd_entry("crane"):
        assert gate["result"] is True, gate
    else:
        assert gate["result"] is None and "once user crane exists" in gate["comment"], gate
    assert by_id["crane-ha-keepalived-config-file-managed"]["result"] in (None, True)
    assert "crane-service-cranectld-service-running" in by_id


def pwd_entry(user):
    try:
        return pwd.getpwnam(user)
    except KeyError:
        return None


def test_gate_names_a_shared_dir_that_is_not_a_mount_point(local_minion, shared_dir):
    crane = ha_pillar(example_pillar(control=True))["crane"]
    crane["config"]["Keepalived"]["CraneSharedBaseDir"] = shared_dir + "/"
    result = local_minion.call(
        "crane_ha.shared_dir_check", shared_dir + "/", "root", True, pillar={"crane": crane}
    )
    assert result == [
        f"Keepalived.CraneSharedBaseDir '{shared_dir}/' is not a mount point: both control nodes "
        "must see the same shared directory (crane:ha:require_mount: false to accept a plain "
        "directory)"
    ]
    missing = local_minion.call("crane_ha.shared_dir_check", shared_dir + "/nope", "root", False)
    assert missing == [
        f"Keepalived.CraneSharedBaseDir '{shared_dir}/nope' does not exist here (mount the "
        "shared storage first)"
    ]
