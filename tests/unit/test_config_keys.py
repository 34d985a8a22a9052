"""The key table: unknown keys, wrong types at any level, YAML 1.1 scalars, quoted values the
Go CLIs refuse, the pillar's own settings and the guard of crane.clean."""

import copy
import pathlib

import crane_config
import crane_gres
import pytest
import yaml
from crane_config import CONFIG_KEYS, LIST, MAP, TABLE

from tests.support.caller import example_pillar
from tests.support.dunder import load

REPO = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "support" / "cranesched_sample.yaml"
DEFAULTS = REPO / "salt" / "states" / "crane" / "parameters" / "defaults.yaml"


@pytest.fixture
def crane():
    return copy.deepcopy(example_pillar(control=True)["crane"])


def defaults():
    return yaml.safe_load(DEFAULTS.read_text())["values"]


def errors_of(config, database=None):
    result = crane_config.validate(config, database)
    assert result["valid"] is not bool(result["errors"]) or result["errors"]
    return result["errors"]


# --- unknown keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "warning"),
    [
        (
            lambda c: c.update(DefaultPartiton=c.pop("DefaultPartition")),
            "DefaultPartiton: not a key CraneSched reads, so it has no effect; "
            "did you mean 'DefaultPartition'?",
        ),
        (
            lambda c: c.update(CraneCtldDebugLevl=c.pop("CraneCtldDebugLevel")),
            "did you mean 'CraneCtldDebugLevel'?",
        ),
        (
            lambda c: c.update(Partitons=c["Partitions"]),
            "Partitons: not a key CraneSched reads, so it has no effect; "
            "did you mean 'Partitions'?",
        ),
        (
            lambda c: c["Nodes"][0].update(memroy="4G"),
            "Nodes[0] 'cn[01-02]' memroy: not a key CraneSched reads, so it has no effect; "
            "did you mean 'memory'?",
        ),
        (
            lambda c: c["Partitions"][1].update(Priority=3),
            "Partitions[1] 'GPU' Priority: not a key CraneSched reads, so it has no effect; "
            "did you mean 'priority'?",
        ),
        (
            lambda c: c["Nodes"][1]["gres"][0].update(EnvInjecter="nvidia"),
            "Nodes[1] 'cn03' gres[0] EnvInjecter: not a key CraneSched reads, so it has no "
            "effect; did you mean 'EnvInjector'?",
        ),
        (
            lambda c: c["Craned"].update(PingIntervall=10),
            "Craned.PingIntervall: not a key CraneSched reads, so it has no effect; "
            "did you mean 'PingInterval'?",
        ),
    ],
)
def test_unknown_keys_warn_with_the_nearest_known_key(crane, edit, warning):
    edit(crane["config"])
    result = crane_config.validate(crane["config"])
    assert any(w.startswith(warning) or warning in w for w in result["warnings"]), result


def test_unknown_database_key_warns(crane):
    crane["database"]["DbPasword"] = "secret-value"
    result = crane_config.validate(crane["config"], crane["database"])
    assert result["valid"]
    assert (
        "crane:database:DbPasword: not a key CraneSched reads, so it has no effect; "
        in (result["warnings"][0])
    )
    assert "did you mean 'DbPassword'?" in result["warnings"][0]
    assert "secret-value" not in str(result)


def test_every_key_of_cranescheds_sample_is_known():
    result = crane_config.validate(yaml.safe_load(SAMPLE.read_text()))
    assert result["valid"], result
    assert result["warnings"] == [
        "CranedListenAddr: craned reads 'CranedListen'; 'CranedListenAddr' is ignored"
    ]


# --- wrong types at any level --------------------------------------------------------------


def _full_config(crane):
    """The example config with at least one entry under every list the table describes."""
    config = crane["config"]
    config["Licenses"] = [{"name": "fluent", "quantity": 3}]
    config["Container"] = {
        "SubId": {"UidMappings": [{"Id": 0}], "GidMappings": [{"Id": 0}]},
    }
    config["Plugin"] = {"Plugins": [{"Name": "mail"}]}
    return config


def _set(config, path, value):
    """Set a table path (``Nodes[].gres[].type``) on the last entry of each list."""
    node = config
    parts = path.replace("[]", ".-1").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part == "-1" else node.setdefault(part, {})
    node[parts[-1]] = value


