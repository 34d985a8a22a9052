"""Debian 12 root filesystem for test nodes, built with debootstrap and cached by recipe hash.

The cache holds one directory per recipe hash.  A build runs in a temporary sibling
directory and is renamed into place only when complete, so an interrupted build never
leaves a usable-looking half tree behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

CACHE_ENV = "CRANE_FORMULA_CACHE"
MIRROR_ENV = "CRANE_FORMULA_MIRROR"
DEFAULT_CACHE = "/var/cache/crane-formula"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Everything that decides the content of the tree.  Changing any of it changes the hash.
RECIPE = {
    "suite": "bookworm",
    "variant": "minbase",
    "packages": [
        "systemd",
        "systemd-sysv",
        "dbus",
        "iproute2",
        "iputils-ping",
        "procps",
        "python3",
        "python3-yaml",
        # installed, not enabled (ufw.conf ENABLED=no): a test enables it (test_rpm.py)
        "ufw",
        # sshd for pam_crane (PAM lets users in only with a job); the client for hops
        "openssh-server",
        "openssh-client",
        # crane:ha's control pair (VRRP in nspawn nodes on the private bridge)
        "keepalived",
    ],
    # Nodes get their sources from the formula (our local repository), never the internet.
    "empty_files": ["etc/apt/sources.list", "etc/machine-id"],
    "empty_dirs": ["etc/apt/sources.list.d", "var/lib/apt/lists"],
    "enable_units": ["systemd-networkd.service"],
    "mask_units": [
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "e2scrub_all.timer",
        "fstrim.timer",
        "console-getty.service",
        "getty.target",
        "systemd-networkd-wait-online.service",
    ],
    "files": {
        # Keep the journal small and in memory; nodes are throw-away.
        "etc/systemd/journald.conf.d/10-test-node.conf": "[Journal]\nStorage=volatile\n"
        "RuntimeMaxUse=16M\n",
        "etc/apt/apt.conf.d/90-test-node": 'APT::Install-Recommends "false";\n'
        'Acquire::Languages "none";\n',
    },
    "layout": 1,
}


# An RPM node: the same Debian base plus rpm and dnf (Debian's packages), whose rpm database
# is told by file-less packages what the base already has, as a Rocky 9 image has it installed:
# the shell CraneSched's %post needs, the simulator's Python runtime under Rocky's package
# names, and the release number dnf reads for $releasever.
RPM_RECIPE = {
    **RECIPE,
    "packages": [*RECIPE["packages"], "rpm", "dnf"],
    # firewalld, as Rocky has it; stopped at boot, a test starts it (test_rpm.py).  Its
    # polkitd fails to configure inside debootstrap (its postinst needs the system's
    # sysusers and D-Bus), so apt installs it into the finished tree.
    "apt_packages": ["firewalld"],
    "disable_units": ["firewalld.service"],
    "empty_dirs": [*RECIPE["empty_dirs"], "etc/yum.repos.d"],
    "files": {
        **RECIPE["files"],
        # No metadata caching across runs, and no network look-ups of absent repositories.
        # Debian's rpm keeps its database in $HOME/.rpmdb; Rocky's (and the minion's) is here.
        "etc/rpm/macros.dbpath": "%_dbpath /var/lib/rpm\n",
        "etc/dnf/dnf.conf": "[main]\ngpgcheck=1\ninstallonly_limit=3\nbest=True\n"
        "skip_if_unavailable=False\nreposdir=/etc/yum.repos.d\n",
    },
    "rpm_base": {
        "cranesim-node-provides": ["/bin/sh", "/bin/bash", "system-release(releasever) = 9"],
        "python3": [],
        "python3-pyyaml": [],
    },
}
RECIPES = {"Debian": RECIPE, "RedHat": RPM_RECIPE}


def cache_root() -> pathlib.Path:
    """Directory holding cached root filesystems (overridable by environment)."""
    return pathlib.Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE)) / "rootfs"


def recipe_hash(recipe: dict = RECIPE) -> str:
    """Short stable hash of the recipe."""
    blob = json.dumps(recipe, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_path(recipe: dict = RECIPE) -> pathlib.Path:
    """Where the tree for this recipe lives once built."""
    return cache_root() / recipe_hash(recipe)


def is_built(path: pathlib.Path) -> bool:
    """A tree is complete when its marker file exists (written last, before the rename)."""
    return (path / ".crane-formula-rootfs").is_file()


@contextlib.contextmanager
def _build_lock(root: pathlib.Path):
    """Serialise builds of the same cache between concurrent runs."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_rootfs(recipe: dict = RECIPE, log=print) -> tuple[pathlib.Path, float | None]:
    """Return the cached tree for the recipe, building it first if needed.

    Returns ``(path, build_seconds)``; ``build_seconds`` is None when the cache was reused.
    """
    target = cached_path(recipe)
    with _build_lock(target.parent):
        if is_built(target):
            return target, None
        _remove_stale_builds(target.parent)
        started = time.monotonic()
        tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
        try:
            log(f"building node rootfs {target} (debootstrap, about a minute)")
            _debootstrap(tmp, recipe)
            _post_steps(tmp, recipe)
            (tmp / ".crane-formula-rootfs").write_text(json.dumps(recipe, sort_keys=True))
            os.rename(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        _prune_unused({target, *(cached_path(r) for r in RECIPES.values())})
        return target, time.monotonic() - started


def _remove_stale_builds(root: pathlib.Path) -> None:
    """Delete temporary trees left by killed builds (we hold the lock, so none is live)."""
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _prune_unused(keep: set[pathlib.Path]) -> None:
    """Delete trees of older recipes that no running process (node) refers to."""
    in_use = _paths_in_command_lines()
    for tree in cache_root().iterdir():
        if tree not in keep and is_built(tree) and not any(str(tree) in cmd for cmd in in_use):
            shutil.rmtree(tree, ignore_errors=True)


def _paths_in_command_lines() -> list[str]:
    lines = []
    for entry in pathlib.Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            raw = (entry / "cmdline").read_bytes()
            lines.append(raw.replace(b"\0", b" ").decode(errors="replace"))
    return lines


def _debootstrap(dest: pathlib.Path, recipe: dict) -> None:
    mirror = os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)
    cmd = [
        "debootstrap",
        f"--variant={recipe['variant']}",
        "--include=" + ",".join(recipe["packages"]),
        recipe["suite"],
        str(dest),
        mirror,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"debootstrap failed ({proc.returncode}):\n{proc.stdout[-3000:]}")


