"""Training tokens/s and peak memory of every Synthesizer variant vs vanilla.

Same decoder-only model for every variant (2 layers of [attention,
DenseReluDense], d_model 256, d_ff 1024, 4 heads of d_kv 64, byte vocabulary,
Adafactor, one CPU device); only SynthesizerAttention.mode changes. Every
(mode, length) runs in its own process, so peak RSS (ru_maxrss) is that
run's own. Tokens per step are constant across lengths (batch = tokens /
length).

  python bench/bench_synthesizer.py --write   # all, and update BENCHMARKS.md
  python bench/bench_synthesizer.py --modes random vanilla --lengths 2048
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

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
  order as Q K^T, so dense is close to vanilla; factorized_dense tiles A and
  B to n columns and multiplies them, also B H L n: about vanilla's cost.
- factorized_random's R1 R2^T costs H L^2 k, batch-free like random, with
  2 H n k parameters (smallest memory at 2048).
- mixtures compute every member's logits and keep them for the backward
  pass, so they cost about the sum of their members (slower than vanilla).
- Peak RSS is the whole process (TF, mesh TF and t5 imports are about
  830 MiB, shown separately); the L^2 tensors (B H L^2 per layer for
  vanilla, H n^2 tables plus Adafactor slots for random) dominate the rest.
- The machine is shared with other engineers' jobs (2 CPU cores, load
  average 4 to 6 during the run): single runs vary by up to 2x (compare the 128
  rows); differences under about 1.5x are within noise.
"""


def peak_rss_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train_step_graph(mode, length, batch, threads):
  """Builds one training step of the benchmark model; returns a session runner."""
  import mtf_synth  # pylint: disable=g-import-not-at-top,unused-import
  import mesh_tensorflow as mtf  # pylint: disable=g-import-not-at-top
  from mesh_tensorflow.transformer import transformer  # pylint: disable=g-import-not-at-top
  from mesh_tensorflow.transformer import transformer_layers  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top

  tf.disable_v2_behavior()
  layers = []
  for i in range(2):
    layers += [mtf_synth.SynthesizerAttention(mode=mode, num_heads=4,
                                              key_value_size=64),
               transformer_layers.DenseReluDense(hidden_size=1024)]
  for i, layer in enumerate(layers):
    layer.set_name("layer_%03d" % i)
  stack = transformer.LayerStack(
      layers, sublayers_initial=[],
      sublayers_per_layer=[transformer.sublayer_rms_norm,
                           transformer.sublayer_call_layer,
                           transformer.sublayer_residual],
      sublayers_final=[transformer.sublayer_rms_norm])
  model = transformer.Unitransformer(
      stack, d_model=256, input_vocab_size=256, output_vocab_size=256,
      autoregressive=True, max_length=length, name="decoder")
  graph = mtf.Graph()
  mesh = mtf.Mesh(graph, "mesh")
  dims = [mtf.Dimension("batch", batch), mtf.Dimension("length", length)]
  tokens = np.random.RandomState(0).randint(2, 256, (batch, length))
  targets = mtf.import_tf_tensor(mesh, tf.constant(tokens, tf.int32), dims)
  _, loss = model.call_simple(transformer.autoregressive_inputs(targets),
                              targets, compute_loss=True, mode="train")
  variables = graph.trainable_variables
  grads = mtf.gradients([loss], [v.outputs[0] for v in variables])
  updates = mtf.optimize.AdafactorOptimizer().apply_grads(grads, variables)
  mesh_impl = mtf.placement_mesh_impl.PlacementMeshImpl(
      mtf.Shape([]), mtf.LayoutRules([]), ["/cpu:0"])
  lowering = mtf.Lowering(graph, {mesh: mesh_impl})
  tf_loss = lowering.export_to_tf_tensor(loss)
  step = tf.group([lowering.lowered_operation(op) for op in updates])
  config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                          inter_op_parallelism_threads=1)
  sess = tf.Session(config=config)
  sess.run(tf.global_variables_initializer())
  sess.run(lowering.copy_masters_to_slices())
  return lambda: sess.run([tf_loss, step])[0]


def measure_one(mode, length, tokens_per_step, steps, warmup, threads):
  """Runs in a child process: builds, warms up, times `steps` steps."""
  batch = max(tokens_per_step // length, 1)
  import mtf_synth  # pylint: disable=g-import-not-at-top,unused-import
  rss_start = peak_rss_mib()  # TF, mesh TF and t5 imported
  run_step = train_step_graph(mode, length, batch, threads)
  for _ in range(warmup):
    run_step()
  start = time.perf_counter()
  losses = [run_step() for _ in range(steps)]
  seconds = (time.perf_counter() - start) / steps
  return {"mode": mode, "length": length, "batch": batch,
          "step_s": seconds, "tokens_per_s": batch * length / seconds,
          "peak_rss_mib": peak_rss_mib(), "import_rss_mib": rss_start,
          "loss": float(losses[-1])}


def run_child(args, mode, length):
  command = [sys.executable, __file__, "--one", mode, str(length),
             "--tokens_per_step", str(args.tokens_per_step),
             "--steps", str(args.steps), "--warmup", str(args.warmup),
             "--threads", str(args.threads)]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  done = subprocess.run(command, capture_output=True, text=True, env=env,
                        check=False)
  lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
  if done.returncode or not lines:
    return {"mode": mode, "length": length,
            "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
  return json.loads(lines[-1])


def markdown(results, command):
  """The BENCHMARKS.md section: a table per length, relative to vanilla."""
  out = [HEADING, "", "Command: `%s`" % command, ""]
  for length in sorted({r["length"] for r in results}):
    rows = [r for r in results if r["length"] == length]
    base = next((r for r in rows if r["mode"] == "vanilla" and "error"
                 not in r), None)
    out += ["Sequence length %d (batch %s):" % (
        length, rows[0].get("batch", "?")), "",
            "| mode | tokens/s | vs vanilla | step s | peak RSS MiB | over"
            " imports MiB |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
      if "error" in r:
        out.append("| %s | error: %s | | | | |" % (r["mode"], r["error"]))
        continue
      ratio = r["tokens_per_s"] / base["tokens_per_s"] if base else float(
          "nan")
      out.append("| %s | %.0f | %.2fx | %.3f | %.0f | %.0f |" % (
          r["mode"], r["tokens_per_s"], ratio, r["step_s"],
          r["peak_rss_mib"], r["peak_rss_mib"] - r["import_rss_mib"]))
    out.append("")
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
  args = parser.parse_args()
  if args.one:
    print(json.dumps(measure_one(args.one[0], int(args.one[1]),
                                 args.tokens_per_step, args.steps,
                                 args.warmup, args.threads)))
    return
  results = []
  for length in args.lengths:
    for mode in args.modes:
      results.append(run_child(args, mode, length))
      print(json.dumps(results[-1]), flush=True)
  command = "python bench/bench_synthesizer.py " + " ".join(sys.argv[1:])
  section = markdown(results, command.strip())
  print(section)
  if args.write:
    report.write_section(HEADING, section)


if __name__ == "__main__":
  main()
