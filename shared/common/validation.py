"""Field rules the edges share, and turning pydantic's complaints into one `invalid_request`.

Rules enforced here:
- a user id is 1 to 128 characters, holds no `/`, and is a valid Firestore document id;
- strict types: a boolean, float or string is never taken for an integer.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError

from .errors import InvalidRequest


def _valid_user_id(value: str) -> str:
    # Firestore refuses these ids outright; they would otherwise surface as a 500.
    if value in (".", "..") or (value.startswith("__") and value.endswith("__")):
        raise ValueError("is not a usable user id")
    return value


UserId = Annotated[
    str, Field(strict=True, min_length=1, max_length=128, pattern=r"^[^/]+$"), AfterValidator(_valid_user_id)
]


def invalid(exc: ValidationError, what: str = "request") -> InvalidRequest:
    """One `invalid_request` naming every offending field."""
    fields: list[dict[str, Any]] = []
    for problem in exc.errors(include_url=False, include_context=False, include_input=False):
        name = ".".join(str(part) for part in problem["loc"]) or "body"
        fields.append({"field": name, "problem": problem["msg"]})
    names = ", ".join(sorted({f["field"] for f in fields}))
    return InvalidRequest(f"invalid {what}: {names}", fields=fields)
