"""Training tokens/s and peak memory of every Synthesizer variant vs vanilla.

Same decoder-only model for every variant (2 layers of [attention,
DenseReluDense], d_model 256, d_ff 1024, 4 heads of d_kv 64, byte vocabulary,
Adafactor, one CPU device; bench/common.py); only SynthesizerAttention.mode
changes. Every (mode, length) runs in its own process, so peak RSS is that
run's own; the modes are interleaved over `--repeats` (bench/harness.py),
each cell is the median (min-max) and "vs vanilla" the median of the
per-repeat ratios. Tokens per step are constant across lengths (batch =
tokens / length).

  python bench/bench_synthesizer.py --write   # all, and update BENCHMARKS.md
  python bench/bench_synthesizer.py --modes random vanilla --lengths 2048
"""

import argparse
import os
import sys
import time

import harness  # bench/harness.py
import report  # bench/report.py: BENCHMARKS.md sections

MODES = ["vanilla", "dense", "random", "fixed_random", "factorized_dense",
         "factorized_random", "random+vanilla", "dense+vanilla",
         "factorized_random+vanilla"]
LENGTHS = [128, 512, 2048]
HEADING = "## Synthesizer variants (issue 3)"
NOTES = """\
Why the numbers look like this (per layer; B batch, L length, H heads, e
d_kv, n max_length = L here):
- vanilla computes Q and K (2 B L d H e), Q K^T (B H L^2 e) and a softmax
  over B H L^2 logits, and keeps them for the backward pass.
- random's logits R[:L, :L] have no batch dim: no Q, K or Q K^T, a softmax
  over H L^2 instead of B H L^2; only weights x V (B H L^2 e) remains. It
  pays instead for the table: a gradient and an Adafactor update of H n^2
  entries per layer per step, independent of the batch (2 x 16.8M entries
  at n = 2048). fixed_random skips that update, so it is faster still; the
  gap random - fixed_random is the table's training cost. So Random is
  faster than vanilla at long lengths here; it would stop being so when
  tokens per step are small relative to H n^2 (the update dominates), or on
  the gather path (packed rows, or T5 models without positional embedding,
  where positions come from sequence_id): logits are then per example.
- dense's rows W2 relu(W1 x + b1) cost B L H f n (f = d_kv here), the same
  order as Q K^T, so dense is close to vanilla; factorized_dense builds n
  columns from A and B (column j = A[j mod a] B[j div a]), also B H L n:
  about vanilla's cost.
- factorized_random's R1 R2^T costs H L^2 k, batch-free like random, with
  2 H n k parameters (smallest memory at 2048).
- mixtures compute every member's logits and keep them for the backward
  pass, so they cost about the sum of their members (slower than vanilla).
- Peak RSS is the whole process (TF, mesh TF and t5 imports are about
  830 MiB, shown separately); the L^2 tensors (B H L^2 per layer for
  vanilla, H n^2 tables plus Adafactor slots for random) dominate the rest.
- The load average during the runs is given with the command: on a shared
  machine compare modes by the "vs vanilla" column (each repeat's ratio to
  the vanilla run beside it), not by absolute tokens/s.
"""


def measure_one(mode, length, tokens_per_step, steps, warmup, threads):
  """Child process: builds, warms up, times `steps` steps; reports figures."""
  import common  # pylint: disable=g-import-not-at-top
  import mtf_synth  # pylint: disable=g-import-not-at-top
  from mesh_tensorflow.transformer import transformer_layers  # pylint: disable=g-import-not-at-top
  import_rss_mib = harness.rss_mib()[1]  # TF, mesh TF and t5 imported
  batch = max(tokens_per_step // length, 1)
  layers = []
  for _ in range(2):
    layers += [mtf_synth.SynthesizerAttention(mode=mode, num_heads=4,
                                              key_value_size=64),
               transformer_layers.DenseReluDense(hidden_size=1024)]
  step = common.TrainStep(layers, d_model=256, batch=batch, length=length,
                          causal=True, threads=threads)
  for _ in range(warmup):
    step.run()
  start = time.perf_counter()
  losses = [step.run() for _ in range(steps)]
  seconds = (time.perf_counter() - start) / steps
  harness.report(batch=batch, step_s=seconds,
                 tokens_per_s=batch * length / seconds,
                 import_rss_mib=import_rss_mib, loss=losses[-1])


def over_imports(phase):
  """Peak RSS above what the imports alone held."""
  return lambda phases: (phases[phase]["peak_rss_mib"]
                         - phases[phase]["import_rss_mib"])


def markdown(records, lengths, modes):
  """The BENCHMARKS.md section: a table per length, relative to vanilla."""
  out = [HEADING, "", harness.provenance(records), ""]
  for length in lengths:
    phase = str(length)
    batch = {r["batch"] for r in records if r["key"][1] == phase}
    figures = [
        harness.Figure("tokens/s", harness.field("tokens_per_s", phase),
                       "%.0f", ratio=True),
        harness.Figure("step s", harness.field("step_s", phase)),
        harness.Figure("peak RSS MiB", harness.field("peak_rss_mib", phase),
                       "%.0f"),
        harness.Figure("over imports MiB", over_imports(phase), "%.0f")]
    out += ["Sequence length %d (batch %s):" % (
        length, ", ".join(map(str, sorted(batch))) or "?"), ""]
    out += harness.table(records, modes, figures, ["vanilla"]) + [""]
  return "\n".join(out + [NOTES])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--modes", nargs="+", default=MODES)
  parser.add_argument("--lengths", nargs="+", type=int, default=LENGTHS)
  parser.add_argument("--tokens_per_step", type=int, default=4096)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--write", action="store_true",
                      help="update the section of BENCHMARKS.md")
  parser.add_argument("--one", nargs=2, metavar=("MODE", "LENGTH"),
                      help=argparse.SUPPRESS)
  harness.add_common_flags(parser, "synthesizer", repeats=3)
  args = parser.parse_args()
  if args.one:
    measure_one(args.one[0], int(args.one[1]), args.tokens_per_step,
                args.steps, args.warmup, args.threads)
    return
  runs = [harness.Run(mode, (
      sys.executable, os.path.abspath(__file__), "--one", mode, str(length),
      "--tokens_per_step", str(args.tokens_per_step), "--steps",
      str(args.steps), "--warmup", str(args.warmup), "--threads",
      str(args.threads)), phase=str(length),
                      env=(("TF_CPP_MIN_LOG_LEVEL", "3"),))
          for length in args.lengths for mode in args.modes]
  records = harness.measure(runs, args.repeats, args.log)
  section = markdown(records, args.lengths, args.modes)
  harness.write_markdown(section, args.markdown)
  if args.write:
    report.write_section(HEADING, section)


if __name__ == "__main__":
  main()
