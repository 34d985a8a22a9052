"""crane_gres.discover on fake device trees: vendors, control nodes, gaps and vendor tools."""

import os
import stat
import textwrap

import crane_gres
import crane_hostlist
import pytest


def no_tools(argv):
    """A ``run`` for hosts without vendor tools (what a missing binary looks like)."""
    return 127, ""


def answers(**outputs):
    """A ``run`` that answers per tool name with ``(retcode, stdout)`` and records calls."""

    def run(argv):
        run.calls.append(list(argv))
        return outputs.get(argv[0].replace("-", "_"), (127, ""))

    run.calls = []
    return run


def discover(tree, run=no_tools, **kwargs):
    return crane_gres.discover(tree.root, run=run, sys_root=tree.sys_root, **kwargs)


NVIDIA_CONTROL = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")


# --------------------------------------------------------------------------- vendors


def test_no_devices(fake_dev):
    assert discover(fake_dev) == []


def test_nvidia_without_tool(fake_dev):
    fake_dev.chr("nvidia0", "nvidia1", "nvidia2", "nvidia3", *NVIDIA_CONTROL)
    fake_dev.chr("nvidia-caps/nvidia-cap1", "nvidia-caps/nvidia-cap2")
    assert discover(fake_dev) == [
        {
            "name": "gpu",
            "type": "nvidia",
            "EnvInjector": "nvidia",
            "DeviceFileRegex": "/dev/nvidia[0-3]",
        }
    ]


def test_amd_render_nodes_by_sysfs_vendor(fake_dev):
    fake_dev.chr("kfd", "dri/card0", "dri/card1", "dri/renderD128", "dri/renderD129")
    fake_dev.drm_vendor("renderD128", "0x1002").drm_vendor("renderD129", "0x1002")
    assert discover(fake_dev) == [
        {
            "name": "gpu",
            "type": "amd",
            "EnvInjector": "hip",
            "DeviceFileRegex": "/dev/dri/renderD[128-129]",
        }
    ]


def test_hygon_dcu_is_told_apart_from_amd(fake_dev):
    fake_dev.chr("kfd", "mkfd", "dri/renderD128", "dri/renderD129", "dri/renderD130")
    fake_dev.drm_vendor("renderD128", "0x1d94").drm_vendor("renderD129", "0x1d94")
    fake_dev.drm_vendor("renderD130", "0x1002")
    entries = discover(fake_dev)
    assert [(e["type"], e["DeviceFileRegex"]) for e in entries] == [
        ("amd", "/dev/dri/renderD130"),
        ("hygon", "/dev/dri/renderD[128-129]"),
    ]
    assert {e["EnvInjector"] for e in entries} == {"hip"}


def test_render_nodes_without_sysfs_are_one_hip_entry_when_kfd_exists(fake_dev):
    fake_dev.chr("kfd", "dri/renderD128", "dri/renderD129")
    (entry,) = discover(fake_dev)
    assert (entry["type"], entry["EnvInjector"]) == ("hip", "hip")


def test_render_nodes_of_other_vendors_are_ignored(fake_dev):
    fake_dev.chr("dri/renderD128", "dri/renderD129", "dri/renderD130")
    fake_dev.drm_vendor("renderD128", "0x8086")  # Intel iGPU
    fake_dev.drm_vendor("renderD129", "0x10de")  # NVIDIA via nvidia-drm: counted as nvidiaN
    assert discover(fake_dev) == []  # renderD130: no sysfs and no /dev/kfd


def test_ascend(fake_dev):
    fake_dev.chr(*[f"davinci{i}" for i in range(8)], "davinci_manager", "devmm_svm", "hisi_hdc")
    assert discover(fake_dev) == [
        {
            "name": "npu",
            "type": "ascend",
            "EnvInjector": "ascend",
            "DeviceFileRegex": "/dev/davinci[0-7]",
        }
    ]


