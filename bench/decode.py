"""Decoding speed: `mtf_synth` infer (greedy, beam 4) vs HF T5 `generate`.

Sizes from bench/decode_sizes.py (--sizes): `demo` is gin/demo.gin's size
(2+2 layers, d_model 128, batch 32, 64 input and 64 decoded tokens), `512`
a compute-bound one (d_model 512, 8 heads x 64, batch 16, 256 decoded
tokens); one CPU device, byte vocabulary. mtf_synth decodes with each of
--attentions in its self-attention layers:
  demo           gin/demo.gin's random+vanilla Synthesizer
  SelfAttention  mesh TF's transformer_layers.SelfAttention (HF T5's)
  vanilla, R     SynthesizerAttention mode 'vanilla' / 'random'
(cross attention is EncDecAttention throughout). HF T5 has vanilla
attention. Each mtf_synth model is trained for one step (prepared once under
the log's folder), so its rows hardly ever end early: mesh TF decodes every
row of a batch until all have ended, i.e. to the full length, and HF is held
to it (min_new_tokens), so both compute rows x decode_length tokens (the
mean output bytes per row column checks it). Each repeat decodes 1 + EXTRA
batches per variant and times each batch in the process (mtf_synth: its
predict session runs, through step_stats' RunTimer; HF: each generate
call); tokens/s is a batch's tokens over the median batch after the first,
so start-up and warm-up do not count.

  python bench/decode.py [--sizes demo 512] [--attentions SelfAttention R]
      [--extra_batches 3] [--repeats 3] [--before REV] [--hf_threads 2 1]

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
import statistics
import string
import subprocess
import sys
import tempfile

import decode_sizes  # bench/decode_sizes.py
import harness  # bench/harness.py
import peers  # bench/peers.py: where the torch peer lies

SIZES = decode_sizes.SIZES
BATCH, LENGTH = SIZES["demo"]["batch"], SIZES["demo"]["decode_length"]
QUIET = (("TF_CPP_MIN_LOG_LEVEL", "3"),)
ATTENTIONS = {
    "demo": (),
    "SelfAttention": (
        "encoder/make_layer_stack.layers = [@transformer_layers.SelfAttention,"
        " @transformer_layers.DenseReluDense]",
        "decoder/make_layer_stack.layers = [@transformer_layers.SelfAttention,"
        " @transformer_layers.EncDecAttention, "
        "@transformer_layers.DenseReluDense]"),
    "vanilla": ("SynthesizerAttention.mode = 'vanilla'",),
    "R": ("SynthesizerAttention.mode = 'random'",),
}


def gin_params(size_name, attention):
  """gin/demo.gin's overrides for a size and self-attention."""
  size = SIZES[size_name]
  length = max(size["input_length"], size["decode_length"])
  params = ["utils.run.mesh_shape = 'model:1,batch:1'",
            "utils.run.batch_size = %d" % size["batch"],
            "utils.run.sequence_length = {'inputs': %d, 'targets': %d}" % (
                size["input_length"], size["decode_length"]),
            "Bitransformer.decode.max_decode_length = %d"
            % size["decode_length"],
            "Unitransformer.max_length = %d" % length,
            "SynthesizerAttention.max_length = %d" % length]
  params += ["%s = %d" % (name, size[name])
             for name in ("d_model", "d_ff", "num_heads", "d_kv")]
  return params + list(ATTENTIONS[attention])


def mtf_synth(model_dir, size_name, attention, *flags):
  env = dict(os.environ, **dict(QUIET))
  # bench/profiles.py traces a batch; infer times each.
  if {"BENCH_TRACE_OUT", "BENCH_BATCH_TIMES_OUT"} & set(os.environ):
    flags += ("--module_import=step_stats",)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (
        env.get("PYTHONPATH"), harness.BENCH_DIR)))
  params = ["--gin_param=" + p for p in gin_params(size_name, attention)]
  # -P: mtf_synth from PYTHONPATH (a --before tree), not the working dir.
  subprocess.run([sys.executable, "-P", "-m", "mtf_synth", "--model_dir=" +
                  model_dir, "--gin_file=demo.gin", *params, *flags],
                 check=True, env=env)


