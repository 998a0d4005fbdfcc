"""Learning curves: table cells trained in chunks until their validation
loss stops improving, evaluated after every chunk.

A curve cell is a row (model) x column (task) x seed, run in
MODEL_DIR_ROOT/small/ROW/COLUMN/seedN (default root runs/curves). A chunk trains `eval_every`
more steps (resuming from the checkpoint; the runtime restores the data
position, and the schedule has no end-of-run decay, so chunks equal one
long run), then evaluates that checkpoint on the validation split: loss
(perplexity eval) and, for translation, BLEU and placeholder accuracy
(decode). The cell stops at the first evaluated step where `plateau_step`'s
rule holds, or at max_steps, and then evaluates that last checkpoint on the
column's test splits. Settings: gin/tables/small/curves.gin.

Resuming: result.json holds the cell's fingerprint (its commands and gin
texts, as for table cells) and status; every number is read back from the
event files, so an interrupted cell goes on at its first chunk without
evaluations, a finished one is skipped, and one of other settings is stale.
A finished cell also leaves a record (result, series, final decodes) in the
committed results folder, so it is skipped on a fresh machine too; an
interrupted cell starts again there (its checkpoints stayed behind).

An equal-budget run (`budget`) trains a cell to exactly that step, the
plateau rule off, continuing its folder in place: its state goes to
result_budgetN.json and its record to a folder of its own, and the plateau
result keeps its numbers (a result's series ends at its stop step).
"""

import dataclasses
import glob
import json
import math
import os
import re
import shlex
import time
from typing import Dict, Mapping, Optional, Tuple

import gin

from mtf_synth import cli
from mtf_synth.runtime import checkpoints
from mtf_synth.runtime import summaries
from mtf_synth.tables import cells
from mtf_synth.tables import planning
from mtf_synth.tables import specs

SETTINGS_GIN = "tables/small/curves.gin"


@dataclasses.dataclass(frozen=True)
class Settings:
  """eval_every: steps per chunk (and between checkpoints); max_steps: the
  cap; window, min_gain, min_steps: the plateau rule (`plateau_step`)."""
  eval_every: int
  max_steps: int
  window: float
  min_gain: float
  min_steps: int


@gin.configurable
def curve_settings(eval_every=gin.REQUIRED, max_steps=gin.REQUIRED,
                   window=gin.REQUIRED, min_gain=gin.REQUIRED,
                   min_steps=gin.REQUIRED):
  return Settings(eval_every, max_steps, window, min_gain, min_steps)


def plateau_step(losses: Mapping[int, float],
                 settings: Settings) -> Optional[int]:
  """The first evaluated step s >= min_steps whose validation loss is less
  than min_gain (relative) below the loss at the last evaluated step at or
  before (1 - window) * s; None if there is none yet.

  With window 0.25 and min_gain 0.01: "less than 1% better over the last
  25% of the steps". A loss that rises (overfitting) also meets it.
  """
  steps = sorted(losses)
  for step in steps:
    earlier = [s for s in steps if s <= (1 - settings.window) * step]
    if step < settings.min_steps or not earlier:
      continue
    before = losses[earlier[-1]]
    if before - losses[step] < settings.min_gain * before:
      return step
  return None


@dataclasses.dataclass(frozen=True)
class Curve:
  """A column's curves: its small-table column (gin files, label), the
  (evaluation, split) runs after every chunk and at the end, the metrics
  shown, and the seeds of each row."""
  column: specs.Column
  every_chunk: Tuple[Tuple[str, str], ...]
  at_end: Tuple[Tuple[str, str], ...]
  metrics: Tuple[str, ...]
  seeds: Mapping[str, Tuple[int, ...]]


ROWS = (("transformer", "Transformer"), ("random", "Synthesizer (R)"),
        ("random_vanilla", "Synthesizer (R+V)"), ("dense", "Synthesizer (D)"))
