"""Where start-up goes: mtf_synth vs upstream mesh TF (and HF T5), stage by stage.

Stages: a one-step training run of bench/train_same.py (bench/hf_t5.py for
HF) reports when each stage ended; a stage's figure is its duration and the
RSS at its end: interpreter start, imports, gin parse, graph build, session
creation (variables initialised), the first step, and the rest (checkpoint
save, exit). "mtf_synth command" is what a user runs: a one-step
`python -m mtf_synth` training run of the same model size on the generated
demo task (bench/cli_train.py's ANCHOR_MODEL; whole-process figures only).
Imports: `python -X importtime` of each runtime's imports, self time summed
by top-level package (importtime's own overhead inflates the total by about
a tenth; the stage table has the true one).

--before REV adds the same mtf_synth variants run from git revision REV's
mtf_synth/, tasks/ and gin/ (harness.revision_tree), interleaved with
today's: a change's before/after table in one command.

  python bench/startup.py [--repeats 5] [--peers_dir DIR] [--before REV]
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

import cli_train  # bench/cli_train.py: the command line's anchor model
import harness  # bench/harness.py
import peers  # bench/peers.py: the runtimes' commands

STAGES = ["interpreter", "imports", "gin_parsed", "graph_built",
          "session_created", "first_step", "last_step"]
IMPORTS = {  # what each runtime's training script imports
    "mtf_synth": "import mtf_synth, gin, mesh_tensorflow.transformer.utils",
    "mtf_synth.cli + tasks": "import mtf_synth.cli, tasks",  # every command
    "upstream": "import gin, mesh_tensorflow.transformer.utils",
}
COMMAND = "mtf_synth command"
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
TOP_PACKAGES = 8


def stage_figure(stage):
  """Seconds from the end of the stage before `stage` to its end (HF has
  no gin or session stage: from the last stage it has)."""
  def duration(phases):
    record = phases["stages"]
    if record.get(stage + "_s") is None:
      return None
    earlier = [record[s + "_s"] for s in STAGES[:STAGES.index(stage)]
               if record.get(s + "_s") is not None]
    return record[stage + "_s"] - (earlier[-1] if earlier else 0.0)
  return duration


def import_breakdown(python, statement):
  """Child: importtime self-seconds per top-level package, reported."""
  done = subprocess.run([python, "-P", "-X", "importtime", "-c", statement],
                        capture_output=True, text=True, check=True,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  per_package = collections.Counter()
  for line in done.stderr.splitlines():
    match = IMPORT_LINE.match(line)
    if match:
      per_package[match.group(4).split(".")[0]] += int(match.group(1)) / 1e6
  harness.report(total_s=sum(per_package.values()), **{
      "package_" + name: seconds for name, seconds in per_package.items()})


def command_once():
  """Child: one training step through `python -m mtf_synth`, then cleanup."""
  with tempfile.TemporaryDirectory(prefix="bench_startup_") as model_dir:
    # -P: mtf_synth from PYTHONPATH (a --before tree), not the working dir.
    subprocess.run([sys.executable, "-P", "-m", "mtf_synth",
                    "--model_dir=" + model_dir, *cli_train.ANCHOR_MODEL,
                    "--gin_param=utils.run.train_steps=1"], check=True)


def stage_runs(commands, trees):
  """A one-step run of each runtime (HF without gin / session stages), and
  of the command line; mtf_synth's also from each tree in `trees`."""
  runs = [harness.Run(name, (*prefix, "1"), "stages", env)
          for name, (prefix, env) in commands.items()]
  command = (sys.executable, os.path.abspath(__file__), "--command_once")
  runs.append(harness.Run(COMMAND, command, "stages", peers.QUIET))
  for label, folder in trees:
    prefix, env = commands["mtf_synth"]
    env = env + (("PYTHONPATH", folder),)
    runs.append(harness.Run("mtf_synth " + label, (*prefix, "1"), "stages",
                            env))
    runs.append(harness.Run(COMMAND + " " + label, command, "stages", env))
  return runs


def import_runs(commands, trees):
  pythons = {"upstream": commands["upstream"][0][0]}
  runs = []
  for name, statement in IMPORTS.items():
    variants = [(name, ())]
    if name != "upstream":
      variants += [("%s %s" % (name, label), (("PYTHONPATH", folder),))
                   for label, folder in trees]
    runs += [harness.Run(variant, (sys.executable, os.path.abspath(__file__),
                                   "--import_breakdown",
                                   pythons.get(name, sys.executable),
                                   statement), "imports", env)
             for variant, env in variants]
  return runs