def prepare(model_dir, size_name="demo", attention="demo"):
  """A one-step checkpoint (kept: later runs and resumes reuse it)."""
  if not glob.glob(os.path.join(model_dir, "model.ckpt-1.index")):
    mtf_synth(model_dir, size_name, attention,
              "--gin_param=utils.run.train_steps=1")


def infer(model_dir, batches, beams, size_name="demo", attention="demo"):
  """Child: decodes `batches` batches of random inputs; reports."""
  size = SIZES[size_name]
  rows = random.Random(0)
  # "reverse: " and letters with spaces: about input_length bytes.
  letters = (size["input_length"] - 9) // 2
  lines = ["reverse: " + " ".join(rows.choices(string.ascii_lowercase,
                                               k=letters))
           for _ in range(batches * size["batch"])]
  with tempfile.TemporaryDirectory(prefix="bench_decode_") as folder:
    inputs = os.path.join(folder, "inputs.txt")
    with open(inputs, "w") as f:
      f.write("\n".join(lines) + "\n")
    times = os.path.join(folder, "batch_times.json")
    os.environ.setdefault("BENCH_BATCH_TIMES_OUT", times)
    mtf_synth(model_dir, size_name, attention, "--gin_file=infer.gin",
              "--gin_param=input_filename=%r" % inputs,
              "--gin_param=output_filename=%r" % os.path.join(folder, "out"),
              "--gin_param=Bitransformer.decode.beam_size=%d" % beams)
    (output,) = glob.glob(os.path.join(folder, "out-*"))
    with open(output, encoding="utf-8", errors="replace") as f:
      decoded = f.read().splitlines()
    figures = {}
    if os.path.exists(times):
      with open(times) as f:
        figures["batch_times"] = json.load(f)
  if os.environ.get("BENCH_TRACE_OUT"):
    with open(os.environ["BENCH_TRACE_OUT"]) as f:
      figures["op_profile"] = json.load(f)
  harness.report(tokens=len(decoded) * size["decode_length"],
                 tokens_per_batch=size["batch"] * size["decode_length"],
                 mean_output_bytes=sum(len(line.encode())
                                       for line in decoded) / len(decoded),
                 **figures)


def tokens_per_s(phases, seconds="wall_s"):
  """A batch's tokens over the median batch's wall (or CPU) seconds, the
  first (warm-up) batch left out."""
  record = phases[""]
  batches = record["batch_times"][seconds][1:]
  return record["tokens_per_batch"] / statistics.median(batches)


def model_dir_of(out_dir, size_name, attention):
  if (size_name, attention) == ("demo", "demo"):
    return os.path.join(out_dir, "decode_model")  # bench/profiles.py's too
  return os.path.join(out_dir, "decode_model_%s_%s" % (size_name, attention))


def variant(size_name, search, attention=None, threads=None):
  """A table row's name, e.g. 'mtf_synth greedy R @512' or 'hf_t5 greedy,
  1 thread' (HF T5 at other than one thread per core)."""
  if attention is None:
    name = "hf_t5 " + search
    if threads not in (None, os.cpu_count()):
      name += ", %d thread%s" % (threads, "s" if threads > 1 else "")
  else:
    name = "mtf_synth %s%s" % (search, "" if attention == "demo" else
                               " " + attention)
  return name if size_name == "demo" else name + " @" + size_name


