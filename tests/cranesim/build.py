"""Build the simulator as Debian packages laid out like CraneSched's own, plus a flat apt repo.

    python -m tests.cranesim.build --out DIR --version 1.1.2 --version 1.1.3 [--broken 1.1.4]

``build_repo(out_dir, versions, broken=())`` does the same from Python and returns ``out_dir``.
A version ``PKG=REPORTED`` builds packages versioned ``PKG`` whose programs report ``REPORTED``
(CraneSched's VERSION file, e.g. ``1.1.3=1.1.3.1`` or ``1.1.2=1.1.2+dev``); ``PKG=`` builds
without a VERSION file, so the programs report a git-hash-like string as CraneSched does.
The output is byte-for-byte reproducible: fixed timestamps, root ownership, sorted members.
Use it with ``deb [trusted=yes] http://<host>:<port>/ ./``.
"""

import argparse
import functools
import gzip
import hashlib
import io
import lzma
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field

HERE = pathlib.Path(__file__).resolve().parent
LIBRARY = HERE / "cranesim"
PACKAGING = HERE / "packaging"
EPOCH = 1704067200  # 2024-01-01T00:00:00Z, every timestamp in the output
MAINTAINER = "CraneSched <service@csjstt.com>"
FRONTEND_TOOLS = [
    "cacct",
    "cacctmgr",
    "calloc",
    "cbatch",
    "ccancel",
    "ccon",
    "ccontrol",
    "ceff",
    "cfored",
    "cinfo",
    "cqueue",
    "creport",
    "crun",
    "cattach",
    "cwrapper",
]
SIMULATED = {
    "cranectld",
    "craned",
    "csupervisor",
    "cinfo",
    "ccontrol",
    "cfored",
    "cranesim-job",
    "cranesim-pam",
}
MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}
PAM_MODULE = "/usr/lib64/security/pam_crane.so"  # hard-coded install path in CraneSched
PAM_HELPER = "/usr/lib/cranesim/craned/pam_crane_helper"  # run by the module (pam_crane.c)
# Compiled at build time (gcc and libpam0g-dev on the build host); reproducible: fixed
# flags, a relative source name, no debug info, stripped.
PAM_CFLAGS = ["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-s", "-Wl,--build-id=sha1"]


@dataclass
class Entry:
    """One file in a package's data archive."""

    path: str
    data: bytes
    mode: int


@dataclass
class Package:
    """A .deb about to be written."""

    name: str
    version: str
    arch: str
    filename: str
    description: str
    extra_fields: dict = field(default_factory=dict)
    files: list = field(default_factory=list)
    control_extra: list = field(default_factory=list)


# --------------------------------------------------------------------------- contents
def split_version(spec):
    """``PKG`` or ``PKG=REPORTED`` -> (package version, reported version or None for a build
    without a VERSION file)."""
    package, sep, reported = str(spec).partition("=")
    if not sep:
        return package, package
    return package, reported or None


def reported_version(package, reported):
    """What ``Version=`` / ``-v`` show: the VERSION file's content, or (no VERSION file) a
    short git hash, here derived from the package version so builds stay reproducible."""
    if reported is not None:
        return reported
    return hashlib.sha1(f"cranesim-{package}".encode()).hexdigest()[:7]


def _library(component, reported):
    """The Python package behind the programs, private to each .deb (like static binaries);
    ``_version.py`` is the baked-in VERSION (CraneSched's ``CRANE_VERSION_STRING``)."""
    base = f"/usr/lib/cranesim/{component}"
    entries = [
        Entry(f"{base}/cranesim/{src.name}", src.read_bytes(), 0o644)
        for src in sorted(LIBRARY.glob("*.py"))
    ]
    entries.append(
        Entry(f"{base}/cranesim/_version.py", f'VERSION = "{reported}"\n'.encode(), 0o644)
    )
    return entries


def _launcher(component, program):
    if program not in SIMULATED:
        return _unsimulated(component, program)
    text = (
        "#!/usr/bin/python3 -IB\n"
        f'"""{program} (CraneSched simulator)."""\n'
        "import sys\n\n"
        f'sys.path.insert(0, "/usr/lib/cranesim/{component}")\n'
        "from cranesim.__main__ import run  # noqa: E402\n\n"
        f'sys.exit(run("{program}", sys.argv[1:]))\n'
    )
    return text.encode()


