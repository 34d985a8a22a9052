"""The crane_firewall states through Salt's own loader (state module, its utilities): on a
machine without ufw or firewalld they change nothing and say why."""

import pytest


@pytest.mark.parametrize(
    ("backend", "why"),
    [("ufw", "ufw is not installed"), ("firewalld", "firewalld is not installed")],
)
def test_opened_and_closed_without_the_firewall_program(local_minion, backend, why):
    if local_minion.call("cmd.which", "ufw" if backend == "ufw" else "firewall-cmd"):
        pytest.skip(f"{backend} is installed here")
    opened = local_minion.call(
        "state.single", "crane_firewall.opened", "ports", backend=backend, ports=[10010]
    )
    (ret,) = opened.values()
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == f"{why}: 10010/tcp left as they are"
    closed = local_minion.call("state.single", "crane_firewall.closed", "rules", backend=backend)
    (ret,) = closed.values()
    assert ret["comment"] == f"{why}: its rules left as they are"
