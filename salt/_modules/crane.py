"""
Execution module for CraneSched clusters deployed by the crane formula.

Config rules, host lists, gres discovery and cinfo parsing live in ``salt/_utils``; this module
runs CraneSched's commands and hands their output to those utilities. CraneSched's binaries are
found through the pillar value ``crane:bin_dir`` (so tests can point at a simulator) or PATH.
"""

import hashlib
import json
import logging
import os
import posixpath
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Mapping

import salt.utils.dictupdate
import salt.utils.path
import salt.utils.yaml
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "crane"

CONFIG_PATH = "/etc/crane/config.yaml"
CONFIG_HEADER = "# Managed by Salt (crane formula): edit the pillar crane:config, not this file."
DATABASE_HEADER = (
    "# Managed by Salt (crane formula): edit the pillar crane:database, not this file."
)
PLUGIN_HEADER = (
    "# Managed by Salt (crane formula): edit the pillar crane:plugin:config, not this file."
)
PLUGIN_NEEDS_PACKAGE = (
    "crane:plugin: cplugind's unit comes from CraneSched's plugin package; use "
    "crane:install:method repo or files"
)
REDACTED = "<redacted>"
DRAINS_FILE = "crane-formula-drains.json"  # where cranectld keeps its state (see _drains_path)
RESTART_DIR = "/var/lib/crane-formula"  # restart-<unit> markers: a restart is due
CINFO_UNREACHABLE = 3
ADDRESS_MINE = "crane_address"  # mine function alias: network.ip_addrs (crane:names:hosts_file)
GRES_MINE = "crane_gres"  # mine function alias: crane.gres_discover (automatic gres mode)
HOST_MINE = "crane_host"  # mine function alias: grains.get host (minion id -> host name)
FACTS_MINE = "crane_facts"  # mine function alias: crane.node_facts (node groups by selector)
JOINED_FILE = "/var/lib/crane-formula/joined"  # written by a join once the node passed its gates
# craned's PAM socket under CraneBaseDir (CranedForPamUnixSockPath's default); the path is
# a plain concatenation in CraneSched, hence the trailing / on CraneBaseDir
PAM_SOCKET = "craned/craned_pam.sock"
PARAMETERS = "salt://crane/parameters/{}.yaml"  # defaults, os_family/<os_family>
OS_FAMILIES = ("Debian", "RedHat")  # those with a parameters/os_family file


def __virtual__():
    if "crane_config.validate" not in __utils__:
        return (False, "crane: the crane_config utility is not synced (run saltutil.sync_all)")
    return __virtualname__


# --- settings and roles --------------------------------------------------------------------


def _plain(data):
    """Plain dicts and lists: Salt 3008 hands pillar over in masking containers, which YAML
    serializers refuse and whose values its output layer redacts."""
    if isinstance(data, Mapping):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(value) for value in data]
    return data


def _per_run(key, compute):
    """``compute()`` once per state run. Salt gives every state run (``state.apply``,
    ``state.show_sls``, …) a fresh copy of ``__context__``, shared by the renderers, the states
    and this module, and puts the run's file client there; a direct call (``salt cn01
    crane.settings``) computes afresh, since a minion that runs jobs in threads would keep
    serving one context from run to run (a changed mine or parameter file)."""
    if "fileclient" not in __context__:
        return compute()
    cache = __context__.setdefault("crane.per_run", {})
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def _mine(function):
    """``mine.get`` of every minion's ``function``, read once per state run."""
    return _per_run(("mine", function), lambda: __salt__["mine.get"]("*", function))


def _parameters(name):
    """The ``values`` of the formula's parameters/<name>.yaml, from the file server."""

    def read():
        saltenv = __opts__.get("saltenv") or "base"
        text = __salt__["cp.get_file_str"](PARAMETERS.format(name), saltenv=saltenv)
        if text is False or text is None:
            raise CommandExecutionError(
                f"crane: {PARAMETERS.format(name)} is not on the file server (saltenv "
                f"{saltenv}); is the formula in file_roots?"
            )
        return (salt.utils.yaml.safe_load(text) or {}).get("values") or {}

    return _per_run(("parameters", name), read)


def _layers():
    """The formula's defaults, this minion's os_family parameters and the pillar ``crane``."""
    family = __grains__.get("os_family")
    if family not in OS_FAMILIES:
        raise CommandExecutionError(
            f"crane: os_family {family} is not supported (supported: {', '.join(OS_FAMILIES)})"
        )
    pillar = _raw_pillar_settings()
    return [_parameters("defaults"), _parameters(f"os_family/{family}"), pillar or {}]


def _raw_pillar_settings():
    # __pillar__, not pillar.get: on Salt 3008 pillar.get redacts values outside templates.
    return _plain(__pillar__.get("crane"))


def _pillar_settings():
    """The pillar ``crane`` as a mapping ({} when it is not one: validation says so)."""
    data = _raw_pillar_settings()
    return data if isinstance(data, dict) else {}


def _raw_config():
    """The pillar's crane:config as written: node groups by selector not resolved."""
    return _pillar_settings().get("config") or {}


def _config(config=None):
    """The cluster config to work on: the argument, else the pillar's crane:config with its
    node groups by selector resolved (the nodes that joined count)."""
    if config is not None:
        return config
    return _resolve_selectors(_raw_config(), _pillar_settings(), [], [])


def _host_names():
    return [__grains__.get("host"), __grains__.get("nodename")]


def roles(config=None, login_nodes=None):
    """
    Roles of this minion, derived from the cluster config: ``control`` (ControlMachine),
    ``compute`` (a host of Nodes[].name) and ``login`` (crane:login_nodes), matched by the
    minion's host name as craned matches ``gethostname()``.

    CLI Example:

    .. code-block:: bash

        salt '*' crane.roles
    """
    if login_nodes is None:
        login_nodes = _pillar_settings().get("login_nodes") or []
    ha_pair = __utils__["crane_ha.pair"](_pillar_settings().get("ha"))
    return __utils__["crane_config.roles"](_config(config), _host_names(), login_nodes, ha_pair)


def _no_role_comment(config):
    host = __grains__.get("host")
    text = f"{host} has no CraneSched role: it is not ControlMachine, in Nodes or a login node"
    minion_id = __grains__.get("id")
    if minion_id != host and __utils__["crane_config.roles"](config, [minion_id], []):
        text += (
            f"; its minion id '{minion_id}' is in the cluster config but craned matches the "
            "host name, so set the host name to match"
        )
    return text


