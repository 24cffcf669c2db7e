#!/usr/bin/env bash
# Creates .venv (if missing) and installs the runtime and development requirements into it, the
# Python client (clients/python), the system Chromium when missing (the console's browser tests),
# and the npm packages of clients/web and clients/typescript (as locked). Each installs only when
# what it installs from changed: a stamp in .venv holds the SHA-256 of the requirements files, both
# pyproject.toml files and the Python version of the last install that finished.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.install.sha256
wanted=$( (cat requirements.txt requirements-dev.txt pyproject.toml clients/python/pyproject.toml; .venv/bin/python -VV) \
  | sha256sum | cut -d' ' -f1)
# The project's own metadata must be of pyproject's version too: an install by an earlier
# install.sh leaves a stamp that no longer says what is installed.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
if [ ! -x .venv/bin/credits ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] \
  || ! compgen -G ".venv/lib/python*/site-packages/two_pool_credits-$version.dist-info" >/dev/null; then
  rm -f "$stamp"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  # The `credits` operator command (pyproject.toml), editable so it always runs this checkout.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  # clients/python, the Python client of the API (its dependencies are pinned in requirements-dev.txt).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e clients/python
  echo "$wanted" > "$stamp"
fi
# The support console's browser tests drive the system Chromium (Debian's `chromium` package) with
# Playwright (requirements-dev.txt); Playwright downloads no browser. Installed when missing and
# apt-get can (as root); without it those tests are skipped, saying why.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
    || echo "install.sh: could not install chromium; the console's browser tests will be skipped" >&2
fi
# clients/web (the Firebase JavaScript SDK) and clients/typescript (openapi-typescript and tsc, which
# generate and check the API's TypeScript definitions): exactly what each package-lock.json pins
# (Node 20+ and npm). Reinstalls only when a lock file changes. Install scripts are not needed and
# are not run.
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "install.sh: node (20 or later) and npm are needed for clients/web and clients/typescript" >&2
  exit 1
fi
for package in clients/web clients/typescript; do
  stamp=$package/node_modules/.package-lock.sha256
  wanted=$(sha256sum "$package/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    npm ci --prefix "$package" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
    echo "$wanted" > "$stamp"
  fi
done
