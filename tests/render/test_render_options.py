"""Render tests of the formula's optional parts: unsigned apt repository, NVIDIA device files,
gres automatic mode."""

import pytest

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
    # the version check (and so the install, which waits for it) reads the refreshed lists
    assert {"sls": "crane.package.repo"} in args(states["crane-package-version-checked"])["require"]
    assert states["crane-package-repo-refresh-cmd-run"]["__sls__"] == "crane.package.repo"
    assert {"crane": "crane-package-version-checked"} in args(
        states["crane-package-install-pkg-installed"]
    )["require"]


NVIDIA_IDS = (
    "crane-gres-nvidia-unit-file-managed",
    "crane-gres-nvidia-dropin-file-managed",
    "crane-gres-nvidia-service-running",
)


def render_nvidia(minion, host, switched_on, control=False):
    pillar = pillar_for("repo", control=control)
    pillar["crane"]["gres"] = {"nvidia_device_files": switched_on}
    grains = node_grains("debian12", host)
    return minion.call("state.show_sls", "crane", grains=grains, pillar=pillar)


def test_nvidia_device_unit_on_gpu_compute_node_when_switched_on(minion):
    states = render_nvidia(minion, "cn03", True)
    unit = args(states["crane-gres-nvidia-unit-file-managed"])
    assert unit["name"] == "/etc/systemd/system/crane-nvidia-devices.service"
    assert unit["context"] == {"modprobe": "/usr/bin/nvidia-modprobe", "minors": [0, 1, 2, 3]}
    dropin = args(states["crane-gres-nvidia-dropin-file-managed"])
    assert dropin["name"] == "/etc/systemd/system/craned.service.d/crane-nvidia-devices.conf"
    assert "Wants=crane-nvidia-devices.service" in dropin["contents"].splitlines()
    assert "After=crane-nvidia-devices.service" in dropin["contents"].splitlines()
    gate = args(states["crane-gres-valid"])
    assert {"service": "crane-gres-nvidia-service-running"} in gate["require"]


@pytest.mark.parametrize(
    ("host", "switched_on", "control"),
    [("cn03", False, False), ("cn01", True, False), ("cranectl", True, True)],
    ids=["switched-off", "compute-without-gres", "control-node"],
)
def test_no_nvidia_device_unit_otherwise(minion, host, switched_on, control):
    states = render_nvidia(minion, host, switched_on, control)
    assert isinstance(states, dict), states
    assert [sid for sid in NVIDIA_IDS if sid in states] == []


def test_nvidia_device_unit_template(minion, tmp_path):
    """The unit runs nvidia-modprobe -c N for each minor, once, before craned."""
    source = "salt://crane/files/default/crane-nvidia-devices.service.jinja"
    target = tmp_path / "unit"
    context = {"modprobe": "/usr/bin/nvidia-modprobe", "minors": [0, 2]}
    minion.call("cp.get_template", source, str(target), context=context)
    lines = target.read_text().splitlines()
    assert [line for line in lines if line.startswith("ExecStart=")] == [
        "ExecStart=/usr/bin/nvidia-modprobe -c 0",
        "ExecStart=/usr/bin/nvidia-modprobe -c 2",
    ]
    assert "Type=oneshot" in lines and "Before=craned.service" in lines
