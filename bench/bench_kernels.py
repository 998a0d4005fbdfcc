"""Training step time and peak memory vs length: kernels, baselines, softmax.

One model for every variant: a Unitransformer with one [attention,
DenseReluDense(512)] layer, d_model 128, 4 heads of d_kv 32 (so M = 128
random features), batch 1, byte vocabulary, Adafactor, one CPU device
(bench/common.py); only the attention layer changes. Encoder
(bidirectional) by default, `--causal` for decoders. Each variant runs in
its own process over increasing lengths and stops at its first failure; the
variants are interleaved over `--repeats` (bench/harness.py) and each cell
is the median (min-max). Peak memory is the largest number of bytes TF's CPU
allocator held during one traced training step (weights, optimizer slots
and activations), not the process RSS.

  python bench/bench_kernels.py --write          # all, update BENCHMARKS.md
  python bench/bench_kernels.py --variants softmax performer --lengths 1024
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import harness  # bench/harness.py
from report import write_section  # bench/report.py

BASELINES = ["linformer", "lightweight_conv", "dynamic_conv"]
LENGTHS = [256, 512, 1024, 2048, 4096, 8192]
HEADING = "## Learned kernels and efficient baselines (issue 6)"
HEADS, KEY_SIZE, D_MODEL = 4, 32, 128


def registered_kernels():
  """The names in mtf_synth's KERNELS registry, asked of a child process
  (mesh TF imported here would count into every child's peak RSS)."""
  listed = subprocess.run(
      [sys.executable, "-c", "from mtf_synth.layers.kernel_attention import "
       "KERNELS; print(' '.join(KERNELS))"], capture_output=True, text=True,
      check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  return listed.stdout.split("\n")[-2].split()


def attention_layer(variant, causal):
  """The attention layer of `variant` (imports mesh TF: child process only)."""
  import mtf_synth  # pylint: disable=g-import-not-at-top
  from mesh_tensorflow.transformer import transformer_layers  # pylint: disable=g-import-not-at-top
  heads = dict(num_heads=HEADS, key_value_size=KEY_SIZE)
  if variant == "softmax":
    return transformer_layers.SelfAttention(**heads)
  if variant == "synthesizer":
    return mtf_synth.SynthesizerAttention(mode="factorized_random", **heads)
  if variant == "linformer":
    if causal:
      raise ValueError("Linformer has no causal form")
    return mtf_synth.Linformer(projected_length=256, **heads)
  if variant == "lightweight_conv":
    return mtf_synth.LightweightConvolution(kernel_size=7, num_heads=16)
  if variant == "dynamic_conv":
    return mtf_synth.DynamicConvolution(kernel_size=7, num_heads=16)
  return mtf_synth.KernelAttention(kernel=variant, **heads)


def measure_variant(variant, lengths, causal, min_seconds):
  """Child process: figures per length, in increasing order, until one fails."""
  import common  # pylint: disable=g-import-not-at-top
  from mesh_tensorflow.transformer import transformer_layers  # pylint: disable=g-import-not-at-top
  figures = {}
  for length in sorted(lengths):
    try:
      step = common.TrainStep(
          [attention_layer(variant, causal),
           transformer_layers.DenseReluDense(hidden_size=512)],
          d_model=D_MODEL, batch=1, length=length, causal=causal)
      step.run()  # warm-up: allocations, kernel selection
      figures["peak_mib_%d" % length] = step.traced_peak_bytes() / 2 ** 20
      steps, start = 0, time.perf_counter()
      while steps < 2 or time.perf_counter() - start < min_seconds:
        step.run()
        steps += 1
      figures["step_s_%d" % length] = (time.perf_counter() - start) / steps
      step.close()
    except Exception as e:  # pylint: disable=broad-except
      figures["error_%d" % length] = "%s: %s" % (
          type(e).__name__, str(e).splitlines()[0][:100])
      break
  harness.report(**figures)


def median_step_s(records, variant, length):
  values = harness.per_repeat(records, variant, harness.Figure(
      "", harness.field("step_s_%d" % length)))
  return statistics.median(values.values()) if values else None


def crossover(records, variant, lengths):
  """Smallest length from which `variant`'s median step beats softmax's."""
  def times(name):
    return {n: median_step_s(records, name, n) for n in lengths}
  mine, softmax = times(variant), times("softmax")
  common_lengths = [n for n in sorted(lengths) if mine[n] and softmax[n]]
  for i, n in enumerate(common_lengths):
    if all(mine[m] < softmax[m] for m in common_lengths[i:]):
      return n
  return None


def markdown(records, args):
  """The BENCHMARKS.md section: step time and peak memory tables."""
  lengths = sorted(args.lengths)
  variants = [v for v in args.variants
              if any(r["key"][0] == v for r in records)]
  def table(name, fmt):
    return harness.table(records, variants, [
        harness.Figure(str(n), harness.field("%s_%d" % (name, n)), fmt)
        for n in lengths])
  out = [HEADING, "", "### Decoder" if args.causal else "### Encoder", "",
         harness.provenance(records), "",
         "%s, one layer [attention, DenseReluDense 512], d_model %d, %d heads"
         " x d_kv %d, M = 128 features, batch 1, Adafactor, 1 CPU device, 2"
         " threads. Median (min-max) of the repeats; `-`: not run (an earlier"
         " length failed or was skipped)."
         % ("Decoder (causal)" if args.causal else "Encoder (bidirectional)",
            D_MODEL, HEADS, KEY_SIZE), "",
         "Seconds per training step:", ""]
  out += table("step_s", "%.3f")
  out += ["", "Peak MiB held by TF's CPU allocator during a step:", ""]
  out += table("peak_mib", "%.0f")
  out += ["", "Crossover (first length from which the median step is faster"
          " than softmax's at every longer length measured):", ""]
  for v in variants:
    if v != "softmax":
      n = crossover(records, v, lengths)
      out.append("- %s: %s" % (v, n if n else "none measured"))
  failures = sorted({(r["key"][0], name[len("error_"):], value)
                     for r in records for name, value in r.items()
                     if name.startswith("error_")})
  if failures:
    out += ["", "Failures:", ""] + ["- %s at %s: %s" % f for f in failures]
  return "\n".join(out) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variants", nargs="+")
  parser.add_argument("--lengths", nargs="+", type=int, default=LENGTHS)
  parser.add_argument("--causal", action="store_true")
  parser.add_argument("--min_seconds", type=float, default=2.0,
                      help="time at least this long (and 2 steps)")
  parser.add_argument("--write", action="store_true",
                      help="update this section of BENCHMARKS.md")
  parser.add_argument("--child", help=argparse.SUPPRESS)
  harness.add_common_flags(parser, "kernels", repeats=3)
  args = parser.parse_args()
  if args.child:
    measure_variant(args.child, args.lengths, args.causal, args.min_seconds)
    return
  args.variants = args.variants or (
      ["softmax", "synthesizer"] + registered_kernels() + BASELINES)
  runs = [harness.Run(variant, (
      sys.executable, os.path.abspath(__file__), "--child", variant, "--min_seconds",
      str(args.min_seconds), "--lengths", *map(str, args.lengths),
      *(["--causal"] if args.causal else [])),
                      env=(("TF_CPP_MIN_LOG_LEVEL", "3"),))
          for variant in args.variants]
  records = harness.measure(runs, args.repeats, args.log)
  section = markdown(records, args)
  harness.write_markdown(section, args.markdown)
  if args.write:
    write_section(HEADING, section)


if __name__ == "__main__":
  main()
