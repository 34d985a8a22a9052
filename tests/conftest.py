"""Shared test set-up: the formula's pure-Python utilities are importable by name."""

import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
SALT_DIR = REPO / "salt"
UTILS_DIR = SALT_DIR / "_utils"

if str(UTILS_DIR) not in sys.path:
    sys.path.insert(0, str(UTILS_DIR))
