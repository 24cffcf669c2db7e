#!/usr/bin/env bash
# Installs everything and runs the whole suite. The tests start their own Firestore and
# Pub/Sub emulators on free ports, so nothing needs to be running beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
# checkov, for the offline Terraform policy scan, in its own virtualenv (.venv-tools).
./scripts/install-tools.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
