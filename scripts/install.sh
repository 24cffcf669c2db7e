#!/usr/bin/env bash
# Creates .venv (if missing) and installs the runtime and development requirements into it, and
# the example web client's npm packages (clients/web: the Firebase JavaScript SDK, as locked).
# Each installs only when what it installs from changed: a stamp in .venv holds the SHA-256 of the
# requirements files, pyproject.toml and the Python version of the last install that finished.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.install.sha256
wanted=$( (cat requirements.txt requirements-dev.txt pyproject.toml; .venv/bin/python -VV) | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/credits ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  rm -f "$stamp"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  # The `credits` operator command (pyproject.toml), editable so it always runs this checkout.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$wanted" > "$stamp"
fi
# clients/web: exactly what package-lock.json pins (Node 20+ and npm). Reinstalls only when the
# lock file changes. Install scripts are not needed by the SDK and are not run.
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "install.sh: node (20 or later) and npm are needed for clients/web" >&2
  exit 1
fi
stamp=clients/web/node_modules/.package-lock.sha256
wanted=$(sha256sum clients/web/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  npm ci --prefix clients/web --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  echo "$wanted" > "$stamp"
fi
