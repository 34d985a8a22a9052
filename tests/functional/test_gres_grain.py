"""The crane_gres grain module, loaded through Salt's loader against fake device trees."""

import pathlib

import pytest
import salt.config
import salt.loader
import salt.utils.data

SALT_DIR = pathlib.Path(__file__).resolve().parents[2] / "salt"
GRAINS_DIR = SALT_DIR / "_grains"


@pytest.fixture
def minion_opts(fake_dev, tmp_path):
    opts = salt.config.minion_config(None)
    opts["grains_dirs"] = [str(GRAINS_DIR)]
    opts["utils_dirs"] = [str(SALT_DIR / "_utils")]  # what saltutil.sync_all puts in extmods
    opts["cachedir"] = str(tmp_path / "cache")
    opts["extension_modules"] = str(tmp_path / "cache" / "extmods")  # not the host's cache
    opts["crane_gres_dev_root"] = fake_dev.root
    opts["crane_gres_sys_root"] = fake_dev.sys_root
    return opts


def grain(opts):
    """Run the grain function the way the minion does (through the loader)."""
    funcs = salt.loader.grain_funcs(opts)
    return funcs["crane_gres.crane_gres"]()


def test_documented_shape(minion_opts, fake_dev):
    fake_dev.chr("nvidia0", "nvidia1", "nvidiactl", "davinci0", "davinci_manager")
    assert grain(minion_opts) == {
        "crane_gres": {
            "gpu": {
                "nvidia": {
                    "count": 2,
                    "paths": ["/dev/nvidia0", "/dev/nvidia1"],
                    "vendor": "nvidia",
                    "EnvInjector": "nvidia",
                }
            },
            "npu": {
                "ascend": {
                    "count": 1,
                    "paths": ["/dev/davinci0"],
                    "vendor": "ascend",
                    "EnvInjector": "ascend",
                }
            },
        }
    }


def test_no_devices_gives_an_empty_grain(minion_opts):
    assert grain(minion_opts) == {"crane_gres": {}}


def test_gpu_nodes_are_targetable(minion_opts, fake_dev):
    assert not salt.utils.data.subdict_match(grain(minion_opts), "crane_gres:gpu:*")
    fake_dev.chr("nvidia0")
    grains = grain(minion_opts)
    assert salt.utils.data.subdict_match(grains, "crane_gres:gpu:*")
    assert salt.utils.data.subdict_match(grains, "crane_gres:gpu:nvidia:count:1")
    assert not salt.utils.data.subdict_match(grains, "crane_gres:npu:*")


def test_tools_do_not_run_by_default(minion_opts, fake_dev, tmp_path, monkeypatch):
    fake_dev.chr("nvidia0")
    marker = tmp_path / "ran"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\n: > {marker}\necho '0, NVIDIA A100-SXM4-80GB'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert list(grain(minion_opts)["crane_gres"]["gpu"]) == ["nvidia"]
    assert not marker.exists()
    minion_opts["crane_gres_probe_tools"] = True
    assert list(grain(minion_opts)["crane_gres"]["gpu"]) == ["a100"]
    assert marker.exists()


def test_default_types_option(minion_opts, fake_dev):
    fake_dev.chr("davinci0")
    minion_opts["crane_gres_default_types"] = {"ascend": "910b"}
    assert list(grain(minion_opts)["crane_gres"]["npu"]) == ["910b"]


def test_off_switch(minion_opts, fake_dev):
    fake_dev.chr("nvidia0")
    minion_opts["crane_gres_grains"] = False
    funcs = salt.loader.grain_funcs(minion_opts)
    assert "crane_gres.crane_gres" not in funcs
    assert "switched off" in funcs.missing_fun_string("crane_gres.crane_gres")


def test_full_grains_load_includes_it(minion_opts, fake_dev):
    fake_dev.chr("nvidia0")
    grains = salt.loader.grains(minion_opts, force_refresh=True)
    assert grains["crane_gres"]["gpu"]["nvidia"]["count"] == 1


def test_util_from_the_minion_cache_layout(minion_opts, fake_dev, tmp_path):
    """Synced modules live in <cachedir>/extmods/{grains,utils}: the grain finds its util."""
    extmods = tmp_path / "cache" / "extmods"
    for kind, source in (("grains", GRAINS_DIR), ("utils", GRAINS_DIR.parent / "_utils")):
        (extmods / kind).mkdir(parents=True)
        for name in ("crane_gres.py", "crane_hostlist.py"):
            if (source / name).exists():
                (extmods / kind / name).write_text((source / name).read_text())
    minion_opts["grains_dirs"] = [str(extmods / "grains")]
    minion_opts["utils_dirs"] = []  # only the synced copy in extmods/utils
    fake_dev.chr("nvidia0")
    assert grain(minion_opts)["crane_gres"]["gpu"]["nvidia"]["count"] == 1


def test_missing_util_gives_no_grain(minion_opts, fake_dev, tmp_path):
    lonely = tmp_path / "lonely" / "grains"
    lonely.mkdir(parents=True)
    (lonely / "crane_gres.py").write_text((GRAINS_DIR / "crane_gres.py").read_text())
    minion_opts["grains_dirs"] = [str(lonely)]
    minion_opts["utils_dirs"] = []
    fake_dev.chr("nvidia0")
    assert grain(minion_opts) == {}
