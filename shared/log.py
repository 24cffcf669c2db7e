"""Structured logs: one JSON object per line on stdout, the shape Cloud Logging reads.

`severity` and `message` are Cloud Logging's own keys; everything else (user, source id,
outcome) rides along as fields so logs can be filtered without parsing prose.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def log(severity: str, message: str, **fields: Any) -> None:
    entry = {"severity": severity, "message": message}
    entry.update({k: v for k, v in fields.items() if v is not None})
    sys.stdout.write(json.dumps(entry, default=str, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
