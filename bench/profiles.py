"""Where a training step and a decode go, op by op: mtf_synth vs its peers.

train: bench/train_same.py at issue 13's config (bench/peer_model.gin), in
mtf_synth (TF 2.21) and upstream mesh TF (TF 2.12 venv), with steps
TRACE_STEPS traced (TF step stats, FULL_TRACE; bench/step_stats.py).
decode: bench/decode.py's demo-size infer (greedy, beam 4) through the
`mtf_synth` command, its second batch traced the same way, against HF T5
`generate` under torch.profiler (bench/hf_t5.py --profile_batch 2).

Per op type: seconds per traced run summed over the threads that ran them
(a decode's while loop counts each iteration), median over the interleaved
repeats; "traced run wall s" is first op start to last op end. Tracing adds
a cost to every op (more where ops are many and small), so compare the
profiles with each other, not with untraced times.

  python bench/profiles.py [train] [decode] [--repeats 3]

(Not profile.py: a script's folder comes first on sys.path, and that name
would hide the standard library's profile module, which torch imports.)
"""

import argparse
import os
import statistics
import sys

import decode  # bench/decode.py
import harness  # bench/harness.py
import peers  # bench/peers.py

TRAIN_STEPS = 6
TRACE_STEPS = "3,4,5"  # after the first steps' one-off allocations
DECODE_BATCHES = 2  # the second is traced
TOP_OPS = 8  # per variant; the table shows the union
QUIET = peers.QUIET


def train_runs(commands):
  env = QUIET + (("BENCH_TRACE_RUNS", TRACE_STEPS),)
  return [harness.Run(name, (*commands[name][0], str(TRAIN_STEPS)), "train",
                      env) for name in ("mtf_synth", "upstream")]


def decode_runs(model_dir, torch_dir, trace_dir):
  runs = []
  for beams, search in ((1, "greedy"), (4, "beam 4")):
    trace = os.path.join(trace_dir, "trace_beams%d.json" % beams)
    runs.append(harness.Run(
        "mtf_synth " + search,
        (sys.executable, os.path.abspath(decode.__file__), "--infer",
         model_dir, str(DECODE_BATCHES), str(beams), "demo", "demo"),
        "decode",
        QUIET + (("BENCH_TRACE_OUT", trace),
                 ("BENCH_TRACE_RUNS", str(DECODE_BATCHES)))))
    runs.append(harness.Run(
        "hf_t5 " + search,
        (sys.executable, os.path.join(harness.BENCH_DIR, "hf_t5.py"),
         "generate", str(DECODE_BATCHES), "--beams=%d" % beams, "--size=demo",
         "--profile_batch=%d" % DECODE_BATCHES), "decode",
        QUIET + (("PYTHONPATH", torch_dir),)))
  return runs


def profiles(records, variant, phase):
  return [r["op_profile"] for r in records
          if r["key"][0] == variant and r["key"][1] == phase
          and r.get("op_profile", {}).get("runs")]


def median_of(values, fmt):
  return harness.median_range(values, fmt) if values else "-"


def profile_table(records, variants, phase, baseline=None):
  """Totals, then each variant's TOP_OPS op types by time (the union)."""
  per_variant = {v: profiles(records, v, phase) for v in variants}
  rows = ["| | " + " | ".join(variants) + (
      " | %s / %s |" % (variants[0], baseline) if baseline else " |"),
          "|---|" + "---:|" * (len(variants) + bool(baseline))]

  def row(title, values_of, fmt):
    medians = {v: (statistics.median(values_of(p))
                   if values_of(p) else None)
               for v, p in per_variant.items()}
    cells = [median_of(values_of(per_variant[v]), fmt) for v in variants]
    if baseline:
      mine, base = medians[variants[0]], medians[baseline]
      cells.append("%.2fx" % (mine / base) if mine and base else "-")
    rows.append("| %s | %s |" % (title, " | ".join(cells)))

  row("traced run wall s", lambda ps: [p["wall_s"] for p in ps], "%.3f")
  row("op s (summed over threads)", lambda ps: [p["op_s"] for p in ps],
      "%.3f")
  row("op executions", lambda ps: [p["ops"] for p in ps], "%.0f")
  totals, top = {}, []
  for p_list in per_variant.values():
    mine = {}
    for p in p_list:
      for op, (seconds, _) in p["by_type"].items():
        mine[op] = mine.get(op, 0.0) + seconds / len(p_list)
    top += sorted(mine, key=mine.get, reverse=True)[:TOP_OPS]
    for op, seconds in mine.items():
      totals[op] = totals.get(op, 0.0) + seconds
  for op in sorted(set(top), key=totals.get, reverse=True):
    row("`%s` s" % op, lambda ps, op=op: [
        p["by_type"].get(op, [0.0, 0])[0] for p in ps], "%.3f")
    row("`%s` executions" % op, lambda ps, op=op: [
        p["by_type"].get(op, [0.0, 0])[1] for p in ps], "%.0f")
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("parts", nargs="*", metavar="train|decode",
                      default=["train", "decode"])
  parser.add_argument("--peers_dir", default=peers.PEERS_DIR)
  harness.add_common_flags(parser, "profiles", repeats=3)
  args = parser.parse_args()
  if not set(args.parts) <= {"train", "decode"}:
    parser.error("parts are train and decode")
  out_dir = os.path.dirname(os.path.abspath(args.log))
  runs = []
  if "train" in args.parts:
    runs += train_runs(peers.runtimes(args.peers_dir, os.cpu_count()))
  if "decode" in args.parts:
    model_dir = os.path.join(out_dir, "decode_model")
    decode.prepare(model_dir)
    runs += decode_runs(model_dir, os.path.join(args.peers_dir, "torch"),
                        out_dir)
  records = harness.measure(runs, args.repeats, args.log)
  lines = ["### Profiles: a training step and a decode, op by op", "",
           harness.provenance(records), ""]
  if "train" in args.parts:
    lines += ["Training step (bench/peer_model.gin, one CPU device, steps "
              "%s of %d traced, per step):" % (TRACE_STEPS, TRAIN_STEPS), ""]
    lines += profile_table(records, ["mtf_synth", "upstream"], "train",
                           "upstream") + [""]
  if "decode" in args.parts:
    for search in ("greedy", "beam 4"):
      lines += ["Decode, %s (demo-size model, batch %d x %d tokens, batch "
                "%d traced; HF: torch.profiler self CPU time by op):"
                % (search, decode.BATCH, decode.LENGTH, DECODE_BATCHES), ""]
      lines += profile_table(records, ["mtf_synth " + search,
                                       "hf_t5 " + search], "decode",
                             "hf_t5 " + search) + [""]
  harness.write_markdown("\n".join(lines), args.markdown)


if __name__ == "__main__":
  main()
