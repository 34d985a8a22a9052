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

import logging
import sys

log = logging.getLogger(__name__)

__virtualname__ = "crane_gres"


def __virtual__():
    if __opts__.get("crane_gres_grains", True) is False:
        return (False, "crane_gres grain is switched off (crane_gres_grains: False)")
    if not sys.platform.startswith("linux"):
        return (False, "crane_gres grain only works on Linux")
    return __virtualname__


def crane_gres():
    """Return ``{"crane_gres": {name: {type: {count, paths, vendor, EnvInjector}}}}``."""
    # Salt gives grain modules __utils__; the util arrives with saltutil.sync_all (or
    # sync_grains, which syncs utils too): until then the grain is empty.
    if "crane_gres.discover_devices" not in __utils__:
        log.debug("crane_gres grain: the crane_gres util is not synced")
        return {}
    try:
        devices = __utils__["crane_gres.discover_devices"](
            dev_root=__opts__.get("crane_gres_dev_root", "/dev"),
            sys_root=__opts__.get("crane_gres_sys_root", "/sys"),
            default_types=__opts__.get("crane_gres_default_types") or {},
            probe_tools=__opts__.get("crane_gres_probe_tools", False) is True,
        )
    except Exception as exc:  # grains must never fail the minion
        log.debug("crane_gres grain: discovery failed: %s", exc)
        return {}
    return {"crane_gres": __utils__["crane_gres.grain_value"](devices)}
