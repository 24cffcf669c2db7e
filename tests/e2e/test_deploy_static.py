"""Offline checks of terraform/: formatting and an infrastructure policy scan.

Providers cannot be downloaded here, so `terraform validate` cannot run; checkov reads the HCL
statically instead. It lives in its own virtualenv (.venv-tools, set up by
scripts/install-tools.sh, which the test command runs) because it pins many libraries.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.support import deploy

CHECKOV = deploy.TOOLS_VENV / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+)(?::(.*))?$")


def terraform_files():
    return sorted(deploy.TERRAFORM_DIR.rglob("*.tf"))


def test_terraform_is_formatted():
    result = subprocess.run(
        [deploy.terraform_binary(), "fmt", "-check", "-recursive", "-diff"],
        cwd=deploy.ROOT, capture_output=True, text=True, env=deploy.terraform_env(), timeout=60, check=False,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def scan():
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed: run ./scripts/install-tools.sh (./scripts/test.sh does)")
    result = subprocess.run(
        # --skip-download: no call home; the checks ship with the package.
        [str(CHECKOV), "--directory", str(deploy.TERRAFORM_DIR), "--framework", "terraform",
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_the_policy_scanner_finds_no_failed_check(scan):
    summary = scan["summary"]
    failed = [f"{check['check_id']} {check['resource']} ({check['file_path']})" for check in scan["results"]["failed_checks"]]

    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] > 30 and summary["passed"] > 0
    assert failed == [] and summary["failed"] == 0


def test_every_skipped_check_is_deliberate_with_its_reason_beside_the_resource(scan):
    written = {}
    for path in terraform_files():
        for line in path.read_text().splitlines():
            match = SKIP_COMMENT.search(line.strip())
            if match:
                written.setdefault(match.group(1), []).append((match.group(2) or "").strip())

    skipped = scan["results"]["skipped_checks"]
    assert skipped, "the scan reports no skipped check, so the written skips are not being read"
    for check in skipped:
        assert check["check_id"] in written
        assert len(check["check_result"]["suppress_comment"].strip()) > 20, check["resource"]
    # Every written skip names a check that still fires: no stale suppressions.
    assert set(written) == {check["check_id"] for check in skipped}
    assert all(len(reason) > 20 for reasons in written.values() for reason in reasons)


def firestore_indexes() -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    """Every `google_firestore_index` written out in terraform/: name -> (collection, fields in order)."""
    indexes = {}
    for path in terraform_files():
        text = path.read_text()
        for header in re.finditer(r'resource\s+"google_firestore_index"\s+"([^"]+)"\s*\{', text):
            depth, end = 1, header.end()
            while depth:
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            body = text[header.end():end]
            collection = re.search(r'collection\s*=\s*"([^"]+)"', body).group(1)
            fields = re.findall(r'\bfields\s*\{\s*field_path\s*=\s*"([^"]+)"\s*order\s*=\s*"([^"]+)"\s*\}', body)
            if "local.transaction_seq_indexes" in body:
                indexes.update(_seq_indexes(text, header.group(1), collection))
                continue
            indexes[header.group(1)] = (collection, tuple(fields))
    return indexes


def _seq_indexes(text: str, name: str, collection: str) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    """`transactions_by_seq`'s instances, as its dynamic blocks build them from the locals map:
    user_id, the equality filters, seq desc, then created_at desc when the map names it."""
    block = re.search(r"transaction_seq_indexes\s*=\s*\{(.*?)\n\s*\}", text, re.S).group(1)
    built = {}
    for key, listed in re.findall(r"(\w+)\s*=\s*\[([^\]]*)\]", block):
        names = re.findall(r'"([^"]+)"', listed)
        fields = [("user_id", "ASCENDING")] + [(f, "ASCENDING") for f in names if f != "created_at"]
        fields.append(("seq", "DESCENDING"))
        if "created_at" in names:
            fields.append(("created_at", "DESCENDING"))
        built[f"{name}[{key}]"] = (collection, tuple(fields))
    return built


@pytest.mark.parametrize("order_by", ["created_at", "seq"])
def test_each_history_query_of_the_apps_client_has_its_composite_index(order_by):
    # where user_id == uid, orderBy <order_by> desc, limit n (CONTRACT section 7; clients/web/src/live.js)
    wanted = ("credits_transactions", (("user_id", "ASCENDING"), (order_by, "DESCENDING")))

    assert wanted in firestore_indexes().values()


@pytest.mark.parametrize("query, fields", [
    ("the sweep of attempts whose trigger was lost", (("status", "ASCENDING"), ("created_at", "ASCENDING"))),
    ("credits topup show's attempts of a user", (("user_id", "ASCENDING"), ("created_at", "DESCENDING"),
                                                 ("__name__", "DESCENDING"))),
])
def test_each_query_of_the_auto_top_up_attempts_has_its_composite_index(query, fields):
    # shared/store/scans.py: stale_attempts and user_attempts.
    assert ("credits_topups", fields) in firestore_indexes().values(), query


def test_no_two_firestore_indexes_are_the_same():
    # Firestore refuses to create an index that exists already, so a duplicate fails the apply.
    seen: dict[tuple, str] = {}
    for name, definition in firestore_indexes().items():
        assert definition not in seen, f"{name} and {seen[definition]} define the same index"
        seen[definition] = name
