"""CraneSched GRES: config rules, accelerator discovery and automatic-mode merging.

Pure Python (stdlib only). Loaded by Salt's loader as a ``_utils`` module (the ``crane``
execution module wraps these functions) and imported directly by the tests.

The rules follow CraneSched's own code: ``Craned.cpp`` parses every ``Nodes[].gres`` entry on
start and exits on the first problem (for *every* node group, so one bad group stops craned on
every node); ``DeviceManager.cpp`` then ``stat()``s the device files of the local node only.
Each function here returns *all* problems instead of the first one. Messages name the node group
(the ``Nodes[].name`` expression), the gres as ``name:type``, the key or path, and quote
CraneSched's own log line where that helps to find it in the journal.
"""

import collections
import logging
import os
import re
import stat as statmod
import subprocess
import sys

# Siblings by name; the folder stays on sys.path (README, "How the utilities load").
_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")
if _FOLDER not in sys.path:
    sys.path.append(_FOLDER)

import crane_hostlist  # noqa: E402

log = logging.getLogger(__name__)

#: EnvInjector values craned accepts (``GetDeviceEnvInjectorFromStr``); absent or "" = common.
VALID_INJECTORS = ("common", "nvidia", "hip", "ascend")

#: Shared control nodes (relative to /dev). They are opened by every job of that vendor, so
#: listing one inside a gres device makes craned's deny list take it away from every job that
#: did not get that device (craned denies a job every file of every gres device on the node
#: it was not allocated).
CONTROL_NODES = frozenset(
    {
        "nvidiactl",
        "nvidia-uvm",
        "nvidia-uvm-tools",
        "nvidia-modeset",
        "nvidia-nvswitchctl",
        "nvidia-nvlink",
        "kfd",
        "mkfd",  # Hygon DTK
        "davinci_manager",
        "devmm_svm",
        "hisi_hdc",
        "cambricon_ctl",
        "gcuctl",
        "xpuctrl",
        "mxcd",  # MetaX
        "infiniband/rdma_cm",
    }
)
_CONTROL_PREFIXES = ("nvidia-caps/", "nvidia-caps-imex-channels/")

#: Paths that belong to a GPU, for the "name your GPUs gpu" warning.
_GPU_PATH = re.compile(r"^/dev/(nvidia\d+|iluvatar\d+|dri/(renderD|card)\d+)$")

_TOOL_TIMEOUT = 10
_MAX_MODEL_LEN = 32


# --------------------------------------------------------------------------- helpers


def _label(entry):
    """``name:type`` of a gres entry, with ``?`` for what is missing."""
    if not isinstance(entry, dict):
        return "?:?"
    return f"{entry.get('name', '?')}:{entry.get('type', '?')}"


def _where(group, entry):
    return f"node group '{group}', gres {_label(entry)}"


