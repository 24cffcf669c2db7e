"""Each function's real functions-framework app, loaded by file path (three `main.py` files
would collide if imported as `main`)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def function_app(name: str):
    """The real functions-framework app of `functions/<name>/main.py`."""
    from functions_framework import create_app

    return create_app(name, source=str(ROOT / "functions" / name / "main.py"))
