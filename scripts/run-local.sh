#!/usr/bin/env bash
# Installs everything, then runs the whole system locally in the foreground until Ctrl-C:
# the Firestore and Pub/Sub emulators and every function under functions/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python scripts/run_local.py "$@"
