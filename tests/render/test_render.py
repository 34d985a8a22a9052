"""Compile `crane` for every supported OS, role and install method (state.show_sls)."""

import copy
import functools

import pytest

from tests.support.caller import OS_GRAINS, example_pillar, node_grains

ROLE_HOSTS = {"control": "cranectl", "compute": "cn03", "login": "login01", "none": "other01"}
METHODS = ("repo", "files", "binaries")


def pillar_for(method, control):
    pillar = example_pillar(control=control)
    install = pillar["crane"]["install"]
    install["method"] = method
    install["files"] = {
        key: {"source": f"salt://crane-packages/{key}.pkg"}
        for key in ("cranectld", "craned", "frontend")
    }
    install["binaries"] = {"source": "salt://crane-binaries"}
    return pillar


@functools.cache
def render(minion, os_name, role, method="repo"):
    """The compiled `crane` SLS (cached: tests only read it)."""
    host = ROLE_HOSTS[role]
    result = minion.call(
        "state.show_sls",
        "crane",
        grains=node_grains(os_name, host),
        pillar=pillar_for(method, control=role == "control"),
    )
    assert isinstance(result, dict), result
    return result


def args(state):
    """A compiled state's arguments as one dict, plus 'fun'."""
    merged = {}
    for module, body in state.items():
        if module.startswith("__"):
            continue
        for item in body:
            if isinstance(item, dict):
                merged.update(item)
            else:
                merged["fun"] = f"{module}.{item}"
    return merged


def requires(state):
    """IDs (or ``sls`` names) of the states this one runs after (require, watch and onchanges
    all order)."""
    reqs = [r for kind in ("require", "watch", "onchanges") for r in args(state).get(kind, [])]
    return [next(iter(r.values())) for r in reqs]


def runs_after(states, sid):
    """IDs of every state ``sid`` runs after, directly or not, with ``sls:`` requisites
    resolved to the states of that SLS file as Salt 3006 resolves them."""
    seen, todo = set(), [sid]
    while todo:
        for req in requires(states[todo.pop()]):
            found = [s for s, st in states.items() if st["__sls__"] == req] or [req]
            todo += [s for s in found if s not in seen and s in states]
            seen.update(found)
    return seen


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("role", ["control", "compute", "login"])
@pytest.mark.parametrize("os_name", sorted(OS_GRAINS))
def test_every_state_waits_for_validation(minion, os_name, role, method):
    states = render(minion, os_name, role, method)
    assert args(states["crane-validate-config"])["failhard"] is True
    for sid in states:
        if sid == "crane-validate-config":
            continue
        assert "crane-validate-config" in runs_after(states, sid), (
            f"{sid} may run before validation"
        )
    first = min(states, key=lambda sid: args(states[sid])["order"])
    assert first == "crane-validate-config"


@pytest.mark.parametrize("os_name", sorted(OS_GRAINS))
def test_daemons_per_role(minion, os_name):
    services = {
        role: {
            args(state)["name"]
            for sid, state in render(minion, os_name, role).items()
            if args(state)["fun"] == "service.running" and sid.startswith("crane-service-")
        }
        for role in ("control", "compute", "login")
    }
    assert services == {"control": {"cranectld"}, "compute": {"craned"}, "login": {"cfored"}}


@pytest.mark.parametrize(
    ("os_name", "names", "pin"),
    [
        ("debian12", {"cranesched-cranectld", "cranesched-frontend"}, "1.1.2"),
        ("ubuntu2204", {"cranesched-cranectld", "cranesched-frontend"}, "1.1.2"),
        # rpm reports version-release: any release of 1.1.2, never 1.1.20
        ("rocky9", {"CraneSched-cranectld", "cranesched-frontend"}, "1.1.2-*"),
        ("centos7", {"CraneSched-cranectld", "cranesched-frontend"}, "1.1.2-*"),
    ],
)
def test_control_packages_are_pinned(minion, os_name, names, pin):
    state = args(render(minion, os_name, "control")["crane-package-install-pkg-installed"])
    pinned = {k: v for item in state["pkgs"] for k, v in item.items()}
    assert pinned == dict.fromkeys(names, pin)


def test_an_explicit_rpm_release_is_pinned_as_given(minion):
    pillar = pillar_for("repo", control=True)
    pillar["crane"]["version"] = "1.1.2-1"
    result = minion.call(
        "state.show_sls", "crane", grains=node_grains("rocky9", "cranectl"), pillar=pillar
    )
    state = args(result["crane-package-install-pkg-installed"])
    assert {v for item in state["pkgs"] for v in item.values()} == {"1.1.2-1"}


def test_debian_repo_line_and_redhat_baseurl(minion):
    debian = args(render(minion, "debian12", "compute")["crane-package-repo-pkgrepo-managed"])
    assert debian["name"].split() == ["deb", "http://repo.example.org/cranesched/debian", "./"]
    rocky = args(render(minion, "rocky9", "compute")["crane-package-repo-pkgrepo-managed"])
    assert rocky["baseurl"] == "http://repo.example.org/cranesched/debian"
    assert rocky["gpgcheck"] == 1


