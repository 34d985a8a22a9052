"""The utilities load from their files with their folder off sys.path.

Salt's loader puts the folder on sys.path only while it loads a module and takes it off after,
also while another thread is loading one (a master's reactor runs runners in threads: two
nodes that start together once made one join fail with ``KeyError: 'crane.join'``). Each
utility must import its siblings all the same.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import UTILS_DIR

UTILS = sorted(p.stem for p in UTILS_DIR.glob("crane_*.py"))

# A fresh interpreter: nothing of the folder imported, the folder not on sys.path. The
# utility is loaded from its file under the name Salt's loader gives it.
LOAD = """
import importlib.util, json, sys
folder, name = sys.argv[1], sys.argv[2]
assert not any(p.rstrip("/") == folder for p in sys.path), sys.path
spec = importlib.util.spec_from_file_location(
    "salt.loaded.ext.utils." + name, folder + "/" + name + ".py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("crane_"))))
"""


def load_alone(name):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-I", "-c", LOAD, str(UTILS_DIR), name],
        capture_output=True, text=True, check=False, env=env, cwd="/",
    )  # fmt: skip


@pytest.mark.parametrize("name", UTILS)
def test_a_utility_loads_with_its_folder_off_sys_path(name):
    proc = load_alone(name)
    assert proc.returncode == 0, proc.stderr
    siblings = set(json.loads(proc.stdout))
    source = (UTILS_DIR / f"{name}.py").read_text(encoding="utf-8")
    wanted = {s for s in UTILS if f"\nimport {s}" in source or f"\nfrom {s} " in source}
    assert wanted <= siblings