TABLE = specs.TABLES["synth_mt_lm"]
_SMALL = {c.name: c for c in TABLE.small}
CURVES = (
    Curve(_SMALL["debian_l10n_ende"],
          every_chunk=(("perplexity", "validation"), ("decode", "validation")),
          at_end=(("decode", "test"), ("decode", "heldout")),
          metrics=("bleu", "placeholder_accuracy"),
          seeds={"transformer": (0, 1, 2), "random": (0, 1, 2),
                 "random_vanilla": (0, 1), "dense": (0, 1)}),
    Curve(_SMALL["debian_lm"],
          every_chunk=(("perplexity", "validation"),),
          at_end=(("perplexity", "test"),),
          metrics=("perplexity",),
          seeds={row: (0, 1) for row, _ in ROWS}),
)


@dataclasses.dataclass
class Plan:
  """A curve cell's calls: train (train_steps set per chunk) and its
  evaluations (checkpoint step set per call), as planned for step -1."""
  curve: Curve
  row: str
  seed: int
  model_dir: str
  train: planning.Step
  evaluations: Dict[Tuple[str, str], planning.Step]

  @property
  def name(self):
    return "%s/%s/seed%d" % (self.row, self.curve.column.name, self.seed)

  def fingerprint(self):
    """The cell's commands and gin texts, its folder left out (a record
    made under another model_dir_root still matches)."""
    return planning.cell_fingerprint([
        dataclasses.replace(step, model_dir="MODEL_DIR", argv=[
            a.replace(self.model_dir, "MODEL_DIR") for a in step.argv])
        for step in [self.train] + list(self.evaluations.values())])

  def train_to(self, step):
    return dataclasses.replace(self.train, argv=self.train.argv + [
        "--gin_param=utils.run.train_steps=%d" % step])

  def evaluate_at(self, evaluation, step):
    planned = self.evaluations[evaluation]
    return dataclasses.replace(planned, argv=[
        "--gin_param=eval_checkpoint_step=%d" % step
        if a == "--gin_param=eval_checkpoint_step=-1" else a
        for a in planned.argv])


def plan(curve, row, seed, model_dir_root, extra=()):
  model_dir = os.path.join(model_dir_root, "small", row, curve.column.name,
                           "seed%d" % seed)
  run_files = list(curve.column.gin) + [SETTINGS_GIN, TABLE.row_gin(row)]
  train = planning.Step("train", model_dir, planning.gin_args(
      run_files, ["mtf_synth.train_loop_settings.random_seed=%d" % seed])
                        + list(extra))
  evaluations = {
      (evaluation, split): planning.eval_step(
          "%s_%s" % (evaluation, split), model_dir, evaluation, split,
          run_files, "small", extra)
      for evaluation, split in curve.every_chunk + curve.at_end}
  return Plan(curve, row, seed, model_dir, train, evaluations)


def all_plans(model_dir_root, extra=(), rows=None, columns=None, seeds=None):
  """Every curve cell, seed by seed (seed 0 of every row and column first)."""
  plans = [plan(curve, row, seed, model_dir_root, extra)
           for seed in range(3) for curve in CURVES for row, _ in ROWS
           if seed in curve.seeds[row]]
  return [p for p in plans if (rows is None or p.row in rows) and
          (columns is None or p.curve.column.name in columns) and
          (seeds is None or p.seed in seeds)]


def series(model_dir):
  """{"SPLIT/METRIC": {step: value}} of a cell's evaluations: "loss" and
  "perplexity" from perplexity evals, the task's metrics from decodes."""
  found = {}
  for (folder, tag), values in summaries.read_scalars(
      model_dir, recursive=True).items():
    perplexity = re.fullmatch(r"eval_.+_([a-z]+)_\d+", folder)
    decode = re.fullmatch(r"([a-z]+)_eval", folder)
    # Folders of one split merge (a perplexity folder is named by its
    # number of examples, which may change between evaluations).
    if perplexity and tag == "neg_log_perplexity":
      split = perplexity.group(1)
      found.setdefault("%s/loss" % split, {}).update(
          {s: -v for s, v in values.items()})
      found.setdefault("%s/perplexity" % split, {}).update(
          {s: math.exp(-v) for s, v in values.items()})
    elif decode and tag.startswith("eval/"):
      found.setdefault("%s/%s" % (decode.group(1), tag.split("/")[-1]),
                       {}).update(values)
  return found


