"""Where the limit is: this CPU's matmul rate at a training step's shapes.

bench/peer_model.gin's step (2+2 layers, d_model 256, d_ff 1024, 4 heads x
64, batch 16 x 128/128, vocabulary 2048) is, by count of its matmuls, MATMULS
below: each forward matmul [M, K] x [K, N] and its two backward ones
([M, N] x [N, K] for the input's gradient, [K, M] x [M, N] for the
weight's), 3 x 2MKN FLOPs in all. A child times every one of those shapes
with TF (tf.function, `--threads` threads, best of several calls) in float32
and bfloat16; the sum of those times is the step's matmul time at this
CPU's own rate, its floor. `--peers_log` (bench/peers.py's log) then gives
each runtime's step time as a multiple of that floor and its achieved
GFLOP/s: how far any runtime is from the machine's limit, not only from
each other.

  python bench/peak.py [--repeats 3] [--peers_log runs/bench/peers.jsonl]
  python bench/peak.py --kernels      # oneDNN kernels of 3 bfloat16 steps

--kernels runs 3 training steps of mtf_synth (bfloat16 activations) and of
HF T5 (bfloat16 autocast) with ONEDNN_VERBOSE=1 and counts oneDNN's
executions by primitive and implementation (e.g. brg_matmul:avx512_core_bf16
or an AMX kernel where the CPU has one).
"""

import argparse
import collections
import os
import statistics
import subprocess
import sys
import time

import harness  # bench/harness.py
import peers  # bench/peers.py

B, L, D, F, H, K, V = 16, 128, 256, 1024, 4, 64, 2048
# (what, M, K, N, count per step): [M, K] x [K, N] forward matmuls.
MATMULS = (
    # q, k, v, o of 4 self-attentions and 2 cross attentions (6 x 4).
    ("attention projections", B * L, D, H * K, 24),
    # q.k and weights.v of 6 attentions, per head: batched over B x H.
    ("attention scores and sums", L, K, L, 2 * 6 * B * H),
    ("feed-forward", B * L, D, F, 4),
    ("feed-forward out", B * L, F, D, 4),
    ("output logits", B * L, D, V, 1),
)


def flops_per_step():
  return 3 * sum(2 * m * k * n * count for _, m, k, n, count in MATMULS)


