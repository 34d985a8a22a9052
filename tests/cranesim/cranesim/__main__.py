"""``python -m cranesim <program> [args...]``: run one simulated program by name."""

import importlib
import sys

PROGRAMS = {
    "cranectld": "cranesim.ctld",
    "craned": "cranesim.craned",
    "csupervisor": "cranesim.csupervisor",
    "cinfo": "cranesim.cinfo",
    "ccontrol": "cranesim.ccontrol",
    "cfored": "cranesim.cfored",
    "cranesim-job": "cranesim.job",
    "cranesim-pam": "cranesim.pam",
}


def run(program, argv):
    """Call ``main(argv)`` of ``program``; return its exit status."""
    module = importlib.import_module(PROGRAMS[program])
    sys.argv = [program, *argv]
    return module.main(argv)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in PROGRAMS:
        sys.stderr.write(f"usage: python -m cranesim {{{','.join(PROGRAMS)}}} [args...]\n")
        sys.exit(2)
    sys.exit(run(sys.argv[1], sys.argv[2:]))