def decodes(model_dir, split, step):
  """(targets, predictions) of a cell's decode of `split` at `step`, from
  the text files the evaluation writes beside its events; None if absent."""
  folder = os.path.join(model_dir, "%s_eval" % split)
  found = glob.glob(os.path.join(folder, "*_%d_predictions" % step))
  if not found:
    return None
  task = os.path.basename(found[0])[:-len("_%d_predictions" % step)]
  texts = []
  for path in (os.path.join(folder, task + "_targets"), found[0]):
    with open(path, encoding="utf-8") as f:
      texts.append(f.read().splitlines())
  return tuple(texts)


def record_path(records_dir, cell):
  return os.path.join(records_dir, "%s.%s.seed%d.json" % (
      cell.row, cell.curve.column.name, cell.seed))


def load_record(records_dir, cell):
  """A finished cell's committed record (result, series, final decodes),
  or None; steps back to ints (JSON keys are strings)."""
  try:
    with open(record_path(records_dir, cell), encoding="utf-8") as f:
      record = json.load(f)
  except FileNotFoundError:
    return None
  record["series"] = {key: {int(s): v for s, v in values.items()}
                      for key, values in record["series"].items()}
  return record


def series_until(model_dir, stop):
  """`series` up to step `stop`: a finished cell's numbers, without those
  of a longer run that went on in its folder (an equal-budget one)."""
  return {key: {s: v for s, v in values.items() if s <= stop}
          for key, values in series(model_dir).items()}


def finished(cell, result):
  """A finished cell's result with its numbers and final decodes, as the
  report and the record want it."""
  return dict(result, series=series_until(cell.model_dir, result[
      "stop_step"]), decodes={
      split: decodes(cell.model_dir, split, result["stop_step"])
      for kind, split in cell.curve.at_end if kind == "decode"})


def write_record(records_dir, cell, result):
  os.makedirs(records_dir, exist_ok=True)
  path = record_path(records_dir, cell)
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1, ensure_ascii=False)
  os.replace(path + ".tmp", path)


def evaluated_steps(found, curve, evaluation):
  """Steps at which an (evaluation, split) of `curve` wrote its numbers."""
  kind, split = evaluation
  metric = "loss" if kind == "perplexity" else curve.metrics[0]
  return set(found.get("%s/%s" % (split, metric), {}))


def machine():
  """Where a cell ran: the CPU model and count (the runs' only device)."""
  try:
    with open("/proc/cpuinfo") as f:
      model = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
  except (OSError, AttributeError):
    model = "unknown CPU"
  return "%s, %d CPUs" % (model, os.cpu_count())


def state_name(budget=None):
  """The file in a cell's folder holding its state: result.json, or
  result_budgetN.json for an equal-budget run to step N."""
  return "result_budget%d.json" % budget if budget else "result.json"


def known_result(cell, records_dir=None, budget=None):
  """What is known of a cell without running anything: its folder's
  state with the numbers its event files hold, else its record."""
  done = cells.load_result(cell.model_dir, state_name(budget))
  if done:
    return finished(cell, done) if done.get("status") == "ok" else dict(
        done, series=series(cell.model_dir))
  return (records_dir and load_record(records_dir, cell)) or {}


