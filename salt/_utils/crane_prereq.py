"""What a CraneSched node needs besides its daemons: cgroups, names, MongoDB, TLS, plugins.

Pure Python (stdlib only). Loaded by Salt's loader as a ``_utils`` module (the ``crane``
execution module reads the node and hands the facts to these functions) and imported directly
by the tests. Each check returns *all* problems, in words that name the node and what is
missing, so a gate can fail with them before any daemon is restarted.
"""

import difflib
import os

#: cgroup v2 controllers craned uses: cpu, memory and io must be on the root ("Failed to
#: initialize cpu,memory,IO cgroups controller."), cpuset for its CPU pool ("Failed to
#: initialize CPU pool."), pids for job limits. CraneSched's docs enable exactly these.
V2_CONTROLLERS = ("cpu", "memory", "io", "cpuset", "pids")
#: cgroup v1 hierarchies craned needs mounted ("Failed to initialize cpu,memory,devices,block
#: cgroups controller."), plus cpuset for its CPU pool.
V1_CONTROLLERS = ("cpu", "memory", "devices", "blkio", "cpuset")


def _read_words(path):
    """The names a cgroup interface file lists, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read().split()
    except FileNotFoundError:
        return None


def cgroup_mode(root="/sys/fs/cgroup"):
    """``v2``, ``hybrid``, ``v1`` or ``none``, as libcgroup's ``cgroup_setup_mode()`` tells
    CraneSched: cgroup2 on the root is unified (v2); a v1 tree with a cgroup2 mount at
    ``unified/`` is hybrid, which CraneSched takes as an undefined cgroup version."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return "v2"
    if os.path.exists(os.path.join(root, "unified", "cgroup.controllers")):
        return "hybrid"
    if any(os.path.isdir(os.path.join(root, name)) for name in V1_CONTROLLERS):
        return "v1"
    return "none"


def v2_controller_state(root="/sys/fs/cgroup", wanted=V2_CONTROLLERS):
    """``(unavailable, disabled)``: wanted controllers the kernel does not offer on the root
    (``cgroup.controllers``), and offered ones not enabled for its children
    (``cgroup.subtree_control``, where craned creates its cgroups)."""
    offered = _read_words(os.path.join(root, "cgroup.controllers")) or []
    # The kernel lists bare names; a stand-in tree (a plain file) keeps the "+name" written.
    enabled = [
        word.lstrip("+") for word in _read_words(os.path.join(root, "cgroup.subtree_control")) or []
    ]
    unavailable = [name for name in wanted if name not in offered]
    disabled = [name for name in wanted if name in offered and name not in enabled]
    return unavailable, disabled


def v1_missing(root="/sys/fs/cgroup", wanted=V1_CONTROLLERS):
    """Wanted v1 hierarchies that are not mounted below ``root``."""
    return [name for name in wanted if not os.path.isdir(os.path.join(root, name))]


def cgroup_problems(node, root="/sys/fs/cgroup", wanted=V2_CONTROLLERS):
    """``{'mode', 'unavailable', 'disabled', 'errors'}`` for craned on ``node``."""
    mode = cgroup_mode(root)
    report = {"mode": mode, "unavailable": [], "disabled": [], "errors": []}
    if mode == "v2":
        report["unavailable"], report["disabled"] = v2_controller_state(root, wanted)
        if report["unavailable"]:
            report["errors"].append(
                f"{node}: the kernel offers no cgroup v2 controller "
                f"{', '.join(report['unavailable'])} on {root}"
            )
        if report["disabled"]:
            report["errors"].append(
                f"{node}: cgroup v2 controller(s) {', '.join(report['disabled'])} not enabled "
                f"in {root}/cgroup.subtree_control"
            )
    elif mode == "hybrid":
        report["errors"].append(
            f"{node}: {root} is a hybrid cgroup tree (cgroup2 at {root}/unified), which "
            "CraneSched treats as an undefined cgroup version; boot the node with pure cgroup "
            "v2 (systemd.unified_cgroup_hierarchy=1) or pure v1"
        )
    elif mode == "v1":
        report["unavailable"] = v1_missing(root)
        if report["unavailable"]:
            report["errors"].append(
                f"{node}: cgroup v1 hierarchy(ies) {', '.join(report['unavailable'])} not "
                f"mounted under {root}"
            )
    else:
        report["errors"].append(f"{node}: no cgroup filesystem mounted at {root}")
    return report


