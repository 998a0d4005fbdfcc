#!/bin/bash
# Re-measures every table of BENCHMARKS.md, plus the side-by-side peers,
# start-up, bfloat16 and decode tables, with bench/harness.py (interleaved
# repeats, medians and ranges, the command and load with each table), and
# writes OUT/benchmarks.md (one section per table) and OUT/durations.txt.
# Resumable: after an interruption run the same command again; the JSON-lines
# logs in OUT keep every finished run.
#
#   bash bench/run_all.sh [OUT]          # about 80 minutes on 2 idle cores
#   bash bench/run_all.sh --smoke [OUT]  # minimal settings: checks the scripts
#                                        # (36 minutes at load 6-8, mostly start-up)
#
# Run it on a quiet machine: the figures are only as good as the load is low
# (each table states the load average it was measured under).
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
out=${1:-runs/bench/$([ -n "$smoke" ] && echo smoke || echo all)}
mkdir -p "$out"
bash bench/setup_peers.sh > "$out/setup_peers.log"

# label script [flags...]: one table, its log and Markdown named after label.
measure() {
  local label=$1 script=$2 start=$SECONDS
  shift 2
  .venv/bin/python "bench/$script.py" --log "$out/$label.jsonl" \
    --markdown "$out/$label.md" "$@"
  echo "$label: $((SECONDS - start)) s" >> "$out/durations.txt"
}

if [ -n "$smoke" ]; then
  measure peers peers --repeats 1 --short 1 --long 2
  measure peers_busy peers --busy 1 --repeats 1 --short 1 --long 2
  measure startup startup --repeats 1
  measure bf16 bf16 --repeats 1 --steps 4 --log_every 2
  measure decode decode --repeats 1 --extra_batches 1 --sizes demo 512 long \
    --attentions demo SelfAttention R
  measure peak peak --repeats 1 --peers_log "$out/peers.jsonl" \
    --peers_steps 1 2
  measure profiles profiles --repeats 1 train
  measure runtime bench_runtime --repeats 1 --steps 4 --log_every 2
  measure synthesizer bench_synthesizer --repeats 1 --modes vanilla random \
    --lengths 128 --steps 1 --warmup 1
  measure kernels_encoder bench_kernels --repeats 1 --lengths 256 \
    --variants softmax performer --min_seconds 0.1
  measure kernels_decoder bench_kernels --repeats 1 --lengths 256 \
    --variants softmax performer --min_seconds 0.1 --causal
  measure cluster bench_cluster --repeats 1 --sizes demo
else
  # Estimated minutes on 2 idle cores in brackets, from the idle start-up
  # and step times in BENCHMARKS.md and the notes: about 80 in all.
  measure peers peers --bf16 --repeats 5 --short 5 --long 35             # [16]
  measure peers_busy peers --busy 1 --repeats 3 --short 5 --long 35      # [9]
  measure startup startup --repeats 3                                    # [3]
  measure bf16 bf16 --repeats 1 --steps 200 --log_every 40               # [4]
  measure decode decode --repeats 3 --extra_batches 4 --sizes demo 512 \
    long --attentions demo SelfAttention R                               # [25]
  measure peak peak --repeats 3 --peers_log "$out/peers.jsonl" \
    --peers_steps 5 35                                                   # [2]
  measure profiles profiles --repeats 3                                  # [5]
  measure runtime bench_runtime --repeats 2 --steps 30 --log_every 10    # [2]
  measure synthesizer bench_synthesizer --repeats 1 --lengths 128 2048   # [5]
  measure kernels_encoder bench_kernels --repeats 1 --lengths 2048 8192 \
    --min_seconds 0.5                                                    # [5]
  measure kernels_decoder bench_kernels --repeats 1 --lengths 2048 8192 \
    --min_seconds 0.5 --causal --variants softmax synthesizer performer \
    gmm_rks fastfood_rks lightweight_conv                                # [3]
  measure cluster bench_cluster --repeats 2                              # [8]
fi
cat "$out"/{peers,peers_busy,startup,bf16,decode,peak,profiles,runtime,synthesizer,kernels_encoder,kernels_decoder,cluster}.md \
  > "$out/benchmarks.md"
echo "wrote $out/benchmarks.md"
cat "$out/durations.txt"