def _scalar_text(value):
    """The text yaml-cpp's ``Scalar()`` yields for a value rendered from pillar data."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return ""  # sequences, mappings and null have no scalar text


def _dev_relative(path):
    return path[len("/dev/") :] if path.startswith("/dev/") else None


def is_control_node(path):
    """True if ``path`` is a shared control node that must never be listed as a device."""
    rel = _dev_relative(path)
    if rel is None:
        return False
    return rel in CONTROL_NODES or rel.startswith(_CONTROL_PREFIXES)


def _has_cdi_regex(entry):
    value = entry.get("DeviceCDIRegex")
    return isinstance(value, (str, int, float)) and _scalar_text(value) != ""


def _has_cdi_list(entry):
    return isinstance(entry.get("DeviceCDIList"), list)


def _file_list(entry):
    """DeviceFileList if it is a sequence (craned ignores a scalar), else ``None``."""
    value = entry.get("DeviceFileList")
    return value if isinstance(value, list) else None


# --------------------------------------------------------------------------- devices


def device_paths(gres_entry):
    """The devices of one gres entry, each as its list of files, slot id first.

    Each ``DeviceFileRegex`` path is one device; each ``DeviceFileList`` item is one device
    whose first expanded path is the slot id. Both keys may be set; craned adds both.
    A scalar ``DeviceFileList`` is ignored, as craned does.

    Raises ``ValueError`` (``crane_hostlist.HostListError``) on an unparsable expression; run
    :func:`static_errors` first to get readable messages instead.
    """
    devices = []
    if "DeviceFileRegex" in gres_entry:
        expr = _scalar_text(gres_entry["DeviceFileRegex"])
        devices.extend([path] for path in crane_hostlist.expand(expr))
    for item in _file_list(gres_entry) or []:
        paths = crane_hostlist.expand(_scalar_text(item))
        if paths:
            devices.append(paths)
    return devices


def _cdi_names(entry):
    """CDI names of an entry (regex or list), ``None`` if the regex does not parse."""
    if _has_cdi_regex(entry):
        names, problem = crane_hostlist.try_expand(_scalar_text(entry["DeviceCDIRegex"]))
        return None if problem else names
    if _has_cdi_list(entry):
        return [_scalar_text(name) for name in entry["DeviceCDIList"]]
    return []


# --------------------------------------------------------------------------- static rules


def _name_type_errors(where, entry):
    errors = []
    for key in ("name", "type"):
        if key not in entry:
            errors.append(
                f"{where}: '{key}' is missing (cranectld and craned abort with an uncaught "
                "YAML exception)"
            )
        elif entry[key] is None:
            errors.append(f"{where}: '{key}' is null (rendered as the literal text 'null')")
        elif isinstance(entry[key], (list, dict)):
            errors.append(f"{where}: '{key}' must be a string (daemons abort)")
    return errors


def _injector_errors(where, entry):
    if "EnvInjector" not in entry:
        return []
    value = entry["EnvInjector"]
    text = "null" if value is None else _scalar_text(value)
    if isinstance(value, str) and value in ("", *VALID_INJECTORS):
        return []
    paths = _all_paths(entry)
    shown = crane_hostlist.compress(paths) if paths else "..."
    return [
        f"{where}: EnvInjector '{text}' is invalid for devices {shown}; valid "
        f"(case-sensitive): {', '.join(VALID_INJECTORS)} or empty; craned on those nodes: "
        f'"Invalid injector type:{text} for device [...]."'
    ]


def _regex_errors(where, entry):
    """DeviceFileRegex rules; returns (errors, device_count)."""
    if "DeviceFileRegex" not in entry:
        return [], 0
    value = entry["DeviceFileRegex"]
    expr = _scalar_text(value)
    paths, problem = crane_hostlist.try_expand(expr)
    if problem:
        return [
            f"{where}: DeviceFileRegex '{expr}' does not parse as a host list; CraneSched: "
            f'"Illegal gres {_label(entry)} DeviceFileRegex path string format."'
        ], 0
    if not paths:
        shown = expr if isinstance(value, str) else repr(value)
        return [
            f"{where}: DeviceFileRegex '{shown}' expands to zero paths; craned: "
            f'"GRES {_label(entry)} DeviceFileRegex expanded to zero paths."'
        ], 0
    return [], len(paths)


def _file_list_errors(where, entry):
    """DeviceFileList rules; returns (errors, device_count)."""
    if "DeviceFileList" not in entry:
        return [], 0
    items = _file_list(entry)
    if items is None:
        return [
            "{}: DeviceFileList must be a YAML sequence, not {!r}; cranectld: "
            '"Illegal gres {} DeviceFileList type. It must be a YAML sequence." '
            "(craned ignores it)".format(where, entry["DeviceFileList"], _label(entry))
        ], 0
    errors = []
    count = 0
    for item in items:
        if isinstance(item, (list, dict)) or item is None:
            errors.append(f"{where}: DeviceFileList item {item!r} must be a string")
            continue
        paths, problem = crane_hostlist.try_expand(_scalar_text(item))
        if problem:
            errors.append(
                f"{where}: DeviceFileList item '{item}' does not parse as a host list; CraneSched: "
                f'"Illegal gres {_label(entry)} DeviceFileList path string format."'
            )
        elif not paths:
            errors.append(
                f"{where}: DeviceFileList item '{item}' expands to zero paths; craned: "
                f'"GRES {_label(entry)} DeviceFileList entry expanded to zero paths."'
            )
        else:
            count += 1
    return errors, count


def _cdi_errors(where, entry, device_count):
    if _has_cdi_regex(entry) and _has_cdi_list(entry):
        return [
            f"{where}: both DeviceCDIRegex and DeviceCDIList are set; craned: "
            f'"GRES {_label(entry)} has both DeviceCDIRegex and DeviceCDIList configured. '
            'Only one is allowed."'
        ]
    names = _cdi_names(entry)
    if names is None:
        return [
            "{}: DeviceCDIRegex '{}' does not parse as a host list; craned: "
            '"Illegal gres {} DeviceCDIRegex string format."'.format(
                where, entry["DeviceCDIRegex"], _label(entry)
            )
        ]
    if names and len(names) != device_count:
        return [
            f"{where}: {len(names)} CDI name(s) for {device_count} device(s); craned: "
            f'"GRES {_label(entry)} CDI name count ({len(names)}) does not match device '
            f'count ({device_count}). They must be equal."'
        ]
    return []


def _entry_errors(group, entry):
    """Every config-level rule for one gres entry of one node group."""
    if not isinstance(entry, dict):
        return [f"node group '{group}': gres entry {entry!r} must be a mapping"]
    where = _where(group, entry)
    errors = _name_type_errors(where, entry) + _injector_errors(where, entry)
    regex_errors, regex_count = _regex_errors(where, entry)
    list_errors, list_count = _file_list_errors(where, entry)
    errors += regex_errors + list_errors
    if "DeviceFileRegex" not in entry and _file_list(entry) is None:
        errors.append(
            f"{where}: neither DeviceFileRegex nor a DeviceFileList sequence is set; craned: "
            '"At least one of DeviceFileRegex or DeviceFileList must be configured for '
            f'GRES {_label(entry)} device."'
        )
    if not regex_errors and not list_errors:
        errors += _cdi_errors(where, entry, regex_count + list_count)
    return errors


def _duplicate_errors(group, gres_list):
    counts = collections.Counter(
        (str(entry.get("name")), str(entry.get("type")))
        for entry in gres_list
        if isinstance(entry, dict) and "name" in entry and "type" in entry
    )
    return [
        f"node group '{group}', gres {n}:{t}: defined {c} times in one node entry; craned: "
        f'"Duplicate GRES definition: {n}:{t} appears more than once in the same node '
        'group. Each (name, type) pair must be unique."'
        for (n, t), c in sorted(counts.items())
        if c > 1
    ]


def static_errors(group, gres_list):
    """Config-level gres rules of one node group, as cranectld and craned apply them.

    ``group`` is the ``Nodes[].name`` expression, ``gres_list`` its ``gres`` value.
    Returns a list of messages (empty when the group is fine). craned applies these rules to
    every node group, so any message here stops craned on every node.
    """
    if gres_list is None:
        return []
    if not isinstance(gres_list, list):
        return [f"node group '{group}': gres must be a YAML sequence of entries"]
    errors = []
    for entry in gres_list:
        errors.extend(_entry_errors(group, entry))
    return errors + _duplicate_errors(group, gres_list)


# --------------------------------------------------------------------------- warnings


def _all_paths(entry):
    try:
        return [path for device in device_paths(entry) for path in device]
    except ValueError:
        return []


def _control_node_warnings(where, paths):
    return [
        f"{where}: {path} is a shared control node; craned denies every listed file of the "
        "devices a job did not get, so jobs would lose access to it. List only the per-device "
        "file(s)."
        for path in paths
        if is_control_node(path)
    ]


def _literal_bracket_warnings(where, paths):
    return [
        f"{where}: path '{path}' keeps its brackets literally (text after ']' must start "
        "with '.' to be expanded)"
        for path in paths
        if "[" in path
    ]


def _gpu_name_warnings(where, entry, paths):
    is_gpu = entry.get("EnvInjector") in ("nvidia", "hip") or any(
        _GPU_PATH.match(path) for path in paths
    )
    if not is_gpu or entry.get("name") == "gpu":
        return []
    return [
        f"{where}: GPUs should use the gres name 'gpu'; the CLIs' --gpus-per-node only counts the "
        "gres named 'gpu'"
    ]


def _ignored_key_warnings(where, entry):
    warnings = []
    if "DeviceCDIRegex" in entry and not _has_cdi_regex(entry):
        warnings.append(f"{where}: DeviceCDIRegex is not a non-empty string; craned ignores it")
    if "DeviceCDIList" in entry and not _has_cdi_list(entry):
        warnings.append(f"{where}: DeviceCDIList is not a sequence; craned ignores it")
    if _file_list(entry) == [] and "DeviceFileRegex" not in entry:
        warnings.append(f"{where}: DeviceFileList is empty; the gres has no devices")
    return warnings


def _duplicate_slot_warnings(group, gres_list):
    owners = collections.defaultdict(list)
    for entry in gres_list:
        if not isinstance(entry, dict):
            continue
        try:
            slots = [device[0] for device in device_paths(entry)]
        except ValueError:
            continue
        for slot in slots:
            owners[slot].append(_label(entry))
    return [
        "node group '{}': device {} is listed {} times ({}); craned keeps only one of them".format(
            group, slot, len(labels), ", ".join(labels)
        )
        for slot, labels in sorted(owners.items())
        if len(labels) > 1
    ]


def static_warnings(group, gres_list):
    """Things CraneSched accepts but that are probably wrong (control nodes, gres naming)."""
    if not isinstance(gres_list, list):
        return []
    warnings = []
    for entry in gres_list:
        if not isinstance(entry, dict):
            continue
        where = _where(group, entry)
        paths = _all_paths(entry)
        warnings += _control_node_warnings(where, paths)
        warnings += _literal_bracket_warnings(where, paths)
        warnings += _gpu_name_warnings(where, entry, paths)
        warnings += _ignored_key_warnings(where, entry)
    return warnings + _duplicate_slot_warnings(group, gres_list)


# --------------------------------------------------------------------------- node rules


def _node_groups(config):
    """``[(group_expr, [hosts], gres_list)]`` for every parsable ``Nodes`` entry."""
    groups = []
    for node_entry in (config or {}).get("Nodes") or []:
        if not isinstance(node_entry, dict) or "name" not in node_entry:
            continue
        expr = _scalar_text(node_entry["name"])
        hosts, problem = crane_hostlist.try_expand(expr)
        if not problem:
            groups.append((expr, hosts, node_entry.get("gres")))
    return groups


def _map_dev_root(path, dev_root):
    rel = _dev_relative(path)
    if rel is None or dev_root in ("/dev", "/dev/"):
        return path
    return os.path.join(dev_root, rel)


def _node_devices(node, groups):
    """Devices craned builds for ``node``: ``[(group, entry, [paths])]`` in config order.

    Entries with static errors are skipped (those errors are reported separately).
    """
    devices = []
    for expr, hosts, gres_list in groups:
        if node not in hosts or not isinstance(gres_list, list):
            continue
        for entry in gres_list:
            if _entry_errors(expr, entry):
                continue
            devices.extend((expr, entry, paths) for paths in device_paths(entry))
    return devices


def _stat_errors(node, devices, dev_root, stat):
    errors = []
    for group, entry, paths in devices:
        for path in paths:
            try:
                stat(_map_dev_root(path, dev_root))
            except OSError as exc:
                errors.append(
                    f"node {node}, {_where(group, entry)}: device file {path} is missing or "
                    f'unreadable ({exc.strerror}); craned: "Failed to stat device file {path} '
                    f'err:{exc.strerror}" then "Access Device {_label(entry)}:... failed."'
                )
    return errors


def _with_cdi(devices):
    """``{slot: (group, entry, cdi_name_or_None)}`` keyed like craned's device map."""
    slots = {}
    index = collections.Counter()
    for group, entry, paths in devices:
        key = (group, id(entry))
        names = _cdi_names(entry) or []
        cdi = names[index[key]] if index[key] < len(names) else None
        index[key] += 1
        slots[paths[0]] = (group, entry, cdi)
    return slots