def test_config_is_byte_identical_everywhere(minion):
    texts = {
        (os_name, role): args(
            render(minion, os_name, role)["crane-config-file-config-file-managed"]
        )["contents"]
        for os_name in OS_GRAINS
        for role in ("control", "compute", "login")
    }
    assert len(set(texts.values())) == 1
    text = next(iter(texts.values()))
    assert "CraneCtldForeground: true" in text
    assert "cpu: 2\n" in text  # unquoted integers


def test_database_only_on_control_and_secrets_never_in_sls(minion):
    control = render(minion, "debian12", "control")
    database = control["crane-config-file-database-file-managed"]
    assert args(database)["fun"] == "crane.database_file"
    assert args(database)["mode"] == "0600"
    assert args(database)["user"] == "crane"
    assert args(control["crane-validate-config"])["database"] is True
    for role in ("control", "compute", "login"):
        states = render(minion, "debian12", role)
        assert "change-me" not in repr(states)
        if role != "control":
            assert not any("database" in sid for sid in states)


def test_database_file_is_written_from_the_pillar_and_nothing_returns_the_secret(minion, tmp_path):
    pillar = pillar_for("repo", control=True)
    grains = node_grains("debian12", "cranectl")
    path = tmp_path / "database.yaml"
    ret = minion.call(
        "state.single",
        "crane.database_file",
        name=str(path),
        user="root",
        group="root",
        grains=grains,
        pillar=pillar,
    )
    (result,) = ret.values()
    assert result["result"] is True, result
    text = path.read_text()
    assert text.startswith("# Managed by Salt (crane formula): edit the pillar crane:database")
    assert "DbReplSetName: crane_rs\n" in text
    assert "DbPassword: change-me\n" in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert "change-me" not in repr(ret)
    shown = minion.call("crane.database_text", grains=grains, pillar=pillar)
    assert "change-me" not in shown and "admin" not in shown
    assert "DbPassword: <redacted>\n" in shown
    # the redacted view is the file with the credentials blanked out
    assert shown == text.replace("change-me", "<redacted>").replace(
        "DbUser: admin", "DbUser: <redacted>"
    )


def watched(state):
    return [next(iter(w.values())) for w in args(state).get("watch", [])]


def test_compute_config_waits_for_gres_gate(minion):
    states = render(minion, "rocky9", "compute")
    assert "crane-gres-valid" in requires(states["crane-config-file-config-file-managed"])
    assert args(states["crane-gres-valid"])["name"] == "cn03"
    # config and package changes mark the restart; craned restarts while one is marked
    marked = watched(states["crane-service-craned-restart-marked"])
    assert "crane-config-file-config-file-managed" in marked
    assert "crane-config-dropin-craned-file-managed" in marked
    package = states["crane-service-craned-restart-marked-package"]
    assert watched(package) == ["crane-package-install-pkg-installed"]
    assert args(package)["pending"] is False  # the restart is reported once
    assert set(watched(states["crane-service-craned-service-running"])) == {
        "crane-service-craned-restart-marked",
        "crane-service-craned-restart-marked-package",
    }
    assert "crane-package-install-pkg-installed" in requires(
        states["crane-service-craned-service-running"]
    )


def test_cranectld_restart_records_and_restores_drains(minion):
    states = render(minion, "debian12", "control")
    saved = args(states["crane-service-cranectld-drains-saved"])
    assert [next(iter(r.values())) for r in saved["onchanges"]] == [
        "crane-service-cranectld-restart-marked",
        "crane-service-cranectld-restart-marked-package",
    ]
    running = states["crane-service-cranectld-service-running"]
    assert "crane-service-cranectld-drains-saved" in requires(running)
    assert "crane-config-file-database-file-managed" in watched(
        states["crane-service-cranectld-restart-marked"]
    )
    restored = args(states["crane-service-cranectld-drains-restored"])
    assert restored["require"] == [{"crane": "crane-service-cranectld-crane-daemon-healthy"}]
    verify_order = [
        sid
        for sid in sorted(states, key=lambda sid: args(states[sid])["order"])
        if sid.startswith("crane-verify-")
    ]
    assert verify_order == ["crane-verify-nodes-ready", "crane-verify-drains-restored"]


def test_package_step_checks_versions_and_restores_missing_binaries(minion):
    states = render(minion, "debian12", "compute")
    check = args(states["crane-package-version-checked"])
    assert check["packages"] == {"cranesched-craned": "1.1.2"}
    assert check["guarded"] == {"cranesched-craned": "craned"}
    assert check["switches"] == {"allow_downgrade": False, "restart_on_version": False}
    restore = args(states["crane-package-restore-craned-crane-package-restored"])
    assert restore["name"] == "cranesched-craned" and restore["version"] == "1.1.2"
    assert set(restore["binaries"]) == {"/usr/bin/craned", "/usr/libexec/csupervisor"}
    assert "unless" not in restore  # Salt would load every state module looking for pkg's check
    assert "crane-package-restore-craned-crane-package-restored" in runs_after(
        states, "crane-package-binary-csupervisor-file-managed"
    )
    grain = states["crane-package-grain-version-grains-present"]
    assert {"sls": "crane.package.install"} in args(grain)["require"]


