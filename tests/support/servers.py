"""Start a function the way Cloud Functions runs it: a real `functions-framework` process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping, Optional

from tests.support.emulators import free_port

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_FRAMEWORK = str(Path(sys.executable).parent / "functions-framework")


@contextlib.contextmanager
def serve_function(
    name: str,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[Path] = None,
    source: Optional[str] = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """Run `functions-framework --target name` and yield its base URL until the block ends."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    args = [FUNCTIONS_FRAMEWORK, "--target", name, "--port", str(port),
            "--source", source or str(ROOT / "functions" / name / "main.py")]
    process = subprocess.Popen(args, env=full_env, cwd=cwd or ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {process.stdout.read().decode(errors='replace')}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not listen within {timeout}s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
