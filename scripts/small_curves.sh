#!/usr/bin/env bash
# Runs the small-scale learning curves (scripts/curves.py: Transformer, R,
# R+V, D on En-De and the LM, to a plateau, seeds 0-2 / 0-1) one cell at a
# time, at low priority, for many hours:
#   nohup bash scripts/small_curves.sh >> runs/small_curves.nohup.log 2>&1 &
# Running it again continues: finished cells are skipped, an interrupted one
# resumes at its last evaluated chunk; the report in results/small/curves.*
# is rewritten after every cell (scripts/curves.py --report_only writes it
# from the folders at any time). One copy at a time (2 cores: one training
# process); a second start exits. Holds no logic.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
mkdir -p runs
exec 9>runs/small_curves.lock
flock -n 9 || { echo "small_curves.sh is running already (runs/small_curves.lock)" >&2; exit 2; }
echo "$(date -u '+%F %T') start: curves.py $*"
nice -n 10 python scripts/curves.py "$@"
echo "$(date -u '+%F %T') exit $?: curves.py $*"
