"""Training step time and peak memory vs length: kernels, baselines, softmax.

One model for every variant: a Unitransformer with one [attention,
DenseReluDense(512)] layer, d_model 128, 4 heads of d_kv 32 (so M = 128
random features), batch 1, byte vocabulary, Adafactor, one CPU device; only
the attention layer changes. Encoder (bidirectional) by default, `--causal`
for decoders. Each variant runs in its own process over increasing lengths
and stops at its first failure; peak memory is the largest number of bytes
TF's CPU allocator held during one traced training step (weights, optimizer
slots and activations), not the process RSS.

  python bench/bench_kernels.py --write          # all, update BENCHMARKS.md
  python bench/bench_kernels.py --variants softmax performer --lengths 1024
"""

import argparse
import json
import os
import subprocess
import sys
import time

from report import write_section  # bench/report.py

KERNELS = ["rff", "performer", "gmm_rks", "gmm_prf", "fastfood_rks",
           "fastfood_prf", "generative_rks", "generative_prf"]
VARIANTS = (["softmax", "synthesizer"] + KERNELS
            + ["linformer", "lightweight_conv", "dynamic_conv"])
LENGTHS = [256, 512, 1024, 2048, 4096, 8192]
HEADING = "## Learned kernels and efficient baselines (issue 6)"
HEADS, KEY_SIZE, D_MODEL = 4, 32, 128


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


def build_train_step(variant, length, causal):
  """Returns (run_step, traced_peak_bytes, session) for a training step."""
  import mtf_synth  # pylint: disable=g-import-not-at-top,unused-import
  import mesh_tensorflow as mtf  # pylint: disable=g-import-not-at-top
  from mesh_tensorflow.transformer import transformer  # pylint: disable=g-import-not-at-top
  from mesh_tensorflow.transformer import transformer_layers  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top

  tf.disable_v2_behavior()
  tf.reset_default_graph()
  layers = [attention_layer(variant, causal),
            transformer_layers.DenseReluDense(hidden_size=512)]
  # Pre-norm residual layers without gin: mesh TF's "legacy" sublayers.
  stack = transformer.LayerStack(layers, dropout_rate=0.0, norm_epsilon=1e-6)
  model = transformer.Unitransformer(
      stack, d_model=D_MODEL, input_vocab_size=256, output_vocab_size=256,
      autoregressive=causal, max_length=length, name="model")
  graph = mtf.Graph()
  mesh = mtf.Mesh(graph, "mesh")
  dims = [mtf.Dimension("batch", 1), mtf.Dimension("length", length)]
  ids = np.random.RandomState(0).randint(1, 256, (1, length))
  targets = mtf.import_tf_tensor(mesh, tf.constant(ids, tf.int32), dims)
  inputs = transformer.autoregressive_inputs(targets) if causal else targets
  _, loss = model.call_simple(inputs, targets, compute_loss=True,
                              mode="train")
  variables = graph.trainable_variables
  grads = mtf.gradients([loss], [v.outputs[0] for v in variables])
  updates = mtf.optimize.AdafactorOptimizer().apply_grads(grads, variables)
  lowering = mtf.Lowering(graph, {mesh: mtf.placement_mesh_impl.
                                  PlacementMeshImpl(mtf.Shape([]),
                                                    mtf.LayoutRules([]),
                                                    ["/cpu:0"])})
  fetches = [lowering.export_to_tf_tensor(loss),
             tf.group([lowering.lowered_operation(op) for op in updates])]
  sess = tf.Session(config=tf.ConfigProto(intra_op_parallelism_threads=2,
                                          inter_op_parallelism_threads=1))
  sess.run(tf.global_variables_initializer())
  sess.run(lowering.copy_masters_to_slices())

  def traced_peak_bytes():
    metadata = tf.RunMetadata()
    sess.run(fetches, run_metadata=metadata, options=tf.RunOptions(
        trace_level=tf.RunOptions.FULL_TRACE))
    return max((m.allocator_bytes_in_use
                for device in metadata.step_stats.dev_stats
                for node in device.node_stats for m in node.memory),
               default=0)
  return (lambda: float(sess.run(fetches)[0])), traced_peak_bytes, sess