def run_curve_cell(cell: Plan, settings: Settings, records_dir=None,
                   log=print, budget=None):
  """Trains and evaluates one curve cell chunk by chunk to its plateau or
  the cap (or to step `budget`, the plateau rule off), unless its state
  file or its record in `records_dir` says it finished; returns its
  result. A finished cell's record (result, series, final decodes) goes to
  `records_dir`, which is committed: the run folders do not outlive the
  machine."""
  fingerprint = cell.fingerprint()
  state = state_name(budget)
  done = cells.load_result(cell.model_dir, state)
  if budget:
    settings = dataclasses.replace(settings, max_steps=budget)
    plateau_run = None if done else cells.load_result(cell.model_dir)
    if plateau_run:  # going on from it in this folder (same commands)
      done = dict(plateau_run, status="running")
  stale = cells.stale_result(done, fingerprint, cell.model_dir)
  record = records_dir and load_record(records_dir, cell)
  if stale:
    log("  %s: %s" % (cell.name, stale["error"]))
    return dict(stale, series=series(cell.model_dir))
  if (done or {}).get("status") == "ok":
    log("  %s: finished before, skipped" % cell.name)
    done = finished(cell, done)
    if records_dir:
      write_record(records_dir, cell, done)
    return done
  if record and record.get("fingerprint") == fingerprint:
    log("  %s: finished on %s (%s), skipped" % (
        cell.name, record.get("machine"), record_path(records_dir, cell)))
    return record
  if record:
    log("  %s: its record is of other commands or gin files; running it "
        "again replaces the record" % cell.name)
  os.makedirs(cell.model_dir, exist_ok=True)
  # A resumed cell (same fingerprint) keeps its earlier calls and time.
  earlier = done or {}
  result = {"row": cell.row, "column": cell.curve.column.name,
            "seed": cell.seed, "status": "running", "machine": machine(),
            "fingerprint": fingerprint,
            "commands": list(earlier.get("commands", []))}
  with open(cells.result_path(cell.model_dir, state), "w") as f:
    json.dump(result, f, indent=1)
  started, error = time.time() - earlier.get("seconds", 0), None

  def call(step):
    command = step.command()
    result["commands"].append(shlex.join(command))
    return cells.run_step(step, command, cell.name, log)

  while True:
    found = series(cell.model_dir)
    evaluated = set.intersection(*[evaluated_steps(found, cell.curve, e)
                                   for e in cell.curve.every_chunk])
    plateau = None if budget else plateau_step(
        {s: found["validation/loss"][s] for s in evaluated}, settings)
    last = max(evaluated, default=0)
    if plateau or last >= settings.max_steps:
      break
    target = last + settings.eval_every
    if (checkpoints.latest_step(cell.model_dir) or 0) < target:
      error = call(cell.train_to(target))
    for evaluation in cell.curve.every_chunk:
      if not error and target not in evaluated_steps(found, cell.curve,
                                                     evaluation):
        error = call(cell.evaluate_at(evaluation, target))
    if not error and not all(
        target in evaluated_steps(series(cell.model_dir), cell.curve, e)
        for e in cell.curve.every_chunk):
      error = "no validation numbers at step %d in the event files" % target
    if error:
      break
  stop = budget or plateau or last
  for evaluation in cell.curve.at_end:
    if not error and stop not in evaluated_steps(series(cell.model_dir),
                                                 cell.curve, evaluation):
      error = call(cell.evaluate_at(evaluation, stop))
  result.update(status="failed" if error else "ok", stop_step=stop,
                plateau_step=plateau, seconds=round(time.time() - started, 1))
  if error:
    result["error"] = error
  with open(cells.result_path(cell.model_dir, state), "w") as f:
    json.dump(result, f, indent=1)
  log("  %s: %s" % (cell.name, error or "%s at step %d" % (
      "plateau" if plateau else "cap", stop)))
  if error:
    return dict(result, series=series(cell.model_dir))
  result = finished(cell, result)
  if records_dir:
    write_record(records_dir, cell, result)
  return result


def load_settings(gin_params=()):
  """The curve settings: SETTINGS_GIN with the `--gin_param` bindings the
  mtf_synth commands get (so e.g. CURVE_EVAL_EVERY is one value for both)."""
  search_dirs, _ = cli.gin_search_path_and_files(())
  path = [os.path.join(d, SETTINGS_GIN) for d in search_dirs
          if os.path.isfile(os.path.join(d, SETTINGS_GIN))][0]
  gin.clear_config()
  gin.parse_config_files_and_bindings([path], list(gin_params),
                                      skip_unknown=True)
  return curve_settings()
