#!/usr/bin/env bash
# Runs the small-scale (debian corpus, real text) tables one after the other,
# then the seed cells (seeds 1 and 2 of the rows the seed table reports), as
# scripts/tables.py cells under runs/tables (seeds: runs/seeds/seedN). Meant
# to run for hours in the background at low priority:
#   nohup nice -n 10 bash scripts/small_tables.sh >> runs/small_tables.nohup.log 2>&1 &
# Each part logs to runs/small_PART.nohup.log. Running it again continues:
# finished cells are skipped, interrupted ones resume from their checkpoint,
# cells of other settings are reported stale (never reused). Holds no logic.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate

run() {  # LOG_NAME TABLE ARGS...
  local log="runs/small_$1.nohup.log"
  shift
  echo "$(date -u '+%F %T') start: tables.py $*" >> "$log"
  python scripts/tables.py "$@" --scale=small >> "$log" 2>&1
  echo "$(date -u '+%F %T') exit $?: tables.py $*" >> "$log"
}

run synth_mt_lm synth_mt_lm
run synth_linformer synth_linformer
for seed in 1 2; do
  seed_args=(--model_dir_root="runs/seeds/seed$seed"
             --results_dir="results/small/seeds/seed$seed"
             --gin_param="mtf_synth.train_loop_settings.random_seed=$seed")
  run seeds synth_mt_lm --rows=transformer,random,random_vanilla,fixed_random \
    "${seed_args[@]}"
  run seeds synth_linformer --rows=transformer,random,random_vanilla \
    "${seed_args[@]}"
done
