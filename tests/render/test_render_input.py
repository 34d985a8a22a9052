"""Input the validation explains, seen through Salt's real compile and apply: warnings in the
validation state's comment, crane.clean's guard, and CraneSched's own sample config pasted as
crane:config, rendered and read by the simulator's daemons and CLIs."""

import copy
import os
import subprocess
import sys

import yaml

from tests.render.test_render import args
from tests.support.caller import REPO, example_pillar, node_grains

SAMPLE = REPO / "tests" / "support" / "cranesched_sample.yaml"
CRANESIM = REPO / "tests" / "cranesim"


def validation(minion, crane, host="cn01"):
    result = minion.call(
        "state.sls_id",
        "crane-validate-config",
        "crane",
        grains=node_grains("debian12", host),
        pillar={"crane": crane},
    )
    (state,) = result.values()
    return state


def test_unknown_keys_are_warnings_in_the_state_comment(minion):
    crane = copy.deepcopy(example_pillar(control=False)["crane"])
    crane["config"]["DefaultPartiton"] = crane["config"].pop("DefaultPartition")
    crane["restrat"] = "never"
    state = validation(minion, crane)
    assert state["result"] is True
    comment = state["comment"]
    assert "Warnings:" in comment
    assert "DefaultPartiton: not a key CraneSched reads, so it has no effect; did you mean " in (
        comment
    )
    assert "crane:restrat: not a setting of the formula, so it has no effect; did you mean " in (
        comment
    )


def test_validate_config_shows_the_warnings(minion):
    crane = copy.deepcopy(example_pillar(control=False)["crane"])
    crane["config"]["CraneCtldDebugLevl"] = "info"
    result = minion.call(
        "crane.validate_config", grains=node_grains("debian12", "cn01"), pillar={"crane": crane}
    )
    assert result["valid"] is True
    assert any(w.startswith("CraneCtldDebugLevl: not a key") for w in result["warnings"])


def test_a_pillar_that_is_not_a_mapping_fails_validation(minion):
    state = validation(minion, "oops")
    assert state["result"] is False
    assert "crane: must be a mapping of the formula's settings, not a str" in state["comment"]


def test_clean_refuses_a_system_directory_before_anything(minion):
    crane = copy.deepcopy(example_pillar(control=False)["crane"])
    crane["config"]["CraneBaseDir"] = "/var/"
    crane["clean"] = {"remove_data": True}
    grains = node_grains("debian12", "cn01")
    compiled = minion.call("state.show_sls", "crane.clean", grains=grains, pillar={"crane": crane})
    assert isinstance(compiled, dict), compiled
    refused = args(compiled["crane-clean-data-refused"])
    assert refused["fun"] == "test.fail_without_changes"
    assert refused["order"] == 1 and refused["failhard"] is True
    assert "refusing to remove CraneBaseDir '/var/'" in refused["name"] == refused["comment"]
    absent = [args(s).get("name") for s in compiled.values() if "file" in s]
    assert "/var/" not in absent
    result = minion.call(
        "state.apply", "crane.clean", grains=grains, pillar={"crane": crane}, test=True
    )
    (state,) = (s for tag, s in result.items() if "crane-clean-data-refused" in tag)
    assert state["result"] is False
    assert "it is a system directory" in state["name"]


def test_clean_removes_cranescheds_own_directory(minion):
    crane = copy.deepcopy(example_pillar(control=False)["crane"])
    crane["clean"] = {"remove_data": True}
    compiled = minion.call(
        "state.show_sls",
        "crane.clean",
        grains=node_grains("debian12", "cn01"),
        pillar={"crane": crane},
    )
    assert "crane-clean-data-refused" not in compiled
    assert args(compiled["crane-package-clean-data-file-absent"])["name"] == "/var/crane/"


def _rendered_sample(minion, tmp_path, host):
    """config.yaml as the formula writes it from the sample, with paths moved under tmp."""
    config = yaml.safe_load(SAMPLE.read_text())
    base = f"{tmp_path}/crane/"
    supervisor = tmp_path / "csupervisor"
    supervisor.write_text("")
    config["CraneBaseDir"] = base
    config["Keepalived"]["CraneSharedBaseDir"] = base
    config["Supervisor"]["Path"] = str(supervisor)
    crane = {"config": config, "database": {"DbReplSetName": "crane_rs"}}
    state = validation(minion, crane, host)
    assert state["result"] is True, state["comment"]
    assert "error(s)" not in state["comment"]
    compiled = minion.call(
        "state.show_sls", "crane", grains=node_grains("debian12", host), pillar={"crane": crane}
    )
    return args(compiled["crane-config-file-config-file-managed"])["contents"]


def _simulate(tmp_path, code, host):
    hosts = tmp_path / "hosts"
    hosts.write_text("".join(f"127.0.0.{n} cn{n}\n" for n in range(15, 19)))
    env = {
        **os.environ,
        "PYTHONPATH": f"{CRANESIM}:{REPO / 'salt' / '_utils'}",
        "CRANESIM_HOSTNAME": host,
        "CRANESIM_HOSTS": str(hosts),
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


LOAD = """
import sys
from cranesim import common, ctld_config, craned_config, frontend
log = common.Logger()
path, db = sys.argv[1:] if len(sys.argv) > 2 else ("config.yaml", "database.yaml")
ctld = ctld_config.load(ctld_config.parse_args(["-C", path, "-D", db]), log)
craned = craned_config.load(craned_config.parse_args(["-f", path]), common.Logger())
cli = frontend.parse_config(path)
print(ctld.debug_level, craned.debug_level, ctld.raw["Preempt"]["PreemptMode"], cli["ClusterName"])
"""


def test_cranescheds_sample_config_renders_and_the_simulator_accepts_it(minion, tmp_path):
    text = _rendered_sample(minion, tmp_path, "cn15")
    assert "CranedDebugLevel: 'off'" in text and "PreemptMode: 'OFF'" in text
    (tmp_path / "config.yaml").write_text(text)
    (tmp_path / "database.yaml").write_text("DbReplSetName: crane_rs\n")
    ran = _simulate(tmp_path, LOAD, "cn15")
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert ran.stdout.split() == ["trace", "off", "OFF", "sample_cluster"]
