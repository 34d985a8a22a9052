"""
Master-side view and operations of a CraneSched cluster deployed by the crane formula.

``status`` prints the cluster as the control node's cinfo sees it (and, with ``crane:ha``, the
Keepalived pair, and the last drift and heal of each node), ``health`` gives its verdict;
``drift`` records (and heals) what the ``crane_drift`` beacon reports; ``upgrade`` and
``restart`` drive a rolling (or all-at-once) upgrade or restart (with ``crane:ha``: backup,
failover, old master); ``failover`` moves the master role of the pair; ``join`` and ``leave``
bring nodes in and out. The engine lives in the ``crane_engine`` utility; this module gives it
the cluster through Salt's LocalClient and the master's event bus.
"""

import contextlib
import logging
import os
import sys
import time

import salt.client
import salt.utils.event

log = logging.getLogger(__name__)

__virtualname__ = "crane"


def __virtual__():
    if "crane_engine.run" not in __utils__:
        return (
            False,
            "crane: the crane_engine utility is not synced (salt-run saltutil.sync_all)",
        )
    return __virtualname__


class _SaltCluster:
    """The cluster as the engine sees it (``crane_engine.Cluster``), through this master."""

    def __init__(self):
        # the run lock and the record of an unfinished run live on the master
        self.state_dir = os.path.join(__opts__["cachedir"], "crane")

    def call(self, tgt, fun, arg=(), kwarg=None, *, tgt_type="list", timeout=15):
        """Salt's raw returns ``{minion: {"ret", "retcode"} | False | ...}``."""
        if isinstance(tgt, (list, tuple)):
            tgt = ",".join(tgt)
        client = salt.client.get_local_client(__opts__["conf_file"])
        # Salt prints "No minions matched the target" on stdout for a minion that is not
        # connected; stdout is the runner's result (--out=json), so that goes to stderr
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return client.cmd(
                    tgt,
                    fun,
                    arg=list(arg),
                    kwarg=kwarg,
                    tgt_type=tgt_type,
                    timeout=timeout,
                    full_return=True,
                )
        finally:
            client.destroy()

    def progress(self, message):
        """A progress line on stderr (stdout stays the result) and an event for watchers."""
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
        log.info("crane: %s", message)
        self.event("crane/run/progress", {"message": message})

    def event(self, tag, data):
        try:
            with salt.utils.event.get_master_event(
                __opts__, __opts__["sock_dir"], listen=False
            ) as event:
                event.fire_event(data, tag)
        except Exception:  # pylint: disable=broad-except
            log.debug("crane: could not fire the event %s", tag, exc_info=True)

    def now(self):
        return time.time()

    def sleep(self, seconds):
        time.sleep(seconds)


def _finish(report):
    if report.get("retcode"):
        __context__["retcode"] = 1
    return report


def status():
    """
    The cluster as the control node's ``cinfo`` sees it (partition, state, nodes, reason),
    each node's craned version (``ccontrol show node``) and whether its config.yaml is the
    one most nodes have (CONFIG ``ok``, ``differs``, or ``no answer`` for a minion that did not
    return within 15 s plus the master's ``gather_job_timeout``). Prints a table
    (``--out=json`` gives the data) and exits non-zero when the cluster is unhealthy (a node
    missing, down or drained), a config differs or a minion does not answer.

    With ``crane:ha`` the control nodes come from the pillar's pair: cinfo runs on the master
    (through the virtual IP's name), and a CONTROL table shows each node's role, keepalived,
    cranectld and whether the backup is ready. No master (or two) is a problem; a backup that
    is missing or not ready is a warning (exit code 0).

    With drift healing (``crane:heal``), a DRIFT table shows each node's last drift and heal
    (time, what, result) as ``crane.drift`` recorded them.

    CLI Example:

    .. code-block:: bash

        salt-run crane.status
        salt-run crane.status --out=json
    """
    cluster = _SaltCluster()
    data = __utils__["crane_engine.status"](cluster)
    data["drift"] = __utils__["crane_drift.recorded"](cluster.state_dir)
    if not __opts__.get("output") and "rows" in data:
        # the table is the human view; the default outputter then only adds the verdict
        text = __utils__["crane_engine.status_text"](data)
        print(text + __utils__["crane_drift.status_text"](data["drift"]), flush=True)
        data = {k: data[k] for k in ("healthy", "problems", "retcode")}
    return _finish(data)