def _role_packages(data, minion_roles):
    """{package key: {'name', 'version', 'cache_file'}} for this minion's roles, in role
    order; ``cache_file``: where install method ``files`` downloads the package to."""
    packages = {}
    for role in minion_roles:
        for key in (data.get("role_packages") or {}).get(role, []):
            packages[key] = _package(data, key)
    if _cplugind_here(data, minion_roles):
        packages["plugin"] = _package(data, "plugin")
    return packages


def _package(data, key):
    install = data.get("install") or {}
    entry = (install.get("files") or {}).get(key)
    source = str((entry.get("source") if isinstance(entry, dict) else None) or key)
    return {
        "name": (data.get("package_names") or {}).get(key, key),
        "version": str((data.get("versions") or {}).get(key) or data.get("version") or ""),
        "cache_file": posixpath.join(
            str(install.get("cache_dir") or ""), source.replace("\\", "/").rsplit("/", 1)[-1]
        ),
    }


def _plugin_here(data, minion_roles):
    """Whether this node gets plugin.yaml (crane:plugin:manage and one of its roles)."""
    plugin = data.get("plugin") or {}
    return bool(plugin.get("manage")) and bool(set(minion_roles) & set(plugin.get("roles") or []))


def _cplugind_here(data, minion_roles):
    """Whether cplugind runs here: plugin.yaml is written here with ``Enabled: true``."""
    config = (data.get("plugin") or {}).get("config")
    return _plugin_here(data, minion_roles) and __utils__["crane_prereq.plugin_enabled"](config)


def _role_services(data, minion_roles):
    services = []
    if "control" in minion_roles:
        services.append("cranectld")
    if "compute" in minion_roles:
        services.append("craned")
    if "login" in minion_roles and data.get("cfored"):
        services.append("cfored")
    return services


def _merge_layers(layers):
    """Deep-merge copies of ``layers``, later ones winning; lists are replaced."""
    merged = {}
    for layer in layers:
        merged = salt.utils.dictupdate.merge(
            merged, _plain(layer or {}), strategy="recurse", merge_lists=False
        )
    return merged


def settings(*layers):
    """
    The formula's settings for this minion: ``layers`` deep-merged in order (default: the
    formula's parameters/defaults.yaml, parameters/os_family/<os_family>.yaml and the pillar
    ``crane``, as map.jinja uses them) plus what the formula derives:
    ``roles``, ``packages`` and ``services`` for them, ``config`` as written (with
    ``config_notes`` on what was enforced), ``config_text``, ``has_database``, ``base_dir``,
    ``nvidia_minors`` (with ``gres:nvidia_device_files``), ``no_role_comment``,
    ``settings_errors`` / ``settings_warnings`` (the pillar's own settings against the
    defaults' types and keys; a refused value is left out, so the templates still render and
    the validation state fails naming it) and ``remove_data_refusal`` (why ``crane.clean``
    must not remove CraneBaseDir, when ``clean:remove_data`` is on). The
    database settings themselves are left out: they are secret. With ``gres:auto`` the node
    groups' gres come from the Salt mine (``gres_errors`` names the groups without data).

    Worked out once per state run: map.jinja, the states and the orchestration's questions
    share the result, which callers must not change.

    CLI Example:

    .. code-block:: bash

        salt cn01 crane.settings
    """
    layers = [_plain(layer) for layer in layers] if layers else _layers()
    key = ("settings", repr((layers, _host_names(), __grains__.get("id"))))
    return _per_run(key, lambda: _settings(layers))


def _settings(layers):
    defaults = _merge_layers(layers[:-1]) if len(layers) > 1 else None
    pillar, errors, warnings = __utils__["crane_config.check_settings"](
        _plain(layers[-1]), defaults
    )
    data = _merge_layers([*layers[:-1], pillar])
    data["settings_errors"], data["settings_warnings"] = errors, warnings
    raw = _resolve_selectors(data.get("config") or {}, data, errors, warnings)
    data["gres_errors"] = []
    if _gres_auto(data):
        raw, problems = _discovered_gres(raw)
        data["gres_errors"] = _gres_errors(problems)
    config, notes = __utils__["crane_config.prepare"](raw)
    data["roles"] = roles(config, data.get("login_nodes") or [])
    _ha_settings(data, config)
    data["host"] = __grains__.get("host")
    data["nvidia_minors"] = _nvidia_minors(data, config)
    data["config"] = config
    data["config_notes"] = notes
    data["config_text"] = __utils__["crane_config.dump"](config, header=CONFIG_HEADER)
    data["base_dir"] = __utils__["crane_config.base_dir"](config)
    data["packages"] = _role_packages(data, data["roles"])
    data["services"] = _role_services(data, data["roles"])
    data["ports"] = __utils__["crane_config.daemon_ports"](config, data["services"])
    data["no_role_comment"] = "" if data["roles"] else _no_role_comment(config)
    _plugin_settings(data)
    for found, more in zip((errors, warnings), _prereq_problems(data), strict=True):
        found.extend(more)
    data["remove_data_refusal"] = None
    if (data.get("clean") or {}).get("remove_data"):
        data["remove_data_refusal"] = __utils__["crane_config.data_dir_refusal"](data["base_dir"])
    if "control" in data["roles"]:
        hosts = __utils__["crane_config.compute_hosts"](config)
        data["compute_nodes"] = __utils__["crane_hostlist.compress"](hosts) if hosts else ""
    # database.yaml's secrets never travel through SLS data (Salt logs rendered SLS at debug
    # level): its template reads them from the pillar itself.
    database = data.pop("database", None)
    data["has_database"] = bool(database)
    _mongodb_settings(data, database if isinstance(database, dict) else {})
    _hide_secrets(data)
    return data


def _selected(match):
    """``{minion: facts}`` of the minions matching the compound target ``match`` that
    published ``crane_facts``, as the master's grain cache and mine see them; once per run."""

    def read():
        answer = __salt__["mine.get"](match, FACTS_MINE, tgt_type="compound")
        return answer if isinstance(answer, dict) else {}

    return _per_run(("mine", FACTS_MINE, match), read)


def _resolve_selectors(config, data, errors, warnings):
    """``config`` with its node groups by selector resolved (see crane_elastic); what is
    wrong goes to ``errors``/``warnings``, so validation names it before anything changes."""
    matches = __utils__["crane_elastic.selectors"](config)
    if not matches:
        return config
    elastic = data.get("elastic") or {}
    mixed = elastic.get("mixed") or "split"
    resolved, found_errors, found_warnings = __utils__["crane_elastic.resolve"](
        config,
        {match: _selected(match) for match in matches},
        candidate=elastic.get("candidate") or None,
        mixed=mixed,
    )
    errors.extend(found_errors)
    warnings.extend(found_warnings)
    return resolved