def _wrong_value(spec):
    return "oops" if spec.kind in (MAP, TABLE, LIST) else {"a": 1}


@pytest.mark.parametrize("path", sorted(CONFIG_KEYS))
def test_a_wrong_type_anywhere_is_an_error_naming_the_key(crane, path):
    config = _full_config(crane)
    _set(config, path, _wrong_value(CONFIG_KEYS[path]))
    result = crane_config.validate(config, crane["database"])  # never raises
    assert result["valid"] is False, path
    leaf = path.rsplit(".", 1)[-1].removesuffix("[]")
    assert any(leaf in error for error in result["errors"]), (path, result["errors"])
    # everything else that reads the config survives it too
    prepared, _notes = crane_config.prepare(config)
    crane_config.dump(prepared)
    crane_config.compute_hosts(config)
    crane_gres.nvidia_minors("cn03", config)


def test_config_that_is_not_a_mapping():
    assert crane_config.validate("oops")["errors"] == [
        "crane:config: missing or not a mapping: the pillar must hold config.yaml (it is a str)"
    ]
    assert crane_config.prepare("oops") == ({}, [])


# --- YAML 1.1 ------------------------------------------------------------------------------


def test_off_words_yaml_made_false_are_written_back():
    config = yaml.safe_load(SAMPLE.read_text())
    assert config["CranedDebugLevel"] is False and config["Preempt"]["PreemptMode"] is False
    prepared, notes = crane_config.prepare(config)
    assert prepared["CranedDebugLevel"] == "off"
    assert prepared["Preempt"]["PreemptMode"] == "OFF"
    assert "CranedDebugLevel: YAML 1.1 read 'off' as false; written as 'off'" in notes
    text = crane_config.dump(prepared)
    assert "CranedDebugLevel: 'off'" in text and "PreemptMode: 'OFF'" in text
    # yaml-cpp (YAML 1.2) and PyYAML both read the quoted words back as text
    assert yaml.safe_load(text)["Preempt"]["PreemptMode"] == "OFF"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(CranedDebugLevel=True), "CranedDebugLevel: YAML 1.1 read the boolean"),
        (lambda c: c.update(ClusterName=83), "ClusterName: YAML 1.1 read the number 83 here"),
        (lambda c: c["Partitions"][0].update(name=2024), "Partitions[0] '2024' name: YAML 1.1"),
        (lambda c: c["Nodes"][1].update(name=5), "Nodes[1] '5' name: YAML 1.1 read the number"),
        (lambda c: c.update(PriorityMaxAge=3600), "PriorityMaxAge: YAML 1.1 read the number"),
        (lambda c: c["Supervisor"].update(Path=True), "Supervisor.Path: YAML 1.1 read the"),
    ],
)
def test_strings_yaml_turned_into_something_else_must_be_quoted(crane, edit, message):
    edit(crane["config"])
    errors = errors_of(crane["config"])
    assert any(e.startswith(message) and e.endswith("quote it") for e in errors), errors


def test_a_password_yaml_read_as_a_number_is_refused_without_showing_it(crane):
    crane["database"]["DbPassword"] = 1234567  # DbPassword: 04553207 in the pillar
    crane["database"]["DbUser"] = True  # DbUser: yes
    errors = errors_of(crane["config"], crane["database"])
    assert any(e.startswith("crane:database:DbPassword: YAML 1.1 read the value") for e in errors)
    assert any(e.startswith("crane:database:DbUser: YAML 1.1 read the value") for e in errors)
    assert "1234567" not in str(errors)


# --- quoted values the Go CLIs refuse ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("TLS.Enabled", "true"),
        ("Plugin.Enabled", "false"),
        ("Container.UserNsEnabledByDefault", "true"),
        ("JobLifecycleHook.PrologTimeout", "60"),
        ("JobLifecycleHook.EpilogTimeout", "60"),
        ("JobLifecycleHook.PrologEpilogTimeout", "0"),
    ],
)
def test_quoted_values_the_clis_refuse(crane, path, value):
    _set(crane["config"], path, value)
    errors = errors_of(crane["config"])
    assert f"{path}: the quoted '{value}' is refused by the Go CLIs" in " ".join(errors), errors


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("CompressedRpc", "true"),  # read by the daemons only: yaml-cpp converts it
        ("Craned.ThreadPoolSize", "4"),
        ("TLS.Enabled", "no"),  # yaml.v3 decodes the YAML 1.1 words into a Go bool
        ("Container.UserNsEnabledByDefault", "Yes"),
    ],
)
def test_quoted_values_every_reader_accepts(crane, path, value):
    _set(crane["config"], path, value)
    assert crane_config.validate(crane["config"])["valid"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("CompressedRpc", "maybe", "'maybe' is not a boolean"),
        ("Craned.ThreadPoolSize", -1, "'-1' must not be negative"),
        ("Craned.ThreadPoolSize", 2.5, "'2.5' must be an integer"),
        ("CraneCtld.JobRequeue", 1, "'1' is not a boolean"),
    ],
)
def test_values_the_daemons_cannot_convert(crane, path, value, message):
    _set(crane["config"], path, value)
    assert f"{path}: {message}" in " ".join(errors_of(crane["config"]))


