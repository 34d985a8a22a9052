"""crane_version: the pillar's ``1.1.2`` against dpkg's ``1.1.2``, rpm's ``1.1.2-1`` and
craned's ``Version=``."""

import crane_version as cv
import pytest


@pytest.mark.parametrize(
    ("version", "parts"),
    [
        ("1.1.2", ("1.1.2", "")),
        ("1.1.2-1", ("1.1.2", "1")),
        ("1.1.2-1.el9", ("1.1.2", "1.el9")),
        ("1.1.2-dev", ("1.1.2-dev", "")),  # nfpm's pre-release on a .deb, not a release
        ("", ("", "")),
        (None, ("", "")),
    ],
)
def test_split_release(version, parts):
    assert cv.split_release(version) == parts


@pytest.mark.parametrize(
    ("wanted", "reported", "expected"),
    [
        ("1.1.2", "1.1.2", True),  # dpkg
        ("1.1.2", "1.1.2-1", True),  # rpm: any release of the version
        ("1.1.2-1", "1.1.2-1", True),
        ("1.1.2-2", "1.1.2-1", False),  # an explicit release must be that release
        ("1.1.2-1", "1.1.2", False),
        ("1.1.2", "1.1.20-1", False),
        ("1.1.2", "1.1.3-1", False),
        ("", "1.1.2-1", False),
    ],
)
def test_matches(wanted, reported, expected):
    assert cv.matches(wanted, reported) is expected


def test_in_repository_returns_the_repository_form():
    available = ["1.1.3-1", "1.1.2-1"]
    assert cv.in_repository("1.1.2", available) == "1.1.2-1"
    assert cv.in_repository("1.1.2-1", available) == "1.1.2-1"
    assert cv.in_repository("1.1.2-2", available) is None
    assert cv.in_repository("1.1.4", available) is None
    assert cv.in_repository("1.1.2", ["1.1.2"]) == "1.1.2"
    assert cv.in_repository("1.1.2", None) is None


@pytest.mark.parametrize(
    ("wanted", "shown", "expected"),
    [
        ("1.1.2", "1.1.2", True),
        ("1.1.2-1", "1.1.2", True),  # pinned with rpm's release; craned never prints it
        ("1.1.3", "1.1.3.1", True),  # tag V1.1.3.1 ships package 1.1.3
        ("1.1.2", "1.1.2+dev", True),
        ("1.1.2", "1.1.3", False),
        ("1.1.2", "a1b2c3d", False),  # a build without VERSION: never taken for a version
        ("", "", False),
    ],
)
def test_registered_as(wanted, shown, expected):
    assert cv.registered_as(wanted, shown) is expected
