#!/usr/bin/env bash
# Runs the benchmarks against a fresh Firestore emulator each: all of them, or those named
# (for example `./benchmarks/run.sh spend`). Prints medians and ratios against a bare Firestore
# baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for file in benchmarks/bench_*.py; do names+=("$(basename "$file" .py | sed 's/^bench_//')"); done
fi
for name in "${names[@]}"; do
  echo "== $name =="
  .venv/bin/python "benchmarks/bench_${name}.py"
done