def stage_table(records, names):
  figures = []
  for stage in STAGES:
    figures.append(harness.Figure(stage.replace("_", " ") + " s",
                                  stage_figure(stage), "%.2f"))
  figures.append(harness.Figure(
      "RSS after imports MiB", harness.field("imports_rss_mib", "stages"),
      "%.0f"))
  figures.append(harness.Figure("peak RSS MiB", harness.field(
      "peak_rss_mib", "stages"), "%.0f", ratio=True))
  figures.append(harness.Figure("wall s", harness.field("wall_s", "stages"),
                                "%.1f", ratio=True))
  figures.append(harness.Figure("CPU s", harness.field("cpu_s", "stages"),
                                "%.1f", ratio=True))
  return harness.table(records, names, figures, ["upstream"])


def before_after_table(records, pairs):
  """Per (phase, today's variant, the same from a revision): whole-process
  figures of both and the median of the per-repeat ratios today / revision."""
  figures = [("CPU s", "cpu_s", "%.1f"), ("wall s", "wall_s", "%.1f"),
             ("peak RSS MiB", "peak_rss_mib", "%.0f")]
  titles = ["variant", "before", "after"]
  for title, _, _ in figures:
    titles += [title + " before", title + " after", title + " after/before"]
  rows = ["| " + " | ".join(titles) + " |",
          "|---|---|---|" + "---:|" * (len(titles) - 3)]
  for phase, after, before in pairs:
    name = "%s, %s" % (after, "imports" if phase == "imports" else
                       "1-step run")
    cells = [name, before.split(" ")[-1], "working tree"]
    for _, name, fmt in figures:
      figure = harness.Figure(name, harness.field(name, phase), fmt)
      for variant in (before, after):
        cells.append(harness.median_range(list(harness.per_repeat(
            records, variant, figure).values()), fmt))
      cells.append(harness.median_range(harness.pair_ratios(
          records, after, before, figure), "%.2fx"))
    rows.append("| " + " | ".join(cells) + " |")
  return rows


def import_table(records, variants):
  """Per import statement, its biggest packages' self seconds."""
  totals = collections.Counter()
  for record in records:
    if record["key"][1] == "imports":
      for name, value in record.items():
        if name.startswith("package_"):
          totals[name] += value
  packages = [name for name, _ in totals.most_common(TOP_PACKAGES)]
  figures = [harness.Figure("total s", harness.field("total_s", "imports"),
                            "%.2f")]
  figures += [harness.Figure(name[len("package_"):], harness.field(
      name, "imports"), "%.2f") for name in packages]
  return harness.table(records, variants, figures)


def unique(names):
  return list(dict.fromkeys(names))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--peers_dir", default=peers.PEERS_DIR)
  parser.add_argument("--before", metavar="REV", action="append",
                      default=[], help="also run mtf_synth from git "
                      "revision REV (repeatable)")
  parser.add_argument("--import_breakdown", nargs=2,
                      metavar=("PYTHON", "STATEMENT"), help=argparse.SUPPRESS)
  parser.add_argument("--command_once", action="store_true",
                      help=argparse.SUPPRESS)
  harness.add_common_flags(parser, "startup")
  args = parser.parse_args()
  if args.import_breakdown:
    import_breakdown(*args.import_breakdown)
    return
  if args.command_once:
    command_once()
    return
  commands = peers.runtimes(args.peers_dir, os.cpu_count())
  trees = [harness.revision_tree(revision) for revision in args.before]
  stages, imports = stage_runs(commands, trees), import_runs(commands, trees)
  records = harness.measure(stages + imports, args.repeats, args.log)
  lines = ["### Start-up, stage by stage", "", harness.provenance(records),
           "", "A one-step training run (bench/peer_model.gin; HF T5: "
           "bench/hf_t5.py, no gin or session; %s: `python -m mtf_synth` "
           "on the demo task at the same model size, whole process), seconds "
           "per stage (median, min-max); `-`: the runtime has no such stage."
           % COMMAND, ""]
  lines += stage_table(records, unique(run.variant for run in stages))
  lines += ["", "Imports (`python -X importtime`, self seconds by top-level "
            "package, the %d biggest):" % TOP_PACKAGES, ""]
  lines += import_table(records, unique(run.variant for run in imports))
  if trees:
    measured = {(run.phase, run.variant) for run in stages + imports}
    pairs = [(phase, variant, "%s %s" % (variant, label))
             for label, _ in trees
             for phase, variant in unique((r.phase, r.variant)
                                          for r in stages + imports)
             if (phase, "%s %s" % (variant, label)) in measured]
    lines += ["", "Before / after (whole process; imports: the `-X importtime` "
              "child, its CPU s and peak RSS are those of the import alone; "
              "ratios are medians of per-repeat ratios):", ""]
    lines += before_after_table(records, pairs)
  harness.write_markdown("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
  main()
