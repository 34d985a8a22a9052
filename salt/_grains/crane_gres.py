"""Grain ``crane_gres``: the accelerators this minion has, for targeting.

Shape (gres name -> type -> details), empty dict when there are none::

    crane_gres:
      gpu:
        a100:
          count: 4
          paths: [/dev/nvidia0, /dev/nvidia1, /dev/nvidia2, /dev/nvidia3]
          vendor: nvidia
          EnvInjector: nvidia
      npu:
        ascend:
          count: 8
          ...

so ``salt -G 'crane_gres:gpu:*' ...`` targets every GPU node and ``-G 'crane_gres:gpu:a100'``
the A100 nodes. ``name``, ``type`` and ``EnvInjector`` are what ``crane.gres_discover`` would
put in config.yaml for this host.

Cheap by default: a scan of device files under /dev (and /sys for DRM render nodes). The
vendor tools (nvidia-smi, rocm-smi, hy-smi, npu-smi) that turn the type into a model name
only run with the minion option ``crane_gres_probe_tools: True``; without them the type is
``crane_gres_default_types[vendor]`` (minion option) or the vendor name.

Minion options:

* ``crane_gres_grains: False`` switches the grain off.
* ``crane_gres_probe_tools: True`` runs the vendor tools.
* ``crane_gres_default_types: {nvidia: a100}`` type per vendor when tools are not used.
* ``crane_gres_dev_root`` / ``crane_gres_sys_root`` scan another tree (containers, tests).
"""

import importlib.util
import logging
import os
import sys

log = logging.getLogger(__name__)

__virtualname__ = "crane_gres"

_UTIL_MODULE = "crane_gres_util_for_grains"


def __virtual__():
    if __opts__.get("crane_gres_grains", True) is False:
        return (False, "crane_gres grain is switched off (crane_gres_grains: False)")
    if not sys.platform.startswith("linux"):
        return (False, "crane_gres grain only works on Linux")
    return __virtualname__


def _util_dirs():
    """Where the crane_gres util may live: the repo's salt/_utils next to salt/_grains, or
    the minion cache's extmods/utils next to extmods/grains."""
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = [os.path.join(here, os.pardir, "_utils"), os.path.join(here, os.pardir, "utils")]
    cachedir = __opts__.get("cachedir")
    if cachedir:
        dirs.append(os.path.join(cachedir, "extmods", "utils"))
    return [os.path.normpath(path) for path in dirs]


def _load_util():
    """The crane_gres util module, loaded by file path, or ``None`` if it cannot be found."""
    if _UTIL_MODULE in sys.modules:
        return sys.modules[_UTIL_MODULE]
    for directory in _util_dirs():
        path = os.path.join(directory, "crane_gres.py")
        if not os.path.isfile(path):
            continue
        try:
            spec = importlib.util.spec_from_file_location(_UTIL_MODULE, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except Exception as exc:  # a broken util must not break grains
            log.debug("crane_gres grain: cannot load %s: %s", path, exc)
            continue
        sys.modules[_UTIL_MODULE] = module
        return module
    log.debug("crane_gres grain: crane_gres util not found in %s", _util_dirs())
    return None


def crane_gres():
    """Return ``{"crane_gres": {name: {type: {count, paths, vendor, EnvInjector}}}}``."""
    util = _load_util()
    if util is None:
        return {}
    try:
        devices = util.discover_devices(
            dev_root=__opts__.get("crane_gres_dev_root", "/dev"),
            sys_root=__opts__.get("crane_gres_sys_root", "/sys"),
            default_types=__opts__.get("crane_gres_default_types") or {},
            probe_tools=__opts__.get("crane_gres_probe_tools", False) is True,
        )
    except Exception as exc:  # grains must never fail the minion
        log.debug("crane_gres grain: discovery failed: %s", exc)
        return {}
    return {"crane_gres": util.grain_value(devices)}
