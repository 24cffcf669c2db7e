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