def _partial_cdi_errors(node, slots):
    by_gres = collections.defaultdict(lambda: [[], []])
    for slot, (group, entry, cdi) in sorted(slots.items()):
        by_gres[_label(entry)][0 if cdi else 1].append((slot, group))
    errors = []
    for label, (with_cdi, without) in sorted(by_gres.items()):
        if with_cdi and without:
            errors.append(
                f"node {node}, gres {label}: {len(with_cdi)} slot(s) have CDI names but "
                f"{len(without)} do not (e.g. {without[0][0]} from node group "
                f"'{without[0][1]}'); craned: \"GRES {label} has inconsistent CDI "
                'configuration"'
            )
    return errors


def _cni_errors(node, slots):
    errors = []
    for slot, (group, entry, cdi) in sorted(slots.items()):
        pipeline = entry.get("DeviceCniPipeline")
        if "DeviceCniPipeline" not in entry:
            continue
        where = f"node {node}, {_where(group, entry)}, slot {slot}"
        if cdi is None:
            errors.append(
                f"{where}: DeviceCniPipeline '{pipeline}' is set but the device has no CDI "
                'name; craned: "DeviceCniPipeline requires CDI to extract device identifier."'
            )
        elif "=" not in cdi or not cdi.rsplit("=", 1)[1]:
            errors.append(
                f"{where}: CDI name '{cdi}' has no non-empty '=<device>' suffix; craned: "
                f"\"Malformed CDI FQN '{cdi}': expected '<kind>=<device-name>'\""
            )
    return errors