# --- name resolution -----------------------------------------------------------------------


def required_names(compute_hosts, control_machine, login_nodes=()):
    """Host names every node must resolve: each host of ``Nodes``, ``ControlMachine`` and the
    login (cfored) hosts, in that order, each once."""
    names = [str(name) for name in compute_hosts]
    if control_machine:
        names.append(str(control_machine))
    names.extend(str(name) for name in login_nodes or ())
    return list(dict.fromkeys(names))


def name_problems(node, hostname, names, resolve, compute_hosts=()):
    """Problems with name resolution on ``node``: each name in ``names`` that ``resolve``
    (name -> address or None) cannot resolve, and, on a compute node, a ``hostname``
    (gethostname()) that is not its ``Nodes`` entry (craned looks itself up by it)."""
    errors = []
    unresolved = [name for name in names if not resolve(name)]
    if unresolved:
        errors.append(f"{node} cannot resolve {', '.join(unresolved)}")
    if node in compute_hosts and hostname != node:
        errors.append(
            f"{node}: gethostname() returns {hostname!r}, but craned needs it to equal its "
            f"Nodes entry {node!r}"
        )
    return errors


def hosts_entries(mine_hosts, mine_addresses, names):
    """``{name: address}`` for /etc/hosts on sites without DNS, from the Salt mine:
    ``mine_hosts`` (minion id -> host name) and ``mine_addresses`` (minion id -> its IPv4
    addresses, the first one used). Only ``names`` are kept; a name no minion published is
    left out (the name gate then reports it)."""
    entries = {}
    for minion, host in sorted((mine_hosts or {}).items()):
        addresses = (mine_addresses or {}).get(minion) or []
        if isinstance(addresses, str):
            addresses = [addresses]
        if host in names and addresses and host not in entries:
            entries[host] = addresses[0]
    return {name: entries[name] for name in names if name in entries}


# --- MongoDB -------------------------------------------------------------------------------


def mongodb_problems(node, database, resolve, port_open, hello=None):
    """Problems cranectld on ``node`` would meet with MongoDB (it exits when it cannot
    connect): ``DbHost`` must resolve, ``DbPort`` answer, and, where ``hello`` can ask the
    server (an authenticated ``hello``; returns its reply), the server must be a member of
    the replica set ``DbReplSetName``. ``database`` is database.yaml's data; CraneSched's
    defaults are localhost:27017."""
    host = str(database.get("DbHost") or "localhost")
    port = int(database.get("DbPort") or 27017)
    where = f"MongoDB at {host}:{port} (DbHost/DbPort)"
    if not resolve(host):
        return [f"{node}: {where}: DbHost {host} does not resolve"]
    if not port_open(host, port):
        return [f"{node}: {where}: nothing answers on port {port}"]
    if hello is None:
        return []
    try:
        reply = hello(host, port)
    except Exception as exc:  # the driver's own errors, reported as they are
        return [f"{node}: {where}: hello failed: {exc}"]
    wanted = database.get("DbReplSetName")
    found = reply.get("setName")
    if wanted and found != wanted:
        shown = f"replica set {found!r}" if found else "no replica set"
        return [f"{node}: {where}: the server reports {shown}, DbReplSetName is {wanted!r}"]
    return []


# --- TLS -----------------------------------------------------------------------------------