def node_facts():
    """
    What this node publishes for node groups by selector (mine function ``crane_facts``):
    its host name, CPUs, memory in MiB rounded down to a multiple of 8 MiB (within the 0.01
    GiB tolerance of CraneSched's health check, never above the real memory), the gres it
    discovers and whether it has joined the cluster (``crane.joined``).

    CLI Example:

    .. code-block:: bash

        salt cn05 crane.node_facts
    """
    return __utils__["crane_elastic.node_facts"](__grains__, gres_discover(), ready=joined())


def joined(value=None):
    """
    Whether this node has joined the cluster as a node of a group by selector: its join
    passed the node's own gates (``crane.orch.join`` marks it). ``True`` marks it,
    ``False`` unmarks it (the node is then left out of every node's config.yaml at their
    next apply, once ``mine.update`` ran here). Returns the state after the call.

    CLI Example:

    .. code-block:: bash

        salt cn05 crane.joined
        salt cn05 crane.joined False && salt cn05 mine.update
    """
    if value is True:
        os.makedirs(os.path.dirname(JOINED_FILE), exist_ok=True)
        with open(JOINED_FILE, "w", encoding="utf-8") as handle:
            handle.write(f"{time.time()}\n")
    elif value is False and os.path.exists(JOINED_FILE):
        os.remove(JOINED_FILE)
    return os.path.exists(JOINED_FILE)


def selector_groups(minion=None):
    """
    The ``match`` of each node group by selector that ``minion`` (default: this one) matches
    and publishes its ``crane_facts`` for, as the master sees it; ``[]`` for none.

    CLI Example:

    .. code-block:: bash

        salt cn05 crane.selector_groups
    """
    minion = minion or __grains__.get("id")
    matches = __utils__["crane_elastic.selectors"](_raw_config())
    return [match for match in matches if minion in _selected(match)]


def _plugin_settings(data):
    """plugin.yaml's text and whether this node gets it and runs cplugind."""
    plugin = data.setdefault("plugin", {})
    plugin["here"] = _plugin_here(data, data["roles"])
    plugin["cplugind"] = _cplugind_here(data, data["roles"])
    plugin["text"] = __utils__["crane_config.dump"](
        _plain(plugin.get("config") or {}), header=PLUGIN_HEADER
    )


def _prereq_problems(data):
    """``(errors, warnings)`` about the node prerequisites' settings: TLS files from the
    pillar, the managed MongoDB (control nodes), plugin.yaml."""
    errors, warnings = [], []
    prereq = "crane_prereq."
    tls = data.get("tls") or {}
    tls_paths = __utils__[prereq + "tls_files"](data["config"], ["cranectld"])
    found = __utils__[prereq + "tls_pillar_problems"](
        tls.get("files"), tls_paths, tls.get("manage")
    )
    results = [found]
    mongodb = data.get("mongodb") or {}
    if mongodb.get("manage") and "control" in data["roles"]:
        results.append(
            __utils__[prereq + "mongodb_manage_problems"](
                mongodb.get("keyfile"), data.get("database"), [data.get("host")]
            )
        )
    plugin = data.get("plugin") or {}
    if plugin.get("manage"):
        results.append(__utils__[prereq + "plugin_problems"](plugin.get("config") or {}))
        if plugin.get("cplugind") and (data.get("install") or {}).get("method") == "binaries":
            results.append(([PLUGIN_NEEDS_PACKAGE], []))
    for more_errors, more_warnings in results:
        errors.extend(more_errors)
        warnings.extend(more_warnings)
    return errors, warnings


def _mongodb_settings(data, database):
    """What a managed MongoDB takes from database.yaml besides the secrets: the replica
    set's name and port, the member's host name."""
    mongodb = data.setdefault("mongodb", {})
    mongodb["replset"] = str(database.get("DbReplSetName") or "")
    port = str(database.get("DbPort") or 27017)
    mongodb["port"] = int(port) if port.isdigit() else 27017  # validation names a bad one
    mongodb["member"] = mongodb.get("member") or data.get("host") or ""
    release = mongodb.get("release") or ""
    mongodb["gpgkey"] = mongodb.get("gpgkey") or f"https://pgp.mongodb.com/server-{release}.asc"
    mongodb["bind_ip"] = mongodb.get("bind_ip") or f"localhost,{mongodb['member']}"


def _hide_secrets(data):
    """Keep only the names of the secrets the pillar holds (TLS files, MongoDB's keyFile):
    their states read the contents from the pillar on the node (``contents_pillar``)."""
    tls = data.get("tls") or {}
    files = tls.pop("files", None)
    tls["pillar_files"] = sorted(files) if isinstance(files, dict) else []
    mongodb = data.get("mongodb") or {}
    mongodb["has_keyfile"] = bool(mongodb.pop("keyfile", None))


def _ha_settings(data, config):
    """``crane:ha``: its errors join the settings errors (the validation state fails on
    them); ``ha_facts`` for the templates. keepalived restarts cranectld, not systemd: a
    ``Restart=`` in the drop-in would start it again on a node that is no longer master."""
    derived = __utils__["crane_ha.derive"](data.get("ha"), config, _host_names())
    data["settings_errors"].extend(derived["errors"])
    data["ha_facts"] = derived["facts"]
    if derived["facts"] is not None:
        dropin = ((data.get("units") or {}).get("cranectld") or {}).get("dropin") or {}
        for key in ("Restart", "RestartSec"):
            dropin.pop(key, None)


def package_names():
    """
    ``{package key: package name}`` of the packages this minion's roles install, as the
    formula's settings name them (os_family parameters, pillar ``crane:package_names``).
    The upgrade and restart runs ask every minion.

    CLI Example:

    .. code-block:: bash

        salt '*' crane.package_names
    """
    return {key: package["name"] for key, package in settings()["packages"].items()}


def mapdata():
    """
    This minion's settings (``crane.settings``) with the values of keys that name a password,
    secret or token redacted: what the state ``crane._mapdata`` writes to a file, to see what
    a site's pillar gives a node.

    CLI Example:

    .. code-block:: bash

        salt cn01 crane.mapdata
    """
    # config_text is the config again, as text that cannot be redacted by key
    data = {key: value for key, value in settings().items() if key != "config_text"}
    return {"values": __utils__["crane_config.redact"](data)}


# --- validation ----------------------------------------------------------------------------


def _database(database):
    """database.yaml data: the argument, the pillar's (``True``), or None (``None``)."""
    if database is True:
        return _pillar_settings().get("database") or {}
    return database


