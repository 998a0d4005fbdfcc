"""Where start-up goes: mtf_synth vs upstream mesh TF (and HF T5), stage by stage.

Stages: a one-step training run of bench/train_same.py (bench/hf_t5.py for
HF) reports when each stage ended; a stage's figure is its duration and the
RSS at its end: interpreter start, imports, gin parse, graph build, session
creation (variables initialised), the first step, and the rest (checkpoint
save, exit). Imports: `python -X importtime` of each runtime's imports,
self time summed by top-level package (importtime's own overhead inflates
the total by about a tenth; the stage table has the true one).

  python bench/startup.py [--repeats 5] [--peers_dir DIR]
"""

import argparse
import collections
import os
import re
import subprocess
import sys

import harness  # bench/harness.py
import peers  # bench/peers.py: the runtimes' commands

STAGES = ["interpreter", "imports", "gin_parsed", "graph_built",
          "session_created", "first_step", "last_step"]
IMPORTS = {  # what each runtime's training script imports
    "mtf_synth": "import mtf_synth, gin, mesh_tensorflow.transformer.utils",
    "mtf_synth + tasks": "import mtf_synth, tasks",
    "mtf_synth.cli": "import mtf_synth.cli",
    "upstream": "import gin, mesh_tensorflow.transformer.utils",
}
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
  done = subprocess.run([python, "-X", "importtime", "-c", statement],
                        capture_output=True, text=True, check=True,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  per_package = collections.Counter()
  for line in done.stderr.splitlines():
    match = IMPORT_LINE.match(line)
    if match:
      per_package[match.group(4).split(".")[0]] += int(match.group(1)) / 1e6
  harness.report(total_s=sum(per_package.values()), **{
      "package_" + name: seconds for name, seconds in per_package.items()})


def stage_runs(commands):
  """A one-step run of each runtime (HF without gin / session stages)."""
  return [harness.Run(name, (*prefix, "1"), "stages", env)
          for name, (prefix, env) in commands.items()]


def import_runs(commands):
  pythons = {"upstream": commands["upstream"][0][0]}
  return [harness.Run(name, (sys.executable, os.path.abspath(__file__),
                             "--import_breakdown",
                             pythons.get(name, sys.executable), statement),
                      "imports")
          for name, statement in IMPORTS.items()]


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


def import_table(records):
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
  return harness.table(records, list(IMPORTS), figures)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--peers_dir", default=peers.PEERS_DIR)
  parser.add_argument("--import_breakdown", nargs=2,
                      metavar=("PYTHON", "STATEMENT"), help=argparse.SUPPRESS)
  harness.add_common_flags(parser, "startup")
  args = parser.parse_args()
  if args.import_breakdown:
    import_breakdown(*args.import_breakdown)
    return
  commands = peers.runtimes(args.peers_dir, os.cpu_count())
  records = harness.measure(stage_runs(commands) + import_runs(commands),
                            args.repeats, args.log)
  lines = ["### Start-up, stage by stage", "", harness.provenance(records),
           "", "A one-step training run (bench/peer_model.gin; HF T5: "
           "bench/hf_t5.py, no gin or session), seconds per stage (median, "
           "min-max); `-`: the runtime has no such stage.", ""]
  lines += stage_table(records, list(commands))
  lines += ["", "Imports (`python -X importtime`, self seconds by top-level "
            "package, the %d biggest):" % TOP_PACKAGES, ""]
  lines += import_table(records)
  harness.write_markdown("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
  main()