def test_iluvatar_uses_the_nvidia_injector(fake_dev):
    fake_dev.chr("iluvatar0", "iluvatar1")
    assert discover(fake_dev) == [
        {
            "name": "gpu",
            "type": "iluvatar",
            "EnvInjector": "nvidia",
            "DeviceFileRegex": "/dev/iluvatar[0-1]",
        }
    ]


@pytest.mark.parametrize(
    ("files", "name", "regex"),
    [
        (
            ["cambricon_dev0", "cambricon_dev1", "cambricon_ctl", "cambricon_ipcm0"],
            "mlu",
            "/dev/cambricon_dev[0-1]",
        ),
        (["gcu0", "gcu1", "gcuctl"], "gcu", "/dev/gcu[0-1]"),
        (["xpu0", "xpu1", "xpuctrl"], "xpu", "/dev/xpu[0-1]"),
    ],
)
def test_further_vendors_without_injector(fake_dev, files, name, regex):
    fake_dev.chr(*files)
    (entry,) = discover(fake_dev)
    assert (entry["name"], entry["EnvInjector"], entry["DeviceFileRegex"]) == (
        name,
        "common",
        regex,
    )


def test_mixed_vendors(fake_dev):
    fake_dev.chr("nvidia0", "nvidia1", "nvidiactl", "davinci0", "davinci_manager", "iluvatar0")
    entries = discover(fake_dev)
    assert [(e["name"], e["type"], e["DeviceFileRegex"]) for e in entries] == [
        ("gpu", "iluvatar", "/dev/iluvatar0"),
        ("gpu", "nvidia", "/dev/nvidia[0-1]"),
        ("npu", "ascend", "/dev/davinci0"),
    ]


# --------------------------------------------------------------------------- what does not count


def test_regular_files_directories_and_control_nodes_do_not_count(fake_dev):
    fake_dev.file("nvidia0", "davinci0", "dri/renderD128")
    os.mkdir(fake_dev.path("nvidia1"))
    fake_dev.chr(*NVIDIA_CONTROL, "kfd", "davinci_manager", "devmm_svm", "hisi_hdc")
    fake_dev.chr("nvidia-nvswitchctl", "nvidia-nvswitch0", "nvidia0x", "davinci")
    fake_dev.drm_vendor("renderD128", "0x1002")
    assert discover(fake_dev) == []


def test_only_character_devices_count(fake_dev):
    os.mknod(fake_dev.path("nvidia0"), 0o600 | stat.S_IFBLK, os.makedev(8, 0))
    fake_dev.chr("nvidia1")
    assert [e["DeviceFileRegex"] for e in discover(fake_dev)] == ["/dev/nvidia1"]


def test_numbering_gaps_reexpand_to_exactly_the_files(fake_dev):
    present = ["nvidia0", "nvidia1", "nvidia3", "nvidia10"]
    fake_dev.chr(*present)
    (entry,) = discover(fake_dev)
    assert entry["DeviceFileRegex"] == "/dev/nvidia[0-1,3,10]"
    assert sorted(crane_hostlist.expand(entry["DeviceFileRegex"])) == sorted(
        "/dev/" + name for name in present
    )


def test_device_list_fallback_when_compression_does_not_reexpand(monkeypatch):
    monkeypatch.setattr(crane_hostlist, "compress", lambda names: "/dev/nvidia[0-9]")
    assert crane_gres.device_file_key(["/dev/nvidia0", "/dev/nvidia2"]) == {
        "DeviceFileList": ["/dev/nvidia0", "/dev/nvidia2"]
    }


def test_discovered_entries_pass_cranesched_rules_on_the_same_tree(fake_dev):
    fake_dev.chr("nvidia0", "nvidia2", "nvidiactl", "davinci0", "davinci1", "kfd", "dri/renderD128")
    fake_dev.drm_vendor("renderD128", "0x1d94")
    gres = discover(fake_dev)
    config = {"Nodes": [{"name": "gpu[01-02]", "cpu": 8, "memory": "8G", "gres": gres}]}
    assert crane_gres.static_errors("gpu[01-02]", gres) == []
    assert crane_gres.static_warnings("gpu[01-02]", gres) == []
    assert crane_gres.node_errors("gpu01", config, dev_root=fake_dev.root) == []


