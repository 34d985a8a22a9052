"""The simulated ``csupervisor``: craned only requires that it exists; it prints its version."""

from cranesim import VERSION


def main(argv=None):
    """Entry point of /usr/libexec/csupervisor."""
    print(f"Version: {VERSION}")
    return 0
