"""Running a cell: its `mtf_synth` commands in order, unless a result.json
says it finished with the same commands and gin files."""

import json
import os
import shlex
import subprocess
import sys
import time

from mtf_synth.tables import REPO
from mtf_synth.tables import metrics
from mtf_synth.tables import planning


def result_path(model_dir):
  return os.path.join(model_dir, "result.json")


def load_result(model_dir):
  try:
    with open(result_path(model_dir)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def has_run_outputs(model_dir):
  """Whether a run left a checkpoint or event files in `model_dir`."""
  return any(name == "checkpoint" or name.startswith("events.out.")
             for _, _, names in os.walk(model_dir) for name in names)


def _stale(done, model_dir, why):
  return dict(done or {}, status="stale", error=(
      "%s; move or delete %s (or pass another --model_dir_root) to run it "
      "again" % (why, model_dir)))


def run_cell(table, row, column, steps, log=print):
  """Runs a cell's steps unless result.json says it finished; returns it.

  A cell started with these commands and gin files and interrupted (result
  "running" or "failed") resumes from its checkpoint; outputs of other
  commands (or of a run that recorded none) are stale, never resumed.
  """
  model_dir = steps[-1].model_dir
  # Before the pre-training checkpoint's name is filled in.
  fingerprint = planning.cell_fingerprint(steps)
  done = load_result(model_dir)
  stale = None
  if done and done.get("status") == "ok":
    if done.get("fingerprint", fingerprint) != fingerprint:
      stale = _stale(done, model_dir, "finished with other commands or gin "
                     "files than these")
    else:
      log("  %s/%s: finished before, skipped" % (row, column.name))
      # As the current extraction reads them.
      done["metrics"] = metrics.collect_metrics(column, model_dir)
      return done
  elif has_run_outputs(model_dir) and (
      (done or {}).get("fingerprint") != fingerprint):
    stale = _stale(done, model_dir, "holds a checkpoint or events of other "
                   "commands or gin files than these (or of a run that "
                   "recorded none)")
  if stale:
    log("  %s/%s: stale: %s" % (row, column.name, stale["error"]))
    return stale
  os.makedirs(model_dir, exist_ok=True)
  started = time.time()
  result = {"table": table.name, "row": row, "column": column.name,
            "status": "running", "metrics": {}, "commands": [],
            "fingerprint": fingerprint}
  # Recorded before training, so an interrupted run resumes next time.
  with open(result_path(model_dir), "w") as f:
    json.dump(result, f, indent=1)
  result["status"] = "ok"
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  for step in steps:
    planning.resolve_pretrain_steps(steps)
    command = step.command()
    result["commands"].append(shlex.join(command))
    log_path = os.path.join(model_dir, "%s.log" % step.name)
    log("  %s/%s: %s (log: %s)" % (row, column.name, step.name, log_path))
    with open(log_path, "w") as log_file:
      # `python -m mtf_synth`: works without the venv's bin/ on PATH.
      runnable = ([sys.executable, "-m", "mtf_synth"] + command[1:]
                  if command[0] == "mtf_synth" else command)
      code = subprocess.call(runnable, stdout=log_file,
                             stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if code != 0:
      with open(log_path) as f:
        tail = [line.strip() for line in f.readlines()[-200:]]
      errors = [l for l in tail if "error" in l.lower()] or tail[-1:]
      result.update(status="failed", failed_step=step.name,
                    error=(errors[-1] if errors else "exit %d" % code)[:300])
      break
  if result["status"] == "ok":
    result["metrics"] = metrics.collect_metrics(column, model_dir)
    if result["metrics"][column.metrics[0]] is None:
      result.update(status="failed", error="no %s in the event files" %
                    column.metrics[0])
  result["seconds"] = round(time.time() - started, 1)
  with open(result_path(model_dir), "w") as f:
    json.dump(result, f, indent=1)
  log("  %s/%s: %s %s" % (row, column.name, result["status"],
                          result.get("error", result["metrics"])))
  return result
