"""The TypeScript definitions of the API (clients/typescript) are those openapi-typescript generates
from functions/spend/openapi.json now, and they compile with tsc together with the typed call that
uses them (src/spend.ts). Node and the locked packages come from scripts/install.sh."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
BIN = PACKAGE / "node_modules" / ".bin"


def test_the_committed_definitions_are_what_the_generator_makes_of_the_openapi_document(tmp_path):
    generated = tmp_path / "api.d.ts"
    subprocess.run([str(BIN / "openapi-typescript"), str(ROOT / "functions" / "spend" / "openapi.json"),
                    "--output", str(generated)], cwd=PACKAGE, check=True, capture_output=True, timeout=120)
    assert generated.read_text() == (PACKAGE / "src" / "api.d.ts").read_text(), (
        "functions/spend/openapi.json changed: run `npm run generate --prefix clients/typescript`")


def test_the_definitions_and_the_typed_call_compile_with_tsc():
    assert shutil.which("node"), "node is needed (scripts/install.sh)"
    result = subprocess.run([str(BIN / "tsc"), "--noEmit", "-p", str(PACKAGE)], cwd=PACKAGE, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
