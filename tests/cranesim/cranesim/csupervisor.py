"""The simulated ``csupervisor``: craned only requires that it exists; it prints its version."""

import sys

from cranesim import VERSION


def main(argv=None):
    """Entry point of /usr/libexec/csupervisor."""
    print(f"Version: {VERSION}")
    return 0 if sys.argv else 0
