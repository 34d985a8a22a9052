"""The simulator packages: names, versions, modes, unit files, the apt index, reproducibility."""

import gzip
import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from tests.cranesim import build

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

BACKEND = "CraneSched-{v}-Linux-x86_64-{c}.deb"
FRONTEND = "cranesched-frontend_{v}_amd64.deb"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return build.build_repo(tmp_path_factory.mktemp("repo"), ["1.1.2", "1.1.3"], broken=["1.1.4"])


def dpkg_deb(*args):
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True).stdout


def contents(deb):
    """{path: (mode string, owner)} from ``dpkg-deb -c``."""
    result = {}
    for line in dpkg_deb("-c", str(deb)).splitlines():
        fields = line.split()
        result[fields[5].lstrip(".")] = (fields[0], fields[1])
    return result


def test_package_names_and_versions(repo):
    for version in ("1.1.2", "1.1.3", "1.1.4"):
        for component in ("cranectld", "craned"):
            deb = repo / BACKEND.format(v=version, c=component)
            assert dpkg_deb("-f", str(deb), "Package").strip() == f"cranesched-{component}"
            assert dpkg_deb("-f", str(deb), "Version").strip() == version
            assert "Depends" not in dpkg_deb("-f", str(deb))  # CPack declares none
        front = repo / FRONTEND.format(v=version)
        assert dpkg_deb("-f", str(front), "Package").strip() == "cranesched-frontend"
        assert "Depends" not in dpkg_deb("-f", str(front))


def test_cranectld_layout_and_modes(repo):
    files = contents(repo / BACKEND.format(v="1.1.2", c="cranectld"))
    assert files["/usr/bin/cranectld"][0] == "-rwxrwxrwx"
    assert files["/usr/lib/systemd/system/cranectld.service"][0] == "-rw-r--r--"
    assert files["/etc/crane/config.yaml.sample"][0] == "-rw-r--r--"
    assert files["/etc/crane/database.yaml.sample"][0] == "-rw-------"
    assert files["/etc/crane/plugin.yaml.sample"][0] == "-rw-r--r--"
    assert all(owner == "root/root" for _, owner in files.values())
    assert "/etc/crane/config.yaml" not in files


def test_craned_layout_and_broken_build(repo):
    files = contents(repo / BACKEND.format(v="1.1.3", c="craned"))
    assert files["/usr/bin/craned"][0] == "-rwxrwxrwx"
    assert files["/usr/libexec/csupervisor"][0] == "-rwxrwxrwx"
    assert "/etc/crane/config.yaml.sample" in files and "/etc/crane/plugin.yaml.sample" in files
    assert "/etc/crane/database.yaml.sample" not in files
    broken = contents(repo / BACKEND.format(v="1.1.4", c="craned"))
    assert "/usr/libexec/csupervisor" not in broken and "/usr/bin/craned" in broken


def test_frontend_layout(repo):
    files = contents(repo / FRONTEND.format(v="1.1.3"))
    for tool in build.FRONTEND_TOOLS:
        assert files[f"/usr/bin/{tool}"][0] == "-rwxr-xr-x"
    assert "/usr/lib/systemd/system/cfored.service" in files
    assert not any(path.startswith("/etc/") for path in files)


def test_unit_files_are_the_real_ones(repo, tmp_path):
    subprocess.run(
        ["dpkg-deb", "-x", str(repo / BACKEND.format(v="1.1.2", c="cranectld")), str(tmp_path)],
        check=True,
    )
    subprocess.run(
        ["dpkg-deb", "-x", str(repo / BACKEND.format(v="1.1.2", c="craned")), str(tmp_path)],
        check=True,
    )
    units = tmp_path / "usr/lib/systemd/system"
    ctld = (units / "cranectld.service").read_text()
    assert "[Service]\nUser=crane\nGroup=crane\nExecStart=/usr/bin/cranectld\n" in ctld
    assert "Type=" not in ctld and "Restart=" not in ctld
    craned = (units / "craned.service").read_text()
    assert "ExecStart=/usr/bin/craned\nLimitMEMLOCK=infinity\nLimitSTACK=infinity\n" in craned
    assert "User=root\nGroup=root\n" in craned