# --------------------------------------------------------------------------- vendor tools

NVIDIA_SMI_A100 = "0, NVIDIA A100-SXM4-80GB\n1, NVIDIA A100-SXM4-80GB\n"


def test_nvidia_smi_names_the_type(fake_dev):
    fake_dev.chr("nvidia0", "nvidia1", "nvidiactl")
    run = answers(nvidia_smi=(0, NVIDIA_SMI_A100))
    assert [e["type"] for e in discover(fake_dev, run)] == ["a100"]
    assert run.calls == [["nvidia-smi", "--query-gpu=minor_number,name", "--format=csv,noheader"]]


def test_nvidia_smi_minor_numbers_split_a_mixed_node(fake_dev):
    fake_dev.chr("nvidia0", "nvidia1", "nvidia2", "nvidia3")
    out = "0, NVIDIA A100-SXM4-80GB\n1, Tesla T4\n2, NVIDIA A100-SXM4-80GB\n3, Tesla T4\n"
    entries = discover(fake_dev, answers(nvidia_smi=(0, out)))
    assert [(e["type"], e["DeviceFileRegex"]) for e in entries] == [
        ("a100", "/dev/nvidia[0,2]"),
        ("t4", "/dev/nvidia[1,3]"),
    ]


@pytest.mark.parametrize(
    "answer",
    [
        (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"),
        (0, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"),
        (0, "\x00\x01garbage\n,,,\n[N/A], [N/A]\n"),
        (0, ""),
        (127, ""),
        (6, "0, NVIDIA A100-SXM4-80GB\n"),
    ],
    ids=["exit-9", "error-text", "garbage", "empty", "missing", "nonzero-exit-with-output"],
)
def test_broken_nvidia_smi_falls_back(fake_dev, answer):
    fake_dev.chr("nvidia0")
    assert [e["type"] for e in discover(fake_dev, answers(nvidia_smi=answer))] == ["nvidia"]
    run = answers(nvidia_smi=answer)
    assert [e["type"] for e in discover(fake_dev, run, default_types={"nvidia": "a100"})] == [
        "a100"
    ]


def test_a_run_that_raises_falls_back(fake_dev):
    fake_dev.chr("nvidia0")

    def explode(argv):
        raise RuntimeError("tool crashed")

    assert [e["type"] for e in discover(fake_dev, explode)] == ["nvidia"]


def test_no_tool_runs_without_probe_tools(fake_dev):
    fake_dev.chr("nvidia0", "davinci0")
    run = answers(nvidia_smi=(0, NVIDIA_SMI_A100))
    assert [e["type"] for e in discover(fake_dev, run, probe_tools=False)] == ["nvidia", "ascend"]
    assert run.calls == []


def test_no_tool_runs_without_devices(fake_dev):
    run = answers(nvidia_smi=(0, NVIDIA_SMI_A100))
    assert discover(fake_dev, run) == []
    assert run.calls == []


ROCM_SMI = textwrap.dedent(
    """\
    ============================ ROCm System Management Interface ============================
    ====================================== Product Info ======================================
    GPU[0]\t\t: Card Series: \t\tAMD Instinct MI250X / MI250
    GPU[0]\t\t: Card Model: \t\t0x740c
    GPU[1]\t\t: Card Series: \t\tAMD Instinct MI250X / MI250
    GPU[1]\t\t: Card Model: \t\t0x740c
    ==========================================================================================
    """
)


def test_rocm_smi_names_amd_type(fake_dev):
    fake_dev.chr("kfd", "dri/renderD128", "dri/renderD129")
    fake_dev.drm_vendor("renderD128", "0x1002").drm_vendor("renderD129", "0x1002")
    entries = discover(fake_dev, answers(rocm_smi=(0, ROCM_SMI)))
    assert [e["type"] for e in entries] == ["mi250x"]


def test_hy_smi_names_hygon_type(fake_dev):
    fake_dev.chr("kfd", "dri/renderD128")
    fake_dev.drm_vendor("renderD128", "0x1d94")
    run = answers(hy_smi=(0, "HCU[0]\t\t: Card Series: \t\tK100_AI\n"), rocm_smi=(0, ROCM_SMI))
    assert [e["type"] for e in discover(fake_dev, run)] == ["k100_ai"]


NPU_SMI = textwrap.dedent(  # npu-smi info layout, right-hand columns trimmed
    """\
    +------------------------------------------------------------------------+
    | npu-smi 23.0.rc2                 Version: 23.0.rc2                     |
    +---------------------------+---------------+----------------------------+
    | NPU   Name                | Health        | Power(W)    Temp(C)        |
    | Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)|
    +===========================+===============+============================+
    | 0     910B3               | OK            | 93.1        36             |
    | 0                         | 0000:C1:00.0  | 0           0    / 0       |
    +===========================+===============+============================+
    | 1     910B3               | OK            | 90.6        35             |
    | 0                         | 0000:C2:00.0  | 0           0    / 0       |
    +===========================+===============+============================+
    | NPU     Chip              | Process id    | Process name               |
    +===========================+===============+============================+
    | 0       0                 | 2563          | python                     |
    +===========================+===============+============================+
    """
)


def test_npu_smi_names_ascend_type(fake_dev):
    fake_dev.chr("davinci0", "davinci1", "davinci_manager")
    assert [e["type"] for e in discover(fake_dev, answers(npu_smi=(0, NPU_SMI)))] == ["910b3"]


# --------------------------------------------------------------------------- real executables


@pytest.fixture
def tool_path(tmp_path, monkeypatch):
    """An empty PATH directory; ``add(name, script)`` puts an executable shell script in it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))

    def add(name, body):
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)

    return add


def test_default_run_uses_a_real_nvidia_smi(fake_dev, tool_path):
    fake_dev.chr("nvidia0", "nvidia1")
    script = 'test "$1" = --query-gpu=minor_number,name || exit 2\n'
    script += "printf '0, NVIDIA H100 80GB HBM3\\n1, NVIDIA H100 80GB HBM3\\n'\n"
    tool_path("nvidia-smi", script)
    entries = crane_gres.discover(fake_dev.root, sys_root=fake_dev.sys_root)
    assert [e["type"] for e in entries] == ["h100"]


def test_default_run_nvidia_smi_exit_9(fake_dev, tool_path):
    fake_dev.chr("nvidia0")
    tool_path("nvidia-smi", "echo 'NVIDIA-SMI has failed'; exit 9\n")
    entries = crane_gres.discover(fake_dev.root, sys_root=fake_dev.sys_root)
    assert [e["type"] for e in entries] == ["nvidia"]


def test_default_run_without_tools_on_path(fake_dev, tool_path):
    fake_dev.chr("nvidia0", "davinci0", "kfd", "dri/renderD128")
    entries = crane_gres.discover(fake_dev.root, sys_root=fake_dev.sys_root)
    assert [e["type"] for e in entries] == ["hip", "nvidia", "ascend"]


def test_run_tool_reports_a_missing_binary(tool_path):
    assert crane_gres.run_tool(["nvidia-smi"]) == (127, "")


def test_nvidia_smi_without_minor_numbers_still_names_a_uniform_node(fake_dev):
    fake_dev.chr("nvidia0", "nvidia1")
    out = "[N/A], NVIDIA A100-SXM4-80GB\n[N/A], NVIDIA A100-SXM4-80GB\n"
    assert [e["type"] for e in discover(fake_dev, answers(nvidia_smi=(0, out)))] == ["a100"]
