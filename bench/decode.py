"""Decoding speed: `mtf_synth` infer (greedy, beam 4) vs HF T5 `generate`.

The demo model's size (gin/demo.gin: 2+2 layers, d_model 128, d_ff 512, 4
heads x 32, byte vocabulary, random+vanilla Synthesizer; HF T5 has vanilla
attention), one CPU device, batch 32, inputs of 64 tokens, 64 decoded
tokens per row. The mtf_synth model is trained for one step (prepared once
under the log's folder), so its rows hardly ever end early: mesh TF decodes
every row of a batch until all have ended, i.e. to the full length, and HF
is held to it (min_new_tokens), so both compute rows x 64 tokens (the mean
output bytes per row column checks it). Each repeat decodes 1 batch, then
1 + EXTRA batches, per variant; tokens/s is the extra tokens over the extra
wall time, so start-up cancels.

  python bench/decode.py [--extra_batches 3] [--repeats 3] [--before REV]

--before REV adds mtf_synth's rows as git revision REV decodes them
(harness.revision_tree), interleaved with today's.

bench/profiles.py traces one batch of these runs (BENCH_TRACE_OUT,
BENCH_TRACE_RUNS; bench/step_stats.py).
"""

import argparse
import glob
import json
import os
import random
import string
import subprocess
import sys
import tempfile

import harness  # bench/harness.py
import peers  # bench/peers.py: where the torch peer lies

BATCH, LENGTH = 32, 64
DEMO = ("--gin_file=demo.gin",
        "--gin_param=utils.run.mesh_shape='model:1,batch:1'",
        "--gin_param=utils.run.batch_size=%d" % BATCH)
QUIET = (("TF_CPP_MIN_LOG_LEVEL", "3"),)


def mtf_synth(model_dir, *flags):
  env = dict(os.environ, **dict(QUIET))
  if os.environ.get("BENCH_TRACE_OUT"):  # bench/profiles.py traces a batch
    flags += ("--module_import=step_stats",)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (
        env.get("PYTHONPATH"), harness.BENCH_DIR)))
  # -P: mtf_synth from PYTHONPATH (a --before tree), not the working dir.
  subprocess.run([sys.executable, "-P", "-m", "mtf_synth", "--model_dir=" +
                  model_dir, *DEMO, *flags], check=True, env=env)


def prepare(model_dir):
  """A one-step demo checkpoint (kept: later runs and resumes reuse it)."""
  if not glob.glob(os.path.join(model_dir, "model.ckpt-1.index")):
    mtf_synth(model_dir, "--gin_param=utils.run.train_steps=1")


def infer(model_dir, batches, beams):
  """Child: decodes `batches` batches of random demo inputs; reports."""
  rows = random.Random(0)
  lines = ["reverse: " + " ".join(rows.choices(string.ascii_lowercase, k=27))
           for _ in range(batches * BATCH)]
  with tempfile.TemporaryDirectory(prefix="bench_decode_") as folder:
    inputs = os.path.join(folder, "inputs.txt")
    with open(inputs, "w") as f:
      f.write("\n".join(lines) + "\n")
    mtf_synth(model_dir, "--gin_file=infer.gin",
              "--gin_param=input_filename=%r" % inputs,
              "--gin_param=output_filename=%r" % os.path.join(folder, "out"),
              "--gin_param=Bitransformer.decode.beam_size=%d" % beams,
              "--gin_param=Bitransformer.decode.max_decode_length=%d"
              % LENGTH)
    (output,) = glob.glob(os.path.join(folder, "out*"))
    with open(output, encoding="utf-8", errors="replace") as f:
      decoded = f.read().splitlines()
  figures = {}
  if os.environ.get("BENCH_TRACE_OUT"):
    with open(os.environ["BENCH_TRACE_OUT"]) as f:
      figures["op_profile"] = json.load(f)
  harness.report(tokens=len(decoded) * LENGTH, mean_output_bytes=sum(
      len(line.encode()) for line in decoded) / len(decoded), **figures)


def tokens_per_s(phases, seconds="wall_s"):
  """Extra tokens over the long run's extra wall (or CPU) seconds."""
  return ((phases["long"]["tokens"] - phases["short"]["tokens"])
          / (phases["long"][seconds] - phases["short"][seconds]))


def runs(model_dir, torch_dir, extra_batches, trees=()):
  def commands(batches):
    return {
        "mtf_synth greedy": (sys.executable, os.path.abspath(__file__),
                             "--infer", model_dir, str(batches), "1"),
        "mtf_synth beam 4": (sys.executable, os.path.abspath(__file__),
                             "--infer", model_dir, str(batches), "4"),
        "hf_t5 greedy": (sys.executable, os.path.join(
            harness.BENCH_DIR, "hf_t5.py"), "generate", str(batches)),
        "hf_t5 beam 4": (sys.executable, os.path.join(
            harness.BENCH_DIR, "hf_t5.py"), "generate", str(batches),
                         "--beams=4"),
    }
  torch_env = QUIET + (("PYTHONPATH", torch_dir),)
  all_runs = []
  for phase, batches in (("short", 1), ("long", 1 + extra_batches)):
    for name, command in commands(batches).items():
      all_runs.append(harness.Run(name, command, phase, torch_env
                                  if name.startswith("hf") else QUIET))
      if name.startswith("mtf_synth"):
        all_runs += [harness.Run("%s %s" % (name, label), command, phase,
                                 QUIET + (("PYTHONPATH", folder),))
                     for label, folder in trees]
  return all_runs


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--extra_batches", type=int, default=3)
  parser.add_argument("--peers_dir", default=peers.PEERS_DIR)
  parser.add_argument("--before", metavar="REV", action="append",
                      default=[], help="also decode with git revision REV's "
                      "mtf_synth (repeatable)")
  parser.add_argument("--infer", nargs=3, metavar=("MODEL_DIR", "BATCHES",
                                                   "BEAMS"),
                      help=argparse.SUPPRESS)
  harness.add_common_flags(parser, "decode", repeats=3)
  args = parser.parse_args()
  if args.infer:
    infer(args.infer[0], int(args.infer[1]), int(args.infer[2]))
    return
  model_dir = os.path.join(os.path.dirname(os.path.abspath(args.log)),
                           "decode_model")
  prepare(model_dir)
  trees = [harness.revision_tree(revision) for revision in args.before]
  all_runs = runs(model_dir, os.path.join(args.peers_dir, "torch"),
                  args.extra_batches, trees)
  records = harness.measure(all_runs, args.repeats, args.log)
  figures = [harness.Figure("tokens/s", tokens_per_s, "%.0f", ratio=True),
             # CPU seconds of every thread: steadier on a shared machine.
             harness.Figure("tokens per CPU s", lambda phases: tokens_per_s(
                 phases, "cpu_s"), "%.0f", ratio=True),
             harness.Figure("mean output bytes per row", harness.field(
                 "mean_output_bytes", "long"), "%.1f")]
  lines = ["### Decoding speed", "", harness.provenance(records), "",
           "Demo-size model, batch %d, %d input and %d decoded tokens per "
           "row, one CPU device; tokens/s from 1 vs %d batches."
           % (BATCH, LENGTH, LENGTH, 1 + args.extra_batches), ""]
  for search in ("greedy", "beam 4"):
    ours = ["mtf_synth " + search] + ["mtf_synth %s %s" % (search, label)
                                      for label, _ in trees]
    lines += harness.table(records, ours + ["hf_t5 " + search], figures,
                           ["hf_t5 " + search] + ours[1:]) + [""]
  harness.write_markdown("\n".join(lines), args.markdown)


if __name__ == "__main__":
  main()