def runs(out_dir, torch_dir, extra_batches, sizes, attentions, hf_threads,
         trees=()):
  searches = (("greedy", 1), ("beam 4", 4))
  torch_env = QUIET + (("PYTHONPATH", torch_dir),)
  all_runs = []
  batches, phase = 1 + extra_batches, ""
  for size_name in sizes:
    for search, beams in searches:
      for attention in attentions:
        command = (sys.executable, os.path.abspath(__file__), "--infer",
                   model_dir_of(out_dir, size_name, attention),
                   str(batches), str(beams), size_name, attention)
        name = variant(size_name, search, attention)
        all_runs.append(harness.Run(name, command, phase, QUIET))
        all_runs += [harness.Run("%s %s" % (name, label), command, phase,
                                 QUIET + (("PYTHONPATH", folder),))
                     for label, folder in trees]
      all_runs += [harness.Run(variant(size_name, search, threads=threads), (
          sys.executable, os.path.join(harness.BENCH_DIR, "hf_t5.py"),
          "generate", str(batches), "--beams=%d" % beams,
          "--size=" + size_name, "--threads=%d" % threads), phase, torch_env)
                   for threads in hf_threads]
  return all_runs


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--extra_batches", type=int, default=3)
  parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES),
                      default=["demo"])
  parser.add_argument("--attentions", nargs="+", choices=sorted(ATTENTIONS),
                      default=["demo"])
  parser.add_argument("--hf_threads", nargs="+", type=int,
                      default=[os.cpu_count()],
                      help="torch threads of HF T5's runs (several: a row "
                      "each; on a loaded machine one thread fares better)")
  parser.add_argument("--peers_dir", default=peers.PEERS_DIR)
  parser.add_argument("--before", metavar="REV", action="append",
                      default=[], help="also decode with git revision REV's "
                      "mtf_synth (repeatable)")
  parser.add_argument("--infer", nargs=5, metavar=(
      "MODEL_DIR", "BATCHES", "BEAMS", "SIZE", "ATTENTION"),
                      help=argparse.SUPPRESS)
  harness.add_common_flags(parser, "decode", repeats=3)
  args = parser.parse_args()
  if args.infer:
    model_dir, batches, beams, size_name, attention = args.infer
    infer(model_dir, int(batches), int(beams), size_name, attention)
    return
  out_dir = os.path.dirname(os.path.abspath(args.log))
  for size_name in args.sizes:
    for attention in args.attentions:
      prepare(model_dir_of(out_dir, size_name, attention), size_name,
              attention)
  trees = [harness.revision_tree(revision) for revision in args.before]
  all_runs = runs(out_dir, os.path.join(args.peers_dir, "torch"),
                  args.extra_batches, args.sizes, args.attentions,
                  args.hf_threads, trees)
  records = harness.measure(all_runs, args.repeats, args.log)
  figures = [harness.Figure("tokens/s", tokens_per_s, "%.0f", ratio=True),
             # CPU seconds of every thread: steadier on a shared machine.
             harness.Figure("tokens per CPU s", lambda phases: tokens_per_s(
                 phases, "cpu_s"), "%.0f", ratio=True),
             harness.Figure("mean output bytes per row", harness.field(
                 "mean_output_bytes"), "%.1f")]
  lines = ["### Decoding speed", "", harness.provenance(records), ""]
  for size_name in args.sizes:
    size = SIZES[size_name]
    lines += ["Size %s: d_model %d, %d heads x %d, batch %d, %d input and "
              "%d decoded tokens per row, one CPU device; tokens/s: a batch "
              "over the median of batches 2-%d." % (size_name, size["d_model"], size["num_heads"],
                               size["d_kv"], size["batch"],
                               size["input_length"], size["decode_length"],
                               1 + args.extra_batches), ""]
    for search in ("greedy", "beam 4"):
      hf = [variant(size_name, search, threads=t) for t in args.hf_threads]
      ours = [variant(size_name, search, a) for a in args.attentions]
      before = ["%s %s" % (name, label) for name in ours
                for label, _ in trees]
      lines += harness.table(records, ours + before + hf, figures,
                             hf + before) + [""]
  harness.write_markdown("\n".join(lines), args.markdown)


if __name__ == "__main__":
  main()
