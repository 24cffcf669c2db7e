#!/usr/bin/env bash
# Creates .venv (if missing) and installs the runtime and development requirements into it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# The `credits` operator command (pyproject.toml), editable so it always runs this checkout.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
