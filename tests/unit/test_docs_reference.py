"""The reference pages that restate a source keep up with it: every Terraform variable and output is
listed in docs/reference/terraform.md, and the API page renders the OpenAPI document itself rather
than a copy of it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _names(kind: str, path: Path) -> list[str]:
    return re.findall(rf'^{kind} "([^"]+)"', path.read_text(encoding="utf-8"), re.M)


def test_every_terraform_variable_and_output_is_in_the_reference():
    page = (ROOT / "docs" / "reference" / "terraform.md").read_text(encoding="utf-8")
    names = _names("variable", ROOT / "terraform" / "variables.tf") + _names("output", ROOT / "terraform" / "outputs.tf")
    assert names
    assert [name for name in names if f"| `{name}` |" not in page] == []


def test_the_api_reference_is_rendered_from_the_openapi_document():
    page = (ROOT / "docs" / "reference" / "api.md").read_text(encoding="utf-8")
    assert "[OAD(./functions/spend/openapi.json)]" in page
    assert (ROOT / "functions" / "spend" / "openapi.json").exists()
