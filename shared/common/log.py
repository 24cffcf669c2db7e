"""Structured logs: one JSON object per line on stdout, the shape Cloud Logging reads.

`severity` and `message` are Cloud Logging's own keys; everything else (user, source id,
outcome) rides along as fields so logs can be filtered without parsing prose.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Optional, TextIO


_SEVERITIES = ("DEBUG", "INFO", "WARNING", "ERROR")
# Functions log to stdout; a command-line tool moves logs to stderr so stdout stays its output.
_stream: Optional[TextIO] = None
_threshold = 0


def configure(stream: Optional[TextIO] = None, min_severity: str = "DEBUG") -> None:
    """Send logs to `stream` (stdout when None) and drop those below `min_severity`."""
    global _stream, _threshold
    _stream = stream
    _threshold = _SEVERITIES.index(min_severity)


def log(severity: str, message: str, **fields: Any) -> None:
    if severity in _SEVERITIES and _SEVERITIES.index(severity) < _threshold:
        return
    entry = {"severity": severity, "message": message}
    entry.update({k: v for k, v in fields.items() if v is not None})
    stream = _stream or sys.stdout
    stream.write(json.dumps(entry, default=str, separators=(",", ":")) + "\n")
    stream.flush()


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