def node_errors(node, config, dev_root="/dev", stat=os.stat):
    """Every reason craned on ``node`` would refuse to start because of gres.

    Applies the static rules of every node group (craned checks them all on start), then
    this node's checks: each device file must ``stat()`` (``/dev/...`` paths are looked up
    under ``dev_root``), CDI all-or-none per (name, type), DeviceCniPipeline needs a CDI
    name with a non-empty ``=<device>`` suffix. A node in no ``Nodes`` group is an error.
    """
    groups = _node_groups(config)
    errors = []
    for expr, _hosts, gres_list in groups:
        errors.extend(static_errors(expr, gres_list))
    if not any(node in hosts for _expr, hosts, _gres in groups):
        errors.append(
            f'node {node} is not in any Nodes group; craned: "This machine {node} is not '
            'contained in Nodes!"'
        )
        return errors
    devices = _node_devices(node, groups)
    slots = _with_cdi(devices)
    errors += _stat_errors(node, devices, dev_root, stat)
    errors += _partial_cdi_errors(node, slots)
    errors += _cni_errors(node, slots)
    return errors


def node_warnings(node, config, dev_root="/dev", stat=os.stat):
    """Warnings for ``node``: static warnings of its groups, device files that are neither
    character nor block devices (craned then records them with access type 'a')."""
    warnings = []
    for expr, hosts, gres_list in _node_groups(config):
        if node in hosts:
            warnings.extend(static_warnings(expr, gres_list))
    for group, entry, paths in _node_devices(node, _node_groups(config)):
        for path in paths:
            try:
                mode = stat(_map_dev_root(path, dev_root)).st_mode
            except OSError:
                continue
            if not (statmod.S_ISCHR(mode) or statmod.S_ISBLK(mode)):
                warnings.append(f"node {node}, {_where(group, entry)}: {path} is not a device file")
    return warnings