# --- the pillar's own settings -------------------------------------------------------------


@pytest.mark.parametrize(
    ("pillar", "message"),
    [
        ("oops", "crane: must be a mapping of the formula's settings, not a str"),
        ({"config": "oops"}, "crane:config: must be a mapping (the content of config.yaml)"),
        ({"database": ["x"]}, "crane:database: must be a mapping (the content of database"),
        ({"restart": "on-change"}, "crane:restart: 'on-change' must be one of on_change, never"),
        ({"install": {"method": "rpm"}}, "crane:install:method: 'rpm' must be one of repo,"),
        ({"verify": "yes"}, "crane:verify: must be a mapping, not a str"),
        ({"verify": {"enabled": "no"}}, "crane:verify:enabled: must be true or false"),
        ({"version": 1.1}, "crane:version: must be a string (quote it"),
        ({"login_nodes": "login01"}, "crane:login_nodes: must be a list, not a str"),
    ],
)
def test_pillar_settings_errors(pillar, message):
    usable, errors, _warnings = crane_config.check_settings(pillar, defaults())
    assert any(e.startswith(message) for e in errors), errors
    assert isinstance(usable, dict)


def test_refused_settings_are_left_out_and_unknown_ones_warn():
    pillar = {"restart": "on-change", "restrat": "never", "verify": {"timeout": "x"}}
    usable, errors, warnings = crane_config.check_settings(pillar, defaults())
    assert usable == {"restrat": "never", "verify": {}}
    assert len(errors) == 2
    assert warnings == [
        "crane:restrat: not a setting of the formula, so it has no effect; did you mean 'restart'?"
    ]


def test_the_example_pillar_has_no_setting_problems():
    pillar = example_pillar(control=True)["crane"]
    assert crane_config.check_settings(pillar, defaults())[1:] == ([], [])


def test_module_settings_survive_a_pillar_that_is_not_a_mapping():
    crane = load(
        "_modules", __pillar__={"crane": "oops"}, __grains__={"host": "cn01", "os_family": "Debian"}
    )
    data = crane.settings(defaults(), {}, "oops")
    assert data["settings_errors"] == [
        "crane: must be a mapping of the formula's settings, not a str"
    ]
    assert data["roles"] == [] and data["restart"] == "on_change"
    result = crane.validate_config()
    assert result["valid"] is False
    assert result["errors"][0] == "crane: must be a mapping of the formula's settings, not a str"


def test_module_validate_config_checks_the_pillars_switches():
    pillar = example_pillar(control=False)
    pillar["crane"]["restart"] = "on-change"
    grains = {"host": "cn01", "os_family": "RedHat"}
    crane = load("_modules", __pillar__=pillar, __grains__=grains)
    result = crane.validate_config()
    assert result["errors"] == ["crane:restart: 'on-change' must be one of on_change, never"]
    assert crane.__context__["retcode"] == 1


# --- crane.clean ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/", "/var/", "/var", "/usr/", "/etc/", "/home/", "/var/lib/", "//var//", "/var/crane/..",
     "/usr/local/crane/", "/etc/crane", "/srv", "relative/dir"],
)  # fmt: skip
def test_clean_refuses_to_remove_a_system_directory(path):
    refusal = crane_config.data_dir_refusal(path)
    assert refusal and f"'{path}'" in refusal


@pytest.mark.parametrize("path", ["/var/crane/", "/srv/crane", "/data/crane/", "/home/crane/"])
def test_clean_may_remove_cranescheds_own_directory(path):
    assert crane_config.data_dir_refusal(path) is None
