"""Load one of the formula's Salt modules as a plain Python module with chosen dunders.

Unit tests call the functions directly: ``__utils__`` maps to the real utilities, while
``__salt__`` and the rest are what the test injects.
"""

import importlib.util
import pathlib

import crane_cinfo
import crane_config
import crane_drift
import crane_elastic
import crane_engine
import crane_firewall
import crane_gres
import crane_ha
import crane_hostlist
import crane_pam
import crane_prereq
import crane_state
import crane_upgrade

SALT_DIR = pathlib.Path(__file__).resolve().parents[2] / "salt"
UTIL_MODULES = (
    crane_cinfo,
    crane_config,
    crane_drift,
    crane_elastic,
    crane_engine,
    crane_firewall,
    crane_gres,
    crane_hostlist,
    crane_pam,
    crane_ha,
    crane_prereq,
    crane_state,
    crane_upgrade,
)


def real_utils():
    """``__utils__`` as the Salt loader would build it from salt/_utils."""
    utils = {}
    for module in UTIL_MODULES:
        name = module.__name__
        for attr in dir(module):
            value = getattr(module, attr)
            if callable(value) and not attr.startswith("_"):
                utils[f"{name}.{attr}"] = value
    return utils


def file_str(url, saltenv="base"):
    """``cp.get_file_str`` over the repository's file roots (False when there is no file)."""
    for root in (SALT_DIR / "states", SALT_DIR):
        path = root / url.removeprefix("salt://")
        if path.is_file():
            return path.read_text()
    return False


def load(kind, name="crane", **dunders):
    """Import ``salt/<kind>/<name>.py`` fresh and set its dunders."""
    path = SALT_DIR / kind / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"crane_test_{kind}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    defaults = {
        "__utils__": real_utils(),
        "__salt__": {"cp.get_file_str": file_str},
        "__grains__": {},
        "__pillar__": {},
        "__opts__": {"test": False},
        "__context__": {},
    }
    dunders.setdefault("__salt__", {})
    dunders["__salt__"] = {**defaults["__salt__"], **dunders["__salt__"]}
    for key, value in {**defaults, **dunders}.items():
        setattr(module, key, value)
    return module
