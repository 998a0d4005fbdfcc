#!/usr/bin/env bash
# The main job on the embedded default: set up, train a small Synthesizer on
# the generated mtf_synth_demo task on a model:2,batch:2 CPU mesh, evaluate,
# decode a few examples. Usage: scripts/demo.sh [MODEL_DIR] [--gin_param=...]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR=${1:-runs/demo}
shift || true
mkdir -p "$MODEL_DIR"
echo "== installing into .venv (log: $MODEL_DIR.setup.log)"
bash scripts/setup.sh > "$MODEL_DIR.setup.log" 2>&1 || {
  tail -20 "$MODEL_DIR.setup.log"; exit 1; }
. .venv/bin/activate
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
run() { mtf_synth --model_dir="$MODEL_DIR" --gin_file=demo.gin "$@"; }
filter() { grep -E "^INFO:tensorflow:(step [0-9]+, loss|eval/)|mtf_synth: error" \
  | sed 's/^INFO:tensorflow://' || true; }

echo "== training (log: $MODEL_DIR.train.log)"
run "$@" 2>&1 | tee "$MODEL_DIR.train.log" | filter
echo "== evaluating the last checkpoint (decodes the validation split)"
run --gin_file=eval.gin --gin_param="eval_checkpoint_step=-1" \
  --gin_param="utils.run.dataset_split='validation'" \
  --gin_param="utils.run.batch_size=32" \
  --gin_param="Bitransformer.decode.max_decode_length=64" "$@" 2>&1 | tee "$MODEL_DIR.eval.log" | filter
echo "== decoding a few examples"
INPUTS="$MODEL_DIR/demo_inputs.txt"
printf '%s\n' "reverse: a b c d e f" "sort: q w e r t y" "reverse: m t f s y n t h" \
  "sort: z y x a b c" > "$INPUTS"
run --gin_file=infer.gin --gin_param="infer_checkpoint_step=-1" \
  --gin_param="Bitransformer.decode.max_decode_length=64" \
  --gin_param="input_filename='$INPUTS'" \
  --gin_param="output_filename='$MODEL_DIR/demo_outputs.txt'" "$@" \
  > "$MODEL_DIR.infer.log" 2>&1
paste -d '\t' "$INPUTS" "$MODEL_DIR"/demo_outputs.txt-* | sed 's/\t/  ->  /'
echo "== done"
echo "checkpoints and TensorBoard logs: $MODEL_DIR  (tensorboard --logdir $MODEL_DIR)"
echo "eval metrics and validation decodes: $MODEL_DIR/validation_eval"
echo "decodes: $MODEL_DIR/demo_outputs.txt-*; logs: $MODEL_DIR.{train,eval,infer}.log"