def drift(minion, event):
    """
    Record a drift the ``crane_drift`` beacon reported on ``minion`` (the reactor's
    ``salt/reactor/heal.sls`` calls this with the event) and, in mode ``heal``, re-apply the
    node with ``state.apply crane`` (its validation included): one apply per node at a time,
    events arriving meanwhile folded into one more round, nothing done while the pillar
    differs from what was last applied there or a ``crane.upgrade``/``crane.restart`` runs.
    The outcome (``healed``, ``failed``, ``gone``, ``skipped``, ``reported``) is the node's
    last heal in ``crane.status``; a failed heal is not retried until the node drifts again.

    CLI Example:

    .. code-block:: bash

        salt-run crane.drift cn01 '{"kind": "service", "what": "craned is inactive"}'
    """
    report = __utils__["crane_drift.handle"](_SaltCluster(), str(minion), event or {})
    return _finish({**report, "retcode": 1 if report["result"] == "failed" else 0})


def health():
    """
    The verdict of ``status`` without the tables: ``healthy``, ``problems`` (exit code 1),
    ``warnings`` (a backup control node missing or not ready: not an outage) and, with
    ``crane:ha``, the ``master``.

    CLI Example:

    .. code-block:: bash

        salt-run crane.health
    """
    data = __utils__["crane_engine.status"](_SaltCluster())
    verdict = {k: data[k] for k in ("healthy", "problems", "warnings", "retcode") if k in data}
    if data.get("ha"):
        verdict["master"] = data["ha"]["master"]
    return _finish(verdict)


def failover(to=None, timeout=180):
    """
    Move the master role of the ``crane:ha`` pair on purpose (maintenance): stop cranectld
    cleanly on the master (its lock on the shared storage frees), stop keepalived there (the
    backup takes the virtual IP and its notify_master starts cranectld), then wait until every
    compute node that was up has registered with the new master (cinfo through the VIP name)
    and report the seconds that took. Refuses, changing nothing, when the target is not ready
    (no answer, a stale alive file, cranectld running) or cranectld does not answer now.
    keepalived starts again on the old master when its priority is the lower one; otherwise it
    stays stopped (it would take the role back at once) until ``failover to=<old master>`` or
    ``state.apply crane`` there.

    to
        The control minion to become master (default: the other one).
    timeout
        Seconds to wait for the new master to serve every node (default 180).

    CLI Example:

    .. code-block:: bash

        salt-run crane.failover
        salt-run crane.failover to=ctl1
    """
    return _finish(__utils__["crane_engine.failover"](_SaltCluster(), to=to, timeout=timeout))


def _public(kwargs):
    return {k: v for k, v in kwargs.items() if not k.startswith("__")}


def upgrade(version, batch=1, dry_run=False, **kwargs):
    """
    Upgrade CraneSched to ``version``: preflight (minions answer, modules synced, cluster
    healthy, version installable everywhere, config hashes equal), record the drains and back
    up cranectld's DB, upgrade the control node, then compute nodes (a canary, then batches):
    drain with the formula's reason before anything stops, wait for jobs, stop craned, apply
    the formula at the new version, wait until registered at it, resume what the formula
    drained. Stops at the first failure with a non-zero exit code, cranectld running, drains
    restored and the failed nodes named; a re-run skips nodes already at ``version``. One run
    at a time (a second one refuses while the first runs).

    With ``crane:ha`` the control step follows the Keepalived pair: preflight asks both control
    minions (the backup must be able to take over), the backup is upgraded first (keepalived
    keeps its cranectld stopped), then a failover to it (cranectld stopped cleanly on the
    master, its DB backed up once from the shared directory while no cranectld runs, the VIP
    moves, every node registers with the new master), then the old master, whose keepalived
    takes the role back when its priority is the higher one. A failover that does not serve
    within ``register_timeout`` fails back to the old master. ``strategy=all-at-once`` is
    refused with a pair.

    version
        Target version (the packages' version, as ``crane:version``).
    batch
        Compute nodes per batch: a count or a percentage (``25%``).
    canary
        Nodes upgraded alone first (default 1; 0 for none).
    drain_timeout
        Seconds to wait for running jobs on drained nodes (default 600).
    skip_busy
        True: skip nodes still busy after drain_timeout instead of stopping.
    strategy
        ``rolling`` (default) or ``all-at-once`` (CraneSched's stop-everything procedure).
    allow_down
        Host list of nodes that may be down; they are skipped.
    keep_backups
        DB backups to keep (default 5).
    register_timeout
        Seconds for cranectld to answer and nodes to register (default 180).
    allow_downgrade
        Allow a target older than what runs.
    dry_run
        Print the plan and change nothing (no module sync, no package database refresh).

    CLI Example:

    .. code-block:: bash

        salt-run crane.upgrade version=1.1.3 batch=2 dry_run=True
        salt-run crane.upgrade version=1.1.3 batch=25% canary=1 drain_timeout=1800
        salt-run crane.upgrade version=1.1.3 strategy=all-at-once
    """
    options = {"batch": batch, **_public(kwargs)}
    report = __utils__["crane_engine.run"](
        _SaltCluster(), "upgrade", str(version), options, dry_run=dry_run
    )
    return _finish(report)


