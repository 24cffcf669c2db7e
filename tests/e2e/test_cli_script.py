"""The installed `credits` console script, run as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import docs
from tests.support.cli import user_doc

ROOT = Path(__file__).resolve().parents[2]

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


def test_credits_runs_by_name_in_a_shell_that_activated_the_environment_as_the_guide_says():
    activate = ROOT / ".venv" / "bin" / "activate"
    assert activate.exists(), "run ./scripts/install.sh"
    # A PATH without the environment, as in a new terminal: `credits` is found only once activated.
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)
    env = {**os.environ, "PATH": path, "PYTHONPATH": ""}
    env.pop("VIRTUAL_ENV", None)
    before = subprocess.run(["bash", "-c", "command -v credits"], env=env, cwd="/", capture_output=True, text=True)
    assert before.returncode != 0
    activated = subprocess.run(["bash", "-c", f"source {activate} && cd / && credits --version"], env=env,
                               capture_output=True, text=True, timeout=60)
    assert activated.returncode == 0, activated.stderr
    assert activated.stdout.startswith("credits ") and "not installed" not in activated.stdout


def test_every_guide_that_runs_credits_by_name_activates_the_environment_first():
    for path in docs.guide_files():
        lines = docs.shell_lines(path.read_text(encoding="utf-8"))
        assert not [line for line in lines if ".venv/bin/credits" in line], f"{path}: run `credits` by name"
        runs = [i for i, line in enumerate(lines) if line.startswith("credits ")]
        if not runs:
            continue
        activations = [i for i, line in enumerate(lines) if line.startswith("source .venv/bin/activate")]
        readme = docs.shell_lines((ROOT / "README.md").read_text(encoding="utf-8"))
        assert (activations and activations[0] < runs[0]) or (
            path.name != "README.md" and any(line.startswith("source .venv/bin/activate") for line in readme)
        ), f"{path}: `credits` is run before `source .venv/bin/activate`"