#: TLS.* keys each daemon reads when TLS.Enabled: cranectld all five, craned and cfored the
#: internal pair and the CA, the CLIs the CA and the external certificate.
TLS_KEYS_BY_DAEMON = {
    "cranectld": (
        "CaFilePath",
        "InternalCertFilePath",
        "InternalKeyFilePath",
        "ExternalCertFilePath",
        "ExternalKeyFilePath",
    ),
    "craned": ("CaFilePath", "InternalCertFilePath", "InternalKeyFilePath"),
    "cfored": ("CaFilePath", "InternalCertFilePath", "InternalKeyFilePath"),
    "cli": ("CaFilePath", "ExternalCertFilePath"),
}


def tls_enabled(config):
    tls = (config or {}).get("TLS")
    enabled = tls.get("Enabled") if isinstance(tls, dict) else False
    if isinstance(enabled, str):
        return enabled.strip().lower() in ("y", "yes", "on", "true")
    return bool(enabled)


def tls_files(config, daemons):
    """``{TLS key: path}`` this node needs for ``daemons`` (``cranectld``, ``craned``,
    ``cfored``, ``cli``), in the order of the TLS section; {} while TLS is off."""
    if not tls_enabled(config):
        return {}
    tls = config["TLS"]
    wanted = {key for daemon in daemons for key in TLS_KEYS_BY_DAEMON.get(daemon, ())}
    order = TLS_KEYS_BY_DAEMON["cranectld"]
    return {key: str(tls.get(key) or "") for key in order if key in wanted}


def tls_problems(node, files):
    """Each TLS file the node's daemons would refuse: unset, missing/unreadable or empty
    (CraneSched: "UseTls is true, but <Key> is empty", "Read <Key> error", "the file specified
    by <Key> is empty")."""
    errors = []
    for key, path in files.items():
        if not path:
            errors.append(f"{node}: TLS.{key} is not set")
            continue
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            errors.append(f"{node}: {path} (TLS.{key}): {exc.strerror}")
            continue
        if not size:
            errors.append(f"{node}: {path} (TLS.{key}) is empty")
    return errors


def _nearest(key, known):
    match = difflib.get_close_matches(str(key), list(known), n=1)
    return f"; did you mean '{match[0]}'?" if match else ""


def tls_pillar_problems(pem_files, tls_config, manage):
    """``(errors, warnings)`` about ``crane:tls:files`` (file name -> PEM text). Messages
    name the file, never its content."""
    errors, warnings = [], []
    if not pem_files:
        return errors, warnings
    names = {str(path).rsplit("/", 1)[-1] for path in (tls_config or {}).values() if path}
    for name, text in pem_files.items():
        where = f"crane:tls:files:{name}"
        if not isinstance(text, str) or not text.strip():
            errors.append(f"{where}: must be the file's text (PEM), a non-empty string")
        elif tls_config and name not in names:
            warnings.append(f"{where}: no TLS.*FilePath of crane:config ends in {name}")
    if not manage:
        warnings.append("crane:tls:files: has no effect while crane:tls:manage is off")
    return errors, warnings


# --- MongoDB managed by the formula --------------------------------------------------------

#: MongoDB's keyFile: 6 to 1024 characters of the base64 set (whitespace is ignored).
KEYFILE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def mongodb_manage_problems(keyfile, database, node_names=()):
    """``(errors, warnings)`` for ``crane:mongodb:manage`` on a control node: the keyFile
    text, the admin credentials (``DbUser``/``DbPassword`` of ``crane:database``, the user the
    formula creates) and ``DbReplSetName``. Secrets are named, never shown."""
    errors, warnings = [], []
    key = "".join(str(keyfile or "").split())
    if not key:
        errors.append(
            "crane:mongodb:keyfile: required with crane:mongodb:manage (the replica set's "
            "keyFile, e.g. the output of `openssl rand -base64 756`)"
        )
    elif not 6 <= len(key) <= 1024 or set(key) - KEYFILE_CHARS:
        errors.append(
            "crane:mongodb:keyfile: MongoDB takes 6 to 1024 characters of the base64 set "
            "(A-Z, a-z, 0-9, +, /, =)"
        )
    database = database or {}
    for name in ("DbUser", "DbPassword", "DbReplSetName"):
        if not database.get(name):
            errors.append(
                f"crane:database:{name}: required with crane:mongodb:manage (the admin user "
                "the formula creates and the replica set it initiates)"
            )
    host = str(database.get("DbHost") or "localhost")
    local = {"localhost", "127.0.0.1", "::1", *node_names}
    if host not in local:
        warnings.append(
            f"crane:database:DbHost: cranectld connects to {host}, not to the MongoDB "
            "crane:mongodb:manage runs on this node"
        )
    return errors, warnings


