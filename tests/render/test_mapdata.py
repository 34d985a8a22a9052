"""The state crane._mapdata writes the merged settings (template-formula's convention) with
secrets redacted, and the second run changes nothing."""

import yaml

from tests.support.caller import example_pillar, node_grains


def mapdata_pillar(path):
    pillar = example_pillar(control=True)
    pillar["crane"]["mapdata_file"] = str(path)
    pillar["crane"]["config"]["Vault"] = {"Enabled": False, "Password": "vault-s3cret"}
    return pillar


def apply(minion, pillar, test=False):
    return minion.call(
        "state.apply",
        "crane._mapdata",
        test=test,
        grains=node_grains("debian12", "cranectl"),
        pillar=pillar,
    )


def test_mapdata_writes_the_merged_settings_without_secrets(minion, tmp_path):
    path = tmp_path / "mapdata.yaml"
    pillar = mapdata_pillar(path)
    (planned,) = apply(minion, pillar, test=True).values()
    assert planned["result"] is None and not path.exists()
    (ret,) = apply(minion, pillar).values()
    assert ret["result"] is True and ret["changes"]
    text = path.read_text()
    values = yaml.safe_load(text)["values"]
    assert values["roles"] == ["control"]
    assert values["package_names"]["craned"] == "cranesched-craned"  # os_family parameters
    assert values["verify"]["timeout"] == pillar["crane"]["verify"]["timeout"]  # pillar
    assert values["config"]["Vault"]["Password"] == "<redacted>"
    assert "vault-s3cret" not in text and "change-me" not in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    (again,) = apply(minion, pillar).values()
    assert again["result"] is True and again["changes"] == {}
