"""The spend function's OpenAPI document, and checking a response against it.

A response is checked the way a client generated from the document would read it: its status
must be documented for the operation, its content type must be the documented one, its body
must match the documented schema, and the headers the document marks required must be there.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Mapping, Optional

from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "functions" / "spend" / "openapi.json"
_BASE = "urn:credits:spend-openapi"


@functools.cache
def document() -> dict[str, Any]:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


@functools.cache
def _registry() -> Registry:
    # OpenAPI 3.0's Schema Object is JSON Schema draft 4 with OpenAPI's keywords (`nullable`).
    return Registry().with_resource(_BASE, Resource.from_contents(document(), default_specification=DRAFT4))


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    found = []
    for template in document()["paths"]:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        found.append((re.compile(f"^{pattern}$"), template))
    return found


def operation_of(method: str, path: str) -> Optional[tuple[str, dict[str, Any]]]:
    """The documented (template, operation) a request names, or None for a path of no route."""
    path = "/" + path.split("?", 1)[0].strip("/")
    for pattern, template in _templates():
        if pattern.match(path):
            return template, document()["paths"][template].get(method.lower(), {})
    return None


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _resolve(node: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A `$ref` followed inside the document, and the JSON pointer of what it names."""
    pointer = ""
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#")
        node = document()
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, pointer


class ResponseMismatch(AssertionError):
    """A response the OpenAPI document does not describe."""


def check(method: str, path: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raise ResponseMismatch unless the document describes this response exactly."""
    found = operation_of(method, path)
    where = f"{method} {path} -> {status}"
    if found is None:
        # A path with no route (an id holding an encoded '/', say) answers like every unknown route.
        template, responses, base = None, {"404": {"$ref": "#/components/responses/NotFound"},
                                           "400": {"$ref": "#/components/responses/BadRequest"}}, None
    else:
        template, operation = found
        if not operation:
            # A method the route does not take: the 405 every route documents.
            operation = {"responses": {"405": {"$ref": "#/components/responses/MethodNotAllowed"}}}
            base = None
        else:
            base = _pointer("paths", template, method.lower(), "responses")
        responses = operation["responses"]
    spec = responses.get(str(status))
    if spec is None:
        raise ResponseMismatch(f"{where}: status not documented (documented: {sorted(responses)})")
    spec, pointer = _resolve(spec)
    pointer = pointer or (f"/{base}/{status}" if base else "")
    for name, header in (spec.get("headers") or {}).items():
        header, _ = _resolve(header)
        if header.get("required") and headers.get(name) is None:
            raise ResponseMismatch(f"{where}: required header {name} missing")
        if headers.get(name) is not None:
            _validate(headers[name], header["schema"], where, f"header {name}")
    content = spec.get("content") or {}
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
    if content_type not in content:
        raise ResponseMismatch(f"{where}: content type {content_type!r} not documented ({sorted(content)})")
    try:
        value = json.loads(body)
    except ValueError as err:
        raise ResponseMismatch(f"{where}: body is not JSON ({err})") from None
    schema_pointer = f"{pointer}/content/{_pointer(content_type)}/schema" if pointer else None
    schema = {"$ref": f"{_BASE}#{schema_pointer}"} if schema_pointer else content[content_type]["schema"]
    _validate(value, schema, where, "body")


def _validate(value: Any, schema: dict[str, Any], where: str, what: str) -> None:
    # OpenAPI 3.0's validator: `nullable` is understood, and an integer is a number without a
    # fraction (286.0 is not one), as the document says.
    validator = OAS30Validator(schema, registry=_registry(), format_checker=OAS30Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        detail = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message[:300]}" for e in errors[:3])
        raise ResponseMismatch(f"{where}: {what} does not match the document: {detail}")


def conforms(value: Any, schema_name: str) -> bool:
    """Whether `value` matches the document's `components/schemas/<schema_name>`."""
    schema = {"$ref": f"{_BASE}#/components/schemas/{schema_name}"}
    return OAS30Validator(schema, registry=_registry()).is_valid(value)


def documented_client_class():
    """A Flask test client class that checks every response against the document."""
    from flask.testing import FlaskClient

    class DocumentedClient(FlaskClient):
        def open(self, *args: Any, **kwargs: Any):
            response = super().open(*args, **kwargs)
            request = response.request
            check(request.method, request.path, response.status_code, response.headers, response.get_data())
            return response

    return DocumentedClient
