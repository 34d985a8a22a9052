"""Roles come from the pillar's cluster config, and the formula publishes them as grains."""

import pytest

pytestmark = pytest.mark.integration


def test_each_minion_derives_its_roles_from_the_config(salt_cli, minions):
    expected = {"control": ["control"], "compute": ["compute"], "login": ["login"]}
    for role, minion in minions.items():
        ret = salt_cli.run("crane.roles", minion_tgt=minion.id)
        assert ret.returncode == 0, ret
        assert ret.data == expected[role]


def test_database_pillar_reaches_only_the_control_node(salt_cli, minions):
    for role, minion in minions.items():
        ret = salt_cli.run("pillar.get", "crane", minion_tgt=minion.id)
        assert ("database" in ret.data) is (role == "control"), ret.data
        # Salt 3008 redacts pillar values in command output
        assert "change-me" not in ret.stdout


def test_formula_sets_role_grains_for_targeting(salt_cli, minions):
    ret = salt_cli.run("state.apply", "crane.grains", minion_tgt="*")
    assert ret.returncode == 0, ret
    for minion in minions.values():
        states = ret.data[minion.id]
        assert all(state["result"] is True for state in states.values()), states

    compute = salt_cli.run("-G", "test.ping", minion_tgt="crane:roles:compute")
    assert compute.returncode == 0, compute
    assert set(compute.data) == {minions["compute"].id}

    # the version grain comes with the package step (crane.package.grain), which these
    # minions cannot run: it is shown on real nodes by the cluster tests
    control = salt_cli.run("-G", "grains.get", "crane:roles", minion_tgt="crane:roles:control")
    assert control.data == {minions["control"].id: ["control"]}

    again = salt_cli.run("state.apply", "crane.grains", minion_tgt="*")
    for minion in minions.values():
        assert all(not s["changes"] for s in again.data[minion.id].values())


def test_settings_carry_role_specific_data(salt_cli, minions):
    control = salt_cli.run("crane.settings", minion_tgt=minions["control"].id).data
    compute = salt_cli.run("crane.settings", minion_tgt=minions["compute"].id).data
    assert control["services"] == ["cranectld"] and control["ports"] == [10011, 10013]
    assert control["has_database"] is True
    assert "change-me" not in repr(control)
    assert compute["services"] == ["craned"] and compute["ports"] == [10010]
    assert compute["has_database"] is False
    assert control["config_text"] == compute["config_text"]