def test_restart_policy_never_only_notifies(minion):
    pillar = pillar_for("repo", control=False)
    pillar["crane"]["restart"] = "never"
    states = minion.call(
        "state.show_sls", "crane", grains=node_grains("debian12", "cn01"), pillar=pillar
    )
    assert "watch" not in args(states["crane-service-craned-service-running"])
    assert args(states["crane-service-craned-restart-due"])["fun"] == "test.show_notification"


def test_binaries_method_installs_0755_files_and_units(minion):
    states = render(minion, "debian12", "compute", "binaries")
    craned = args(states["crane-package-binary-craned-file-managed"])
    assert craned["source"] == "salt://crane-binaries/craned"
    assert craned["mode"] == "0755"
    unit = args(states["crane-package-unit-craned-file-managed"])
    assert unit["name"] == "/etc/systemd/system/craned.service"
    installed = [
        tag
        for tag, s in states.items()
        if args(s)["fun"] == "pkg.installed" and tag.startswith("crane-package-")
    ]
    assert installed == ["crane-package-runtime-pkg-installed"]  # libraries, no CraneSched package


def test_files_method_caches_then_installs(minion):
    states = render(minion, "rocky9", "control", "files")
    cached = args(states["crane-package-file-cranectld-file-managed"])
    assert cached["name"] == "/var/cache/crane-formula/cranectld.pkg"
    install = args(states["crane-package-install-pkg-installed"])
    assert {"CraneSched-cranectld": "/var/cache/crane-formula/cranectld.pkg"} in install["sources"]


def test_packaged_binaries_get_mode_0755(minion):
    states = render(minion, "debian12", "compute", "repo")
    fix = args(states["crane-package-binary-csupervisor-file-managed"])
    assert (fix["name"], fix["mode"], fix["replace"], fix["create"]) == (
        "/usr/libexec/csupervisor",
        "0755",
        False,
        False,
    )


@pytest.mark.parametrize("os_name", sorted(OS_GRAINS))
def test_minion_without_role_is_a_clear_no_op(minion, os_name):
    states = render(minion, os_name, "none")
    assert sorted(states) == ["crane-no-role", "crane-validate-config"]
    assert "other01 has no CraneSched role" in args(states["crane-no-role"])["name"]


def test_roles_grain_and_verify_on_control(minion):
    states = render(minion, "debian12", "control")
    assert args(states["crane-grains-roles-grains-present"])["value"] == ["control"]
    assert args(states["crane-verify-nodes-ready"])["name"] == "cn[01-03]"


def test_forced_keys_are_reported(minion):
    pillar = pillar_for("repo", control=False)
    config = pillar["crane"]["config"]
    config["CranedForeground"] = False
    config["CraneBaseDir"] = "/srv/crane"
    states = minion.call(
        "state.show_sls",
        "crane",
        grains=node_grains("debian12", "cn01"),
        pillar=copy.deepcopy(pillar),
    )
    # the validation state takes the config and its notes from crane.settings, not from SLS text
    validation_args = set(args(states["crane-validate-config"]))
    assert validation_args <= {"name", "database", "failhard", "fun", "order"}
    ran = minion.call(
        "state.sls",
        "crane.validate",
        test=True,
        grains=node_grains("debian12", "cn01"),
        pillar=copy.deepcopy(pillar),
    )
    (validation,) = ran.values()
    assert "CranedForeground set to true" in validation["comment"]
    text = args(states["crane-config-file-config-file-managed"])["contents"]
    assert "CraneBaseDir: /srv/crane/\n" in text
    assert "CranedForeground: true" in text


@pytest.mark.parametrize(
    ("os_name", "role", "wanted"),
    [
        ("debian12", "control", {"libaio1", "libsubid4", "liblua5.4-0", "libcurl4"}),
        ("debian12", "compute", {"libpam0g", "libaio1", "libsubid4", "liblua5.4-0"}),
        ("rocky9", "compute", {"pam", "libaio", "shadow-utils-subid", "lua-libs"}),
    ],
)
def test_runtime_libraries_are_installed_per_family(minion, os_name, role, wanted):
    state = args(render(minion, os_name, role)["crane-package-runtime-pkg-installed"])
    assert wanted <= set(state["pkgs"])
    assert len(state["pkgs"]) == len(set(state["pkgs"]))
    if role == "compute":
        assert "libcurl4" not in state["pkgs"] and "libcurl" not in state["pkgs"]


def test_no_runtime_state_for_a_role_without_libraries(minion):
    assert "crane-package-runtime-pkg-installed" not in render(minion, "debian12", "login")
