"""Interleaved benchmark runs: each run a subprocess, each figure a median.

A benchmark is a list of `Run`s (a variant's command, optionally in several
phases, e.g. a short and a long training run). `measure` runs the whole list
once per repeat, in order (A B C A B C ...), so slow drifts of the machine's
load hit every variant alike. Every run is appended to a JSON-lines log as
soon as it ends, so an interrupted benchmark resumes where it stopped (a run
is done when the log has it for the same command and repeat, successful).

Per run the log holds: wall seconds; CPU seconds (user + system, less
sensitive to other jobs than wall time); peak RSS of the process tree
(wait4; Linux counts a child's memory before exec, i.e. its parent's, so
the parent stays small); the 1-minute load average before and after; the
exit code; and the figures the child printed with `report` (one
`BENCH {json}` line). A child also reads `seconds_since_launch()` to time
its own stages from the moment the harness started it (interpreter
start-up included).

Stdlib only: children running in other venvs (TF 2.12, torch) import it.

Ad-hoc use (prints a Markdown table of every figure):
  python bench/harness.py --repeats 5 --log runs/bench/adhoc.jsonl \\
      "fast=python -c pass" "slow=python -c 'import time; time.sleep(1)'"
"""

import argparse
import dataclasses
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

LAUNCH_ENV = "BENCH_LAUNCH_UNIX"
FIGURES_PREFIX = "BENCH "
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
DEFAULT_OUT = os.path.join(REPO, "runs", "bench")


# --- child side --------------------------------------------------------------

def report(**figures):
  """Hands figures (JSON values) to the harness that started this process."""
  print(FIGURES_PREFIX + json.dumps(figures), flush=True)


def seconds_since_launch():
  """Seconds since the harness started this process (None if run by hand)."""
  launched = os.environ.get(LAUNCH_ENV)
  return time.time() - float(launched) if launched else None


def mark_stage(figures, name):
  """figures[NAME_s]: seconds since launch; [NAME_rss_mib]: RSS now."""
  figures[name + "_s"] = seconds_since_launch()
  figures[name + "_rss_mib"] = rss_mib()[0]


def rss_mib():
  """(current, peak) resident memory of this process, MiB (Linux)."""
  fields = {}
  with open("/proc/self/status") as status:
    for line in status:
      key, _, value = line.partition(":")
      fields[key] = value
  return (int(fields["VmRSS"].split()[0]) / 1024,
          int(fields["VmHWM"].split()[0]) / 1024)


# --- parent side -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Run:
  """One subprocess of a benchmark: `variant` in `phase`."""
  variant: str
  command: tuple
  phase: str = ""
  env: tuple = ()  # extra (name, value) pairs
  timeout_s: float = 3600.0

  def key(self, repeat):
    return [self.variant, self.phase, repeat, list(self.command)]


def _wait(process, timeout_s):
  """wait4 the child (its rusage covers its own waited-for children)."""
  deadline = time.monotonic() + timeout_s
  while True:
    pid, status, usage = os.wait4(process.pid, os.WNOHANG)
    if pid:
      process.returncode = os.waitstatus_to_exitcode(status)
      return usage
    if time.monotonic() > deadline:
      process.kill()
    time.sleep(0.05)


def run_once(run):
  """Runs `run` once; returns its log record (without the repeat key)."""
  load_before = os.getloadavg()[0]
  env = dict(os.environ, **dict(run.env))
  env[LAUNCH_ENV] = repr(time.time())
  start = time.perf_counter()
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    process = subprocess.Popen(run.command, stdout=out, stderr=err, env=env,
                               cwd=REPO)
    usage = _wait(process, run.timeout_s)
    wall_s = time.perf_counter() - start
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  record = {"wall_s": wall_s, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024,
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "rc": process.returncode}
  for line in stdout.splitlines():
    if line.startswith(FIGURES_PREFIX):
      record.update(json.loads(line[len(FIGURES_PREFIX):]))
  if process.returncode:
    record["error"] = (stderr.strip().splitlines() or ["?"])[-1][-300:]
  return record


def read_log(log_path):
  if not os.path.exists(log_path):
    return []
  with open(log_path) as log:
    return [json.loads(line) for line in log if line.strip()]


def measure(runs, repeats, log_path, echo=True):
  """Runs `runs` in order, `repeats` times, skipping what `log_path` holds.

  Returns every successful record of these runs (old and new).
  """
  os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
  done = {json.dumps(r["key"]) for r in read_log(log_path) if not r["rc"]}
  for repeat in range(repeats):
    for run in runs:
      key = run.key(repeat)
      if json.dumps(key) in done:
        continue
      record = dict(run_once(run), key=key)
      with open(log_path, "a") as log:
        log.write(json.dumps(record) + "\n")
      if echo:
        print("%s #%d: %.1f s, %s" % (
            " ".join(filter(None, (run.variant, run.phase))), repeat,
            record["wall_s"],
            record.get("error", "ok")), file=sys.stderr, flush=True)
  wanted = {json.dumps(run.key(r)) for run in runs for r in range(repeats)}
  return [r for r in read_log(log_path)
          if not r["rc"] and json.dumps(r["key"]) in wanted]


# --- statistics --------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Figure:
  """A column: `value(phases)` of one variant's runs in one repeat.

  `phases` maps phase name to that run's record; a figure missing from a
  record (KeyError) or None leaves that repeat out.
  """
  title: str
  value: object
  fmt: str = "%.3f"
  ratio: bool = False  # add a "vs baseline" column (median of pair ratios)


def field(name, phase=""):
  """A figure's value: a field of one phase's record."""
  return lambda phases: phases[phase][name]


