"""The support console served for tests: functions/console/main.py (the real entry point) on a
free port in a thread, with the local development sign-in, against the test's emulators.

Its settings are environment variables read when the app is built, so they are set before the
first request and the built app is dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from typing import Iterator

from tests.support.emulators import free_port
from tests.support.functions import function_app

AGENT_ADJUST_LIMIT = 100
SETTINGS = {
    "CONSOLE_DEV_SIGN_IN": "1",
    "CONSOLE_SECRET_KEY": "console-test-secret-key",
    "CONSOLE_AGENT_ADJUST_LIMIT": str(AGENT_ADJUST_LIMIT),
}


@contextlib.contextmanager
def served() -> Iterator[str]:
    """The console's URL while it is served."""
    from werkzeug.serving import make_server

    saved = {name: os.environ.get(name) for name in SETTINGS}
    os.environ.update(SETTINGS)
    app = function_app("console")
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def csrf_of(html: str) -> str:
    """The CSRF token a page carries (its meta tag)."""
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def nonce_of(html: str) -> str:
    found = re.search(r'name="nonce" value="([^"]+)"', html)
    assert found, "the page has no form nonce"
    return found.group(1)
