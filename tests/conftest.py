"""Shared test set-up: the formula's pure-Python utilities are importable by name."""

import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SALT_DIR = REPO / "salt"
UTILS_DIR = SALT_DIR / "_utils"

if str(UTILS_DIR) not in sys.path:
    sys.path.insert(0, str(UTILS_DIR))


@pytest.fixture(scope="session")
def local_minion(tmp_path_factory):
    """A masterless minion in this process serving the repository's formula."""
    from tests.support.caller import Minion  # noqa: PLC0415 (needs the path set above)

    return Minion(tmp_path_factory.mktemp("local-minion"))
