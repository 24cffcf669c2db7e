"""What several commands share: the exit codes, the options every command takes, argument types."""

from __future__ import annotations

import argparse
import getpass
from datetime import date

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNAVAILABLE = 4


def add_command(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """A command's parser, with the options every command takes (`--json`, `--verbose`)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--json", action="store_true", help="print JSON instead of a table (for scripts)")
    options.add_argument("--verbose", action="store_true", help="also print the structured logs (JSON lines) on stderr")
    return subparsers.add_parser(name, parents=[options], **kwargs)


def add_user_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user_id", metavar="USER")


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; --operator is then required in practice
        return ""
