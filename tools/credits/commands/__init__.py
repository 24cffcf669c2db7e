"""The `credits` commands, in the order `--help` lists them: each module has `add_parser(subparsers)`,
which declares the command and its arguments and returns its parser, and `run(args, out, err)`,
which does the work and returns the exit code."""

from . import adjust, balance, events, health, history, holds, migrate, reconcile, refund, replay, report, topup

COMMANDS = [balance, history, adjust, refund, holds, topup, migrate, reconcile, replay, report, health, events]
