"""Functional-test fixtures: throw-away device trees (a fake /dev and /sys)."""

import os
import stat

import pytest


class FakeDevTree:
    """A fake ``/dev`` (``root``) and ``/sys`` (``sys_root``) under a temporary directory.

    ``chr()`` makes real character devices with mknod (needs root), ``file()`` ordinary files
    that must never count as devices, ``sysfs()`` files under the fake ``/sys``.
    """

    def __init__(self, base, major=240):
        self.root = str(base / "dev")
        self.sys_root = str(base / "sys")
        os.makedirs(self.root)
        os.makedirs(self.sys_root)
        self._major = major
        self._minor = 0

    def path(self, rel):
        """Absolute path of ``rel`` inside the fake /dev."""
        return os.path.join(self.root, rel)

    def _parent(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def chr(self, *rels):
        """Character devices, one per relative path (``nvidia0``, ``dri/renderD128``)."""
        for rel in rels:
            self._minor += 1
            device = os.makedev(self._major, self._minor)
            os.mknod(self._parent(self.path(rel)), 0o666 | stat.S_IFCHR, device)
        return self

    def file(self, *rels, text=""):
        """Ordinary files at the given relative paths."""
        for rel in rels:
            with open(self._parent(self.path(rel)), "w", encoding="utf-8") as handle:
                handle.write(text)
        return self

    def sysfs(self, rel, text):
        """A file under the fake /sys, e.g. ``class/drm/renderD128/device/vendor``."""
        path = self._parent(os.path.join(self.sys_root, rel))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return self

    def drm_vendor(self, render, pci_vendor):
        """Record the PCI vendor id (``0x1002``) of a DRM render node in the fake /sys."""
        return self.sysfs(f"class/drm/{render}/device/vendor", pci_vendor + "\n")


@pytest.fixture
def fake_dev(tmp_path):
    """An empty :class:`FakeDevTree`; skips the test where mknod is not permitted."""
    tree = FakeDevTree(tmp_path)
    probe = os.path.join(tree.root, ".mknod-probe")
    try:
        os.mknod(probe, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating character devices needs root")
    os.unlink(probe)
    return tree
