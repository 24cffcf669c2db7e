"""Each function's real functions-framework app, loaded by file path (three `main.py` files
would collide if imported as `main`)."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]


def function_app(name: str):
    """The real functions-framework app of `functions/<name>/main.py`."""
    from functions_framework import create_app

    return create_app(name, source=str(ROOT / "functions" / name / "main.py"))


def asgi_client(app):
    """An HTTP client for a function functions-framework serves on its ASGI stack (`aio` functions).

    Like a server, it answers a function's exception with functions-framework's 500 rather than
    raising it in the test."""
    from starlette.testclient import TestClient

    return TestClient(app, raise_server_exceptions=False)


@contextlib.contextmanager
def serve_asgi(app) -> Iterator[str]:
    """Serve an ASGI app with uvicorn (as functions-framework's workers do) in a thread; its URL."""
    import uvicorn

    from tests.support.emulators import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the ASGI server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