def test_post_install_is_carried_but_not_a_maintainer_script(repo, tmp_path):
    deb = repo / BACKEND.format(v="1.1.2", c="cranectld")
    subprocess.run(["dpkg-deb", "-e", str(deb), str(tmp_path / "ctl")], check=True)
    members = sorted(os.listdir(tmp_path / "ctl"))
    assert members == ["control", "md5sums", "post_install.sh"]
    assert "useradd -r -s /sbin/nologin crane" in (tmp_path / "ctl" / "post_install.sh").read_text()


def test_packages_index_matches_files(repo):
    index = (repo / "Packages").read_text()
    assert gzip.decompress((repo / "Packages.gz").read_bytes()).decode() == index
    paragraphs = [dict(_fields(p)) for p in index.strip().split("\n\n")]
    assert len(paragraphs) == 9
    for para in paragraphs:
        data = (repo / para["Filename"]).read_bytes()
        assert int(para["Size"]) == len(data)
        assert para["SHA256"] == hashlib.sha256(data).hexdigest()
    release = (repo / "Release").read_text()
    assert hashlib.sha256(index.encode()).hexdigest() in release


def _fields(paragraph):
    for line in paragraph.splitlines():
        if not line.startswith(" "):
            key, _, value = line.partition(": ")
            yield key, value


def test_build_is_reproducible(repo, tmp_path):
    again = build.build_repo(tmp_path / "again", ["1.1.2", "1.1.3"], broken=["1.1.4"])
    for name in sorted(os.listdir(repo)):
        assert (repo / name).read_bytes() == (again / name).read_bytes(), name


def dpkg_install(base, deb):
    return subprocess.run([*base, str(deb)], capture_output=True, text=True, check=False)


def test_both_backend_debs_collide_on_the_sample_files(repo, tmp_path):
    """The real quirk: dpkg refuses the second package without --force-overwrite."""
    root = tmp_path / "root"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").write_text("")
    base = [
        "dpkg",
        f"--root={root}",
        "--force-depends",
        "--force-not-root",
        "--force-script-chrootless",
        "--log=/dev/null",
        "-i",
    ]
    first = dpkg_install(base, repo / BACKEND.format(v="1.1.2", c="cranectld"))
    assert first.returncode == 0, first.stderr
    assert (root / "usr/bin/cranectld").exists()
    second = dpkg_install(base, repo / BACKEND.format(v="1.1.2", c="craned"))
    assert second.returncode != 0
    assert "trying to overwrite '/etc/crane/config.yaml.sample'" in second.stderr
    assert not (root / "etc/crane/config.yaml").exists()


