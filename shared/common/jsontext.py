"""Decoding JSON from callers and queues without letting odd input become a crash.

Rules enforced here:
- bytes that are not UTF-8, text that is not JSON, and JSON nested deeper than `MAX_DEPTH`
  are refused with a reason (`BadJson`), never a RecursionError;
- the depth is checked without recursion, so any nesting costs at most one pass over the value.
"""

from __future__ import annotations

import json
from typing import Any, Union

# Far deeper than any request, event or message this system reads, and below every recursive
# step that follows (validation, Firestore's 20 levels of maps are never reached by our writes).
MAX_DEPTH = 64


class BadJson(ValueError):
    """The bytes are not UTF-8 JSON this system can read; the message says why."""


def loads(raw: Union[bytes, str], max_depth: int = MAX_DEPTH) -> Any:
    """The decoded value, or BadJson with the reason."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadJson("not UTF-8 text") from None
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BadJson(f"nested deeper than {max_depth} levels") from None
    except ValueError:
        raise BadJson("not JSON") from None
    if depth_exceeds(value, max_depth):
        raise BadJson(f"nested deeper than {max_depth} levels")
    return value


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether `value` nests lists and objects more than `max_depth` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
