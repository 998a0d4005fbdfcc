#!/usr/bin/env bash
# Runs the unit tests shipped inside the mesh-tensorflow 0.1.21 wheel through
# mtf_synth's compat module (one process per test file), after setting up
# .venv with the test extras. ortools (mesh TF's auto_mtf) is installed
# without its dependencies: it pins protobuf < 6.34, which would break
# sentencepiece (protobuf 7), and it runs fine on protobuf 7.
set -euo pipefail
cd "$(dirname "$0")/.."
MTF_SYNTH_EXTRAS="[test]" bash scripts/setup.sh
.venv/bin/python -m pip install -q --no-deps ortools==9.15.6755
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec .venv/bin/python scripts/run_mesh_tf_tests.py "$@"
