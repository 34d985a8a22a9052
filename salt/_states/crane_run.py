"""
The plan of a ``crane.upgrade`` or ``crane.restart`` run as a state, for orchestrations run
with ``test=True`` (Salt's own ``salt.runner`` state only says "would be executed" there).

``crane.orch.upgrade`` and ``crane.orch.restart`` run the runner with ``salt.runner``; under
``test=True`` they use ``crane_run.plan`` instead, which asks the runner for a dry run: the
preflight checks and the plan, with nothing changed, no module synced, no package database
refreshed.
"""

__virtualname__ = "crane_run"


def __virtual__():
    if "saltutil.runner" not in __salt__:
        return (False, "crane_run: needs saltutil.runner (run it from an orchestration)")
    return __virtualname__


def plan(name, runner="crane.upgrade", **options):
    """
    The dry run of ``runner`` (``crane.upgrade`` or ``crane.restart``) with ``options``: result
    None with the plan when there is work to do, True when there is none, False with the
    reason when preflight fails. Never changes anything, with or without ``test=True``.
    (The argument is ``runner``: Salt's state compiler reserves ``fun``.)

    .. code-block:: yaml

        crane-orch-upgrade-plan:
          crane_run.plan:
            - runner: crane.upgrade
            - version: 1.1.3
            - batch: 2
    """
    if runner not in ("crane.upgrade", "crane.restart"):
        return {"name": name, "result": False, "changes": {}, "comment": f"unknown runner {runner}"}
    options = {k: v for k, v in options.items() if not k.startswith("__")}
    report = __salt__["saltutil.runner"](runner, dry_run=True, **options)
    report = report if isinstance(report, dict) else {"Error": str(report)}
    if report.get("retcode") != 0:
        comment = report.get("summary") or report.get("Error") or "preflight failed"
        return {"name": name, "result": False, "changes": {}, "comment": comment}
    plan_data = report.get("plan") or {}
    work = (
        plan_data.get("batches")
        or plan_data.get("login")
        or plan_data.get("control", {}).get("todo")
    )
    return {
        "name": name,
        "result": None if work else True,
        "changes": {},
        "comment": report.get("plan_text") or "",
    }
