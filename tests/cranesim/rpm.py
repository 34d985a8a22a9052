"""Build the simulator as RPM packages laid out like CraneSched's own, plus a yum repository.

    python -m tests.cranesim.rpm --out DIR --version 1.1.2 --version 1.1.3 [--broken 1.1.4]

``build_rpm_repo(out_dir, versions, broken=())`` does the same from Python.  The packages hold
the same files as the ``.deb`` s of :mod:`tests.cranesim.build`; where RPM and DEB differ, these
differ the same way CraneSched's do:

* CPack names the RPM packages ``CraneSched-cranectld`` / ``CraneSched-craned`` (the DEB
  generator lower-cases them); the files are ``CraneSched-<v>-Linux-x86_64-<group>.rpm``.
* CPack hooks ``post_install.sh`` in as ``%post`` (``CPACK_RPM_POST_INSTALL_SCRIPT_FILE``), so on
  RPM nodes the ``crane`` user, ``/var/crane`` and the ``config.yaml`` copy come from the package;
  rpm adds the scriptlet's ``Requires(post): /bin/sh``.
* nfpm names the frontend ``cranesched-frontend_<v>_<arch>.rpm``, release 1, no scriptlets.

No package declares other dependencies (``AutoReqProv: no``): the simulator's programs are
Python scripts where CraneSched ships ELF binaries, so rpm's automatic requirements would be
the wrong ones.  ``provides_package`` builds the small package a Debian-based RPM node installs
first so that rpm's database knows the ``/bin/sh`` the base system already has.

Needs ``rpmbuild`` (Debian package ``rpm``) and ``createrepo_c`` (``createrepo-c``).
"""

import os
import pathlib
import shutil
import subprocess
import tempfile

from tests.cranesim import build

RELEASE = "1"
LICENSE = {"cranectld": "AGPL v3", "craned": "AGPL v3", "frontend": "AGPL-3.0"}
PROVIDES_NAME = "cranesim-node-provides"
PROVIDES_FILENAME = f"{PROVIDES_NAME}-1-1.noarch.rpm"
# What a Debian base provides that a CraneSched RPM (or its scriptlet) asks rpm for.
BASE_PROVIDES = ["/bin/sh", "/bin/bash"]
RPM_MACROS = {
    "_build_id_links": "none",
    "_buildhost": "cranesim",
    "source_date_epoch_from_changelog": "0",
    "use_source_date_epoch_as_buildtime": "1",
    "clamp_mtime_to_source_date_epoch": "1",
    "_binary_payload": "w19.zstdio",
    "__os_install_post": "%{nil}",
    "debug_package": "%{nil}",
    "_rpmfilename": "%%{NAME}.rpm",
}


def available():
    """True when this machine can build the RPM packages and the repository."""
    return bool(shutil.which("rpmbuild") and shutil.which("createrepo_c"))


def rpm_arch(arch):
    return build.MACHINE.get(arch, arch)


def rpm_version(version):
    """RPM versions cannot hold ``-``; nfpm turns a pre-release into ``~`` (sorts before)."""
    return version.replace("+", "~").replace("-", "~")


def rpm_name(pkg):
    """CPack keeps the case of ``CraneSched`` for RPM; nfpm's name is already lower-case."""
    if pkg.name.startswith("cranesched-") and pkg.name != "cranesched-frontend":
        return "CraneSched-" + pkg.name.removeprefix("cranesched-")
    return pkg.name


def rpm_filename(pkg, version, arch):
    group = pkg.name.removeprefix("cranesched-")
    if group == "frontend":
        return f"cranesched-frontend_{version.replace('+', '-')}_{arch}.rpm"
    return f"CraneSched-{version}-Linux-{rpm_arch(arch)}-{group}.rpm"


def spec_text(pkg, arch, post_script=None):
    """The spec of one package; the files are copied from a staging tree in ``%install``."""
    group = pkg.name.removeprefix("cranesched-")
    summary, _, rest = pkg.description.partition("\n")
    lines = [
        f"Name: {rpm_name(pkg)}",
        f"Version: {rpm_version(pkg.version)}",
        f"Release: {RELEASE}",
        f"Summary: {summary}",
        f"License: {LICENSE.get(group, 'AGPL v3')}",
        f"Vendor: {'Peking University' if group == 'frontend' else 'PKUHPC'}",
        f"BuildArch: {rpm_arch(arch)}",
        "AutoReqProv: no",
        "",
        "%description",
        rest.replace("\n ", "\n").strip() or summary,
        "",
        "%install",
        "cp -a %{staging}/. %{buildroot}/",
        "",
        "%files",
        *(f"%attr({e.mode:04o},root,root) {e.path}" for e in sorted(pkg.files, key=_path)),
    ]
    if post_script is not None:
        lines += ["", "%post", post_script.rstrip("\n")]
    return "\n".join(lines) + "\n"