# --- plugins -------------------------------------------------------------------------------

#: plugin.yaml's keys and the types cplugind (Go, yaml.v3) decodes them into.
PLUGIN_KEYS = {
    "Enabled": (bool,),
    "PlugindSockPath": (str,),
    "PlugindDebugLevel": (str,),
    "PlugindListenAddress": (str,),
    "PlugindListenPort": (str, int),
    "Plugins": (list,),
}
PLUGIN_ENTRY_KEYS = {"Name": (str,), "Path": (str,), "Config": (str,)}
TYPE_WORDS = {bool: "true or false", str: "a string", int: "a number", list: "a list"}


def _type_problem(value, types):
    if isinstance(value, bool) and bool not in types:
        return f"must be {' or '.join(TYPE_WORDS[t] for t in types)}, not a boolean"
    if not isinstance(value, types):
        return f"must be {' or '.join(TYPE_WORDS[t] for t in types)}"
    return None


def _mapping_problems(data, known, where, found):
    errors, warnings = found
    for key, value in data.items():
        if key not in known:
            warnings.append(f"{where}:{key}: not a plugin.yaml key{_nearest(key, known)}")
            continue
        problem = _type_problem(value, known[key])
        if problem:
            errors.append(f"{where}:{key}: {problem} (cplugind reads it with Go's yaml.v3)")


def plugin_problems(plugin, where="crane:plugin:config"):
    """``(errors, warnings)`` about plugin.yaml's data as cplugind reads it: key types,
    ``PlugindListenPort`` with ``PlugindListenAddress``, each plugin's ``Name`` and
    absolute ``Path``."""
    errors, warnings = [], []
    if not isinstance(plugin, dict):
        return [f"{where}: must be a mapping (the content of plugin.yaml)"], warnings
    _mapping_problems(plugin, PLUGIN_KEYS, where, (errors, warnings))
    if plugin.get("PlugindListenAddress") and not plugin.get("PlugindListenPort"):
        errors.append(
            f"{where}:PlugindListenPort: required when PlugindListenAddress is set "
            "(cplugind exits without it)"
        )
    entries = plugin.get("Plugins") if isinstance(plugin.get("Plugins"), list) else []
    for index, entry in enumerate(entries):
        here = f"{where}:Plugins[{index}]"
        if not isinstance(entry, dict):
            errors.append(f"{here}: must be a mapping with Name, Path and Config")
            continue
        _mapping_problems(entry, PLUGIN_ENTRY_KEYS, here, (errors, warnings))
        for key in ("Name", "Path"):
            if not entry.get(key):
                errors.append(f"{here}:{key}: required")
        path = entry.get("Path")
        if isinstance(path, str) and path and not path.startswith("/"):
            errors.append(f"{here}:Path: must be absolute, not {path!r}")
    return errors, warnings


def plugin_enabled(plugin):
    return isinstance(plugin, dict) and plugin.get("Enabled") is True


def plugin_file_problems(node, plugin, exists=os.path.exists):
    """Each plugin whose ``.so`` (``Path``) is not on ``node``: cplugind logs a warning and
    runs without it, so the gate says so before any restart."""
    if not plugin_enabled(plugin):
        return []
    errors = []
    for index, entry in enumerate(plugin.get("Plugins") or []):
        path = entry.get("Path") if isinstance(entry, dict) else None
        if path and not exists(path):
            errors.append(
                f"{node}: plugin {entry.get('Name')!r}: {path} (Plugins[{index}].Path) does "
                "not exist; cplugind would run without it"
            )
    return errors
