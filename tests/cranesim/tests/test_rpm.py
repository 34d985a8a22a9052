"""The simulator's RPM packages: CraneSched's RPM names, files, modes, scriptlet, yum repo."""

import gzip
import os
import re
import subprocess

import pytest

from tests.cranesim import build, rpm

pytestmark = pytest.mark.skipif(not rpm.available(), reason="needs rpmbuild and createrepo_c")

BACKEND = "CraneSched-{v}-Linux-x86_64-{c}.rpm"
FRONTEND = "cranesched-frontend_{v}_amd64.rpm"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("rpmrepo")
    return rpm.build_rpm_repo(out, ["1.1.2", "1.1.3"], broken=["1.1.4"])


def query(path, fmt):
    cmd = ["rpm", "-qp", "--qf", fmt, str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def rpm_lines(path, *flags):
    cmd = ["rpm", "-qp", *flags, str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()


def listing(path):
    """{path: mode string} from ``rpm -qlv``."""
    return {line.split()[-1]: line.split()[0] for line in rpm_lines(path, "-lv")}


def test_package_names_versions_and_release(repo):
    for version in ("1.1.2", "1.1.3", "1.1.4"):
        for component in ("cranectld", "craned"):
            path = repo / BACKEND.format(v=version, c=component)
            got = query(path, "%{NAME} %{VERSION}-%{RELEASE} %{ARCH}")
            assert got == f"CraneSched-{component} {version}-1 x86_64"
        front = query(repo / FRONTEND.format(v=version), "%{NAME} %{VERSION}-%{RELEASE}")
        assert front == f"cranesched-frontend {version}-1"


def test_only_the_scriptlet_shell_is_required(repo):
    """No declared dependencies; rpm itself adds the %post interpreter to the backend."""
    for component in ("cranectld", "craned"):
        needs = rpm_lines(repo / BACKEND.format(v="1.1.2", c=component), "--requires")
        assert [n for n in needs if not n.startswith("rpmlib(")] == ["/bin/sh"]
    needs = rpm_lines(repo / FRONTEND.format(v="1.1.2"), "--requires")
    assert [n for n in needs if not n.startswith("rpmlib(")] == []


def test_backend_runs_post_install_as_post_scriptlet(repo):
    script = "\n".join(rpm_lines(repo / BACKEND.format(v="1.1.2", c="craned"), "--scripts"))
    assert script.startswith("postinstall scriptlet (using /bin/sh):")
    assert "useradd -r -s /sbin/nologin crane" in script
    assert "cp /etc/crane/config.yaml.sample /etc/crane/config.yaml" in script
    assert rpm_lines(repo / FRONTEND.format(v="1.1.2"), "--scripts") == []


def test_layout_and_modes_match_the_debs(repo):
    ctld = listing(repo / BACKEND.format(v="1.1.2", c="cranectld"))
    assert ctld["/usr/bin/cranectld"] == "-rwxrwxrwx"
    assert ctld["/etc/crane/database.yaml.sample"] == "-rw-------"
    assert "/etc/crane/config.yaml" not in ctld
    craned = listing(repo / BACKEND.format(v="1.1.3", c="craned"))
    assert craned["/usr/libexec/csupervisor"] == "-rwxrwxrwx"
    assert craned[build.PAM_MODULE] == "-rw-r--r--"
    front = listing(repo / FRONTEND.format(v="1.1.3"))
    assert all(front[f"/usr/bin/{tool}"] == "-rwxr-xr-x" for tool in build.FRONTEND_TOOLS)
    assert not any(path.startswith("/etc/") for path in front)
    deb_paths = {e.path for e in build.craned_package("1.1.3", "amd64").files}
    assert set(craned) == deb_paths


def test_broken_version_lacks_csupervisor(repo):
    broken = listing(repo / BACKEND.format(v="1.1.4", c="craned"))
    assert "/usr/bin/craned" in broken and "/usr/libexec/csupervisor" not in broken


def test_provides_package_declares_the_base_shell(repo):
    provides = rpm_lines(repo / rpm.PROVIDES_FILENAME, "--provides")
    assert "/bin/sh" in provides
    assert rpm_lines(repo / rpm.PROVIDES_FILENAME, "-l") == ["(contains no files)"]


def test_repodata_lists_every_package(repo):
    primary = gzip.decompress((repo / "repodata/primary.xml.gz").read_bytes()).decode()
    assert 'packages="10"' in primary
    hrefs = set(re.findall(r'<location href="([^"]+)"', primary))
    assert hrefs == {p.name for p in repo.glob("*.rpm")}
    assert '<version epoch="0" ver="1.1.3" rel="1"/>' in primary


def test_both_backend_rpms_share_the_sample_files(repo, tmp_path):
    """Unlike dpkg, rpm accepts identical files owned by two packages."""
    root = tmp_path / "root"
    cmd = ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm"]
    subprocess.run([*cmd, "--initdb"], check=True, capture_output=True)
    pair = [str(repo / BACKEND.format(v="1.1.2", c=c)) for c in ("cranectld", "craned")]
    install = [*cmd, "--nodeps", "--noscripts", "-i", *pair]
    result = subprocess.run(install, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (root / "usr/bin/craned").exists() and (root / "usr/bin/cranectld").exists()
    assert not (root / "etc/crane/config.yaml").exists()  # the scriptlet did not run here


def test_build_is_reproducible(repo, tmp_path):
    again = rpm.build_rpm_repo(tmp_path / "again", ["1.1.2", "1.1.3"], broken=["1.1.4"])
    names = sorted(os.listdir(repo)) + [f"repodata/{n}" for n in os.listdir(repo / "repodata")]
    for name in names:
        if (repo / name).is_file():
            assert (repo / name).read_bytes() == (again / name).read_bytes(), name


def test_rebuild_drops_versions_no_longer_asked_for(repo, tmp_path):
    out = tmp_path / "re"
    rpm.build_rpm_repo(out, ["1.1.2"], broken=["1.1.3"])
    rpm.build_rpm_repo(out, ["1.1.2", "1.1.3"])
    assert "/usr/libexec/csupervisor" in listing(out / BACKEND.format(v="1.1.3", c="craned"))
