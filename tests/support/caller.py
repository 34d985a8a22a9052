"""A masterless Salt minion in this process, serving the repository's formula.

Render and functional tests use it to compile and apply `crane` with chosen grains (os family,
host name) and pillar, on the Salt release of the running virtualenv.
"""

import copy
import pathlib

import salt.client
import salt.config
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
PILLAR_DIR = REPO / "pillar"

OS_GRAINS = {
    "rocky9": {
        "os": "Rocky",
        "os_family": "RedHat",
        "osmajorrelease": 9,
        "osfinger": "Rocky Linux-9",
    },
    "centos7": {
        "os": "CentOS",
        "os_family": "RedHat",
        "osmajorrelease": 7,
        "osfinger": "CentOS Linux-7",
    },
    "debian12": {
        "os": "Debian",
        "os_family": "Debian",
        "osmajorrelease": 12,
        "osfinger": "Debian-12",
    },
    "ubuntu2204": {
        "os": "Ubuntu",
        "os_family": "Debian",
        "osmajorrelease": 22,
        "osfinger": "Ubuntu-22.04",
    },
}


def example_pillar(control=True):
    """The repository's example pillar, as the example top.sls gives it to a node."""
    data = yaml.safe_load((PILLAR_DIR / "crane" / "cluster.sls").read_text())
    if control:
        database = yaml.safe_load((PILLAR_DIR / "crane" / "database.sls").read_text())
        data["crane"].update(database["crane"])
    return data


class Minion:
    """One masterless minion; ``grains`` and ``pillar`` can change between calls."""

    def __init__(self, root):
        root = pathlib.Path(root)
        for sub in ("cache", "pki", "run", "log", "pillar", "conf"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.pillar_dir = root / "pillar"
        self.pillar_serial = 0
        opts = salt.config.minion_config(None)
        opts.update(
            {
                "id": "crane-test-minion",
                "root_dir": str(root),
                "conf_file": str(root / "conf" / "minion"),
                "cachedir": str(root / "cache"),
                "extension_modules": str(root / "cache" / "extmods"),
                "pki_dir": str(root / "pki"),
                "sock_dir": str(root / "run"),
                "log_file": str(root / "log" / "minion"),
                "file_client": "local",
                "file_roots": {"base": [str(REPO / "salt" / "states"), str(REPO / "salt")]},
                "pillar_roots": {"base": [str(root / "pillar")]},
                "grains": {},
                "state_output": "full",
            }
        )
        self.base_opts = opts
        self.caller = None
        self.grains = None
        self.dirty = False
        self.synced = False

    def _grains_dicts(self):
        return _unique([self.caller.opts["grains"], self.caller.sminion.functions.opts["grains"]])

    def call(self, fun, *args, grains=None, **kwargs):
        """Run ``fun`` with these static grains (a fresh loader whenever grains change)."""
        wanted = copy.deepcopy(grains or {})
        pillar = kwargs.pop("pillar", {})
        # Written before a new Caller starts, so the pillar it compiles is already this one.
        self._write_pillar_files(pillar)
        if self.dirty:
            # After a state run Salt 3006 keeps serving that run's pillar to later runs.
            self.caller = None
            self.dirty = False
            self.grains = None
        if self.caller is None:
            self.caller = salt.client.Caller(mopts=copy.deepcopy(self.base_opts))
            if not self.synced:
                # Once: the modules stay in extension_modules for the next Caller's loader.
                # refresh=False: with no minion daemon, each refresh event waits 1 s for one.
                self.caller.cmd("saltutil.sync_all", refresh=False)
                self.synced = True
            self.core_grains = copy.deepcopy(self.caller.opts["grains"])
        if self.grains != wanted:
            # Change the grains in place rather than reload every module: Salt 3008 shares one
            # dict, Salt 3006 gives the execution modules their own copy of the options.
            for live in self._grains_dicts():
                live.clear()
                live.update(copy.deepcopy(self.core_grains))
                live.update(copy.deepcopy(wanted))
            self.grains = wanted
        self._update_live_pillar(pillar)
        self.dirty = fun.startswith(("state.apply", "state.sls", "state.highstate"))
        return self.caller.cmd(fun, *args, **kwargs)

    def _write_pillar_files(self, pillar):
        """Serve ``pillar`` from pillar_roots (a ``pillar=`` override would be merged into
        whatever an earlier run left in memory)."""
        # A new file name each time: Salt's file client caches by name and modification time.
        self.pillar_serial += 1
        name = f"data{self.pillar_serial}"
        (self.pillar_dir / f"{name}.sls").write_text(yaml.safe_dump(pillar))
        (self.pillar_dir / "top.sls").write_text(yaml.safe_dump({"base": {"*": [name]}}))

    def _update_live_pillar(self, pillar):
        """The modules hold on to these dicts: change them in place."""
        functions = self.caller.sminion.functions
        # state.show_sls leaves the loader's __pillar__ holding the pillar it compiled
        loader_pillar = functions.pack.get("__pillar__")
        for live in _unique(
            [self.caller.opts["pillar"], functions.opts["pillar"]]
            + ([loader_pillar] if isinstance(loader_pillar, dict) else [])
        ):
            live.clear()
            live.update(copy.deepcopy(pillar))


def _unique(dicts):
    seen = {}
    for item in dicts:
        seen.setdefault(id(item), item)
    return list(seen.values())


def node_grains(os_name, host):
    """Grains of a node called ``host`` running ``os_name`` (a key of OS_GRAINS)."""
    return {**OS_GRAINS[os_name], "host": host, "nodename": host, "id": host}