def _path(entry):
    return entry.path


def _stage(pkg, root):
    for entry in pkg.files:
        target = root / entry.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.data)
        target.chmod(entry.mode)


def _rpmbuild(spec, staging, workdir, arch):
    """Run rpmbuild on ``spec`` and return the bytes of the one package it wrote."""
    spec_file = workdir / "package.spec"
    spec_file.write_text(spec)
    out = workdir / "out"
    cmd = ["rpmbuild", "-bb", "--quiet", "--target", f"{arch}-linux"]
    macros = {**RPM_MACROS, "_topdir": str(workdir), "_rpmdir": str(out), "staging": str(staging)}
    for key, value in macros.items():
        cmd += ["--define", f"{key} {value}"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(build.EPOCH), "LC_ALL": "C", "TZ": "UTC"}
    subprocess.run([*cmd, str(spec_file)], check=True, capture_output=True, env=env)
    (written,) = out.iterdir()
    return written.read_bytes()


def rpm_bytes(pkg, arch, post_script=None):
    with tempfile.TemporaryDirectory(prefix="cranesim-rpm-") as tmp:
        workdir = pathlib.Path(tmp)
        staging = workdir / "staging"
        staging.mkdir()
        _stage(pkg, staging)
        return _rpmbuild(spec_text(pkg, arch, post_script), staging, workdir, rpm_arch(arch))


def provides_package():
    """The package that tells rpm what the Debian base already provides (no files)."""
    return stub_package(PROVIDES_NAME, BASE_PROVIDES, "1")


def stub_package(name, provides=(), version="1"):
    """A package without files: it only tells rpm's database that the Debian base already
    has ``name`` (and ``provides``), as a Rocky image has it installed."""
    spec = "\n".join(
        [
            f"Name: {name}",
            f"Version: {version}",
            f"Release: {RELEASE}",
            "Summary: Declares to rpm what the Debian base system provides",
            "License: MIT",
            "BuildArch: noarch",
            "AutoReqProv: no",
            *(f"Provides: {item}" for item in provides),
            "",
            "%description",
            "Part of the Debian base that rpm's database does not know.",
            "",
            "%install",
            "",
            "%files",
            "",
        ]
    )
    with tempfile.TemporaryDirectory(prefix="cranesim-rpm-") as tmp:
        workdir = pathlib.Path(tmp)
        return _rpmbuild(spec, workdir, workdir, "noarch")


def build_rpm_repo(out_dir, versions, broken=(), arch="amd64"):
    """Write all packages of all versions and their ``repodata/``; return the directory.
    ``provides_package()`` is written next to them as ``PROVIDES_FILENAME``."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.rpm"):
        stale.unlink()
    post = (build.PACKAGING / "post_install.sh").read_text()
    for spec, pkg in build.wanted_packages(versions, broken, arch):
        version, _ = build.split_version(spec)
        backend = pkg.name != "cranesched-frontend"  # the daemons' packages run the %post
        _write(
            out / rpm_filename(pkg, version, arch), rpm_bytes(pkg, arch, post if backend else None)
        )
    _write(out / PROVIDES_FILENAME, provides_package())
    createrepo(out)
    return out


def _write(path, data):
    """createrepo_c records each file's mtime, so fix it for a reproducible index."""
    path.write_bytes(data)
    os.utime(path, (build.EPOCH, build.EPOCH))


def createrepo(out):
    """The yum metadata, timestamps fixed so that rebuilding the same packages changes nothing."""
    cmd = ["createrepo_c", "--quiet", "--simple-md-filenames", "--no-database"]
    cmd += ["--revision", str(build.EPOCH), "--set-timestamp-to-revision", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)


def main(argv=None):
    return build.cli(argv, __doc__, "yum repository", build_rpm_repo)


if __name__ == "__main__":
    raise SystemExit(main())