def restart(batch=1, dry_run=False, **kwargs):
    """
    Rolling restart after a config change: the same preflight, drain record, DB backup,
    control step and compute batches as ``upgrade`` (drain, wait for jobs, restart through the
    formula, wait until registered again, resume) without changing packages. Refuses when the
    pillar's ``crane:version`` differs from what runs (applying the formula would change
    packages). A re-run after a failure skips what the failed run did (recorded on the master
    with the config hash: a config change since starts over). With ``crane:ha``: the backup,
    a failover, the old master, as for ``upgrade``.

    drain
        False: restart craned only, without draining: cranectld and login nodes are not
        touched, busy nodes are restarted too and their jobs keep running (CraneSched's
        csupervisor lives on in the job's cgroup and craned recovers it). Each batch's
        craned restarts through the formula and must register again with a new process
        before the next batch. ``strategy=all-at-once`` and ``skip_busy`` are refused.
    only_due
        True: only the compute nodes whose craned restart is due (``crane.restart_pending``).

    CLI Example:

    .. code-block:: bash

        salt-run crane.restart batch=2
        salt-run crane.restart batch=50% dry_run=True
        salt-run crane.restart drain=False only_due=True batch=25%
    """
    options = {"batch": batch, **_public(kwargs)}
    report = __utils__["crane_engine.run"](
        _SaltCluster(), "restart", None, options, dry_run=dry_run
    )
    return _finish(report)


def _membership(action, minion, kwargs):
    cluster = _SaltCluster()
    report = __utils__["crane_join.run"](cluster, action, minion, _public(kwargs))
    outcome = "done" if report["ok"] else "failed"
    cluster.event(f"crane/{action}/{outcome}", {k: v for k, v in report.items() if k != "Error"})
    return _finish(report)


def join(minion, **kwargs):
    """
    Bring in ``minion`` when it matches a node group by selector (``Nodes`` entries with
    ``match``): sync it, refresh its pillar and mine facts, apply ``crane`` on it alone (its
    gates must pass, else it is not added: event ``crane/join/failed``), mark it joined, then
    write config.yaml on every node without restarting craned and restart cranectld (drains
    kept), wait until cinfo lists it up, then restart the craned whose restart is now due a
    batch at a time without a drain (``crane.restart drain=False only_due=True``: running jobs
    keep running). Nothing happens for a minion that matches no
    selector. Waits for a run already in progress (one join, leave, upgrade or restart at a
    time). Minions whose joins wait meanwhile are joined by the run that gets the lock, each
    gated alone, then with one config step and one rolling restart for all; their own runs
    return that report. The reactor runs it through ``crane.orch.join`` on a minion's start
    event.

    lock_wait
        Seconds to wait for another run to end (default: the pillar's
        ``crane:elastic:lock_wait``, 900).
    register_timeout
        Seconds for the node to show up in cinfo, and for each batch of the closing restart
        to register again (default 180).
    batch
        craned restarted at a time at the end (default: the pillar's ``crane:elastic:batch``,
        25 %).

    CLI Example:

    .. code-block:: bash

        salt-run crane.join gpu05
    """
    return _membership("join", minion, kwargs)


def leave(minion, **kwargs):
    """
    After ``minion``'s key was deleted: drain the nodes cranectld knows that the config no
    longer has (those still up), wait for their jobs, then write config.yaml everywhere,
    restart cranectld and the craned whose restart is due (as ``join`` does). Nodes still
    busy after ``drain_timeout`` stay drained and configured (the run fails). The reactor runs
    it through ``crane.orch.leave``.

    drain_timeout
        Seconds to wait for the leaving nodes' jobs (default: ``crane:elastic:drain_timeout``,
        600).
    lock_wait
        Seconds to wait for another run to end (default: ``crane:elastic:lock_wait``, 900).
    batch
        craned restarted at a time at the end (as for ``join``).

    CLI Example:

    .. code-block:: bash

        salt-key -d gpu05 && salt-run crane.leave gpu05
    """
    return _membership("leave", minion, kwargs)
