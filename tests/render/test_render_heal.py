"""Render tests of drift healing (crane:heal): off by default (no beacon, its files removed),
on it writes the baseline after config.yaml and then configures the beacon; the reactor SLS
hands the beacon's event to the crane.drift runner."""

import json

import pytest

from tests.render.test_render import args, pillar_for, requires, runs_after
from tests.support.caller import REPO, node_grains

HOSTS = {"control": "cranectl", "compute": "cn03", "login": "login01"}


def render_heal(minion, role, os_name="debian12", **heal):
    pillar = pillar_for("repo", control=role == "control")
    if heal:
        pillar["crane"]["heal"] = heal
    result = minion.call(
        "state.show_sls", "crane", grains=node_grains(os_name, HOSTS[role]), pillar=pillar
    )
    assert isinstance(result, dict), result
    return result


@pytest.mark.parametrize("role", sorted(HOSTS))
def test_off_by_default_removes_the_beacon_and_its_files(minion, role):
    states = render_heal(minion, role)
    beacon = args(states["crane-heal-beacon"])
    assert beacon["fun"] == "crane_drift.beacon" and beacon["enabled"] is False
    files = args(states["crane-heal-baseline-file-absent"])
    assert [next(iter(n)) if isinstance(n, dict) else n for n in files["names"]] == [
        "/var/lib/crane-formula/drift-baseline.json",
        "/var/lib/crane-formula/drift-seen.json",
    ]
    assert "crane-heal-baseline-file-serialize" not in states


@pytest.mark.parametrize("os_name", ["rocky9", "debian12"])
@pytest.mark.parametrize("role", sorted(HOSTS))
def test_on_the_baseline_follows_config_yaml_and_the_beacon_follows_it(minion, role, os_name):
    states = render_heal(minion, role, os_name, enabled=True, mode="report", interval=7)
    baseline = args(states["crane-heal-baseline-file-serialize"])
    assert baseline["name"] == "/var/lib/crane-formula/drift-baseline.json"
    assert requires(states["crane-heal-baseline-file-serialize"]) == [
        "crane-config-file-config-file-managed"
    ]
    data = baseline["dataset"]
    assert data["mode"] == "report"
    assert data["config_path"] == "/etc/crane/config.yaml"
    text = args(states["crane-config-file-config-file-managed"])["contents"]
    import crane_drift  # noqa: PLC0415 - the utility the module uses

    assert data["config_hash"] == crane_drift.sha256(crane_drift.newline_terminated(text))
    wanted = {"control": ["cranectld"], "compute": ["craned"], "login": ["cfored"]}[role]
    assert data["services"] == wanted
    beacon = args(states["crane-heal-beacon"])
    assert beacon["fun"] == "crane_drift.beacon" and beacon["interval"] == 7
    assert "enabled" not in beacon
    assert "crane-heal-baseline-file-serialize" in runs_after(states, "crane-heal-beacon")
    assert "crane-validate-config" in runs_after(states, "crane-heal-beacon")


def test_compute_baseline_watches_craned_and_csupervisor(minion):
    data = args(render_heal(minion, "compute", enabled=True)["crane-heal-baseline-file-serialize"])
    assert data["dataset"]["mode"] == "heal"
    assert data["dataset"]["binaries"]["csupervisor"] == "/usr/libexec/csupervisor"
    assert data["dataset"]["binaries"]["craned"] == "/usr/bin/craned"


def test_a_bad_mode_fails_validation_naming_the_key(minion):
    pillar = pillar_for("repo", control=False)
    pillar["crane"]["heal"] = {"mode": "fix"}
    result = minion.call("crane.settings", grains=node_grains("debian12", "cn03"), pillar=pillar)
    wanted = "crane:heal:mode: 'fix' must be one of heal, report"
    assert any(e.startswith(wanted) for e in result["settings_errors"]), result["settings_errors"]


def test_clean_removes_the_beacon_first(minion):
    states = minion.call(
        "state.show_sls",
        "crane.clean",
        grains=node_grains("debian12", "cn03"),
        pillar=pillar_for("repo", control=False),
    )
    assert isinstance(states, dict), states
    first = min(states, key=lambda sid: args(states[sid])["order"])
    assert first == "crane-heal-clean-beacon"
    assert args(states[first])["enabled"] is False


def test_the_reactor_hands_the_event_to_the_runner(minion):
    event = {"id": "cn01", "kind": "config", "what": "/etc/crane/config.yaml differs: 'x'",
             "mode": "heal", "time": 12.5, "key": "config:f00:1", "_stamp": "2026"}  # fmt: skip
    text = (REPO / "salt" / "reactor" / "heal.sls").read_text()
    rendered = minion.call(
        "slsutil.renderer", string=text, default_renderer="jinja|yaml", data=event
    )
    handed = {"kind": "config", "what": event["what"], "mode": "heal", "time": 12.5}
    assert rendered == {
        "crane-drift-cn01": {
            "runner.crane.drift": [{"args": [{"minion": "cn01"}, {"event": handed}]}]
        }
    }
    json.dumps(rendered)  # plain data