def database_text():
    """
    database.yaml as the formula writes it from the pillar ``crane:database``, with the
    credentials (``DbUser``, ``DbPassword``) replaced by ``<redacted>``: a return travels to
    the master's job cache. The state ``crane.database_file`` writes the real file on the
    control node.

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.database_text
    """
    database = _database(True)
    # DbUser too: the MongoDB credentials are the user and its password
    words = ("user", *__utils__["crane_config.secret_words"]())
    shown = __utils__["crane_config.redact"](database, words)
    return __utils__["crane_config.dump"](shown, header=DATABASE_HEADER)


def validate_config(config=None, database=None):
    """
    Check a cluster config against CraneSched's own rules (host lists, memory format, cpu
    integers, gres rules, partitions, required keys, ports, listen addresses, timings) and,
    when given, database.yaml data (``database=True``: the pillar's ``crane:database``).
    Default config: the pillar's ``crane:config`` as the formula writes it (``crane.settings``).

    Unknown keys are warnings naming the nearest known key. Validating the pillar (no
    ``config`` given) also checks the pillar ``crane`` itself: a mapping, with ``config`` and
    ``database`` mappings and the formula's switches (``restart``, ``install:method``) set to
    one of their words, and with ``gres:auto`` names the node groups the mine has no
    consistent data for.

    Returns ``{'valid': bool, 'errors': [...], 'warnings': [...]}``.

    CLI Example:

    .. code-block:: bash

        salt '*' crane.validate_config
    """
    if config is None:
        data = settings()
        result = __utils__["crane_config.validate"](data["config"], _database(database))
        result["errors"] = [*data["settings_errors"], *result["errors"], *data["gres_errors"]]
        result["warnings"] = [*data["settings_warnings"], *result["warnings"]]
    else:
        result = __utils__["crane_config.validate"](config, _database(database))
        if _gres_auto(_pillar_settings()):
            result["errors"] += _gres_errors(_discovered_gres(config)[1])
    result["valid"] = result["valid"] and not result["errors"]
    if not result["valid"]:
        __context__["retcode"] = 1
    return result


def expand_hostlist(expr):
    """
    Expand a CraneSched host-list expression exactly as CraneSched does.

    CLI Example:

    .. code-block:: bash

        salt-call crane.expand_hostlist 'cn[01-04],gpu[1-2]'
    """
    try:
        return __utils__["crane_hostlist.expand"](expr)
    except ValueError as exc:
        raise CommandExecutionError(str(exc)) from exc


def compress_hostlist(names):
    """
    Compress host names into a CraneSched host-list expression (as cinfo prints them).
    ``names`` is a list or a comma-separated string.

    CLI Example:

    .. code-block:: bash

        salt-call crane.compress_hostlist cn01,cn02,cn03
    """
    if isinstance(names, str):
        names = [n for n in names.split(",") if n]
    return __utils__["crane_hostlist.compress"](list(names))


def config_hash(path=CONFIG_PATH):
    """
    SHA-256 of the node's config.yaml, or None when it does not exist. Equal hashes on every
    node mean one config everywhere (CraneSched only logs a CRC mismatch).

    CLI Example:

    .. code-block:: bash

        salt '*' crane.config_hash
    """
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except FileNotFoundError:
        return None


def _db_path(config, database):
    """cranectld's embedded DB prefix: CraneCtldDbPath under CraneBaseDir (or
    CraneSharedBaseDir)."""
    rel = str(database.get("CraneCtldDbPath") or "cranectld/embedded.db")
    return os.path.join(__utils__["crane_config.ctld_base_dir"](config), rel)


def _ctld_lock(config):
    """cranectld's singleton lock: it takes it at every start, before it opens its DB."""
    rel = str(config.get("CraneCtldMutexFilePath") or "cranectld/cranectld.lock")
    return os.path.join(__utils__["crane_config.ctld_base_dir"](config), rel)


def _db_files(prefix):
    """Every file and directory named by appending to the DB prefix. CraneSched opens
    ``<prefix>var``, ``fix``, ``resv``, ``step_var`` and ``step_fix``; BerkeleyDB adds a
    ``<file>Env/`` directory next to each; nothing exists at the prefix itself."""
    folder, stem = os.path.split(prefix)
    if not stem or not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(stem))


