"""Real multi-node test clusters: systemd-nspawn nodes on a private bridge, driven by a
salt-master on the host (``harness.Cluster``), the ``make demo`` driver (``demo``) and the
pytest fixtures in ``conftest``."""
