"""The utilities import each other with plain imports: Salt's loader must load them from a
process whose sys.path does not hold their folder (as on a minion or master)."""

import pathlib
import subprocess
import sys

UTILS = pathlib.Path(__file__).resolve().parents[2] / "salt" / "_utils"

SCRIPT = """
import sys, tempfile
import salt.config, salt.loader
assert not [p for p in sys.path if p.rstrip("/").endswith("_utils")], sys.path
opts = salt.config.minion_config(None)
opts["utils_dirs"] = [sys.argv[1]]
opts["extension_modules"] = tempfile.mkdtemp()
utils = salt.loader.utils(opts)
print(utils["crane_config.compute_hosts"]({"Nodes": [{"name": "cn[1-2]"}]}))
print(sorted({key.split(".")[0] for key in utils if key.startswith("crane_")}))
"""


def test_utils_load_through_salts_loader_alone(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(UTILS)],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    hosts, modules = out.stdout.splitlines()[-2:]
    assert hosts == "['cn1', 'cn2']"
    expected = sorted(path.stem for path in UTILS.glob("crane_*.py"))
    assert modules == str(expected)
