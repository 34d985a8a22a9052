"""crane-formula benchmarks, printed as one table by ``python -m bench``.

Every row is a figure of ours next to what it was compared against, both measured in the
same run. A benchmark module in this package registers a function that returns rows::

    from bench.registry import benchmark
    from bench.table import Row

    @benchmark("config rendering")
    def rows(quick):
        ...
        return [Row(section="config", figure="...", ours=..., unit="ms", ...)]

``quick`` asks for tiny sizes (a smoke run). Modules are discovered by name: any module
here other than the framework's own is imported, and its decorators register it.
"""

import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
UTILS_DIR = REPO / "salt" / "_utils"

# The formula's pure-Python utilities (crane_hostlist, ...) are importable by name.
if str(UTILS_DIR) not in sys.path:
    sys.path.insert(0, str(UTILS_DIR))
