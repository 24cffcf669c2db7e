"""The example balance page of the local run: clients/web served as static files, and the
Firebase SDK's browser modules from the npm package installed there.

    python -m tools.local.web_page --port 8087 --firestore 127.0.0.1:8080 --project demo-credits

Only these are served (every other path is a 404, so nothing else of the checkout is exposed):
- `/` (`index.html`, the page and its import map) and `/src/*.js` (the page's modules);
- `/vendor/firebase/<file>`: `firebase-app.js` and `firebase-firestore.js` (and their source maps)
  from `clients/web/node_modules/firebase/`, which `scripts/install.sh` installs with `npm ci`;
- `/config.json`: the project id, the Firestore emulator's host and port, and the user shown when
  the address names none (`?uid=`).
The page signs in to the emulator with `mockUserToken`, which only the emulator accepts: this
server is for the local run, never for production (docs/how-to/show-balance-live.md).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

WEB = Path(__file__).resolve().parents[2] / "clients" / "web"
FIREBASE = WEB / "node_modules" / "firebase"
# The SDK's browser modules the page imports (the import map in index.html names them).
VENDOR_FILES = frozenset(f"{name}{suffix}" for name in ("firebase-app.js", "firebase-firestore.js") for suffix in ("", ".map"))
DEFAULT_USER = "user123"


class NotInstalled(Exception):
    """clients/web has no installed Firebase SDK: `./scripts/install.sh` installs it."""


def resolve(path: str) -> Optional[Path]:
    """The file a request path names, or None: only the page, its modules and the SDK's modules."""
    if path in ("/", "/index.html"):
        return WEB / "index.html"
    parts = path.lstrip("/").split("/")
    if len(parts) == 2 and parts[0] == "src" and parts[1].endswith(".js") and not parts[1].startswith("."):
        candidate = WEB / "src" / parts[1]
        return candidate if candidate.is_file() else None
    if len(parts) == 3 and parts[:2] == ["vendor", "firebase"] and parts[2] in VENDOR_FILES:
        return FIREBASE / parts[2]
    return None


class WebPage:
    """The page's server; `start()` serves in a thread (tests), `serve_forever()` in the foreground."""

    def __init__(self, firestore: str, project: str, user: str = DEFAULT_USER, host: str = "127.0.0.1", port: int = 0) -> None:
        if not (FIREBASE / "package.json").exists():
            raise NotInstalled(f"{FIREBASE} is missing: run ./scripts/install.sh (it runs npm ci in clients/web)")
        firestore_host, firestore_port = firestore.rsplit(":", 1)
        self.config = {"projectId": project, "firestoreHost": firestore_host, "firestorePort": int(firestore_port),
                       "user": user}
        self.server = ThreadingHTTPServer((host, port), self._handler())

    @property
    def base(self) -> str:
        address, number = self.server.server_address[:2]
        return f"http://{address}:{number}/"

    def start(self) -> "WebPage":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        config = json.dumps(self.config).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # the local run's log keeps only errors
                pass

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                # Edits to the page show at the next reload.
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - the http.server naming
                path = urlparse(self.path).path
                if path == "/config.json":
                    self._send(200, config, "application/json")
                    return
                target = resolve(path)
                if target is None or not target.is_file():
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")
                    return
                content_type = "text/javascript" if target.suffix == ".js" else (
                    mimetypes.guess_type(target.name)[0] or "application/octet-stream")
                if content_type.startswith("text/"):
                    content_type += "; charset=utf-8"
                self._send(200, target.read_bytes(), content_type)

        return Handler


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="web_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8087)
    parser.add_argument("--firestore", required=True, help="the Firestore emulator, host:port")
    parser.add_argument("--project", required=True, help="the project id the page reads")
    parser.add_argument("--user", default=DEFAULT_USER, help="the user shown when the address gives no ?uid=")
    args = parser.parse_args(argv)
    try:
        page = WebPage(args.firestore, args.project, args.user, args.host, args.port)
    except NotInstalled as exc:
        print(f"web_page: {exc}", file=sys.stderr, flush=True)
        return 1
    page.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
