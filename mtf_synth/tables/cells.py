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


def result_path(model_dir, name="result.json"):
  return os.path.join(model_dir, name)


def load_result(model_dir, name="result.json"):
  try:
    with open(result_path(model_dir, name)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def has_run_outputs(model_dir):
  """Whether a run left a checkpoint or event files in `model_dir`."""
  return any(name == "checkpoint" or name.startswith("events.out.")
             for _, _, names in os.walk(model_dir) for name in names)


def stale_result(done, fingerprint, model_dir):
  """A "stale" result when model_dir holds a run of other commands or gin
  files than `fingerprint`'s (finished, or outputs without a matching
  result.json), else None: such a run is never resumed or reused."""
  if done and done.get("status") == "ok":
    if done.get("fingerprint", fingerprint) == fingerprint:
      return None
    why = "finished with other commands or gin files than these"
  elif has_run_outputs(model_dir) and (
      (done or {}).get("fingerprint") != fingerprint):
    why = ("holds a checkpoint or events of other commands or gin files "
           "than these (or of a run that recorded none)")
  else:
    return None
  return dict(done or {}, status="stale", error=(
      "%s; move or delete %s (or pass another --model_dir_root) to run it "
      "again" % (why, model_dir)))


def run_step(step, command, cell, log=print):
  """Runs one mtf_synth call of a cell (output in MODEL_DIR/NAME.log);
  None, or the error line of its log when it failed."""
  log_path = os.path.join(step.model_dir, "%s.log" % step.name)
  log("  %s: %s (log: %s)" % (cell, step.name, log_path))
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  with open(log_path, "w") as log_file:
    # `python -m mtf_synth`: works without the venv's bin/ on PATH.
    runnable = ([sys.executable, "-m", "mtf_synth"] + command[1:]
                if command[0] == "mtf_synth" else command)
    code = subprocess.call(runnable, stdout=log_file,
                           stderr=subprocess.STDOUT, env=env, cwd=REPO)
  if code == 0:
    return None
  with open(log_path) as f:
    tail = [line.strip() for line in f.readlines()[-200:]]
  errors = [l for l in tail if "error" in l.lower()] or tail[-1:]
  return (errors[-1] if errors else "exit %d" % code)[:300]


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
  stale = stale_result(done, fingerprint, model_dir)
  if stale:
    log("  %s/%s: stale: %s" % (row, column.name, stale["error"]))
    return stale
  if done and done.get("status") == "ok":
    log("  %s/%s: finished before, skipped" % (row, column.name))
    # As the current extraction reads them.
    done["metrics"] = metrics.collect_metrics(column, model_dir)
    return done
  os.makedirs(model_dir, exist_ok=True)
  started = time.time()
  result = {"table": table.name, "row": row, "column": column.name,
            "status": "running", "metrics": {}, "commands": [],
            "fingerprint": fingerprint}
  # Recorded before training, so an interrupted run resumes next time.
  with open(result_path(model_dir), "w") as f:
    json.dump(result, f, indent=1)
  result["status"] = "ok"
  for step in steps:
    planning.resolve_pretrain_steps(steps)
    command = step.command()
    result["commands"].append(shlex.join(command))
    error = run_step(step, command, "%s/%s" % (row, column.name), log)
    if error:
      result.update(status="failed", failed_step=step.name, error=error)
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
