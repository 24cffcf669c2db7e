"""The installed `credits` console script, run as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli import user_doc

SCRIPT = Path(sys.executable).parent / "credits"


def run(*argv: str) -> subprocess.CompletedProcess:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: run ./scripts/install.sh"
    env = {**os.environ, "PYTHONPATH": ""}  # the installed package must work on its own
    return subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, env=env, timeout=120, cwd="/")


def test_the_installed_credits_command_adjusts_and_reads_a_balance(db):
    adjusted = run("adjust", "cli-user", "--pool", "monthly", "--amount", "25", "--reason", "script test", "--operator", "ops", "--json")
    assert adjusted.returncode == 0, adjusted.stderr
    assert json.loads(adjusted.stdout)["balance"]["credits_monthly"] == 25
    assert user_doc(db, "cli-user")["credits_monthly"] == 25

    balance = run("balance", "cli-user", "--json")
    assert balance.returncode == 0 and json.loads(balance.stdout)["balance"] == 25

    refused = run("adjust", "cli-user", "--pool", "monthly", "--amount=-26", "--reason", "too much", "--operator", "ops")
    assert refused.returncode == 3 and "below zero" in refused.stderr and refused.stdout == ""

    assert run("--help").returncode == 0
    assert run("no-such-command").returncode == 2
