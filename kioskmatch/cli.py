"""``kioskmatch`` command line.

Each area contributes its subcommands through a ``register(subparsers)`` function; a subcommand
sets ``func`` to a callable taking the parsed ``argparse.Namespace`` and returning the exit status.

Exit status (DESIGN.md): 0 the command did its job; 2 bad input or an unreachable device; 1 anything
else. ``--json`` puts machine-readable output on stdout and logs on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from kioskmatch import __version__

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[Registrar]:
    # Imported lazily so `kioskmatch --help` stays fast and nothing runs at import time.
    from kioskmatch import commands

    return commands.REGISTRARS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kioskmatch",
        description="Vehicle appraisal kiosks and the gateway that matches them to lenders.",
    )
    parser.add_argument("--version", action="version", version=f"kioskmatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Libraries that narrate every packet at INFO; their warnings still show.
        for noisy in ("amqtt", "transitions", "httpx", "uvicorn.error"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
