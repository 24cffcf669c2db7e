"""Field rules the edges share, and turning pydantic's complaints into one `invalid_request`.

Rules enforced here, the same for every id and key wherever it comes from (a body, a path, a
header, a Pub/Sub message, a Stripe event):
- an id is taken exactly as sent: never stripped, never decoded lossily; text that is not
  valid UTF-8 is refused before it gets here (`http.path_segments`, `http.header`);
- no id or key holds a control character (NUL included) or a lone surrogate;
- a user id (and any id that names a document, such as a hold id) is 1 to 128 characters,
  holds no `/`, and is not `.`, `..` or `__...__`, which Firestore refuses;
- an idempotency key is 1 to 255 characters (it is digested before it names a document);
- strict types: a boolean, float or string is never taken for an integer;
- an optional JSON body (a scheduler's sweep call) is an object or nothing: nothing takes every
  default of its model, anything else is one `invalid_request`.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from . import http, jsontext
from .errors import InvalidRequest


def text_problem(value: str) -> Optional[str]:
    """Why `value` cannot be an id or key at all (a control character, a lone surrogate), or None."""
    for char in value:
        if 0xD800 <= ord(char) <= 0xDFFF:
            return "holds a lone surrogate, which is not text"
        if unicodedata.category(char) == "Cc":
            return "holds a control character"
    return None


def storable(value: Any) -> Any:
    """Text as Firestore can store it: a lone surrogate (which only bad input holds) becomes `?`."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


# Firestore refuses a map key over 1,500 bytes, and reserves keys of the form `__x__`.
MAX_MAP_KEY_BYTES = 1500


def map_key_problem(value: str) -> Optional[str]:
    """Why `value` cannot be a key of a Firestore map (or a field name), or None."""
    if value.startswith("__") and value.endswith("__") and len(value) >= 4:
        return "is a name Firestore reserves"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_MAP_KEY_BYTES:
        return f"is over {MAX_MAP_KEY_BYTES} bytes"
    return text_problem(value)


def path_id_problem(value: str) -> Optional[str]:
    """Why `value` cannot name a document, or None."""
    if "/" in value:
        return "holds a '/'"
    if value in (".", "..") or (value.startswith("__") and value.endswith("__")):
        return "is a name Firestore reserves"
    return text_problem(value)


def _path_id(value: str) -> str:
    problem = path_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _key(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


UserId = Annotated[str, Field(strict=True, min_length=1, max_length=128), AfterValidator(_path_id)]
# Ids in paths other than a user's (a hold's) follow the user id rules.
PathId = UserId
IdempotencyKey = Annotated[str, Field(strict=True, min_length=1, max_length=255), AfterValidator(_key)]
GrantId = Annotated[str, Field(strict=True, min_length=1, max_length=128), AfterValidator(_key)]

MAX_ID_LENGTH = 128


def user_id(raw: str, field: str = "user_id") -> str:
    """`raw` if it is a valid user id (the rules of `UserId`), else `invalid_request` naming `field`.

    Checked in plain Python, worded as pydantic words `UserId`'s problems: an id in a path is
    checked on every request, and a cold start should not build a validator for it."""
    if not isinstance(raw, str):
        problem: Optional[str] = "Input should be a valid string"
    elif len(raw) < 1:
        problem = "String should have at least 1 character"
    elif len(raw) > MAX_ID_LENGTH:
        problem = f"String should have at most {MAX_ID_LENGTH} characters"
    else:
        problem = path_id_problem(raw)
    if problem is None:
        return raw
    raise InvalidRequest(f"invalid {field}: {field}", fields=[{"field": field, "problem": problem}])


def invalid(exc: ValidationError, what: str = "request", loc_prefix: Optional[str] = None) -> InvalidRequest:
    """One `invalid_request` naming every offending field, each with a plain problem."""
    fields: list[dict[str, Any]] = []
    for problem in exc.errors(include_url=False, include_context=False, include_input=False):
        parts = [str(part) for part in problem["loc"]]
        name = ".".join(([loc_prefix] if loc_prefix else []) + parts) or "body"
        message = problem["msg"]
        # pydantic words a failed AfterValidator as "Value error, <ours>".
        message = message.removeprefix("Value error, ")
        fields.append({"field": name, "problem": message})
    names = ", ".join(sorted({f["field"] for f in fields}))
    return InvalidRequest(f"invalid {what}: {names}", fields=fields)


def optional_body(request, model: type[BaseModel], limit: int) -> BaseModel:
    """The request's optional JSON object body, validated by `model` (an empty body takes every default)."""
    raw = http.read_body(request, limit)
    try:
        body = jsontext.loads(raw) if raw.strip() else {}
    except jsontext.BadJson as err:
        raise InvalidRequest(f"the body is {err}", fields=[{"field": "body", "problem": str(err)}]) from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", fields=[{"field": "body", "problem": "not an object"}])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc) from None
