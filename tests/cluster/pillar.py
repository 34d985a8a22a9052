"""The pillar a test cluster serves: the repository's example pillar, adapted to the cluster.

The example lives in ``<repo>/pillar/crane/*.sls`` (plain YAML under ``crane:``).  The test
cluster gets its own copy in its run directory, with the apt repository URL pointed at the
cluster's local repository and ``crane/database`` targeted at control nodes only.
"""

from __future__ import annotations

import copy
import pathlib

import yaml

from .spec import ClusterSpec

DATABASE_SLS = "crane.database"
REDHAT_SLS = "crane.redhat_nodes"


def load_example(repo_root: pathlib.Path) -> dict[str, dict]:
    """``{"crane.cluster": data, ...}`` from ``pillar/crane/*.sls``; empty when absent."""
    sls_dir = repo_root / "pillar" / "crane"
    result = {}
    for path in sorted(sls_dir.glob("*.sls")):
        data = yaml.safe_load(path.read_text()) or {}
        result[f"crane.{path.stem}"] = data
    return result


def placeholder(spec: ClusterSpec) -> dict[str, dict]:
    """A minimal ``crane`` pillar for the cluster, used while the example does not exist."""
    control = spec.hostnames("control")
    nodes = [_node_entry(spec, name) for name in spec.hostnames("compute")]
    config = {
        "ControlMachine": control[0] if control else "",
        "CraneBaseDir": "/var/crane/",
        "CraneCtldForeground": True,
        "CranedForeground": True,
        "Nodes": nodes,
        "Partitions": [{"name": "CPU", "nodes": ",".join(spec.hostnames("compute"))}],
        "DefaultPartition": "CPU",
    }
    cluster = {
        "crane": {
            "version": spec.repo_versions[0],
            "install": {"method": "repo", "repo": {"url": spec.repo_url(), "dist": "./"}},
            "login_nodes": spec.hostnames("login"),
            "config": config,
        }
    }
    database = {"crane": {"database": {"CraneEmbeddedDbBackend": "Unqlite"}}}
    return {"crane.cluster": cluster, DATABASE_SLS: database}


def _node_entry(spec: ClusterSpec, hostname: str) -> dict:
    entry = {"name": hostname, "cpu": 2, "memory": "2G"}
    gpus = spec.node(hostname).gpus
    if gpus:
        entry["gres"] = [
            {
                "name": "gpu",
                "type": "nvidia",
                "EnvInjector": "nvidia",
                "DeviceFileRegex": f"/dev/nvidia[0-{gpus - 1}]",
            }
        ]
    return entry


def cluster_pillar(spec: ClusterSpec, repo_root: pathlib.Path) -> tuple[dict[str, dict], dict]:
    """``(sls_name -> data, top)`` for the cluster: example (or placeholder) + local repo URL."""
    sls = copy.deepcopy(load_example(repo_root)) or placeholder(spec)
    _point_repo_at(sls, spec.repo_url())
    _simulator_runtime(sls)
    _container_node_prerequisites(sls)
    if "RedHat" in spec.families():
        sls[REDHAT_SLS] = redhat_overrides(spec)
    return sls, top_for(spec, sls)


def _container_node_prerequisites(sls: dict[str, dict]) -> None:
    """The nodes are containers on a hybrid cgroup host and see a hybrid tree, which
    CraneSched refuses (the simulator does not): the cgroup gate would fail on every compute
    node, so it is off here; test_prereq turns it on against a stand-in cgroup v2 tree."""
    crane = sls.setdefault("crane.cluster", {}).setdefault("crane", {})
    crane.setdefault("cgroup", {})["manage"] = False
    # and they have no Debian mirror to install chrony from (their clock is the host's)
    crane.setdefault("time", {})["chrony"] = False
    # and no MongoDB (the simulator's cranectld does not connect to one): test_prereq starts a
    # listener for the preflight
    crane.setdefault("mongodb", {})["preflight"] = False


# The same runtime under the names Rocky 9 gives it (an RPM node's image has these in rpm's
# database, as a Rocky image would).
SIMULATOR_RUNTIME_RPM = ["python3", "python3-pyyaml"]


def redhat_overrides(spec: ClusterSpec) -> dict:
    """What differs for RPM nodes: the yum repository (unsigned) and the runtime's names."""
    return {
        "crane": {
            "install": {"repo": {"url": spec.repo_url("RedHat"), "gpgcheck": False}},
            "runtime_packages": {
                key: list(SIMULATOR_RUNTIME_RPM) for key in ("cranectld", "craned", "frontend")
            },
        }
    }


# The simulator's programs are Python: what they need at run time replaces CraneSched's
# libraries (the test nodes have no Debian mirror; these come with their image).
SIMULATOR_RUNTIME = ["python3", "python3-yaml"]


def _simulator_runtime(sls: dict[str, dict]) -> None:
    """``crane:runtime_packages`` for the simulator's packages, in ``crane.cluster``."""
    crane = sls.setdefault("crane.cluster", {}).setdefault("crane", {})
    crane["runtime_packages"] = {
        key: list(SIMULATOR_RUNTIME) for key in ("cranectld", "craned", "frontend")
    }


def _point_repo_at(sls: dict[str, dict], url: str) -> None:
    """Point ``crane:install:repo`` at the local (unsigned, so trusted) repository.

    Set in the SLS that defines ``crane:install``, else in ``crane.cluster``.
    """
    owner = next(
        (name for name, data in sls.items() if "install" in (data.get("crane") or {})),
        "crane.cluster",
    )
    crane = sls.setdefault(owner, {}).setdefault("crane", {})
    crane.setdefault("install", {}).setdefault("repo", {}).update(url=url, trusted=True)


def top_for(spec: ClusterSpec, sls: dict[str, dict]) -> dict:
    """Every SLS for every node, except the database SLS: control nodes only."""
    common = sorted(name for name in sls if name not in (DATABASE_SLS, REDHAT_SLS))
    top = {"*": common}
    if DATABASE_SLS in sls:
        for control in spec.hostnames("control"):
            top[control] = [DATABASE_SLS]
    if REDHAT_SLS in sls:
        for node in spec.nodes:
            if node.family == "RedHat":
                top.setdefault(node.hostname, []).append(REDHAT_SLS)
    return {"base": top}


def write_tree(root: pathlib.Path, sls: dict[str, dict], top: dict) -> None:
    """Write ``top.sls`` and one file per SLS name (dots become directories)."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.rglob("*.sls"):
        old.unlink()
    (root / "top.sls").write_text(yaml.safe_dump(top, sort_keys=False))
    for name, data in sls.items():
        path = root.joinpath(*name.split(".")).with_suffix(".sls")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
