#!/usr/bin/env bash
# Installs everything, then runs the whole system locally in the foreground until Ctrl-C:
# the Firestore and Pub/Sub emulators and every function under functions/.
set -euo pipefail
cd "$(dirname "$0")/.."
# A taken port (another run, most often) is said at once, before any install. The check needs
# only the standard library, so any python3 runs it.
case " $* " in
  *" -h "* | *" --help "*) ;;
  *) PYTHONPATH="$PWD" "$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)" scripts/run_local.py --check-ports ;;
esac
./scripts/install.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python scripts/run_local.py "$@"