def _unsimulated(component, program):
    text = (
        "#!/usr/bin/python3 -IB\n"
        "import sys\n\n"
        f'sys.path.insert(0, "/usr/lib/cranesim/{component}")\n'
        "from cranesim import frontend  # noqa: E402\n\n"
        'if sys.argv[1:2] in (["-v"], ["--version"]):\n'
        "    print(frontend.version_text())\n"
        "    sys.exit(0)\n"
        f'sys.stderr.write("{program} is not simulated by cranesim.\\n")\n'
        "sys.exit(1)\n"
    )
    return text.encode()


def _packaging(name):
    return (PACKAGING / name).read_bytes()


@functools.cache
def pam_module(helper=PAM_HELPER):
    """packaging/pam_crane.c built as a PAM module (the bytes of pam_crane.so) that runs
    ``helper`` (tests build one that runs the helper from the source tree)."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(PACKAGING / "pam_crane.c", tmp)
        define = f'-DHELPER="{helper}"'
        cmd = ["gcc", *PAM_CFLAGS, define, "-o", "pam_crane.so", "pam_crane.c", "-lpam"]
        try:
            subprocess.run(cmd, cwd=tmp, check=True, capture_output=True, text=True)
        except FileNotFoundError as exc:
            raise RuntimeError("building pam_crane.so needs gcc (and libpam0g-dev)") from exc
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"building pam_crane.so failed:\n{exc.stderr}") from exc
        return (pathlib.Path(tmp) / "pam_crane.so").read_bytes()


def _samples(with_database):
    entries = [Entry("/etc/crane/config.yaml.sample", _packaging("config.yaml.sample"), 0o644)]
    if with_database:
        entries.append(
            Entry("/etc/crane/database.yaml.sample", _packaging("database.yaml.sample"), 0o600)
        )
    entries.append(Entry("/etc/crane/plugin.yaml.sample", _packaging("plugin.yaml.sample"), 0o644))
    return entries


def _cpack_package(group, version, arch):
    """CPack component-group package: ``cranesched-<group>``, file "
    "``CraneSched-<v>-Linux-<cpu>-<group>.deb``."""
    return Package(
        name=f"cranesched-{group}",
        version=version,
        arch=arch,
        filename=f"CraneSched-{version}-Linux-{MACHINE.get(arch, arch)}-{group}.deb",
        description="An HPC and Cloud Computing Fused Job Scheduling System\n"
        " An HPC and Cloud Computing Fused Job Scheduling System",
        extra_fields={"Section": "devel", "Priority": "optional"},
        control_extra=[("post_install.sh", _packaging("post_install.sh"), 0o755)],
    )


def cranectld_package(version, arch, reported=None):
    pkg = _cpack_package("cranectld", version, arch)
    pkg.files = [
        Entry("/usr/bin/cranectld", _launcher("cranectld", "cranectld"), 0o777),
        Entry("/usr/lib/systemd/system/cranectld.service", _packaging("cranectld.service"), 0o644),
        *_samples(with_database=True),
        *_library("cranectld", reported or version),
    ]
    return pkg


def craned_package(version, arch, broken=False, reported=None):
    """craned + csupervisor + pam_crane.so (a working PAM module, with the simulator's helper
    it runs); a broken build forgets csupervisor, so craned refuses to start."""
    pkg = _cpack_package("craned", version, arch)
    pkg.files = [
        Entry("/usr/bin/craned", _launcher("craned", "craned"), 0o777),
        Entry("/usr/lib/systemd/system/craned.service", _packaging("craned.service"), 0o644),
        Entry(PAM_MODULE, pam_module(), 0o644),
        Entry(PAM_HELPER, _launcher("craned", "cranesim-pam"), 0o755),
        *_samples(with_database=False),
        *_library("craned", reported or version),
    ]
    if not broken:
        pkg.files.append(
            Entry("/usr/libexec/csupervisor", _launcher("craned", "csupervisor"), 0o777)
        )
    return pkg


