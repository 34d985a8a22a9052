"""
Beacon ``crane_drift``: an event when this node drifts from what ``state.apply crane`` last
applied here (config.yaml edited, a CraneSched service of its roles stopped or failed, a
binary of its packages missing), once per drift. The formula configures it from
``crane:heal`` (state ``crane_drift.beacon``); the work is the execution module's
``crane_drift.scan``.

.. code-block:: yaml

    beacons:
      crane_drift:
        - interval: 10
        - disable_during_state_run: True

Events: ``salt/beacon/<minion>/crane_drift/<kind>`` (kind ``config``, ``service`` or
``binary``) with ``what``, ``key``, ``mode`` (``heal`` or ``report``) and ``time``.
"""

__virtualname__ = "crane_drift"


def __virtual__():
    return __virtualname__


def validate(config):
    """The configuration must be a list of one-key mappings; only Salt's own options."""
    if not isinstance(config, list) or not all(isinstance(item, dict) for item in config):
        return False, "crane_drift: the configuration must be a list of mappings"
    return True, "valid"


def beacon(config):
    """The events of drifts not reported before."""
    if "crane_drift.scan" not in __salt__:
        return []
    return __salt__["crane_drift.scan"]()