def test_packaged_programs_report_their_version(repo, tmp_path):
    deb = repo / BACKEND.format(v="1.1.3", c="craned")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    lib = tmp_path / "usr/lib/cranesim/craned"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(lib)}
    result = subprocess.run(
        [sys.executable, "-m", "cranesim", "craned", "-v"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "Version: 1.1.3\n"
    script = (tmp_path / "usr/bin/craned").read_text()
    assert script.startswith("#!/usr/bin/python3") and "/usr/lib/cranesim/craned" in script


def _extract(repo, name, dest):
    subprocess.run(["dpkg-deb", "-x", str(repo / name), str(dest)], check=True)
    return dest


def _run_launcher(root, program, *args, env=None):
    """Run a packaged launcher with its library path pointed into the extracted tree."""
    script = (
        (root / "usr/bin" / program)
        .read_text()
        .replace("/usr/lib/cranesim", f"{root}/usr/lib/cranesim")
    )
    cmd = [sys.executable, "-I", "-c", script, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def test_packaged_launchers_run(repo, tmp_path):
    root = _extract(repo, FRONTEND.format(v="1.1.3"), tmp_path)
    assert _run_launcher(root, "cinfo", "-v").stdout.startswith("CraneSched 1.1.3\n")
    assert _run_launcher(root, "cqueue").returncode == 1


def test_broken_version_craned_refuses_for_missing_csupervisor(repo, tmp_path):
    root = _extract(repo, BACKEND.format(v="1.1.4", c="craned"), tmp_path / "root")
    supervisor = root / "usr/libexec/csupervisor"
    config = tmp_path / "config.yaml"
    config.write_text(f"ClusterName: c\nSupervisor:\n  Path: {supervisor}\n")
    result = _run_launcher(root, "craned", "-f", str(config))
    assert (result.returncode, result.stderr) == (1, f"csupervisor {supervisor} does not exist\n")
    good = _extract(repo, BACKEND.format(v="1.1.3", c="craned"), tmp_path / "good")
    assert (good / "usr/libexec/csupervisor").exists()


def test_craned_package_ships_pam_crane_where_cranesched_does(repo, tmp_path):
    files = contents(repo / BACKEND.format(v="1.1.3", c="craned"))
    assert files["/usr/lib64/security/pam_crane.so"][0] == "-rw-r--r--"
    assert files["/usr/lib/cranesim/craned/pam_crane_helper"][0] == "-rwxr-xr-x"
    root = _extract(repo, BACKEND.format(v="1.1.3", c="craned"), tmp_path / "craned")
    module = (root / "usr/lib64/security/pam_crane.so").read_bytes()
    assert module.startswith(b"\x7fELF")  # a shared object PAM can load, not a stand-in text
    for symbol in (b"pam_sm_acct_mgmt", b"pam_sm_open_session", b"pam_sm_close_session"):
        assert symbol in module
    assert "/usr/lib64/security/pam_crane.so" not in contents(
        repo / BACKEND.format(v="1.1.3", c="cranectld")
    )


@pytest.mark.parametrize(
    ("spec", "package", "reported"),
    [
        ("1.1.3=1.1.3.1", "1.1.3", "1.1.3.1"),
        ("1.1.2=1.1.2+dev", "1.1.2", "1.1.2+dev"),
        ("1.1.4=", "1.1.4", None),
        ("1.1.5", "1.1.5", "1.1.5"),
    ],
)
def test_reported_version_comes_from_the_version_file(tmp_path, spec, package, reported):
    out = build.build_repo(tmp_path / "repo", [spec])
    deb = out / BACKEND.format(v=package, c="craned")
    assert dpkg_deb("-f", str(deb), "Version").strip() == package
    root = _extract(out, deb.name, tmp_path / "root")
    shown = _run_launcher(root, "craned", "-v").stdout
    ctld_root = _extract(out, BACKEND.format(v=package, c="cranectld"), tmp_path / "ctld")
    assert _run_launcher(ctld_root, "cranectld", "-v").stdout == shown
    if reported is None:  # no VERSION file: a git-hash-like string
        value = shown.removeprefix("Version: ").strip()
        assert len(value) == 7 and int(value, 16) >= 0 and value != package
    else:
        assert shown == f"Version: {reported}\n"


def test_binaries_are_single_files_that_run_anywhere(tmp_path):
    """``install:method: binaries``: each program stands alone (no library tree), 0755."""
    out = build.build_binaries(tmp_path / "bin", "1.1.3=1.1.3.1")
    assert sorted(os.listdir(out)) == sorted(build.BINARIES)
    assert all(os.stat(out / name).st_mode & 0o777 == 0o755 for name in build.BINARIES)
    env = {"PATH": os.environ.get("PATH", "")}
    craned = subprocess.run(
        [sys.executable, str(out / "craned"), "-v"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert craned.stdout == "Version: 1.1.3.1\n"
    cqueue = subprocess.run(
        [sys.executable, str(out / "cqueue")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert cqueue.returncode == 1 and "not simulated" in cqueue.stderr
    again = build.build_binaries(tmp_path / "again", "1.1.3=1.1.3.1")
    assert (out / "craned").read_bytes() == (again / "craned").read_bytes()