def time_matmuls(dtype_name, threads):
  """Child: seconds per step of MATMULS' forward and backward shapes."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  dtype = getattr(tf, dtype_name)
  matmul = tf.function(tf.matmul)
  seconds, by_kind = 0.0, {}
  for what, m, k, n, count in MATMULS:
    batch = B * H if what.startswith("attention scores") else 1
    kind_s = 0.0
    for a_shape, b_shape in (((m, k), (k, n)), ((m, n), (n, k)),
                             ((k, m), (m, n))):
      a = tf.cast(tf.random.normal((batch,) + a_shape), dtype)
      b = tf.cast(tf.random.normal((batch,) + b_shape), dtype)
      matmul(a, b).numpy()
      calls = max(3, int(2e9 / (2 * batch * m * k * n)))
      best = float("inf")
      for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
          out = matmul(a, b)
        out.numpy()
        best = min(best, (time.perf_counter() - start) / calls)
      kind_s += best * count / batch
    by_kind[what] = kind_s
    seconds += kind_s
  harness.report(matmul_s_per_step=seconds, gflops=flops_per_step() / seconds
                 / 1e9, by_kind=by_kind)


def onednn_kernels(command, env):
  """{(primitive, implementation): executions} of `command` under
  ONEDNN_VERBOSE=1 (lines `onednn_verbose,...,exec,cpu,KIND,IMPL,...`)."""
  output = subprocess.run(command, env=dict(os.environ, ONEDNN_VERBOSE="1",
                                            **dict(env)),
                          capture_output=True, text=True, check=True)
  counts = collections.Counter()
  for line in (output.stdout + output.stderr).splitlines():
    fields = line.split(",")
    if fields[0] == "onednn_verbose" and "exec" in fields:
      at = fields.index("exec")
      counts[tuple(fields[at + 2:at + 4])] += 1
  return counts


def kernels_table(threads, peers_dir):
  commands = peers.runtimes(peers_dir, threads)
  lines = ["oneDNN executions in 3 training steps (ONEDNN_VERBOSE=1; CPU: "
           "%s):" % harness.cpu_name(), "",
           "| runtime | primitive | implementation | executions |",
           "|---|---|---|---:|"]
  for name in ("mtf_synth bf16", "hf_t5 bf16"):
    prefix, env = commands[name]
    counts = onednn_kernels((*prefix, "3"), env)
    for (kind, impl), count in sorted(counts.items(),
                                      key=lambda item: -item[1]):
      lines.append("| %s | %s | %s | %d |" % (name, kind, impl, count))
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--peers_log", help="bench/peers.py's JSON-lines log")
  parser.add_argument("--peers_steps", nargs=2, type=int, default=(10, 70),
                      metavar=("SHORT", "LONG"),
                      help="the peers run's --short and --long")
  parser.add_argument("--kernels", action="store_true",
                      help="count oneDNN kernels of 3 bfloat16 steps")
  parser.add_argument("--peers_dir", default=peers.PEERS_DIR)
  parser.add_argument("--child", choices=["float32", "bfloat16"],
                      help=argparse.SUPPRESS)
  harness.add_common_flags(parser, "peak", repeats=3)
  args = parser.parse_args()
  if args.child:
    time_matmuls(args.child, args.threads)
    return
  if args.kernels:
    harness.write_markdown("\n".join(kernels_table(
        args.threads, args.peers_dir)) + "\n", args.markdown)
    return
  runs = [harness.Run(dtype, (sys.executable, os.path.abspath(__file__),
                              "--child", dtype, "--threads=%d" % args.threads),
                      env=peers.QUIET) for dtype in ("float32", "bfloat16")]
  records = harness.measure(runs, args.repeats, args.log)
  floor = {dtype: statistics.median(list(harness.per_repeat(
      records, dtype, harness.Figure("s", harness.field(
          "matmul_s_per_step"))).values())) for dtype in ("float32",
                                                           "bfloat16")}
  gflop = flops_per_step() / 1e9
  lines = ["### Where the limit is: matmuls at the training step's shapes",
           "", harness.provenance(records), "",
           "bench/peer_model.gin's step: %.1f GFLOP of matmuls (forward and "
           "backward, by count of its shapes). Each shape timed alone with "
           "TF's tf.matmul, %d threads, best of 3; the step's matmul time at "
           "that rate is the floor of any runtime's step." % (
               gflop, args.threads), ""]
  lines += harness.table(records, ["float32", "bfloat16"], [
      harness.Figure("matmul floor s/step", harness.field(
          "matmul_s_per_step"), "%.3f", ratio=True),
      harness.Figure("GFLOP/s", harness.field("gflops"), "%.0f")],
                         ["float32"]) + [""]
  if args.peers_log:
    short, long = args.peers_steps
    records = harness.read_log(args.peers_log)
    lines += ["Each runtime of `%s` against the floor of its precision "
              "(s/step: median of the runs' wall difference, as "
              "bench/peers.py):" % os.path.relpath(args.peers_log,
                                                   harness.REPO), "",
              "| runtime | s/step | GFLOP/s | x floor | fraction of the "
              "matmul peak |", "|---|---:|---:|---:|---:|"]
    step = harness.Figure("s/step", harness.step_difference(
        "wall_s", "short", "long", short, long))
    for name in sorted({r["key"][0] for r in records}):
      values = list(harness.per_repeat(records, name, step).values())
      if not values:
        continue
      seconds = statistics.median(values)
      dtype = "bfloat16" if "bf16" in name else "float32"
      lines.append("| %s | %.3f | %.0f | %.2fx | %.0f%% |" % (
          name, seconds, gflop / seconds, seconds / floor[dtype],
          100 * floor[dtype] / seconds))
  harness.write_markdown("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
  main()