def measure_variant(variant, lengths, causal, min_seconds):
  """Child process: one JSON line per length, in increasing order."""
  for length in sorted(lengths):
    try:
      run_step, traced_peak_bytes, sess = build_train_step(variant, length,
                                                           causal)
      run_step()  # warm-up: allocations, kernel selection
      peak = traced_peak_bytes()
      steps, start = 0, time.perf_counter()
      while steps < 2 or time.perf_counter() - start < min_seconds:
        loss = run_step()
        steps += 1
      step_s = (time.perf_counter() - start) / steps
      sess.close()
      result = {"variant": variant, "length": length, "step_s": step_s,
                "steps": steps, "peak_mib": peak / 2 ** 20, "loss": loss}
    except Exception as e:  # pylint: disable=broad-except
      result = {"variant": variant, "length": length,
                "error": "%s: %s" % (type(e).__name__,
                                     str(e).splitlines()[0][:100])}
    print(json.dumps(result), flush=True)
    if "error" in result:
      return


def run_variant(args, variant):
  """Runs `measure_variant` in a fresh process; a crash ends its lengths."""
  command = [sys.executable, __file__, "--child", "--variants", variant,
             "--min_seconds", str(args.min_seconds), "--lengths"] + [
                 str(n) for n in args.lengths] + (
                     ["--causal"] if args.causal else [])
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  done = subprocess.run(command, capture_output=True, text=True, env=env,
                        check=False)
  results = [json.loads(line) for line in done.stdout.splitlines()
             if line.startswith("{")]
  if done.returncode:
    reason = (done.stderr.strip().splitlines() or ["exit %d" %
                                                   done.returncode])[-1]
    measured = {r["length"] for r in results}
    results += [{"variant": variant, "length": n, "error": reason[:100]}
                for n in args.lengths if n not in measured][:1]
  return results


def crossover(results, variant, lengths):
  """Smallest length from which `variant` steps faster than softmax."""
  def times(name):
    return {r["length"]: r["step_s"] for r in results
            if r["variant"] == name and "error" not in r}
  mine, softmax = times(variant), times("softmax")
  common = [n for n in sorted(lengths) if n in mine and n in softmax]
  for i, n in enumerate(common):
    if all(mine[m] < softmax[m] for m in common[i:]):
      return n
  return None


def markdown(results, args):
  """The BENCHMARKS.md section: step time and peak memory tables."""
  lengths = sorted(args.lengths)
  variants = [v for v in args.variants if any(r["variant"] == v
                                              for r in results)]
  cell = {(r["variant"], r["length"]): r for r in results}
  header = "| variant | " + " | ".join(str(n) for n in lengths) + " |"
  rule = "|---|" + "---:|" * len(lengths)
  def table(value):
    rows = [header, rule]
    for v in variants:
      cells = []
      for n in lengths:
        r = cell.get((v, n))
        cells.append("-" if r is None else "fail" if "error" in r
                     else value(r))
      rows.append("| %s | %s |" % (v, " | ".join(cells)))
    return rows
  out = [HEADING, "",
         "Command: `python bench/bench_kernels.py %s`" % " ".join(
             sys.argv[1:]), "",
         "%s, one layer [attention, DenseReluDense 512], d_model %d, %d heads"
         " x d_kv %d, M = 128 features, batch 1, Adafactor, 1 CPU device, 2"
         " threads. `-`: not run (an earlier length failed or was skipped)."
         % ("Decoder (causal)" if args.causal else "Encoder (bidirectional)",
            D_MODEL, HEADS, KEY_SIZE), "",
         "Seconds per training step:", ""]
  out += table(lambda r: "%.3f" % r["step_s"])
  out += ["", "Peak MiB held by TF's CPU allocator during a step:", ""]
  out += table(lambda r: "%.0f" % r["peak_mib"])
  out += ["", "Crossover (first length from which it is faster than softmax"
          " at every longer length measured):", ""]
  for v in variants:
    if v != "softmax":
      n = crossover(results, v, lengths)
      out.append("- %s: %s" % (v, n if n else "none measured"))
  failures = [r for r in results if "error" in r]
  if failures:
    out += ["", "Failures:", ""] + ["- %s at %d: %s" % (
        r["variant"], r["length"], r["error"]) for r in failures]
  return "\n".join(out) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variants", nargs="+", default=VARIANTS)
  parser.add_argument("--lengths", nargs="+", type=int, default=LENGTHS)
  parser.add_argument("--causal", action="store_true")
  parser.add_argument("--min_seconds", type=float, default=2.0,
                      help="time at least this long (and 2 steps)")
  parser.add_argument("--write", action="store_true",
                      help="update this section of BENCHMARKS.md")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    measure_variant(args.variants[0], args.lengths, args.causal,
                    args.min_seconds)
    return
  results = []
  for variant in args.variants:
    results += run_variant(args, variant)
    for r in results[-len(args.lengths):]:
      if r["variant"] == variant:
        print(json.dumps(r), flush=True)
  section = markdown(results, args)
  print(section)
  if args.write:
    write_section(HEADING, section)


if __name__ == "__main__":
  main()