# --------------------------------------------------------------------------- discovery

#: vendor -> (gres name, EnvInjector). EnvInjector values from CraneSched's docs table
#: (config.md "GRES"); vendors CraneSched has no injector for get "common": the device cgroup
#: still isolates the devices, only no *_VISIBLE_DEVICES variable is set.
VENDORS = {
    "nvidia": ("gpu", "nvidia"),
    "iluvatar": ("gpu", "nvidia"),
    "amd": ("gpu", "hip"),
    "hygon": ("gpu", "hip"),
    "hip": ("gpu", "hip"),  # AMD or Hygon DCU, sysfs could not tell which
    "ascend": ("npu", "ascend"),
    "cambricon": ("mlu", "common"),
    "enflame": ("gcu", "common"),
    "kunlunxin": ("xpu", "common"),
}

#: Per-device files directly under /dev: (file-name pattern, vendor). Shared control nodes
#: (nvidiactl, davinci_manager, cambricon_ctl, gcuctl, xpuctrl, ...) never match.
_DEV_PATTERNS = (
    # CraneSched docs, config.md GRES table: /dev/nvidia[0-7], /dev/iluvatar0, /dev/davinci[0-7].
    (re.compile(r"nvidia(\d+)"), "nvidia"),
    (re.compile(r"iluvatar(\d+)"), "iluvatar"),
    (re.compile(r"davinci(\d+)"), "ascend"),
    # Cambricon/cambricon-k8s-device-plugin, device-plugin/pkg/mlu/const.go: per-card
    # /dev/cambricon_devN; /dev/cambricon_ctl is the shared monitor node.
    (re.compile(r"cambricon_dev(\d+)"), "cambricon"),
    # OpenI KrakenPlug, common/device/enflame: per-card /dev/gcuN; /dev/gcuctl is shared.
    (re.compile(r"gcu(\d+)"), "enflame"),
    # PaddlePaddle Kunlunxin XPU docker instructions: /dev/xpuN per card plus shared /dev/xpuctrl.
    (re.compile(r"xpu(\d+)"), "kunlunxin"),
)

#: DRM render nodes /dev/dri/renderDN (CraneSched docs: AMD / Hygon DCU, EnvInjector hip).
#: The owner comes from /sys/class/drm/renderDN/device/vendor (PCI vendor ids, pci.ids):
#: 0x1002 AMD, 0x1d94 Chengdu Haiguang (Hygon). Other vendors' render nodes (an NVIDIA card
#: with nvidia-drm, an Intel iGPU, a BMC) are not compute devices here.
_DRM_VENDORS = {"0x1002": "amd", "0x1d94": "hygon"}
_RENDER = re.compile(r"renderD(\d+)")

_BRAND_WORDS = frozenset(
    [
        "nvidia",
        "tesla",
        "geforce",
        "quadro",
        "amd",
        "radeon",
        "instinct",
        "iluvatar",
        "huawei",
        "ascend",
        "hygon",
        "dcu",
    ]
)
_SERIES_WORDS = frozenset({"rtx", "gtx", "titan"})
_VARIANT_WORD = re.compile(r"^(sxm\d*|pcie|\d+gb|hbm\d*e?|nvl\d*|oam)$")
_MODEL_TOKEN = re.compile(r"^(?=.*\d)(?=.*[a-z])[a-z0-9][a-z0-9._-]*$")


def model_token(raw):
    """Lower-case model token from a vendor tool's product name, or ``None`` if implausible.

    Rule: lower-case; split on blanks, ``/ ( ) [ ] ,``; drop brand words (NVIDIA, Tesla,
    GeForce, AMD, Instinct, ...); take the first word, glued to the next one if it is a series
    word (``rtx 4090`` -> ``rtx4090``); cut it at the first ``-`` part that names a form factor
    or memory (``sxm4``, ``pcie``, ``80gb``, ``hbm3``, ``nvl``). The result must contain a digit
    and a letter and be at most 32 characters of ``[a-z0-9._-]``; anything else (error text,
    ``[N/A]``, PCI ids) is rejected. Examples: "NVIDIA A100-SXM4-80GB" -> "a100",
    "NVIDIA H100 80GB HBM3" -> "h100", "AMD Instinct MI250X / MI250" -> "mi250x",
    "910B3" -> "910b3", "K100_AI" -> "k100_ai".
    """
    words = [w for w in re.split(r"[\s/()\[\],]+", str(raw).strip().lower()) if w]
    words = [w for w in words if w not in _BRAND_WORDS]
    if not words:
        return None
    first = words[0]
    if first in _SERIES_WORDS and len(words) > 1:
        first += words[1]
    kept = []
    for part in first.split("-"):
        if _VARIANT_WORD.match(part):
            break
        kept.append(part)
    token = "-".join(kept)
    if len(token) > _MAX_MODEL_LEN or not _MODEL_TOKEN.match(token):
        return None
    if re.match(r"^0x[0-9a-f]+$", token):
        return None
    return token


