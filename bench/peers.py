"""mtf_synth beside upstream mesh TF and HF T5, trained at one config, one run.

Issue 13's config (bench/peer_model.gin: 2+2 layers, d_model 256, d_ff 1024,
4 heads, batch 16 x 128/128, Adafactor, random tokens, one CPU device, all
cores): mtf_synth (TF 2.21) and upstream mesh TF 0.1.21 (TF 2.12 venv, its
Estimator) run the same `utils.run` script (bench/train_same.py); HF
transformers T5 (PyTorch, CPU, as many threads) runs bench/hf_t5.py. Each
repeat runs every runtime for SHORT steps, then every runtime for LONG
steps; seconds per step is (wall LONG - wall SHORT) / (LONG - SHORT), so
start-up cancels; the ratio columns are medians of per-repeat ratios.
Command to first step (interpreter start to the end of step 1) and peak RSS
come from the short run.

Peers first: bash bench/setup_peers.sh
  python bench/peers.py --quick          # about 8 minutes on 2 idle cores
  python bench/peers.py                  # 5 repeats of 10 / 70 steps, ~14 min
  python bench/peers.py --busy 1         # with 1 CPU-bound process beside
  python bench/peers.py --bf16           # and bfloat16 against bfloat16
"""

import argparse
import contextlib
import os
import subprocess
import sys

import harness  # bench/harness.py

PEERS_DIR = os.environ.get("MTF_SYNTH_PEERS", os.path.expanduser(
    "~/.cache/mtf_synth_bench"))
QUIET = (("TF_CPP_MIN_LOG_LEVEL", "3"),)
BF16_ACTIVATIONS = "get_variable_dtype.activation_dtype = 'bfloat16'"
FLOAT32 = ("mtf_synth", "upstream", "hf_t5")


def runtimes(peers_dir, threads):
  """{name: (command prefix, extra env)} of the three runtimes."""
  train_same = os.path.join(harness.BENCH_DIR, "train_same.py")
  upstream = os.path.join(peers_dir, "upstream-tf2.12", "bin", "python")
  torch_dir = os.path.join(peers_dir, "torch")
  for path in (upstream, torch_dir):
    if not os.path.exists(path):
      sys.exit("%s is missing: run bash bench/setup_peers.sh %s"
               % (path, peers_dir))
  hf_t5 = (sys.executable, os.path.join(harness.BENCH_DIR, "hf_t5.py"),
           "train", "--threads=%d" % threads)
  torch_env = (("PYTHONPATH", torch_dir),)
  return {
      "mtf_synth": ((sys.executable, train_same), QUIET),
      "upstream": ((upstream, train_same), QUIET),
      "hf_t5": (hf_t5, torch_env),
      # Equal precision: bfloat16 activations against bfloat16 autocast.
      "mtf_synth bf16": ((sys.executable, train_same, BF16_ACTIVATIONS),
                         QUIET),
      "hf_t5 bf16": ((*hf_t5, "--bf16"), torch_env),
  }


def interleaved_runs(commands, short, long):
  """Every runtime short, then every runtime long: one repeat."""
  return [harness.Run(name, (*prefix, str(steps)), phase, env)
          for phase, steps in (("short", short), ("long", long))
          for name, (prefix, env) in commands.items()]


def figures(short, long):
  return [
      harness.Figure("s/step", harness.step_difference(
          "wall_s", "short", "long", short, long), ratio=True),
      harness.Figure("CPU s/step", harness.step_difference(
          "cpu_s", "short", "long", short, long), ratio=True),
      harness.Figure("in-run median step s", harness.field(
          "step_median_s", "long")),
      harness.Figure("command to first step s", harness.field(
          "first_step_s", "short"), "%.1f", ratio=True),
      harness.Figure("peak RSS MiB (%d steps)" % short, harness.field(
          "peak_rss_mib", "short"), "%.0f", ratio=True),
  ]


@contextlib.contextmanager
def busy_processes(count):
  """`count` CPU-bound processes beside the benchmark (a shared machine)."""
  busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
          for _ in range(count)]
  try:
    yield
  finally:
    for process in busy:
      process.kill()
      process.wait()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true",
                      help="4 repeats of 5 / 35 steps")
  parser.add_argument("--short", type=int, default=10)
  parser.add_argument("--long", type=int, default=70)
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="torch threads (TF uses every core)")
  parser.add_argument("--busy", type=int, default=0,
                      help="CPU-bound processes running beside")
  parser.add_argument("--bf16", action="store_true",
                      help="also mtf_synth's bfloat16 activations and HF "
                      "T5 under bfloat16 autocast")
  parser.add_argument("--peers_dir", default=PEERS_DIR)
  harness.add_common_flags(parser, "peers")
  args = parser.parse_args()
  if args.quick:
    args.repeats, args.short, args.long = 4, 5, 35
  commands = runtimes(args.peers_dir, args.threads)
  names = list(commands) if args.bf16 else list(FLOAT32)
  runs = interleaved_runs({n: commands[n] for n in names}, args.short,
                          args.long)
  with busy_processes(args.busy):
    records = harness.measure(runs, args.repeats, args.log)
  lines = [
      "### Side by side: mtf_synth, upstream mesh TF, HF T5", "",
      harness.provenance(records), "",
      "bench/peer_model.gin (2+2 layers, d_model 256, d_ff 1024, 4 heads x "
      "64, batch 16 x 128/128, Adafactor, vocabulary 2048, random tokens), "
      "one CPU device, %d threads%s. s/step: (wall %d steps - wall %d steps) "
      "/ %d; CPU s/step: the same of user + system CPU seconds (every "
      "thread; steadier than wall time on a shared machine); in-run "
      "median: the median step of the %d-step run as the "
      "runtime's hooks saw it; command to first step and peak RSS: the "
      "%d-step run." % (args.threads, ", %d CPU-bound processes beside"
                        % args.busy if args.busy else "", args.long,
                        args.short, args.long - args.short, args.long,
                        args.short), ""]
  lines += harness.table(records, names, figures(args.short, args.long),
                         ["upstream", "hf_t5"] + (["hf_t5 bf16"] if args.bf16
                                                  else []))
  harness.write_markdown("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
  main()
