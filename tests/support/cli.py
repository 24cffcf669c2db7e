"""Running the `credits` command in-process and reading what it printed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tools.credits.__main__ import main


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


def credits(capsys, *argv: str) -> Run:
    """`credits ARGV...` through `tools.credits.__main__.main`, with its exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def user_doc(db, user_id: str):
    from shared.ledger import collections

    snap = db.collection(collections.USERS).document(user_id).get()
    return snap.to_dict() if snap.exists else None


def records_of(db, user_id: str) -> list[dict]:
    from google.cloud.firestore_v1.base_query import FieldFilter

    from shared.ledger import collections

    query = db.collection(collections.TRANSACTIONS).where(filter=FieldFilter("user_id", "==", user_id))
    return [snap.to_dict() for snap in query.stream()]