def run_tool(argv, timeout=_TOOL_TIMEOUT):
    """Default ``run``: execute ``argv`` without a shell; ``(retcode, stdout)``.

    A missing binary or a timeout gives ``(127, "")``: callers treat it like any failure.
    """
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("crane_gres: %s is not usable: %s", argv[0], exc)
        return 127, ""
    return proc.returncode, proc.stdout


def _tool_output(run, argv):
    """stdout of a vendor tool, or ``None`` when it is missing, fails or misbehaves."""
    try:
        retcode, out = run(argv)
    except Exception as exc:  # a broken tool must never break discovery
        log.debug("crane_gres: running %s raised %s", argv[0], exc)
        return None
    if retcode != 0 or not isinstance(out, str):
        log.debug("crane_gres: %s exited %s; falling back", argv[0], retcode)
        return None
    return out


def _nvidia_models(run):
    """``[(minor, token)]`` from nvidia-smi; the minor number N names /dev/nvidiaN."""
    argv = ["nvidia-smi", "--query-gpu=minor_number,name", "--format=csv,noheader"]
    out = _tool_output(run, argv) or ""
    models = []
    for line in out.splitlines():
        minor, _, name = line.partition(",")
        token = model_token(name)
        if token:
            models.append((int(minor) if minor.strip().isdigit() else None, token))
    return models


_CARD_SERIES = re.compile(r"^\s*[A-Z]+\[\d+\]\s*:\s*Card Series:\s*(.+?)\s*$")


def _smi_series(run, tool):
    """``[(None, token)]`` from ``rocm-smi``/``hy-smi --showproductname`` "Card Series"."""
    out = _tool_output(run, [tool, "--showproductname"]) or ""
    tokens = [model_token(m.group(1)) for m in map(_CARD_SERIES.match, out.splitlines()) if m]
    return [(None, token) for token in tokens if token]


_NPU_ROW = re.compile(r"^\|\s*\d+\s+([A-Za-z0-9][\w.-]*)\s*\|")


def _npu_models(run):
    """``[(None, token)]`` from the first column pair of ``npu-smi info`` ("| 0  910B3 |")."""
    out = _tool_output(run, ["npu-smi", "info"]) or ""
    tokens = [model_token(m.group(1)) for m in map(_NPU_ROW.match, out.splitlines()) if m]
    return [(None, token) for token in tokens if token]


def _first_answer(*probes):
    for probe in probes:
        models = probe()
        if models:
            return models
    return []


def probe_models(vendor, run):
    """Model tokens a vendor tool reports: ``[(device_index_or_None, token)]``; ``[]`` if none.

    Tools: nvidia-smi (NVIDIA), rocm-smi (AMD), hy-smi then rocm-smi (Hygon), npu-smi (Ascend).
    """
    if vendor == "nvidia":
        return _nvidia_models(run)
    if vendor == "amd":
        return _first_answer(lambda: _smi_series(run, "rocm-smi"))
    if vendor in ("hygon", "hip"):
        return _first_answer(
            lambda: _smi_series(run, "hy-smi"), lambda: _smi_series(run, "rocm-smi")
        )
    if vendor == "ascend":
        return _npu_models(run)
    return []


def _fallback_type(vendor, default_types):
    """Pillar default for the vendor, else the vendor name itself (e.g. ``gpu:nvidia``).

    The vendor name keeps (name, type) unique on a node with accelerators of two vendors.
    """
    value = (default_types or {}).get(vendor)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return vendor


def resolve_types(vendor, indices, models, default_types=None):
    """``{index: type}``: per device from a mapped tool answer, else one model for all
    devices when the tool reports exactly one distinct model, else the fallback type."""
    mapped = {index: token for index, token in models if index is not None}
    if models and all(index in mapped for index in indices):
        return {index: mapped[index] for index in indices}
    distinct = {token for _index, token in models}
    if len(distinct) == 1:
        token = distinct.pop()
        return dict.fromkeys(indices, token)
    if distinct:
        log.debug("crane_gres: %s reports models %s without device mapping", vendor, distinct)
    return dict.fromkeys(indices, _fallback_type(vendor, default_types))


def _is_char_device(path):
    try:
        return statmod.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _scan_dev(dev_root):
    """``{vendor: [index]}`` for per-device character files directly under ``dev_root``."""
    found = collections.defaultdict(list)
    for name in _listdir(dev_root):
        for pattern, vendor in _DEV_PATTERNS:
            match = pattern.fullmatch(name)
            if match and _is_char_device(os.path.join(dev_root, name)):
                found[vendor].append(int(match.group(1)))
    return found


