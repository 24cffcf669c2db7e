"""Deploy bundles as Terraform defines them, and a clean interpreter to run them with.

The file list of a function's bundle is defined once, in `terraform/modules/function_source`.
That module needs no provider, so `terraform console` evaluates it offline: the tests build
bundles from the very list (and digest) Terraform zips, never from a copy of the rule.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Optional

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
SOURCE_MODULE = TERRAFORM_DIR / "modules" / "function_source"
TOOLS_VENV = ROOT / ".venv-tools"


def terraform_binary() -> str:
    return shutil.which("terraform") or "/usr/local/bin/terraform"


def terraform_env() -> dict[str, str]:
    # No CLI configuration and no update check: the machine has no internet.
    return {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}


def functions_with_code() -> list[str]:
    """Every function folder that holds a main.py."""
    return sorted(path.parent.name for path in (ROOT / "functions").glob("*/main.py"))


@dataclass(frozen=True)
class Bundle:
    files: dict[str, Path]  # path inside the bundle -> source file
    sha256: str


@lru_cache(maxsize=None)
def _evaluate(function: str, extra_files_json: str) -> Bundle:
    expression = "jsonencode({files = local.files, sha256 = local.sha256})"
    result = subprocess.run(
        [
            terraform_binary(),
            f"-chdir={SOURCE_MODULE}",
            "console",
            f"-var=repo_root={ROOT}",
            f"-var=function={function}",
            f"-var=extra_files={extra_files_json}",
        ],
        input=expression,
        capture_output=True,
        text=True,
        env=terraform_env(),
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"terraform console failed: {result.stderr}")
    # The console prints the JSON as an HCL string literal; its escapes match JSON's for these
    # values (paths and hex), and template sequences would show as $${ or %%{.
    printed = result.stdout.strip()
    assert "$${" not in printed and "%%{" not in printed, printed
    decoded = json.loads(json.loads(printed))
    return Bundle({name: Path(path) for name, path in decoded["files"].items()}, decoded["sha256"])


def bundle(function: str, extra_files: Optional[Mapping[str, Path]] = None) -> Bundle:
    """The bundle Terraform would zip for `function`, with the same extra files."""
    extra = {name: str(Path(path).resolve()) for name, path in sorted((extra_files or {}).items())}
    return _evaluate(function, json.dumps(extra))


def build(bundle_: Bundle, dest: Path) -> Path:
    """Lay the bundle out in `dest`, exactly as the zip would unpack."""
    for name, source in bundle_.files.items():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return dest


def make_clean_python(venv: Path) -> Path:
    """An interpreter that sees the installed dependencies and nothing of this repository.

    The development venv carries an editable install of the repository (its `shared` package),
    so it cannot run a bundle honestly. This venv reaches the same dependencies through a plain
    path entry, which Python does not scan for .pth files, so the editable hook stays out.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: no PYTHONPATH, nothing pointing at the repository."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


class FunctionProcess:
    """`functions-framework --target <name>` started from inside a bundle folder."""

    def __init__(self, python: Path, folder: Path, target: str, port: int, env: dict[str, str]) -> None:
        self.folder = folder
        self.port = port
        self.log_path = folder.parent / f"{target}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [str(python), "-m", "functions_framework", "--target", target, "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> "FunctionProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"functions-framework exited: {self.log()}")
            try:
                # Any HTTP answer (a 404 or 405 included) means the server is up.
                urllib.request.urlopen(f"{self.url}/__ready__", timeout=1).close()
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"functions-framework did not answer in {timeout}s: {self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()
