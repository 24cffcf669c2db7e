"""CHANGELOG.md keeps the Keep a Changelog format, has a section for the version in
pyproject.toml, which `credits --version` prints, and upgrade notes wherever stored data changed."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHANGELOG = ROOT / "CHANGELOG.md"
HEADING = re.compile(r"^## \[(Unreleased|\d+\.\d+\.\d+)\](?: - (\d{4}-\d{2}-\d{2}))?$")
KINDS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security", "Upgrade notes"}


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def versions() -> dict[str, str]:
    """Each version heading's name -> its section's text, in file order."""
    text = CHANGELOG.read_text(encoding="utf-8")
    found, current = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            match = HEADING.match(line)
            assert match, f"not a Keep a Changelog version heading: {line!r}"
            current = match.group(1)
            assert current == "Unreleased" or match.group(2), f"{line!r} has no date"
            found[current] = ""
        elif current is not None:
            found[current] += line + "\n"
    return found


def test_the_changelog_keeps_its_format_newest_first():
    text = CHANGELOG.read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n") and "keepachangelog.com" in text
    names = list(versions())
    assert names[0] == "Unreleased"
    released = [tuple(map(int, name.split("."))) for name in names[1:]]
    assert released == sorted(released, reverse=True) and len(set(released)) == len(released)
    for name, section in versions().items():
        kinds = re.findall(r"^### (.+)$", section, re.M)
        assert set(kinds) <= KINDS, f"{name}: {kinds}"


# What each version changed in the stored data, which its upgrade notes must name.
STORED_CHANGES = {
    "0.2.0": ("seq", "balance_after", "credits migrate", "webhook_events", "stripe_facts", "stripe_epoch",
              "monthly_moves"),
    "0.3.0": ("auto_topup", "credits_topups", "topup_attempt", "removed: true", "credits_audit"),
}


def test_the_project_version_has_a_section_with_upgrade_notes():
    section = versions().get(project_version())
    assert section, f"CHANGELOG.md has no section for {project_version()} (pyproject.toml)"
    assert "### Upgrade notes" in section and project_version() in STORED_CHANGES


@pytest.mark.parametrize("version", sorted(STORED_CHANGES))
def test_the_upgrade_notes_of_each_version_name_the_stored_data_it_changed(version):
    notes = versions()[version].split("### Upgrade notes", 1)[1].split("\n### ", 1)[0]
    for stored in STORED_CHANGES[version]:
        assert re.search(rf"`{re.escape(stored)}[`/.<]", notes), f"the upgrade notes of {version} do not mention {stored}"


def test_credits_version_prints_the_version_of_pyproject():
    script = Path(sys.executable).parent / "credits"
    run = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60, cwd="/")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"credits {project_version()}", (
        f"{run.stdout.strip()!r}: run ./scripts/install.sh to install {project_version()}")
