"""The crane_gres util loaded by Salt's loader, in a clean interpreter (no test sys.path)."""

import json
import pathlib
import subprocess
import sys
import textwrap

UTILS_DIR = pathlib.Path(__file__).resolve().parents[2] / "salt" / "_utils"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import salt.config, salt.loader
    opts = salt.config.minion_config(None)
    opts["utils_dirs"] = [sys.argv[1]]
    opts["extension_modules"] = sys.argv[3]
    utils = salt.loader.utils(opts)
    print(json.dumps(utils["crane_gres.discover"](dev_root=sys.argv[2], run=None,
                                                   sys_root=sys.argv[2], probe_tools=False)))
    """
)


def test_salt_loader_finds_crane_hostlist_next_to_the_util(fake_dev, tmp_path):
    fake_dev.chr("nvidia0", "nvidia1", "nvidiactl")
    argv = [sys.executable, "-c", SCRIPT, str(UTILS_DIR), fake_dev.root, str(tmp_path / "ext")]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == [
        {
            "name": "gpu",
            "type": "nvidia",
            "EnvInjector": "nvidia",
            "DeviceFileRegex": "/dev/nvidia[0-1]",
        }
    ]
