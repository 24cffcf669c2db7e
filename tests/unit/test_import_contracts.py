"""The import direction of the shared package is a contract (`.importlinter`), checked here.

common < ledger (pure) < store (the only Firestore code) < features, which never import each
other; the ledger and common import no Google client and no Stripe.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_shared_package_keeps_every_import_contract():
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_a_ledger_module_that_imports_the_store_breaks_the_contracts(tmp_path):
    for name in ("shared", "tools", "console"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    records = tmp_path / "shared" / "ledger" / "records.py"
    records.write_text(records.read_text() + "\nfrom ..store import client  # noqa: E402,F401\n")
    run = _lint(tmp_path)
    assert run.returncode != 0
    assert "common < ledger < store < features BROKEN" in run.stdout
    assert "the ledger and common are pure: no Google client, no Stripe BROKEN" in run.stdout


def test_a_console_module_that_commits_to_the_store_itself_breaks_the_contracts(tmp_path):
    for name in ("shared", "tools", "console"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    reads = tmp_path / "console" / "reads.py"
    reads.write_text(reads.read_text() + "\nfrom shared.store import commit  # noqa: E402,F401\n")
    run = _lint(tmp_path)
    assert run.returncode != 0
    assert "the support console writes only through the features BROKEN" in run.stdout
