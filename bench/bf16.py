"""bfloat16 vs float32 activations on CPU: step time and loss curve.

Issue 13's model (bench/peer_model.gin: 2+2 layers, d_model 256, d_ff 1024,
4 heads, batch 16 x 128/128, Adafactor, one CPU device) through mtf_synth's
runtime (bench/train_same.py) on random inputs with counting targets
(learnable, so the loss falls), with `get_variable_dtype.activation_dtype` float32 or
bfloat16 (master weights and slices stay float32), interleaved over
`--repeats`. Seconds per step is the median step of the run after the
first two; the loss is the logged loss at each interval (same data and
initial weights, so the curves differ by the dtype alone; a float32 run
from another seed shows how far apart seed noise puts two curves).

Not through the `mtf_synth` command line: t5's mesh_transformer_main binds
activation_dtype to float32 whenever --tpu is not given, after the gin
files and --gin_param, so there the knob has no effect off TPU.

  python bench/bf16.py [--steps 300 --log_every 50] [--repeats 3]
"""

import argparse
import os
import sys

import harness  # bench/harness.py

# name: gin bindings. The second float32 run starts from other initial
# weights: its distance to the first is the seed noise a dtype's loss
# curve is judged against.
VARIANTS = {
    "float32": ("get_variable_dtype.activation_dtype = 'float32'",),
    "bfloat16": ("get_variable_dtype.activation_dtype = 'bfloat16'",),
    "float32, seed 2": ("get_variable_dtype.activation_dtype = 'float32'",
                        "mtf_synth.train_loop_settings.random_seed = 2"),
}


def loss_at(step):
  return lambda phases: phases[""]["losses"][str(step)]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--log_every", type=int, default=50)
  harness.add_common_flags(parser, "bf16", repeats=3)
  args = parser.parse_args()
  runs = [harness.Run(name, (
      sys.executable, os.path.join(harness.BENCH_DIR, "train_same.py"),
      *bindings, "random_tokens.counting_targets = True",
      "mtf_synth.train_loop_settings.log_every_steps = %d" % args.log_every,
      str(args.steps)), env=(("TF_CPP_MIN_LOG_LEVEL", "3"),))
          for name, bindings in VARIANTS.items()]
  records = harness.measure(runs, args.repeats, args.log)
  figures = [harness.Figure("s/step", harness.field("step_median_s"),
                            ratio=True),
             harness.Figure("peak RSS MiB", harness.field("peak_rss_mib"),
                            "%.0f")]
  figures += [harness.Figure("loss @%d" % step, loss_at(step), "%.5f")
              for step in range(args.log_every, args.steps + 1,
                                args.log_every)]
  lines = ["### bfloat16 activations on CPU", "", harness.provenance(records),
           "", "bench/peer_model.gin through mtf_synth's runtime, %d steps on "
           "random inputs and counting targets; s/step: the run's median "
           "step; loss: "
           "the logged training loss at that step (the gin's loss_denominator "
           "makes it the per-token cross-entropy x 2048 / 233472)."
           % args.steps, ""]
  lines += harness.table(records, list(VARIANTS), figures, ["float32"])
  harness.write_markdown("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
  main()