def step_difference(name, short, long, short_steps, long_steps):
  """Per-step value from a short and a long run: start-up cancels."""
  return lambda phases: ((phases[long][name] - phases[short][name])
                         / (long_steps - short_steps))


def per_repeat(records, variant, figure):
  """{repeat: value} of `figure` for `variant`."""
  grouped = {}
  for record in records:
    name, phase, repeat = record["key"][:3]
    if name == variant:
      grouped.setdefault(repeat, {})[phase] = record
  values = {}
  for repeat, phases in grouped.items():
    try:
      value = figure.value(phases)
    except KeyError:
      continue
    if value is not None:
      values[repeat] = value
  return values


def pair_ratios(records, variant, baseline, figure):
  """variant / baseline per repeat in which both were measured."""
  mine = per_repeat(records, variant, figure)
  base = per_repeat(records, baseline, figure)
  return [mine[r] / base[r] for r in sorted(mine) if r in base and base[r]]


def median_range(values, fmt="%.3f"):
  """'median (min-max), n' for a cell; '-' when nothing was measured."""
  if not values:
    return "-"
  med = statistics.median(values)
  if len(values) == 1:
    return fmt % med
  return "%s (%s-%s)" % (fmt % med, fmt % min(values), fmt % max(values))


def table(records, variants, figures, baselines=()):
  """Markdown rows: one per variant, median (min-max) per figure.

  A figure with ratio=True gets a column per baseline: the median of the
  per-repeat ratios to it (each interleaved pair on its own, so drifts of
  the machine's load cancel).
  """
  titles = ["variant"]
  for figure in figures:
    titles.append(figure.title)
    if figure.ratio:
      titles += ["%s vs %s" % (figure.title, b) for b in baselines]
  rows = ["| " + " | ".join(titles) + " |",
          "|---|" + "---:|" * (len(titles) - 1)]
  for variant in variants:
    cells = [variant]
    for figure in figures:
      cells.append(median_range(
          list(per_repeat(records, variant, figure).values()), figure.fmt))
      if figure.ratio:
        cells += ["1.00x" if variant == b else median_range(
            pair_ratios(records, variant, b, figure), "%.2fx")
                  for b in baselines]
    rows.append("| " + " | ".join(cells) + " |")
  return rows


# CPU flags that decide which matmul kernels oneDNN and torch can use.
MATMUL_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_name():
  """The CPU model and its matmul-relevant flags, from /proc/cpuinfo."""
  fields = {}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
  except OSError:
    return "unknown CPU"
  flags = set(fields.get("flags", "").split())
  return "%s (%s)" % (fields.get("model name", "unknown CPU"), ", ".join(
      f for f in MATMUL_FLAGS if f in flags) or "no AVX-512")


def provenance(records):
  """The command line, the CPU and the load the records were measured
  under."""
  loads = [r[k] for r in records for k in ("load_before", "load_after")]
  repeats = {r["key"][2] for r in records}
  command = " ".join(["python", os.path.relpath(sys.argv[0], REPO)]
                     + [shlex.quote(a) for a in sys.argv[1:]])
  text = "Command: `%s` (%d interleaved repeats" % (command, len(repeats))
  if loads:
    text += "; 1-minute load average %.1f-%.1f on %d cores" % (
        min(loads), max(loads), os.cpu_count())
  return text + "). CPU: %s." % cpu_name()


def revision_tree(revision):
  """git revision REV's mtf_synth/, tasks/ and gin/, extracted once under
  runs/bench/trees/: (label "@SHA", folder). A benchmark runs the old code
  with PYTHONPATH=folder (and python -P, so that the working tree, which is
  the current directory, does not come first)."""
  sha = subprocess.run(["git", "rev-parse", "--short", revision], cwd=REPO,
                       capture_output=True, text=True,
                       check=True).stdout.strip()
  folder = os.path.join(DEFAULT_OUT, "trees", sha)
  if not os.path.isdir(folder):
    os.makedirs(folder + ".partial", exist_ok=True)
    archive = subprocess.run(["git", "archive", sha, "mtf_synth", "tasks",
                              "gin"], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", folder + ".partial"], input=archive,
                   check=True)
    os.rename(folder + ".partial", folder)
  return "@" + sha, folder


def write_markdown(text, path):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as out:
    out.write(text)
  print(text)


def add_common_flags(parser, name, repeats=5):
  """--repeats, --log, --markdown with defaults under runs/bench/NAME.*."""
  parser.add_argument("--repeats", type=int, default=repeats)
  parser.add_argument("--log", default=os.path.join(DEFAULT_OUT,
                                                    name + ".jsonl"),
                      help="JSON-lines log; re-running resumes from it")
  parser.add_argument("--markdown", default=os.path.join(DEFAULT_OUT,
                                                         name + ".md"))


def numeric_fields(records):
  """Every numeric figure the records share (ad-hoc tables show them all)."""
  skip = {"key", "rc", "load_before", "load_after"}
  names = []
  for record in records:
    for name, value in record.items():
      if (name not in skip and name not in names
          and isinstance(value, (int, float)) and not isinstance(value, bool)):
        names.append(name)
  return names


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("variants", nargs="+", metavar="NAME=COMMAND")
  parser.add_argument("--baseline", help="variant the ratios are taken to "
                      "(default: the first)")
  add_common_flags(parser, "adhoc")
  args = parser.parse_args()
  runs = []
  for spec in args.variants:
    name, _, command = spec.partition("=")
    runs.append(Run(name, tuple(shlex.split(command))))
  records = measure(runs, args.repeats, args.log)
  figures = [Figure(name, field(name), ratio=True)
             for name in numeric_fields(records)]
  names = [run.variant for run in runs]
  lines = [provenance(records), ""] + table(
      records, names, figures, [args.baseline or names[0]])
  write_markdown("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
  main()