def frontend_package(version, arch, reported=None):
    """nfpm package: the CLIs, cfored and its unit (no config.yaml)."""
    pkg = Package(
        name="cranesched-frontend",
        version=version.replace("+", "-"),
        arch=arch,
        filename=f"cranesched-frontend_{version.replace('+', '-')}_{arch}.deb",
        description="CraneSched Frontend - Command-line tools for CraneSched cluster scheduler.\n"
        " This package contains all user-facing command-line tools for job submission,\n"
        " monitoring, and cluster management.",
        extra_fields={
            "Section": "default",
            "Priority": "optional",
            "Homepage": "https://github.com/PKUHPC/CraneSched-FrontEnd",
            "Vendor": "Peking University",
            "License": "AGPL-3.0",
        },
    )
    tools = [*FRONTEND_TOOLS, "cranesim-job"]
    pkg.files = [Entry(f"/usr/bin/{tool}", _launcher("frontend", tool), 0o755) for tool in tools]
    pkg.files.append(
        Entry("/usr/lib/systemd/system/cfored.service", _packaging("cfored.service"), 0o644)
    )
    pkg.files += _library("frontend", reported or version)
    return pkg


# --------------------------------------------------------------------------- archives
def _tar(entries, dirs=True):
    """A reproducible tar.xz of ``entries`` (absolute paths become ``./...``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        names = sorted({str(p) for e in entries for p in pathlib.PurePosixPath(e.path).parents})
        if dirs:
            for directory in names:
                tar.addfile(_info("." + directory.rstrip("/") + "/", 0, 0o755, tarfile.DIRTYPE))
        for entry in sorted(entries, key=lambda e: e.path):
            info = _info(
                "." + entry.path if entry.path.startswith("/") else "./" + entry.path,
                len(entry.data),
                entry.mode,
                tarfile.REGTYPE,
            )
            tar.addfile(info, io.BytesIO(entry.data))
    return lzma.compress(buffer.getvalue(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)


def _info(name, size, mode, kind):
    info = tarfile.TarInfo(name if name != ".//" else "./")
    info.size, info.mode, info.type, info.mtime = size, mode, kind, EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def control_text(pkg):
    """The DEBIAN/control file."""
    installed = sum((len(e.data) + 1023) // 1024 for e in pkg.files)
    fields = {
        "Package": pkg.name,
        "Version": pkg.version,
        "Architecture": pkg.arch,
        "Maintainer": MAINTAINER,
        "Installed-Size": str(installed),
    }
    fields.update(pkg.extra_fields)
    fields["Description"] = pkg.description
    return "".join(f"{key}: {value}\n" for key, value in fields.items())


def _md5sums(pkg):
    lines = [
        f"{hashlib.md5(e.data).hexdigest()}  {e.path.lstrip('/')}\n"
        for e in sorted(pkg.files, key=lambda e: e.path)
    ]
    return "".join(lines).encode()


def _ar(members):
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{EPOCH:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
        out.append(header.encode() + data + (b"\n" if len(data) % 2 else b""))
    return b"".join(out)


def deb_bytes(pkg):
    """The .deb: debian-binary, control.tar.xz (control, md5sums, extras), data.tar.xz."""
    control = [
        Entry("control", control_text(pkg).encode(), 0o644),
        Entry("md5sums", _md5sums(pkg), 0o644),
    ]
    control += [Entry(name, data, mode) for name, data, mode in pkg.control_extra]
    control_tar = _tar(control, dirs=False)
    return _ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", control_tar),
            ("data.tar.xz", _tar(pkg.files)),
        ]
    )


# --------------------------------------------------------------------------- repository
def _index_entry(pkg, data):
    text = control_text(pkg).split("Description:")[0]
    return (
        text
        + f"Filename: ./{pkg.filename}\nSize: {len(data)}\n"
        + f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
        + f"SHA1: {hashlib.sha1(data).hexdigest()}\n"
        + f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        + f"Description: {pkg.description}\n"
    )


def _release(files, arch):
    lines = [
        "Origin: cranesim",
        "Label: cranesim",
        "Suite: cranesim",
        "Codename: cranesim",
        "Date: Mon, 01 Jan 2024 00:00:00 UTC",
        f"Architectures: {arch}",
        "Description: CraneSched simulator packages (test double)",
    ]
    for title, algo in (("MD5Sum", hashlib.md5), ("SHA256", hashlib.sha256)):
        lines.append(f"{title}:")
        lines += [f" {algo(data).hexdigest()} {len(data)} {name}" for name, data in files]
    return "\n".join(lines) + "\n"


def packages_for(spec, arch, broken=False):
    """The three packages of one version spec (``PKG`` or ``PKG=REPORTED``)."""
    version, reported = split_version(spec)
    shown = reported_version(version, reported)
    return [
        cranectld_package(version, arch, shown),
        craned_package(version, arch, broken, shown),
        frontend_package(version, arch, shown),
    ]


def wanted_packages(versions, broken, arch):
    """``(spec, package)`` for every package of every version spec, and of the broken builds
    of the specs in ``broken``."""
    wanted = [(v, False) for v in versions] + [(v, True) for v in broken]
    return [(spec, pkg) for spec, bad in wanted for pkg in packages_for(spec, arch, bad)]


def build_repo(out_dir, versions, broken=(), arch="amd64"):
    """Write all packages of all versions, Packages, Packages.gz and Release; return the dir.
    Each version is ``PKG`` or ``PKG=REPORTED`` (see the module docstring)."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    packages = [pkg for _spec, pkg in wanted_packages(versions, broken, arch)]
    entries = []
    for pkg in sorted(packages, key=lambda p: (p.name, p.version)):
        data = deb_bytes(pkg)
        (out / pkg.filename).write_bytes(data)
        entries.append(_index_entry(pkg, data))
    index = "\n".join(entries).encode()
    packages_gz = gzip.compress(index, compresslevel=9, mtime=0)
    (out / "Packages").write_bytes(index)
    (out / "Packages.gz").write_bytes(packages_gz)
    files = [("Packages", index), ("Packages.gz", packages_gz)]
    (out / "Release").write_text(_release(files, arch))
    return out