def _post_steps(root: pathlib.Path, recipe: dict) -> None:
    """Turn a fresh debootstrap tree into a test node image."""
    _apt_install(root, recipe["suite"], recipe.get("apt_packages", []))
    for rel in recipe["empty_files"]:
        (root / rel).write_text("")
    for rel in recipe["empty_dirs"]:
        directory = root / rel
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    (root / "var/lib/apt/lists/partial").mkdir()
    for rel, content in recipe["files"].items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    _rpm_base(root, recipe.get("rpm_base", {}))
    _systemctl(root, "enable", recipe["enable_units"])
    _systemctl(root, "mask", recipe["mask_units"])
    _systemctl(root, "disable", recipe.get("disable_units", []))
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def _apt_install(root: pathlib.Path, suite: str, packages: list[str]) -> None:
    """apt-get install inside the tree, run as a container (its maintainer scripts see a
    system with /proc, users and D-Bus tools, which a debootstrap chroot lacks)."""
    if not packages:
        return
    mirror = os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)
    (root / "etc/apt/sources.list").write_text(f"deb {mirror} {suite} main\n")
    script = (
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y -q --no-install-recommends " + " ".join(packages)
    )
    machine = f"crane-formula-build-{os.getpid()}"
    cmd = ["systemd-nspawn", "--quiet", f"--directory={root}", f"--machine={machine}"]
    cmd += ["--register=no", "--keep-unit", "--pipe", "/bin/sh", "-c", script]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    with contextlib.suppress(OSError):
        (pathlib.Path("/run/systemd/nspawn/propagate") / machine).rmdir()
    if proc.returncode != 0:
        raise RuntimeError(f"apt-get install {packages} failed:\n{proc.stdout[-3000:]}")


def _rpm_base(root: pathlib.Path, stubs: dict) -> None:
    """Initialise the tree's rpm database with the recipe's file-less base packages."""
    if not stubs:
        return
    from tests.cranesim import rpm  # noqa: PLC0415 - only RPM nodes need rpmbuild

    if not rpm.available():
        raise RuntimeError("RPM nodes need rpmbuild and createrepo_c on this host")
    base = ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm"]
    subprocess.run([*base, "--initdb"], check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, provides in sorted(stubs.items()):
            path = pathlib.Path(tmp) / f"{name}.rpm"
            path.write_bytes(rpm.stub_package(name, provides))
            files.append(str(path))
        cmd = [*base, "-i", "--nodeps", "--noscripts", *files]
        subprocess.run(cmd, check=True, capture_output=True)


def _systemctl(root: pathlib.Path, verb: str, units: list[str]) -> None:
    if units:
        subprocess.run(
            ["systemctl", f"--root={root}", "--quiet", verb, *units],
            check=True,
            capture_output=True,
        )
