"""CraneSched versions in the forms the package managers and the daemons report them.

The pillar names a version as CraneSched does (``1.1.2``). dpkg reports the packages' version
as is; rpm reports ``version-release`` (``1.1.2-1``: CPack and nfpm both release ``1``); craned
registers with the ``X.Y.Z`` of its VERSION file. A pillar version without a release matches
any release of that version; with one (``1.1.2-1``) only that release.
"""

import re

# A trailing "-<release>" as rpm prints it: digits first (nfpm's "1.1.2-dev" is a pre-release,
# part of the version, not a release).
_RELEASE = re.compile(r"^(?P<version>.+)-(?P<release>\d[\w.]*)$")
_UPSTREAM = re.compile(r"^\d+\.\d+\.\d+")


def split_release(version):
    """``"1.1.2-1"`` -> ``("1.1.2", "1")``; ``"1.1.2"`` -> ``("1.1.2", "")``."""
    text = str(version or "").strip()
    found = _RELEASE.match(text)
    return (found["version"], found["release"]) if found else (text, "")


def matches(wanted, reported):
    """True when a package version ``reported`` by dpkg or rpm is the pillar's ``wanted``."""
    want, want_release = split_release(wanted)
    have, have_release = split_release(reported)
    if not want or want != have:
        return False
    return not want_release or want_release == have_release


def in_repository(wanted, available):
    """The entry of ``available`` (a repository's versions of one package) that is ``wanted``,
    or None."""
    return next((v for v in available or [] if matches(wanted, v)), None)


def upstream(version):
    """The ``X.Y.Z`` part (CraneSched names its packages by it): ``1.1.2-1``, ``1.1.2+dev``
    and ``1.1.2.1`` give ``1.1.2``; a git hash gives ``""``."""
    found = _UPSTREAM.match(split_release(version)[0])
    return found.group(0) if found else ""


def registered_as(wanted, shown):
    """True when craned's registered ``Version=`` (its VERSION file: ``1.1.3.1`` for the tag
    that ships package 1.1.3) is the pillar's ``wanted``: their X.Y.Z parts agree."""
    return bool(upstream(wanted)) and upstream(wanted) == upstream(shown)
