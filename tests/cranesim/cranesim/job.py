"""``cranesim-job``: a simulator-only test hook that runs a fake job on a node.

    cranesim-job [-C config.yaml] --node cn01 --seconds 30 [--cpus N] [--uid UID]
    cranesim-job [-C config.yaml] --list

The job occupies ``N`` CPUs (default: the whole node) of ``cn01`` for 30 s: the node shows
``alloc`` (or ``mix``), ``RunningJob=`` counts it, cranectld keeps it in its embedded DB
and craned keeps it across restarts. The job belongs to ``UID`` (default: the caller's, as
cbatch submits as the calling user), which pam_crane checks.  CraneSched has no such command.
"""

import argparse
import json
import os
import sys

from cranesim import frontend
from cranesim.common import RpcError


def main(argv=None):
    """Submit (or list) fake jobs through cranectld's client port."""
    parser = argparse.ArgumentParser(prog="cranesim-job", description=__doc__.split("\n")[0])
    parser.add_argument("-C", "--config", default=frontend.DEFAULT_CONFIG)
    parser.add_argument("--node")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--cpus", type=int, default=0)
    parser.add_argument("--uid", type=int, default=os.getuid())
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    config = frontend.parse_config(args.config)
    if args.list:
        request = {"op": "query_sim_jobs"}
    elif args.node and args.seconds is not None:
        request = {
            "op": "submit_sim_job",
            "node": args.node,
            "seconds": args.seconds,
            "cpu": args.cpus,
            "uid": args.uid,
        }
    else:
        parser.error("--node and --seconds are required (or --list)")
    try:
        reply = frontend.call_ctld(config, request)
    except RpcError:
        frontend.log_error(f"Failed to submit the job: {frontend.BROKEN}")
        return frontend.ERROR_NETWORK
    if args.list:
        print(json.dumps(reply["jobs"]))
        return 0
    if not reply.get("ok"):
        frontend.log_error(reply.get("error", "job refused"))
        return frontend.ERROR_BACKEND
    print(f"Job {reply['job_id']} submitted on {args.node}.")
    return 0