def _read_text(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip().lower()
    except OSError:
        return None


def _render_vendor(sys_root, render_name, has_kfd):
    """Owner of a render node from sysfs; without sysfs, ``hip`` if /dev/kfd exists."""
    pci_vendor = _read_text(os.path.join(sys_root, "class", "drm", render_name, "device", "vendor"))
    if pci_vendor is None:
        return "hip" if has_kfd else None
    return _DRM_VENDORS.get(pci_vendor)


def _scan_dri(dev_root, sys_root):
    """``{vendor: [index]}`` for AMD / Hygon render nodes under ``dev_root/dri``."""
    found = collections.defaultdict(list)
    has_kfd = _is_char_device(os.path.join(dev_root, "kfd"))
    dri = os.path.join(dev_root, "dri")
    for name in _listdir(dri):
        match = _RENDER.fullmatch(name)
        if not match or not _is_char_device(os.path.join(dri, name)):
            continue
        vendor = _render_vendor(sys_root, name, has_kfd)
        if vendor:
            found[vendor].append(int(match.group(1)))
    return found


def _device_path(vendor, index):
    for pattern, owner in _DEV_PATTERNS:
        if owner == vendor:
            return "/dev/" + pattern.pattern.replace(r"(\d+)", str(index))
    return f"/dev/dri/renderD{index}"


def scan_devices(dev_root="/dev", sys_root="/sys"):
    """``{vendor: sorted [index]}`` of accelerators present as character devices."""
    found = _scan_dev(dev_root)
    for vendor, indices in _scan_dri(dev_root, sys_root).items():
        found[vendor].extend(indices)
    return {vendor: sorted(indices) for vendor, indices in sorted(found.items())}


def discover_devices(
    dev_root="/dev", run=None, default_types=None, sys_root="/sys", probe_tools=True
):
    """Discovered accelerators with their vendor: ``[{vendor, name, type, EnvInjector,
    paths}]`` sorted by (name, type); ``paths`` are ``/dev/...`` paths, one per device."""
    run = run or run_tool
    devices = {}
    for vendor, indices in scan_devices(dev_root, sys_root).items():
        models = probe_models(vendor, run) if probe_tools else []
        types = resolve_types(vendor, indices, models, default_types)
        for index in indices:
            device = devices.setdefault((vendor, types[index]), _new_device(vendor, types[index]))
            device["paths"].append(_device_path(vendor, index))
    return _unique_name_type(list(devices.values()))


def _new_device(vendor, gtype):
    gres, injector = VENDORS[vendor]
    return {"vendor": vendor, "name": gres, "type": gtype, "EnvInjector": injector, "paths": []}


def _unique_name_type(devices):
    """Rename a type that two vendors share (``type-vendor``): craned rejects duplicates."""
    owners = collections.Counter((d["name"], d["type"]) for d in devices)
    for device in devices:
        if owners[(device["name"], device["type"])] > 1:
            device["type"] = "{}-{}".format(device["type"], device["vendor"])
    return sorted(devices, key=lambda d: (d["name"], d["type"]))


def device_file_key(paths):
    """``{"DeviceFileRegex": <compressed>}``, or a DeviceFileList when the compressed form
    would not expand back to exactly ``paths``."""
    expr = crane_hostlist.compress(list(paths))
    try:
        same = sorted(crane_hostlist.expand(expr)) == sorted(paths)
    except ValueError:
        same = False
    if same:
        return {"DeviceFileRegex": expr}
    return {"DeviceFileList": list(paths)}


def as_gres_entry(device):
    """config.yaml gres entry for one :func:`discover_devices` item."""
    entry = {"name": device["name"], "type": device["type"], "EnvInjector": device["EnvInjector"]}
    entry.update(device_file_key(device["paths"]))
    return entry


def discover(dev_root="/dev", run=None, default_types=None, sys_root="/sys", probe_tools=True):
    """Accelerators present on this host, as config.yaml gres entries.

    ``[{"name", "type", "EnvInjector", "DeviceFileRegex"}]``: only character devices count,
    shared control nodes never. ``type`` comes from the vendor tool when it works (see
    :func:`model_token`), else ``default_types[vendor]`` (pillar), else the vendor name.
    ``run(argv) -> (retcode, stdout)`` runs vendor tools (default: subprocess, no shell,
    short timeout); a missing, failing or garbled tool only means the fallback type.
    """
    devices = discover_devices(dev_root, run, default_types, sys_root, probe_tools)
    return [as_gres_entry(device) for device in devices]


def grain_value(devices):
    """Grain shape ``{name: {type: {count, paths, vendor, EnvInjector}}}`` from
    :func:`discover_devices` (so ``-G 'crane_gres:gpu:*'`` matches any GPU node)."""
    value = {}
    for device in devices:
        value.setdefault(device["name"], {})[device["type"]] = {
            "count": len(device["paths"]),
            "paths": list(device["paths"]),
            "vendor": device["vendor"],
            "EnvInjector": device["EnvInjector"],
        }
    return value


# --------------------------------------------------------------------------- automatic mode


def _signature(entries):
    """Comparable form of a node's discovered entries: sorted (name, type, injector, devices)."""
    signature = []
    for entry in entries or []:
        devices = tuple(tuple(paths) for paths in sorted(device_paths(entry)))
        signature.append((entry["name"], entry["type"], entry.get("EnvInjector", ""), devices))
    return tuple(sorted(signature))


def _describe(entries):
    if not entries:
        return "no accelerators"
    parts = []
    for entry in sorted(entries, key=lambda e: (e["name"], e["type"])):
        files = entry.get("DeviceFileRegex") or ",".join(entry.get("DeviceFileList", []))
        parts.append("{}:{} x{} ({})".format(
            entry["name"], entry["type"], len(device_paths(entry)), files
        ))  # fmt: skip
    return ", ".join(parts)


def _group_variants(nodes, discovered_per_node):
    """``({signature: [nodes]}, {signature: entries}, [nodes without data])``."""
    variants = collections.defaultdict(list)
    examples = {}
    missing = []
    for node in nodes:
        if node not in discovered_per_node:
            missing.append(node)
            continue
        entries = discovered_per_node[node] or []
        signature = _signature(entries)
        variants[signature].append(node)
        examples.setdefault(signature, entries)
    return variants, examples, missing


def _disagreement(group, variants, examples, missing):
    parts = [
        f"{crane_hostlist.compress(nodes)}: {_describe(examples[signature])}"
        for signature, nodes in sorted(variants.items(), key=lambda kv: kv[1])
    ]
    if missing:
        parts.append(f"{crane_hostlist.compress(missing)}: no discovery data")
    return "node group '{}': nodes disagree, not guessing; {}".format(group, "; ".join(parts))


def groups_to_nodes(config):
    """``{Nodes[].name expression: [hosts]}`` of a cluster config, for :func:`merge_discovered`.

    Groups whose name does not parse are left out (the config rules report them).
    """
    return {expr: hosts for expr, hosts, _gres in _node_groups(config)}


def merge_discovered(groups_to_nodes, discovered_per_node):
    """Per node group gres from what its nodes discovered (automatic mode).

    ``groups_to_nodes``: ``{group_expr: [node, ...]}`` (a host-list string is expanded).
    ``discovered_per_node``: ``{node: [gres entries from discover()]}``, e.g. from the mine.
    Returns ``(gres_per_group, disagreements)``: ``{group_expr: [entries]}`` for groups whose
    nodes all report the same devices, and ``{group_expr: message}`` for the others,
    including groups with a node that sent no data. Nothing is guessed.
    """
    gres_per_group = {}
    disagreements = {}
    for group, members in groups_to_nodes.items():
        nodes = crane_hostlist.expand(members) if isinstance(members, str) else members
        variants, examples, missing = _group_variants(nodes, discovered_per_node)
        if len(variants) == 1 and not missing:
            (signature,) = variants
            entries = examples[signature]
            gres_per_group[group] = sorted(
                (dict(entry) for entry in entries), key=lambda e: (e["name"], e["type"])
            )
        else:
            disagreements[group] = _disagreement(group, variants, examples, missing)
    return gres_per_group, disagreements


def nodes_from_mine(discovered_by_minion, host_by_minion):
    """``{host name: entries}`` from two mine answers keyed by minion id: the discovered
    gres entries and each minion's host name (craned matches host names, not minion ids).
    A minion without a host name or with an answer that is not a list is left out."""
    nodes = {}
    for minion, entries in (discovered_by_minion or {}).items():
        host = (host_by_minion or {}).get(minion)
        if host and isinstance(entries, list):
            nodes[host] = entries
    return nodes


def fill_config(config, discovered_per_node):
    """Automatic mode: ``(config, problems)`` where each ``Nodes`` group without a ``gres``
    key of its own gets what its nodes discovered (nothing when they have no accelerators),
    and ``problems`` is ``{group: message}`` for groups whose nodes disagree or sent no data.
    ``config`` itself is not changed."""
    merged, problems = merge_discovered(groups_to_nodes(config), discovered_per_node)
    filled = dict(config)
    groups = []
    for group in config.get("Nodes") or []:
        key = _scalar_text(group["name"]) if isinstance(group, dict) and "name" in group else None
        if key is not None and "gres" in group:
            problems.pop(key, None)  # the pillar's own gres wins
            groups.append(group)
        elif merged.get(key):
            groups.append({**group, "gres": merged[key]})
        else:
            groups.append(group)
    if "Nodes" in config:
        filled["Nodes"] = groups
    return filled, problems


_NVIDIA_DEVICE = re.compile(r"/dev/nvidia(\d+)")


def nvidia_minors(node, config):
    """Minor numbers N of the ``/dev/nvidiaN`` files ``node``'s gres entries name, sorted:
    what ``nvidia-modprobe -c N`` must create before craned starts."""
    minors = set()
    for _group, _entry, paths in _node_devices(node, _node_groups(config)):
        for path in paths:
            match = _NVIDIA_DEVICE.fullmatch(_scalar_text(path))
            if match:
                minors.add(int(match.group(1)))
    return sorted(minors)
