"""The plugin gate through Salt's loader: an enabled plugin whose .so is not on the node fails
naming node, plugin and path; with every file present, or plugins disabled, it passes."""

from tests.support.caller import node_grains


def gate(minion, plugin):
    returned = minion.call(
        "state.single",
        "crane.plugins_ready",
        name="cn01",
        plugin=plugin,
        grains=node_grains("rocky9", "cn01"),
    )
    (state,) = returned.values()
    return state


def test_plugin_gate(local_minion, tmp_path):
    monitor = tmp_path / "monitor.so"
    mail = tmp_path / "mail.so"
    plugin = {
        "Enabled": True,
        "Plugins": [{"Name": "monitor", "Path": str(monitor)}, {"Name": "mail", "Path": str(mail)}],
    }
    monitor.write_text("")
    failed = gate(local_minion, plugin)
    assert failed["result"] is False
    assert f"cn01: plugin 'mail': {mail} (Plugins[1].Path) does not exist" in failed["comment"]
    assert "monitor" not in failed["comment"]
    mail.write_text("")
    assert gate(local_minion, plugin)["result"] is True
    mail.unlink()
    assert gate(local_minion, {**plugin, "Enabled": False})["result"] is True
