"""Render tests of the opt-in node prerequisites: TLS files from the pillar, the managed
MongoDB and plugins, for the RedHat and Debian families."""

import copy

import pytest

from tests.render.test_render import ROLE_HOSTS, args, pillar_for, requires
from tests.render.test_render_prereq import TLS
from tests.support.caller import node_grains

FAMILIES = ("rocky9", "debian12", "ubuntu2204")
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nTOP-SECRET-KEY-TEXT\n-----END PRIVATE KEY-----\n"
KEYFILE = "c2VjcmV0LWtleWZpbGUtdGV4dA" * 4


def show(minion, os_name, role, **crane):
    pillar = pillar_for("repo", control=role == "control")
    for key, value in crane.items():
        pillar["crane"][key] = copy.deepcopy(value)
    return minion.call(
        "state.show_sls", "crane", grains=node_grains(os_name, ROLE_HOSTS[role]), pillar=pillar
    )


def comment_of_validation(minion, os_name, role, **crane):
    pillar = pillar_for("repo", control=role == "control")
    pillar["crane"].update(copy.deepcopy(crane))
    grains = node_grains(os_name, ROLE_HOSTS[role])
    result = minion.call("state.apply", "crane.validate", grains=grains, pillar=pillar, test=True)
    (state,) = result.values()
    return state


# --- TLS from the pillar ---------------------------------------------------------------------


@pytest.mark.parametrize("os_name", FAMILIES)
def test_tls_file_from_pillar_wins_and_its_text_never_renders(minion, os_name):
    tls = {"manage": True, "source": "salt://site-tls", "files": {"internal.key": PEM_KEY}}
    pillar = pillar_for("repo", control=False)
    pillar["crane"]["config"]["TLS"] = dict(TLS)
    pillar["crane"]["tls"] = tls
    states = minion.call(
        "state.show_sls", "crane", grains=node_grains(os_name, "cn03"), pillar=pillar
    )
    settings = minion.call(
        "crane.settings", pillar["crane"], grains=node_grains(os_name, "cn03"), pillar=pillar
    )
    assert settings["tls"]["pillar_files"] == ["internal.key"]
    assert "TOP-SECRET-KEY-TEXT" not in repr(settings)
    key = args(states["crane-tls-InternalKeyFilePath-file-managed"])
    assert key["contents_pillar"] == "crane:tls:files:internal.key"
    assert "source" not in key
    assert (key["mode"], key["user"], key["show_changes"]) == ("0600", "root", False)
    cert = args(states["crane-tls-InternalCertFilePath-file-managed"])
    assert cert["source"] == "salt://site-tls/internal.pem"
    assert "TOP-SECRET-KEY-TEXT" not in repr(states)


def test_tls_pillar_files_checked_by_validation(minion):
    config = pillar_for("repo", control=False)["crane"]["config"]
    config["TLS"] = dict(TLS)
    tls = {"manage": True, "files": {"internal.key": "", "interal.pem": PEM_KEY}}
    state = comment_of_validation(minion, "rocky9", "compute", config=config, tls=tls)
    assert state["result"] is False
    assert "crane:tls:files:internal.key: must be the file's text (PEM)" in state["comment"]
    assert (
        "crane:tls:files:interal.pem: no TLS.*FilePath of crane:config ends in"
        in (state["comment"])
    )
    assert "TOP-SECRET-KEY-TEXT" not in state["comment"]


# --- managed MongoDB -------------------------------------------------------------------------

MANAGED_ORDER = [
    "crane-mongodb-repo-pkgrepo-managed",
    "crane-mongodb-pkg-installed",
    "crane-mongodb-keyfile-file-managed",
    "crane-mongodb-bootstrap-service-running",
    "crane-mongodb-replica-set",
    "crane-mongodb-conf-file-managed",
    "crane-mongodb-service-running",
]


def managed(minion, os_name, **mongodb):
    return show(minion, os_name, "control", mongodb={"manage": True, "keyfile": KEYFILE, **mongodb})


