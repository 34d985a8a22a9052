"""A real salt-master with three minions (control, compute, login) serving the formula.

All minions run on this machine; each gets the host name of a node of the example cluster as
a static grain, which is how the formula matches a minion to its roles.
"""

import contextlib
import shutil
import tempfile

import pytest
import yaml
from saltfactories.utils import random_string

from tests.support.caller import PILLAR_DIR, REPO

NODES = {"control": "cranectl", "compute": "cn03", "login": "login01"}


@pytest.fixture(scope="session")
def salt_factories_default_root_dir():
    """The daemons' directories in one short-named folder, removed afterwards (the default,
    the temporary directory itself, keeps them; a short path keeps the sockets' paths short)."""
    root = tempfile.mkdtemp(prefix="crane-it-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def pillar_tree(tmp_path_factory):
    """The example pillar, with its top file targeting our minion ids."""
    root = tmp_path_factory.mktemp("pillar")
    (root / "crane").mkdir()
    for name in ("cluster.sls", "database.sls"):
        (root / "crane" / name).write_text((PILLAR_DIR / "crane" / name).read_text())
    return root


@pytest.fixture(scope="package")
def minion_ids():
    return {role: random_string(f"{host}-") for role, host in NODES.items()}


@pytest.fixture(scope="package")
def master(salt_factories, pillar_tree, minion_ids):
    top = {
        "base": {
            "*": ["crane.cluster"],
            minion_ids["control"]: ["crane.database"],
        }
    }
    (pillar_tree / "top.sls").write_text(yaml.safe_dump(top))
    factory = salt_factories.salt_master_daemon(
        random_string("master-"),
        overrides={
            "file_roots": {"base": [str(REPO / "salt" / "states"), str(REPO / "salt")]},
            "pillar_roots": {"base": [str(pillar_tree)]},
            "interface": "127.0.0.1",
        },
    )
    with factory.started():
        yield factory


@pytest.fixture(scope="package")
def minions(master, minion_ids):
    with contextlib.ExitStack() as stack:
        started = {}
        for role, minion_id in minion_ids.items():
            host = NODES[role]
            factory = master.salt_minion_daemon(
                minion_id,
                overrides={"grains": {"host": host, "nodename": host}, "master": "127.0.0.1"},
            )
            started[role] = stack.enter_context(factory.started())
        yield started


@pytest.fixture(scope="package")
def salt_cli(master, minions):
    cli = master.salt_cli(timeout=120)
    synced = cli.run("saltutil.sync_all", minion_tgt="*")
    assert synced.returncode == 0, synced
    return cli
