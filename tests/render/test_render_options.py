"""Render tests of the formula's optional parts: unsigned apt repository, NVIDIA device files,
gres automatic mode."""

from tests.render.test_render import ROLE_HOSTS, args, pillar_for
from tests.support.caller import node_grains


def test_unsigned_debian_repo_is_a_plain_sources_file(minion):
    """pkgrepo.managed drops [trusted=yes] when comparing, so test=True would never be clean."""
    pillar = pillar_for("repo", control=False)
    pillar["crane"]["install"]["repo"]["trusted"] = True
    grains = node_grains("debian12", ROLE_HOSTS["compute"])
    states = minion.call("state.show_sls", "crane", grains=grains, pillar=pillar)
    assert "crane-package-repo-pkgrepo-managed" not in states
    listed = args(states["crane-package-repo-file-managed"])
    assert listed["contents"].split() == [
        "deb", "[trusted=yes]", "http://repo.example.org/cranesched/debian", "./"
    ]  # fmt: skip
    refresh = args(states["crane-package-repo-refresh-cmd-run"])
    assert refresh["onchanges"] == [{"file": "crane-package-repo-file-managed"}]
    assert {"cmd": "crane-package-repo-refresh-cmd-run"} in args(
        states["crane-package-install-pkg-installed"]
    )["require"]
