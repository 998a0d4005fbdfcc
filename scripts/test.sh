#!/usr/bin/env bash
# Sets up .venv with the test extras and runs the test suite, without the
# tests marked slow (per-variant training sweeps through the command line).
#   scripts/test.sh            # the suite CI runs
#   scripts/test.sh --all      # slow tests included
#   scripts/test.sh tests/test_cli.py -x   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
MTF_SYNTH_EXTRAS="[test]" bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
if [ "${1:-}" = "--all" ]; then
  shift
  exec .venv/bin/python -m pytest -q "$@"
fi
exec .venv/bin/python -m pytest -q -m "not slow" "$@"