def runs_after(states, later, earlier):
    """Whether ``later`` waits for ``earlier``, directly or through other states (requisites
    and require_in, as Salt's compiler joins them)."""
    edges = {sid: set(requires(state)) for sid, state in states.items()}
    for sid, state in states.items():
        for kind in ("require_in", "watch_in"):
            for target in args(state).get(kind, []):
                edges.setdefault(next(iter(target.values())), set()).add(sid)
    seen, todo = set(), [later]
    while todo:
        for sid in edges.get(todo.pop(), ()):
            if sid not in seen:
                seen.add(sid)
                todo.append(sid)
    return earlier in seen


@pytest.mark.parametrize("os_name", FAMILIES)
def test_managed_mongodb_states_in_the_guides_order(minion, os_name):
    states = managed(minion, os_name)
    for sid in MANAGED_ORDER:
        assert sid in states, sid
    assert "crane-mongodb-conf-bootstrap-file-managed" in requires(
        states["crane-mongodb-bootstrap-service-running"]
    )
    assert "crane-mongodb-conf-file-managed" in requires(states["crane-mongodb-service-running"])
    # the bootstrap config has no security; it is skipped once authorization is on
    boot = args(states["crane-mongodb-conf-bootstrap-file-managed"])
    assert boot["context"]["security"] is False
    assert boot["unless"].startswith("grep -qs '^ *authorization: *enabled' /etc/mongod.conf")
    final = args(states["crane-mongodb-conf-file-managed"])
    assert final["context"]["security"] is True
    assert final["context"]["mongodb"]["replset"] == "crane_rs"
    assert "crane-mongodb-replica-set" in requires(states["crane-mongodb-conf-file-managed"])
    # cranectld after mongod; the preflight after the managed mongod
    dropin = args(states["crane-mongodb-cranectld-dropin-file-managed"])
    assert "After=mongod.service" in dropin["contents"]
    assert dropin["require_in"] == [{"service": "crane-service-cranectld-service-running"}]
    assert "crane-mongodb-service-running" in requires(states["crane-mongodb-reachable"])
    assert args(states["crane-mongodb-reachable"])["managed"] is True
    # the secrets stay in the pillar
    keyfile = args(states["crane-mongodb-keyfile-file-managed"])
    assert keyfile["contents_pillar"] == "crane:mongodb:keyfile"
    assert (keyfile["mode"], keyfile["show_changes"]) == ("0400", False)
    assert KEYFILE not in repr(states)
    assert "change-me" not in repr(states)


@pytest.mark.parametrize("os_name", FAMILIES)
def test_managed_mongodb_runs_in_order_and_before_cranectld(minion, os_name):
    states = managed(minion, os_name)
    for later, earlier in zip(MANAGED_ORDER[1:], MANAGED_ORDER[:-1], strict=True):
        assert runs_after(states, later, earlier), (later, earlier)
    assert runs_after(
        states, "crane-mongodb-replica-set", "crane-mongodb-conf-bootstrap-file-managed"
    )
    assert not runs_after(states, "crane-mongodb-replica-set", "crane-mongodb-conf-file-managed")
    cranectld = "crane-service-cranectld-service-running"
    assert runs_after(states, cranectld, "crane-mongodb-service-running")
    assert runs_after(states, cranectld, "crane-mongodb-cranectld-dropin-file-managed")


def test_mongodb_repository_per_family(minion):
    rhel = args(managed(minion, "rocky9")["crane-mongodb-repo-pkgrepo-managed"])
    assert rhel["baseurl"].startswith("https://repo.mongodb.org/yum/redhat/9/mongodb-org/7.0/")
    assert rhel["gpgkey"] == "https://pgp.mongodb.com/server-7.0.asc"
    keyfile = args(managed(minion, "rocky9")["crane-mongodb-keyfile-file-managed"])
    assert (keyfile["name"], keyfile["user"]) == ("/var/lib/mongo/mongo.key", "mongod")
    debian = managed(minion, "debian12")
    repo = args(debian["crane-mongodb-repo-pkgrepo-managed"])
    assert "https://repo.mongodb.org/apt/debian " in repo["name"]
    assert repo["name"].endswith("/mongodb-org/7.0 main")
    assert "signed-by=/etc/apt/keyrings/mongodb-server-7.0.gpg" in repo["name"]
    assert repo["aptkey"] is False
    keyfile = args(debian["crane-mongodb-keyfile-file-managed"])
    assert (keyfile["name"], keyfile["user"]) == ("/var/lib/mongodb/mongo.key", "mongodb")
    ubuntu = args(managed(minion, "ubuntu2204")["crane-mongodb-repo-pkgrepo-managed"])
    assert "/apt/ubuntu " in ubuntu["name"] and ubuntu["name"].endswith(" multiverse")


