#!/usr/bin/env bash
# Creates .venv-tools (if missing) and installs the infrastructure checks (requirements-tools.txt)
# into it. A separate virtualenv, because checkov pins many libraries that could clash with the
# functions' own. Reinstalls only when requirements-tools.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-tools/bin/python ]; then
  python3 -m venv .venv-tools
fi
stamp=.venv-tools/.requirements-tools.sha256
wanted=$(sha256sum requirements-tools.txt | cut -d' ' -f1)
if [ ! -x .venv-tools/bin/checkov ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv-tools/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
  echo "$wanted" > "$stamp"
fi
