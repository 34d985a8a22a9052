"""Declarative description of a test cluster: its name, nodes, bridge and subnet."""

from __future__ import annotations

import dataclasses
import ipaddress
import os

ROLES = ("control", "compute", "login")
# Debian: a Debian node.  RedHat: the same Debian base whose CraneSched packages are managed
# only by rpm and dnf, and whose minion reports Rocky 9 (README.md, "Tests").
FAMILIES = ("Debian", "RedHat")
RPM_REPO_DIR = "rpm"  # the yum repository, a subdirectory of the served apt repository


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node: its hostname, a role hint (for the generated pillar), its fake GPUs and its
    OS family."""

    hostname: str
    role: str = "compute"
    gpus: int = 0
    family: str = "Debian"
    # (folder under the run directory, path in the node): host folders bound read-write, e.g.
    # one folder bound into two nodes as their shared storage
    binds: tuple[tuple[str, str], ...] = ()
    # (grain, value): static grains in the minion config
    grains: tuple[tuple[str, str], ...] = ()
    # False: not booted with the cluster; Cluster.boot_node boots it later
    boot: bool = True

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"{self.hostname}: role {self.role!r} is not one of {ROLES}")
        if self.family not in FAMILIES:
            raise ValueError(f"{self.hostname}: family {self.family!r} is not one of {FAMILIES}")


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """A whole cluster.  The host gets ``.1`` on the subnet, nodes ``.11`` upwards."""

    name: str
    nodes: tuple[NodeSpec, ...]
    bridge: str
    subnet: str
    http_port: int = 8080
    salt_ports: tuple[int, int] = (4505, 4506)
    repo_versions: tuple[str, ...] = ("1.1.2", "1.1.3")
    # (name, host number on the subnet): extra /etc/hosts entries, e.g. a virtual IP's name
    aliases: tuple[tuple[str, int], ...] = ()
    # (event tag, reactor SLS as a salt:// path): the master's reactor list
    reactors: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        net = ipaddress.ip_network(self.subnet)
        if net.prefixlen != 24:
            raise ValueError(f"subnet {self.subnet} must be a /24")
        if len(self.bridge) > 15:
            raise ValueError(f"bridge name {self.bridge!r} is longer than 15 characters")
        names = [n.hostname for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate hostnames in {names}")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.subnet)

    @property
    def host_address(self) -> str:
        """The host's address on the bridge: master, apt repository."""
        return str(self.network.network_address + 1)

    def address(self, hostname: str) -> str:
        """Static address of a node."""
        index = [n.hostname for n in self.nodes].index(hostname)
        return str(self.network.network_address + 11 + index)

    def alias_address(self, name: str) -> str:
        """Address of an alias (``aliases``), e.g. a virtual IP no node owns for good."""
        number = dict(self.aliases)[name]
        return str(self.network.network_address + number)

    def node(self, hostname: str) -> NodeSpec:
        for node in self.nodes:
            if node.hostname == hostname:
                return node
        raise KeyError(hostname)

    def hostnames(self, role: str | None = None) -> list[str]:
        return [n.hostname for n in self.nodes if role is None or n.role == role]

    def families(self) -> set[str]:
        return {n.family for n in self.nodes}

    def machine_name(self, hostname: str) -> str:
        """Name given to systemd-nspawn (unique per cluster, so veth names differ)."""
        return f"{self.name}-{hostname}"

    def repo_url(self, family: str = "Debian") -> str:
        """The apt repository, or for RedHat nodes the yum repository beside it."""
        base = f"http://{self.host_address}:{self.http_port}/"
        return base + RPM_REPO_DIR + "/" if family == "RedHat" else base


DEMO_NODES = (
    NodeSpec("cranectl", "control"),
    NodeSpec("cn01", "compute"),
    NodeSpec("cn02", "compute"),
    NodeSpec("cn03", "compute", gpus=4),
    NodeSpec("login01", "login"),
)


def demo_spec() -> ClusterSpec:
    """The demo cluster (``make demo``)."""
    return ClusterSpec(name="cfdemo", nodes=DEMO_NODES, bridge="cfdemo0", subnet="10.213.7.0/24")


def isolated_spec(name: str = "cftest", subnet: str = "10.213.8.0/24", nodes=DEMO_NODES):
    """The demo shape on its own bridge and subnet, so tests can run beside a demo."""
    return ClusterSpec(name=name, nodes=tuple(nodes), bridge=f"{name}0", subnet=subnet)


def env_spec(variable: str, default: str, nodes=DEMO_NODES, **extra) -> ClusterSpec:
    """A cluster on its own bridge and subnet, ``default`` as ``name:subnet``; the environment
    variable ``variable`` (same form) moves it, so several test runs can share one machine.
    ``extra``: further ClusterSpec fields (``aliases``)."""
    name, _, subnet = os.environ.get(variable, default).partition(":")
    spec = isolated_spec(name, subnet, nodes)
    return dataclasses.replace(spec, **extra) if extra else spec