@pytest.mark.parametrize("role", ["compute", "login"])
def test_managed_mongodb_only_on_the_control_node(minion, role):
    states = show(minion, "rocky9", role, mongodb={"manage": True, "keyfile": KEYFILE})
    assert not [sid for sid in states if sid.startswith("crane-mongodb")]


def test_managed_mongodb_needs_keyfile_and_credentials(minion):
    pillar = pillar_for("repo", control=True)["crane"]
    database = dict(pillar["database"])
    database.pop("DbUser", None)
    state = comment_of_validation(
        minion, "rocky9", "control", database=database, mongodb={"manage": True, "keyfile": "x"}
    )
    assert state["result"] is False
    assert "crane:mongodb:keyfile: MongoDB takes 6 to 1024 characters" in state["comment"]
    assert "crane:database:DbUser: required with crane:mongodb:manage" in state["comment"]
    assert "change-me" not in state["comment"]


# --- plugins ---------------------------------------------------------------------------------

PLUGINS = {
    "Enabled": True,
    "PlugindSockPath": "cplugind/cplugind.sock",
    "Plugins": [{"Name": "monitor", "Path": "/usr/lib/crane/plugin/monitor.so"}],
}


@pytest.mark.parametrize("os_name", FAMILIES)
@pytest.mark.parametrize("role", ["control", "compute"])
def test_plugins_enabled_plugin_yaml_package_gate_and_cplugind(minion, os_name, role):
    states = show(minion, os_name, role, plugin={"manage": True, "config": PLUGINS})
    plugin_yaml = args(states["crane-plugin-config-file-managed"])
    assert plugin_yaml["name"] == "/etc/crane/plugin.yaml"
    assert "Enabled: true" in plugin_yaml["contents"]
    daemon = "cranectld" if role == "control" else "craned"
    assert plugin_yaml["watch_in"] == [{"crane": f"crane-service-{daemon}-restart-marked"}]
    pkgs = args(states["crane-package-install-pkg-installed"])["pkgs"]
    assert any("cranesched-plugin" in pkg for pkg in pkgs)
    assert args(states["crane-plugin-ready"])["plugin"] == PLUGINS
    cplugind = states["crane-plugin-cplugind-service-running"]
    assert "crane-plugin-ready" in requires(cplugind)
    assert "crane-plugin-config-file-managed" in requires(cplugind)


def test_plugins_disabled_stop_cplugind_and_login_gets_nothing(minion):
    disabled = {**PLUGINS, "Enabled": False}
    states = show(minion, "rocky9", "compute", plugin={"manage": True, "config": disabled})
    assert "crane-plugin-cplugind-service-dead" in states
    assert "crane-plugin-cplugind-service-running" not in states
    assert not any(
        "plugin" in p for p in args(states["crane-package-install-pkg-installed"])["pkgs"]
    )
    login = show(minion, "rocky9", "login", plugin={"manage": True, "config": PLUGINS})
    assert not [sid for sid in login if sid.startswith("crane-plugin")]
    off = show(minion, "rocky9", "compute", plugin={"config": PLUGINS})
    assert not [sid for sid in off if sid.startswith("crane-plugin")]


def test_plugin_yaml_checked_by_validation(minion):
    bad = {
        "Enabled": "true",
        "PlugindListenAddress": "0.0.0.0",
        "Plugins": [{"Name": "mail", "Path": "mail.so"}, {"Path": "/x.so"}],
        "PluginsDir": "/usr/lib",
    }
    state = comment_of_validation(
        minion, "rocky9", "compute", plugin={"manage": True, "config": bad}
    )
    comment = state["comment"]
    assert state["result"] is False
    assert "crane:plugin:config:Enabled: must be true or false" in comment
    assert "crane:plugin:config:PlugindListenPort: required when PlugindListenAddress" in comment
    assert "crane:plugin:config:Plugins[0]:Path: must be absolute, not 'mail.so'" in comment
    assert "crane:plugin:config:Plugins[1]:Name: required" in comment
    assert "crane:plugin:config:PluginsDir: not a plugin.yaml key" in comment
