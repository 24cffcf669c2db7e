"""What several commands share: the exit codes, the options every command takes, argument types."""

from __future__ import annotations

import argparse
import getpass
from datetime import date

from shared.common.validation import path_id_problem

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNAVAILABLE = 4


def add_global_options(parser: argparse.ArgumentParser, in_command: bool = False) -> None:
    """`--json` and `--verbose`, taken before the command or after it (`credits --json balance x`,
    `credits balance x --json`); a command's copy must not reset what was given before it."""
    default = argparse.SUPPRESS if in_command else False
    parser.add_argument("--json", action="store_true", default=default, help="print JSON instead of a table (for scripts)")
    parser.add_argument("--verbose", action="store_true", default=default,
                        help="also print the structured logs (JSON lines) on stderr")


def add_command(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """A command's parser, with the options every command takes (`--json`, `--verbose`)."""
    options = argparse.ArgumentParser(add_help=False)
    add_global_options(options, in_command=True)
    return subparsers.add_parser(name, parents=[options], **kwargs)


def user_id_argument(text: str) -> str:
    """A user id under the API's rules (`shared.common.validation`), or a usage error (exit 2)."""
    problem = path_id_problem(text) if 1 <= len(text) <= 128 else "must be 1 to 128 characters"
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} is not a user id: it {problem}")
    return text


def add_user_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("user_id", metavar="USER", type=user_id_argument)


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
