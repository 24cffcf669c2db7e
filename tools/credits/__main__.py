"""`credits`: the operator's command line for the credit system.

It works against whatever Firestore the environment names, exactly like the functions
(`GOOGLE_CLOUD_PROJECT`, `FIRESTORE_EMULATOR_HOST`), and holds no rules of its own: it parses
arguments, calls the services in `shared`, and prints a table on a terminal or JSON with `--json`.
Logs go to stderr (errors only, unless `--verbose`), so stdout is only the command's output.

Exit codes: 0 done; 1 the command found problems (drift, documents needing review, something
that still could not be applied); 2 bad arguments; 3 refused by the rules (a pool would go below
zero, an idempotency key reused for something else); 4 Firestore unavailable or the run was
interrupted: retry (a migration prints where to continue).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from typing import Optional, Sequence

from shared.common import errors, log

from .commands import COMMANDS
from .common import EXIT_PROBLEMS, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, add_global_options
from .output import emit_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credits",
        description=(
            "Operate the two-pool credit system: balances, history, adjustments, migration, "
            "reconciliation, replay, usage reports and a tail of the events topic. Uses the same "
            "environment variables as the functions (GOOGLE_CLOUD_PROJECT, FIRESTORE_EMULATOR_HOST, "
            "PUBSUB_EMULATOR_HOST)."
        ),
        epilog="Exit codes: 0 done, 1 problems found, 2 bad arguments, 3 refused by the rules, 4 unavailable/interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers).set_defaults(run=command.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    out, err = sys.stdout, sys.stderr
    # The command prints what matters itself; the JSON logs are for --verbose (or a log sink).
    log.configure(err, "DEBUG" if args.verbose else "ERROR")
    try:
        return args.run(args, out, err)
    except errors.CreditsError as exc:
        code = _exit_code(exc)
        if args.json:
            emit_json(out, exc.body())
        where = f" ({_firestore()})" if exc.transient else ""
        err.write(f"credits {args.command}: {exc.code}: {exc.message}{where}\n")
        return code
    except KeyboardInterrupt:
        err.write(f"credits {args.command}: interrupted\n")
        return EXIT_UNAVAILABLE
    finally:
        log.configure()


def _version() -> str:
    try:
        return metadata.version("two-pool-credits")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _firestore() -> str:
    """Which Firestore the command talked to, so an outage message says where to look."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or "the default project"
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    return f"Firestore emulator at {host}, project {project}" if host else f"Firestore of project {project}"


def _exit_code(exc: errors.CreditsError) -> int:
    if exc.transient:
        return EXIT_UNAVAILABLE
    if isinstance(exc, (errors.InvalidRequest, errors.ConfigurationError)):
        return EXIT_USAGE
    if isinstance(exc, (errors.PoolUnderflow, errors.IdempotencyConflict, errors.InsufficientCredits,
                        errors.RefundExceedsSpend)):
        return EXIT_REFUSED
    return EXIT_PROBLEMS


if __name__ == "__main__":
    sys.exit(main())