# --------------------------------------------------------------------------- binaries
def binary_bytes(program, reported):
    """One program as a single file, the way the guide copies CraneSched's binaries by hand:
    a Python zip application (shebang + zip of the simulator), so it needs no library tree."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        members = {f"cranesim/{src.name}": src.read_bytes() for src in LIBRARY.glob("*.py")}
        members["cranesim/_version.py"] = f'VERSION = "{reported}"\n'.encode()
        members["__main__.py"] = _binary_main(program).encode()
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            archive.writestr(info, members[name])
    return b"#!/usr/bin/python3 -IB\n" + buffer.getvalue()


def _binary_main(program):
    if program not in SIMULATED:
        return (
            "import sys\nfrom cranesim import frontend\n\n"
            'if sys.argv[1:2] in (["-v"], ["--version"]):\n'
            "    print(frontend.version_text())\n    sys.exit(0)\n"
            f'sys.stderr.write("{program} is not simulated by cranesim.\\n")\nsys.exit(1)\n'
        )
    call = f'sys.exit(run("{program}", sys.argv[1:]))'
    return f"import sys\nfrom cranesim.__main__ import run\n\n{call}\n"


BINARIES = ["cranectld", "craned", "csupervisor", *FRONTEND_TOOLS]


def build_binaries(out_dir, spec):
    """The programs of one version (``PKG`` or ``PKG=REPORTED``) as single files in
    ``out_dir`` (mode 0755), for ``install:method: binaries``; returns ``out_dir``."""
    version, reported = split_version(spec)
    shown = reported_version(version, reported)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for program in BINARIES:
        (out / program).write_bytes(binary_bytes(program, shown))
        (out / program).chmod(0o755)
    return out


def cli(argv, doc, kind, build_repository):
    """The repository builders' command line: ``--out`` (a ``kind`` repository), ``--version``
    and ``--broken`` (repeatable), ``--arch``; prints what ``build_repository`` returns."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--out", required=True, help=f"output directory ({kind})")
    parser.add_argument(
        "--version",
        action="append",
        default=[],
        dest="versions",
        help="PKG or PKG=REPORTED (the VERSION file; empty: no VERSION file, a hash)",
    )
    parser.add_argument(
        "--broken", action="append", default=[], help="a version whose craned lacks csupervisor"
    )
    parser.add_argument("--arch", default="amd64")
    args = parser.parse_args(argv)
    if not args.versions and not args.broken:
        parser.error("give at least one --version")
    print(build_repository(args.out, args.versions, args.broken, args.arch))
    return 0


def main(argv=None):
    return cli(argv, __doc__, "flat apt repository", build_repo)


if __name__ == "__main__":
    raise SystemExit(main())