def _prune_backups(dest, prefix, keep):
    names = sorted(n for n in os.listdir(dest) if n.startswith(prefix))
    removed = names[: max(0, len(names) - int(keep))]
    for name in removed:
        path = os.path.join(dest, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return removed


def _copy_db(files, target):
    os.makedirs(target, mode=0o700)
    copied = []
    for path in files:
        dest = os.path.join(target, os.path.basename(path))
        if os.path.isdir(path):
            shutil.copytree(path, dest)
        else:
            shutil.copy2(path, dest)
        copied.append(dest)
    return copied


def backup_db(keep=5, dest=None, force=False):
    """
    Copy cranectld's embedded DB into the directory ``<dest>/<name>.<UTC timestamp>`` and keep
    the last ``keep`` copies. ``CraneCtldDbPath`` (``crane:database``, relative to CraneBaseDir
    or ``Keepalived.CraneSharedBaseDir``) is a prefix: every file and directory whose name
    starts with it is copied. ``dest`` defaults to ``<CraneBaseDir>/backup``. Refuses while
    cranectld runs (the copy would not be consistent) unless ``force`` is true, and fails when
    cranectld has run here (its lock file exists) but no DB file is found.
    Returns ``{'source' (the prefix), 'backup' (the backup directory, None when cranectld
    never ran here), 'files' (the copies), 'removed'}``. To restore, stop cranectld and copy
    the backup directory's files back next to the prefix.

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.backup_db keep=10
    """
    settings = _pillar_settings()
    config = settings.get("config") or {}
    source = _db_path(config, settings.get("database") or {})
    if not force and __salt__["service.status"]("cranectld"):
        raise CommandExecutionError("cranectld is running: stop it before backing up its DB")
    files = _db_files(source)
    if not files:
        lock = _ctld_lock(config)
        if os.path.exists(lock):
            raise CommandExecutionError(
                f"cranectld has run on this node ({lock} exists) but no embedded DB file starts "
                f"with {source}: check CraneCtldDbPath in crane:database"
            )
        return {"source": source, "backup": None, "files": [], "removed": []}
    dest = dest or os.path.join(__utils__["crane_config.base_dir"](config), "backup")
    os.makedirs(dest, mode=0o700, exist_ok=True)
    prefix = os.path.basename(source.rstrip("/")) + "."
    target = os.path.join(dest, prefix + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if os.path.exists(target):
        target += f".{time.monotonic_ns()}"
    copied = _copy_db(files, target)
    return {
        "source": source,
        "backup": target,
        "files": copied,
        "removed": _prune_backups(dest, prefix, keep),
    }


# --- gres ----------------------------------------------------------------------------------


def _gres_auto(data):
    return bool((data.get("gres") or {}).get("auto"))


def _nvidia_minors(data, config):
    """/dev/nvidiaN minors of this node, only when crane:gres:nvidia_device_files is on."""
    if not (data.get("gres") or {}).get("nvidia_device_files"):
        return []
    return __utils__["crane_gres.nvidia_minors"](__grains__.get("host"), config)


def _discovered_gres(config):
    """Automatic gres mode: ``(config, {group: problem})`` with each node group's gres filled
    from what its nodes published in the mine (``crane_gres``), mapped from minion ids to
    host names through ``crane_host``. Groups that disagree or lack data get no gres."""
    per_node = __utils__["crane_gres.nodes_from_mine"](_mine(GRES_MINE), _mine(HOST_MINE))
    return __utils__["crane_gres.fill_config"](config, per_node)


def _gres_errors(problems):
    return [f"crane:gres:auto: {problems[group]}" for group in sorted(problems)]


def gres_discover(dev_root="/dev", default_types=None):
    """
    Accelerators present on this node, as config.yaml gres entries (name, type, EnvInjector,
    DeviceFileRegex). ``type`` comes from the vendor tool when it works, else from
    ``default_types`` or the pillar ``crane:gres:default_types``.

    CLI Example:

    .. code-block:: bash

        salt -G 'crane:roles:compute' crane.gres_discover
    """
    if default_types is None:
        default_types = (_pillar_settings().get("gres") or {}).get("default_types")
    return __utils__["crane_gres.discover"](dev_root=dev_root, default_types=default_types)


def gres_validate(node=None, config=None, dev_root="/dev"):
    """
    Apply craned's gres rules for ``node`` (default: this host): every device file must exist,
    injectors and CDI names must be valid.
    Returns ``{'valid': bool, 'node': ..., 'errors': [...]}``.

    CLI Example:

    .. code-block:: bash

        salt cn03 crane.gres_validate
    """
    node = node or socket.gethostname()
    errors = __utils__["crane_gres.node_errors"](node, _config(config), dev_root=dev_root)
    if errors:
        __context__["retcode"] = 1
    return {"valid": not errors, "node": node, "errors": errors}


# --- CraneSched commands -------------------------------------------------------------------


def _binary(name):
    bin_dir = _pillar_settings().get("bin_dir")
    if bin_dir:
        path = os.path.join(bin_dir, name)
        if os.access(path, os.X_OK):
            return path
    path = salt.utils.path.which(name)
    if not path:
        raise CommandExecutionError(f"{name} not found (crane:bin_dir or PATH)")
    return path


def _run(name, *args):
    return __salt__["cmd.run_all"](
        [_binary(name), *args], python_shell=False, ignore_retcode=True, output_loglevel="debug"
    )


def _cinfo_failure(result):
    text = (result["stderr"] or result["stdout"]).strip()
    if result["retcode"] == CINFO_UNREACHABLE:
        return f"cranectld is unreachable (cinfo exit 3): {text}"
    return f"cinfo failed (exit {result['retcode']}): {text}"


def cinfo():
    """
    The cluster as ``cinfo --json`` reports it (falls back to the table when JSON is not
    available): partitions with groups, each with expanded node names, resource, control and
    power state, count and reason. An unreachable cranectld is an error, not an empty cluster.

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.cinfo
    """
    result = _run("cinfo", "--json")
    if result["retcode"] == 0:
        return __utils__["crane_cinfo.parse_cinfo_json"](result["stdout"])
    if result["retcode"] == CINFO_UNREACHABLE:
        raise CommandExecutionError(_cinfo_failure(result))
    table = _run("cinfo")
    if table["retcode"] != 0:
        raise CommandExecutionError(_cinfo_failure(table))
    return __utils__["crane_cinfo.parse_cinfo_table"](table["stdout"])


def nodes():
    """
    Per-node state from cinfo: ``{node: {resource, control, power, reason, partitions}}``.

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.nodes
    """
    return __utils__["crane_cinfo.nodes_from_partitions"](cinfo())


def _expected_nodes(nodes_expr=None):
    if nodes_expr:
        if isinstance(nodes_expr, (list, tuple)):
            return list(nodes_expr)
        return expand_hostlist(nodes_expr)
    return __utils__["crane_config.compute_hosts"](_config())


def health(nodes=None, allow_drained=None, allow_down=None):
    """
    Compare what cinfo reports with the configured nodes (default: every node of the pillar
    config; or a host list). Returns healthy, missing, down, drained (with reasons),
    unexpected and a one-line summary; the return code is non-zero when unhealthy.
    ``allow_drained`` / ``allow_down``: nodes (host list) that may be drained / down.

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.health
        salt cranectl crane.health nodes='cn[01-04]'
    """
    expected = _expected_nodes(nodes)
    try:
        result = __utils__["crane_cinfo.health"](
            cinfo(), expected, allow_drained=allow_drained or (), allow_down=allow_down or ()
        )
    except ValueError as exc:  # e.g. a host list past the bound, named in the message
        raise CommandExecutionError(str(exc)) from exc
    if not result["healthy"]:
        __context__["retcode"] = 1
    return result


def show_node(node=None):
    """
    ``ccontrol show node`` parsed: ``{node: {state, version, running_jobs, gres, ...}}``.

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.show_node cn01
    """
    result = _run("ccontrol", "show", "node", *([node] if node else []))
    if result["retcode"] != 0:
        raise CommandExecutionError(
            f"ccontrol show node failed (exit {result['retcode']}): "
            f"{(result['stderr'] or result['stdout']).strip()}"
        )
    return __utils__["crane_cinfo.parse_show_node"](result["stdout"])


def _update_nodes(nodes_expr, state, reason=None):
    try:
        args = __utils__["crane_cinfo.node_update_args"](nodes_expr, state, reason)
    except ValueError as exc:
        raise CommandExecutionError(str(exc)) from exc
    result = _run("ccontrol", *args)
    output = f"{result['stdout']}\n{result['stderr']}".strip()
    outcome = __utils__["crane_cinfo.parse_node_update"](output)
    if result["retcode"] != 0 or outcome["failed"]:
        raise CommandExecutionError(f"ccontrol {state} failed (exit {result['retcode']}): {output}")
    return outcome


def drain(nodes, reason):
    """
    Drain nodes (a host list or a list of names) with a reason; CraneSched requires one and
    refuses DOWN nodes. Returns ``{'modified': [...], 'failed': {...}}``.

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.drain 'cn[01-02]' reason='disk replacement'
    """
    return _update_nodes(nodes, "drain", reason)


def resume(nodes):
    """
    Resume drained nodes (a host list or a list of names).

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.resume 'cn[01-02]'
    """
    return _update_nodes(nodes, "resume")


# --- drains kept across cranectld restarts --------------------------------------------------
# cranectld keeps drains only in memory: a restart forgets them. The record file lives where
# cranectld keeps its state (CraneBaseDir, or Keepalived.CraneSharedBaseDir with a control
# pair, so that both control nodes see it), so it survives the restart, a reboot and a failover.


def _base_dir():
    return __utils__["crane_config.base_dir"](_config())


def _drains_path():
    return os.path.join(__utils__["crane_config.ctld_base_dir"](_config()), DRAINS_FILE)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CommandExecutionError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def drains_record():
    """
    The drains recorded before a cranectld restart and not yet restored: ``{node: reason}``
    (empty when there is nothing to restore). Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.drains_record
    """
    return {str(node): str(reason) for node, reason in _read_json(_drains_path()).items()}


def _current_drains():
    return {n: s.get("reason") or "" for n, s in nodes().items() if s.get("control") == "drain"}


def drains_save():
    """
    Record every drained node (any reason) in ``crane-formula-drains.json`` under CraneBaseDir
    (``Keepalived.CraneSharedBaseDir`` with a control pair: both control nodes see it)
    before cranectld restarts (it keeps drains only in memory). Merges with what is recorded
    already, so a save after the drains were lost forgets nothing. Returns the whole record,
    ``{node: reason}``. Raises when cranectld does not answer.

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.drains_save
    """
    record = drains_record()
    record.update(_current_drains())
    if record:
        __utils__["crane_engine.write_json"](_drains_path(), record)
    return record


def _nodes_when_answering(timeout):
    """crane.nodes() once cranectld answers; raises when it does not within ``timeout``."""
    deadline = time.monotonic() + float(timeout)
    while True:
        try:
            return nodes()
        except CommandExecutionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(1)


def _restore_one(node, reason, state):
    """``'restored'``, ``'kept'`` (already drained) or ``'pending'`` (cannot be drained yet)."""
    if state is None or state.get("resource") == "down":
        return "pending"  # CraneSched: "Can't change the state of a DOWN node!"
    if state.get("control") == "drain":
        return "kept"
    try:
        drain([node], reason)
    except CommandExecutionError as exc:
        log.warning("crane: could not drain %s again yet: %s", node, exc)
        return "pending"
    return "restored"


def drains_restore(timeout=60):
    """
    Drain again the nodes recorded by ``crane.drains_save``, with their recorded reasons,
    once cranectld answers (within ``timeout`` seconds). A node that is down or not
    registered yet cannot be drained (CraneSched refuses DOWN nodes) and stays in the record
    as pending; the record file is removed when nothing is pending. Nodes no longer in the
    cluster config are dropped. Returns ``{'restored': {node: reason}, 'pending': {...}}``.

    CLI Example:

    .. code-block:: bash

        salt cranectl crane.drains_restore timeout=120
    """
    record = drains_record()
    if not record:
        return {"restored": {}, "pending": {}}
    states = _nodes_when_answering(timeout)
    configured = set(__utils__["crane_config.compute_hosts"](_config()))
    restored, pending = {}, {}
    for node, reason in sorted(record.items()):
        if node not in configured and node not in states:
            continue
        outcome = _restore_one(node, reason, states.get(node))
        if outcome == "restored":
            restored[node] = reason
        elif outcome == "pending":
            pending[node] = reason
    if pending:
        __utils__["crane_engine.write_json"](_drains_path(), pending)
    elif os.path.exists(_drains_path()):
        os.remove(_drains_path())
    return {"restored": restored, "pending": pending}


# --- restarts that are due -------------------------------------------------------------------
# A marker per daemon, written when its config, drop-in or package changed; the restart is
# due until the daemon's current process started after the marker was written, whoever
# restarted it (the formula, the upgrade engine, an admin).


def _marker_path(unit):
    return os.path.join(RESTART_DIR, f"restart-{unit}")


def _started_at(unit):
    """Wall-clock start of the unit's running process, or None when it does not run."""
    props = _unit_properties(unit)
    if props.get("ActiveState") != "active":
        return None
    return time.time() - _seconds_since(props.get("ActiveEnterTimestampMonotonic"))


def restart_mark(unit, why=""):
    """
    Record that ``unit`` must be restarted (its config, drop-in or package changed). The
    record stays until the daemon runs a process started after it. Returns the marker path.

    CLI Example:

    .. code-block:: bash

        salt cn01 crane.restart_mark craned why='config.yaml changed'
    """
    path = _marker_path(unit)
    os.makedirs(RESTART_DIR, mode=0o755, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"{why}\n")
    return path


def restart_pending(unit=None):
    """
    Daemons of this node whose restart is due: ``{unit: {'since': UTC time, 'why': text}}``
    for each marker whose daemon is not running or started before the marker was written.
    ``unit`` limits the answer to one daemon. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt '*' crane.restart_pending
    """
    try:
        names = sorted(os.listdir(RESTART_DIR))
    except FileNotFoundError:
        return {}
    pending = {}
    for name in names:
        if not name.startswith("restart-") or (unit and name != f"restart-{unit}"):
            continue
        daemon, path = name[len("restart-") :], os.path.join(RESTART_DIR, name)
        marked = os.path.getmtime(path)
        started = _started_at(daemon)
        if started is None or started < marked:
            pending[daemon] = {
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(marked)),
                "why": _tail(path, 1),
            }
    return pending


def restart_clear(unit, force=False):
    """
    Forget a restart of ``unit`` that has happened (its process started after the marker).
    Returns True when a marker was removed; a restart still due is kept unless ``force``
    (a daemon that is not running and will be started on the new config by someone else,
    e.g. cranectld on the backup of a Keepalived pair).

    CLI Example:

    .. code-block:: bash

        salt cn01 crane.restart_clear craned
    """
    path = _marker_path(unit)
    if not os.path.exists(path) or (unit in restart_pending(unit) and not force):
        return False
    os.remove(path)
    return True


# --- daemons -------------------------------------------------------------------------------


def _unit_properties(unit):
    result = __salt__["cmd.run_all"](
        [
            "systemctl",
            "show",
            unit,
            "--property=ActiveState,SubState,MainPID,NRestarts,ExecMainStatus,LoadState,"
            "ActiveEnterTimestampMonotonic",
        ],
        python_shell=False,
        ignore_retcode=True,
    )
    props = {}
    for line in result["stdout"].splitlines():
        key, _, value = line.partition("=")
        props[key] = value
    return props


def _tail(path, lines):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


def _seconds_since(monotonic_usec):
    """Seconds since a systemd monotonic timestamp (microseconds; 0 = never)."""
    usec = int(monotonic_usec or 0)
    return max(0.0, time.monotonic() - usec / 1e6) if usec else 0.0


def daemon_report(unit, log_file=None, lines=15):
    """
    A CraneSched daemon's systemd state with the last ``lines`` lines of its journal and log
    file, so CraneSched's own reason for refusing to start is visible (``lines=0``: the state
    alone, without reading the journal or the log).

    CLI Example:

    .. code-block:: bash

        salt cn01 crane.daemon_report craned log_file=/var/crane/craned/craned.log
    """
    journal = ""
    if lines:
        journal = __salt__["cmd.run_all"](
            ["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "cat"],
            python_shell=False,
            ignore_retcode=True,
        )["stdout"].strip()
    props = _unit_properties(unit)
    return {
        "unit": unit,
        "active": props.get("ActiveState") == "active" and props.get("SubState") == "running",
        "state": f"{props.get('ActiveState', '?')}/{props.get('SubState', '?')}",
        "main_pid": int(props.get("MainPID") or 0),
        "restarts": int(props.get("NRestarts") or 0),
        "exit_status": props.get("ExecMainStatus", ""),
        "loaded": props.get("LoadState") == "loaded",
        "uptime": _seconds_since(props.get("ActiveEnterTimestampMonotonic")),
        "journal": journal,
        "log": _tail(log_file, lines) if log_file and lines else "",
    }


# --- node prerequisites --------------------------------------------------------------------


def cgroup_check(node=None, root="/sys/fs/cgroup"):
    """
    Whether craned on this node finds the cgroup controllers it needs: the cgroup mode
    (``v2``, ``v1``, ``hybrid``, which CraneSched refuses, or ``none``), controllers the kernel
    lacks and v2 controllers not enabled in the root's ``cgroup.subtree_control``.
    Returns ``{'valid', 'node', 'mode', 'unavailable', 'disabled', 'errors'}``.

    CLI Example:

    .. code-block:: bash

        salt -G 'crane:roles:compute' crane.cgroup_check
    """
    node = node or __grains__.get("host")
    report = __utils__["crane_prereq.cgroup_problems"](node, root=root)
    if report["errors"]:
        __context__["retcode"] = 1
    return {"valid": not report["errors"], "node": node, **report}


def _resolve(name):
    try:
        return socket.getaddrinfo(name, None)[0][4][0]
    except (socket.gaierror, UnicodeError):
        return None


def names_check(node=None, config=None, login_nodes=None):
    """
    Whether this node resolves every name CraneSched connects to (each host of ``Nodes``,
    ``ControlMachine``, the login hosts running cfored) and, on a compute node, whether
    ``gethostname()`` equals its ``Nodes`` entry (craned looks itself up by it).
    Returns ``{'valid', 'node', 'names', 'errors'}``.

    CLI Example:

    .. code-block:: bash

        salt '*' crane.names_check
    """
    node = node or __grains__.get("host")
    config = _config(config)
    if login_nodes is None:
        login_nodes = _pillar_settings().get("login_nodes") or []
    compute = __utils__["crane_config.compute_hosts"](config)
    names = __utils__["crane_prereq.required_names"](
        compute, config.get("ControlMachine"), login_nodes
    )
    errors = __utils__["crane_prereq.name_problems"](
        node, socket.gethostname(), names, _resolve, compute_hosts=compute
    )
    if errors:
        __context__["retcode"] = 1
    return {"valid": not errors, "node": node, "names": names, "errors": errors}


def cgroup_mode(root="/sys/fs/cgroup"):
    """
    This node's cgroup mode as CraneSched sees it: ``v2``, ``v1``, ``hybrid`` or ``none``.

    CLI Example:

    .. code-block:: bash

        salt cn01 crane.cgroup_mode
    """
    return __utils__["crane_prereq.cgroup_mode"](root)


def hosts_entries(config=None, login_nodes=None):
    """
    ``{host name: address}`` for this node's /etc/hosts on sites without DNS: every name
    CraneSched connects to (hosts of ``Nodes``, ``ControlMachine``, login hosts) that a minion
    published in the Salt mine (``crane_host`` and ``crane_address``).

    CLI Example:

    .. code-block:: bash

        salt '*' crane.hosts_entries
    """
    config = _config(config)
    if login_nodes is None:
        login_nodes = _pillar_settings().get("login_nodes") or []
    names = __utils__["crane_prereq.required_names"](
        __utils__["crane_config.compute_hosts"](config), config.get("ControlMachine"), login_nodes
    )
    return __utils__["crane_prereq.hosts_entries"](_mine(HOST_MINE), _mine(ADDRESS_MINE), names)


def _port_open(host, port, timeout=5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _mongodb_hello(database, timeout):
    """An authenticated ``hello`` (as cranectld connects: authSource admin), or None without
    pymongo on the node."""
    try:
        import pymongo  # noqa: PLC0415 - optional: only where the node has it
    except ImportError:
        return None

    def hello(host, port):
        client = pymongo.MongoClient(
            host=host,
            port=port,
            username=database.get("DbUser") or None,
            password=database.get("DbPassword") or None,
            authSource="admin",
            directConnection=True,
            serverSelectionTimeoutMS=int(timeout * 1000),
        )
        try:
            return client.admin.command("hello")
        finally:
            client.close()

    return hello


def mongodb_check(node=None, timeout=5):
    """
    Whether cranectld on this node would reach MongoDB: ``DbHost`` (pillar
    ``crane:database``) resolves, ``DbPort`` answers and, where pymongo is installed, an
    authenticated ``hello`` shows the replica set ``DbReplSetName``. Credentials are never
    part of the answer. Returns ``{'valid', 'node', 'host', 'port', 'hello', 'errors'}``.

    CLI Example:

    .. code-block:: bash

        salt -G 'crane:roles:control' crane.mongodb_check
    """
    node = node or __grains__.get("host")
    database = _database(True)
    hello = _mongodb_hello(database, timeout)
    errors = __utils__["crane_prereq.mongodb_problems"](
        node, database, _resolve, lambda host, port: _port_open(host, port, timeout), hello
    )
    if errors:
        __context__["retcode"] = 1
    return {
        "valid": not errors,
        "node": node,
        "host": str(database.get("DbHost") or "localhost"),
        "port": int(database.get("DbPort") or 27017),
        "hello": hello is not None,
        "errors": errors,
    }


def _redact(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), REDACTED)
    return text


def _mongosh_call(mongosh, port, request, timeout):
    """``call(op)`` -> mongod's reply, through ``mongosh`` on localhost:``port``. The script,
    with the credentials, is a 0600 file removed after the call; nothing of it is logged."""
    secrets = (request.get("password"), request.get("user"))
    uri = f"mongodb://127.0.0.1:{port}/admin?directConnection=true&serverSelectionTimeoutMS=5000"
    # looked up now: ``call`` runs inside crane_mongodb.converge, where Salt's loader
    # packs no __utils__ or __salt__
    make_script, run_all = __utils__["crane_mongodb.script"], __salt__["cmd.run_all"]

    def call(op):
        handle, path = tempfile.mkstemp(prefix="crane-mongosh-", suffix=".js")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(make_script(op, request))
            result = run_all(
                [mongosh, "--quiet", "--norc", uri, "--file", path],
                python_shell=False,
                output_loglevel="quiet",
                ignore_retcode=True,
                timeout=timeout,
            )
        finally:
            os.unlink(path)
        lines = (result.get("stdout") or "").strip().splitlines()
        if result.get("retcode") or not lines:
            said = (result.get("stderr") or result.get("stdout") or "no output").strip()
            raise CommandExecutionError(
                f"mongosh on 127.0.0.1:{port} ({op}): {_redact(said.splitlines()[-1], secrets)}"
            )
        return json.loads(lines[-1])

    return call


def mongodb_replica_set(member=None, timeout=60, mongosh="mongosh", test=False):
    """
    With ``crane:mongodb:manage`` on the control node: initiate the single-member replica
    set ``DbReplSetName`` (once) and create the admin user ``DbUser`` (role root on admin)
    while authorization is still off, through ``mongosh`` on localhost:``DbPort``. Nothing
    is done when ``DbUser`` already authenticates and the set is up. The credentials come
    from the pillar ``crane:database`` and appear in no command line, log or return.
    ``member`` is the member's host name (default: this node's), ``timeout`` the seconds to
    wait for it to become primary. Returns ``{'result', 'changes', 'comment'}`` (``result``
    None with ``test=True`` when something would change).

    CLI Example:

    .. code-block:: bash

        salt -G 'crane:roles:control' crane.mongodb_replica_set test=True
    """
    database = _database(True)
    port = int(database.get("DbPort") or 27017)
    request = {
        "user": str(database.get("DbUser") or ""),
        "password": str(database.get("DbPassword") or ""),
        "replset": str(database.get("DbReplSetName") or ""),
        "member": f"{member or __grains__.get('host')}:{port}",
    }
    call = _mongosh_call(mongosh, port, request, timeout)

    def wait_primary():
        deadline = time.monotonic() + timeout
        while not call("probe").get("isWritablePrimary"):
            if time.monotonic() > deadline:
                return False
            time.sleep(1)
        return True

    try:
        return __utils__["crane_mongodb.converge"](
            call, request["replset"], request["member"], test=test, wait_primary=wait_primary
        )
    except CommandExecutionError as exc:
        comment = _redact(str(exc), (request["password"], request["user"]))
        if test:  # mongod is installed or started earlier in this run
            planned = {"initiate": "once mongod runs", "create_user": "once mongod runs"}
            return {
                "result": None,
                "changes": planned,
                "comment": f"mongod does not answer yet: {comment}",
            }
        return {"result": False, "changes": {}, "comment": comment}


def _tls_daemons(minion_roles, services):
    daemons = [unit for unit in services if unit in ("cranectld", "craned", "cfored")]
    if "control" in minion_roles or "login" in minion_roles:
        daemons.append("cli")
    return daemons


def tls_files(config=None, services=None, minion_roles=None):
    """
    ``{TLS key: path}`` of the certificate and key files this node's CraneSched daemons and
    CLIs read (empty while ``TLS.Enabled`` is off). ``services`` and ``minion_roles``
    default to this minion's, worked out from the pillar.

    CLI Example:

    .. code-block:: bash

        salt '*' crane.tls_files
    """
    config = _config(config)
    if minion_roles is None:
        minion_roles = roles(config)
    if services is None:
        pillar = _pillar_settings()
        services = _role_services({"cfored": pillar.get("cfored", True)}, minion_roles)
    return __utils__["crane_prereq.tls_files"](config, _tls_daemons(minion_roles, services))


def tls_check(node=None, files=None):
    """
    Whether every TLS file this node's daemons read (``files``: ``{TLS key: path}``, default
    ``crane.tls_files``) exists and is not empty, as CraneSched requires when
    ``TLS.Enabled``. Returns ``{'valid', 'node', 'files', 'errors'}``.

    CLI Example:

    .. code-block:: bash

        salt '*' crane.tls_check
    """
    node = node or __grains__.get("host")
    files = tls_files() if files is None else files
    errors = __utils__["crane_prereq.tls_problems"](node, files)
    if errors:
        __context__["retcode"] = 1
    return {"valid": not errors, "node": node, "files": files, "errors": errors}


def _is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _node_health(node):
    """crane_cinfo.health's report for this one node (drained counts as up: its craned still
    answers pam_crane), or the error text when cinfo cannot tell."""
    try:
        _binary("cinfo")
    except CommandExecutionError as exc:
        return f"{exc}; compute nodes need the frontend: crane:role_packages:compute"
    try:
        return __utils__["crane_cinfo.health"](cinfo(), [node], allow_drained=[node])
    except CommandExecutionError as exc:
        return str(exc)


def pam_check(node=None, module_path="/usr/lib64/security/pam_crane.so"):
    """
    Whether pam_crane.so can be put in sshd's PAM stack on this compute node without locking
    users out: the module file exists, craned serves PAM on its socket
    (``CraneBaseDir`` + ``CranedForPamUnixSockPath``) and cinfo lists the node up (drained is
    fine). cinfo must be on the node (the frontend package). Returns
    ``{'valid', 'node', 'socket', 'errors'}``.

    CLI Example:

    .. code-block:: bash

        salt -G 'crane:roles:compute' crane.pam_check
    """
    node = node or __grains__.get("host")
    config = _config()
    # the written config.yaml always has the trailing / on CraneBaseDir (the formula forces it)
    sock = os.path.join(_base_dir(), str(config.get("CranedForPamUnixSockPath") or PAM_SOCKET))
    errors = __utils__["crane_pam.readiness_problems"](
        node,
        module_path=module_path,
        module_exists=os.path.isfile(module_path),
        socket_path=sock,
        socket_ok=_is_socket(sock),
        health=_node_health(node),
    )
    if errors:
        __context__["retcode"] = 1
    return {"valid": not errors, "node": node, "socket": sock, "errors": errors}
