#!/usr/bin/env bash
# Reproduces the table "synth_mt_lm" (see scripts/tables.py for rows and columns).
# Usage: scripts/reproduce_synth_mt_lm.sh [--scale=mini|paper] [--model_dir_root=DIR]
#   [--mesh=cpu_2x2|gpu|tpu_2x2] [--dry_run] [--rows=a,b] [mtf_synth flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
exec python scripts/tables.py synth_mt_lm "$@"
