"""Command line: ``python -m backend_kit demo`` (and ``version``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m backend_kit`` and the ``backend-kit`` script."""
    parser = argparse.ArgumentParser(
        prog="python -m backend_kit",
        description="backend-kit: typed backend building blocks.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "demo",
        help="show every component working (embedded defaults; real services when REDIS_URL, DATABASE_URL, AMQP_URL ... are set)",
    )
    commands.add_parser("version", help="print the installed version")
    args = parser.parse_args(argv)

    if args.command == "version":
        import backend_kit

        print(backend_kit.__version__)
        return 0
    # Imported here so `version` and `--help` stay instant.
    from backend_kit._demo import run_demo

    return run_demo()


if __name__ == "__main__":
    sys.exit(main())
