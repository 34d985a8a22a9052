"""``python -m bench [--quick] [--only NAME]``: run the benchmarks, print one table."""

import argparse
import sys

from bench import registry
from bench.table import format_table


def main(argv=None):
    """Run the registered benchmarks and print their rows; 1 when one of them failed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", metavar="NAME", help="only benchmarks whose name has NAME")
    args = parser.parse_args(argv)
    registry.discover()
    rows, failed = registry.run(quick=args.quick, only=args.only)
    title = "crane-formula benchmarks" + (" (--quick: smoke sizes)" if args.quick else "")
    print(format_table(rows, title=title))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
