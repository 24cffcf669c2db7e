"""The `credits` command's own surface: ids checked as the API checks them, --version, options
before or after the command."""

from __future__ import annotations

import pytest

from tests.support.cli import credits


@pytest.mark.parametrize("command", ["balance", "history", "holds list"])
@pytest.mark.parametrize("user_id, problem", [("a/b", "holds a '/'"), ("__x__", "Firestore reserves"), ("..", "Firestore reserves"),
                                              ("x" * 129, "1 to 128")])
def test_an_invalid_user_id_is_a_usage_error_with_a_message_not_a_traceback(capsys, command, user_id, problem):
    run = credits(capsys, *command.split(), user_id)

    assert run.code == 2
    assert "is not a user id" in run.err and problem in run.err
    assert "Traceback" not in run.err


def test_version_prints_the_version(capsys):
    run = credits(capsys, "--version")

    assert run.code == 0 and run.out.startswith("credits ")


def test_json_is_taken_before_or_after_the_command(db, capsys):
    after = credits(capsys, "balance", "u-json", "--json")
    before = credits(capsys, "--json", "balance", "u-json")

    assert after.code == before.code == 0
    assert after.json == before.json and after.json["user_id"] == "u-json"


def test_with_no_firestore_configured_a_command_says_what_to_set_not_a_traceback(capsys, monkeypatch, tmp_path):
    from shared.common import settings

    for name in ("FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    settings.reset()
    try:
        run = credits(capsys, "health")
    finally:
        monkeypatch.undo()
        settings.reset()

    assert run.code == 2
    assert "FIRESTORE_EMULATOR_HOST" in run.err and "GOOGLE_CLOUD_PROJECT" in run.err
    assert "Traceback" not in run.err
