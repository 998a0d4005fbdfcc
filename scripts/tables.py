"""Reproduces the papers' tables with the `mtf_synth` command line.

One table = rows (a model, one gin file each under gin/tables/TABLE/) times
columns (a task + base model + schedule, gin/tables/TABLE/tasks/COLUMN.gin at
paper scale, gin/tables/SCALE/TASK.gin at mini scale (generated tasks) and
small scale (the debian corpus, real text)). Each (row, column) cell
is one training run in MODEL_DIR_ROOT/SCALE/TABLE/ROW/COLUMN, followed by the
evaluation the column needs (decode-and-score, perplexity, or none: training
loss and steps/s from the TensorBoard events). The table is written as
Markdown, CSV and a matplotlib plot beside the papers' published numbers.

  python scripts/tables.py TABLE [--scale=mini|small|paper]
      [--model_dir_root=DIR] [--results_dir=DIR] [--mesh=cpu_2x2|gpu|tpu_2x2]
      [--rows=a,b] [--columns=c] [--dry_run] [--check_gin] [any mtf_synth flag ...]

Unknown flags (--tpu=..., --gin_param=..., ...) go to every mtf_synth call.
A cell whose result.json says "ok" is skipped on re-runs; a failed cell is
reported as failed and the others go on. A finished cell whose commands or gin
files (includes followed) have changed since is reported as stale, not
silently reused: its folder is kept, and deleting it re-runs the cell. scripts/reproduce_TABLE.sh calls
this file; the shell scripts hold no logic.
"""

import argparse
import csv
import dataclasses
import glob
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import time
from typing import Dict, List, Tuple

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
SCALES = ("mini", "small", "paper")


# ================================ table specs ================================
@dataclasses.dataclass(frozen=True)
class Column:
  """A task the rows are trained and scored on.

  name: id (run folder, gin file name); label: header text;
  gin: gin files of the run (task, base model, schedule), first;
  evaluation: "decode" (utils.run mode eval), "perplexity" or "train";
  metrics: the metric keys shown (see `metric_value`), first is the primary;
  split: the evaluation split; pretrain: gin files of a pre-training run
  shared by the row's columns (its checkpoint initialises this run).
  """
  name: str
  label: str
  gin: Tuple[str, ...]
  evaluation: str
  metrics: Tuple[str, ...]
  split: str = "validation"
  pretrain: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Table:
  name: str
  title: str
  rows: Tuple[Tuple[str, str], ...]        # (row id, label)
  paper: Tuple[Column, ...]                # columns at paper scale
  mini: Tuple[Column, ...]                 # columns at mini scale
  small: Tuple[Column, ...] = ()           # columns at small scale
  # Published numbers: {paper column name: {metric: {row id: value}}}.
  published: Dict[str, Dict[str, Dict[str, float]]] = dataclasses.field(
      default_factory=dict)
  higher_is_better: Dict[str, bool] = dataclasses.field(default_factory=dict)

  def columns(self, scale):
    return getattr(self, scale)

  def row_gin(self, row):
    return "tables/%s/%s.gin" % (self.name, row)


def paper_column(table, name, label, evaluation, metrics, **kwargs):
  return Column(name, label, ("tables/%s/tasks/%s.gin" % (table, name),),
                evaluation, metrics, **kwargs)


def scale_column(scale, name, model, label, evaluation, metrics, **kwargs):
  """A stand-in task for a paper column, on `model`'s stack, sized by
  gin/tables/SCALE/NAME.gin."""
  return Column(name, label, ("models/%s.gin" % model,
                              "tables/%s/%s.gin" % (scale, name)),
                evaluation, metrics, **kwargs)


def mini_column(name, model, label, evaluation, metrics, **kwargs):
  """A generated task standing in for a paper column."""
  return scale_column("mini", name, model, label, evaluation, metrics,
                      **kwargs)


SEQ2SEQ = ("sequence_accuracy", "mean_edit")
MINI_DEMO = mini_column("demo", "transformer_base", "demo (reverse/sort)",
                        "decode", SEQ2SEQ + ("exact_match:reverse",
                                             "exact_match:sort"))
MINI_LM = mini_column("lm", "lm_base", "generated LM", "perplexity",
                      ("perplexity",))
MINI_COPY = mini_column("copy", "transformer_base", "copy", "decode", SEQ2SEQ)
MINI_RECALL = mini_column("recall", "transformer_base", "key-value recall",
                          "decode", ("accuracy",))
MINI_T5_RECALL = mini_column("recall", "t5_base", "key-value recall",
                             "decode", ("accuracy",))
MINI_LISTOPS = mini_column("listops", "encoder_classifier", "ListOps (small)",
                           "decode", ("accuracy",))
MINI_C4 = mini_column("demo_train", "t5_base", "demo (train loss, steps/s)",
                      "train", ("loss", "steps_per_sec"))


def mini_sparsity(model):
  return tuple(mini_column("sparsity_%dof64" % k, model, "sparsity %d/64" % k,
                           "decode", ("accuracy",)) for k in (2, 8, 32))


SYNTH_ROWS = (("transformer", "Transformer"), ("random", "Synthesizer (R)"),
              ("fixed_random", "Synthesizer (Fix)"),
              ("factorized_random", "Synthesizer (FR)"),
              ("dense", "Synthesizer (D)"),
              ("factorized_dense", "Synthesizer (FD)"),
              ("random_dense", "Synthesizer (R+D)"),
              ("random_vanilla", "Synthesizer (R+V)"),
              ("dense_vanilla", "Synthesizer (D+V)"))
KERNEL_ROWS = (("rff", "RFF"), ("gmm_rks", "GMM-RKS"), ("gmm_prf", "GMM-PRF"),
               ("fastfood_rks", "FastFood-RKS"),
               ("fastfood_prf", "FastFood-PRF"),
               ("generative_rks", "Generative-RKS"),
               ("generative_prf", "Generative-PRF"))


def _by_row(rows, values):
  """{row id: value} from parallel sequences, None (blank) dropped."""
  return {r: v for r, v in zip(rows, values) if v is not None}


_T1 = ("transformer", "random", "fixed_random", "random_dense",
       "dense", "random_vanilla")
_C4 = ("transformer", "dynamic_conv", "lightweight_conv", "dense",
       "dense_vanilla", "factorized_random", "random", "random_vanilla")
_LRA = ("transformer", "synthesizer", "performer", "linformer")
_LRA_PUBLISHED = ((36.37, 64.27, 57.46, 42.44, 71.40),
                  (36.99, 61.68, 54.67, 41.61, 69.45),
                  (18.01, 65.40, 53.82, 42.77, 77.05),
                  (35.70, 53.94, 52.27, 38.56, 76.34))
_LRA_TASKS = (("lra_listops", "ListOps"), ("lra_text", "Text"),
              ("lra_retrieval", "Retrieval"), ("lra_image", "Image"),
              ("lra_pathfinder", "Pathfinder"))

TABLES = {t.name: t for t in (
    Table(
        "synth_mt_lm",
        "Synthesizer: WMT'14 BLEU and LM1B perplexity",
        SYNTH_ROWS,
        paper=(paper_column("synth_mt_lm", "wmt14_ende", "WMT'14 En-De",
                            "decode", ("bleu",), split="test"),
               paper_column("synth_mt_lm", "wmt14_enfr", "WMT'14 En-Fr",
                            "decode", ("bleu",), split="test"),
               paper_column("synth_mt_lm", "lm1b", "LM1B", "perplexity",
                            ("perplexity",), split="test")),
        mini=(MINI_DEMO, MINI_LM),
        small=(scale_column("small", "debian_l10n_ende", "transformer_base",
                            "Debian l10n En-De", "decode", ("bleu",),
                            split="test"),
               scale_column("small", "debian_l10n_enfr", "transformer_base",
                            "Debian l10n En-Fr", "decode", ("bleu",),
                            split="test"),
               scale_column("small", "debian_lm", "lm_base",
                            "Debian docs LM", "perplexity", ("perplexity",),
                            split="test")),
        published={
            "wmt14_ende": {"bleu": _by_row(_T1, (27.67, 27.27, 23.89, 27.68,
                                                 27.43, 28.47))},
            "wmt14_enfr": {"bleu": _by_row(_T1, (41.57, 41.12, 38.31, 41.57,
                                                 41.39, 41.85))},
            "lm1b": {"perplexity": {"transformer": 38.21, "random": 40.60,
                                    "dense": 42.40, "random_vanilla": 40.05}},
        }),
    Table(
        "synth_summ_dialog",
        "Synthesizer: CNN/DailyMail summarization and PersonaChat dialogue",
        (("transformer", "Transformer"), ("random", "Synthesizer (R)"),
         ("dense", "Synthesizer (D)"), ("dense_vanilla", "Synthesizer (D+V)"),
         ("random_vanilla", "Synthesizer (R+V)")),
        paper=(paper_column("synth_summ_dialog", "cnn_dailymail",
                            "CNN/DailyMail", "decode",
                            ("rouge1", "rouge2", "rougeLsum"), split="test"),
               paper_column("synth_summ_dialog", "personachat", "PersonaChat",
                            "decode", ("bleu", "bleu1", "rouge1", "rougeL"))),
        mini=(MINI_COPY, MINI_RECALL)),
    Table(
        "synth_glue",
        "Synthesizer: GLUE and SuperGLUE with T5-base",
        (("t5_base", "T5 (base)"), ("random_vanilla", "Synthesizer (R+V)"),
         ("dense_vanilla", "Synthesizer (D+V)")),
        paper=tuple(
            paper_column("synth_glue", name, label, "decode", ("average",),
                         pretrain=("tables/synth_glue/tasks/c4_pretrain.gin",))
            for name, label in (("glue", "GLUE"),
                                ("super_glue", "SuperGLUE"))),
        mini=(MINI_T5_RECALL, mini_sparsity("t5_base")[1])),
    Table(
        "synth_c4",
        "Synthesizer vs Dynamic Convolutions: C4 span corruption "
        "(steps/s, final loss)",
        (("transformer", "Transformer"), ("dynamic_conv", "Dynamic Conv"),
         ("lightweight_conv", "Lightweight Conv"),
         ("dense", "Synthesizer (D)"), ("dense_vanilla", "Synthesizer (D+V)"),
         ("factorized_random", "Synthesizer (FR)"),
         ("random", "Synthesizer (R)"),
         ("random_vanilla", "Synthesizer (R+V)")),
        paper=(paper_column("synth_c4", "c4", "C4", "train",
                            ("loss", "steps_per_sec")),),
        mini=(MINI_C4,),
        published={"c4": {
            "steps_per_sec": _by_row(_C4, (3.90, 2.65, 4.05, 3.61, 3.34,
                                           4.10, 4.26, 3.79)),
            "loss": _by_row(_C4, (1.865, 2.038, 1.990, 1.965, 1.832, 1.964,
                                  1.972, 1.849))}}),
    Table(
        "synth_linformer",
        "Synthesizer vs Linformer: encoder-only AG News and IMDb",
        (("transformer", "Transformer"), ("linformer", "Linformer"),
         ("random", "Synthesizer (R)"), ("dense", "Synthesizer (D)"),
         ("random_vanilla", "Synthesizer (R+V)")),
        paper=tuple(paper_column("synth_linformer", name, label, "decode",
                                 ("accuracy",), split="test")
                    for name, label in (("ag_news", "AG News"),
                                        ("imdb", "IMDb"))),
        mini=tuple(dataclasses.replace(c, gin=c.gin + (
            "tables/mini/unpacked.gin",)) for c in (
                mini_sparsity("encoder_classifier")[1], MINI_LISTOPS)),
        small=(scale_column("small", "debian_sections",
                            "encoder_classifier", "Debian package sections",
                            "decode", ("accuracy",), split="test"),)),
    Table(
        "synth_ablations",
        "Synthesizer ablations: heads, factorization sizes, fixed vs "
        "trainable (WMT'14 En-De)",
        (("random_heads_2", "R, 2 heads"), ("random_heads_4", "R, 4 heads"),
         ("random", "R, the model's heads (8; mini: 4)"),
         ("random_heads_16", "R, 16 heads"),
         ("fixed_random", "Fix (R not trained)"),
         ("factorized_random_rank_4", "FR, k = 4"),
         ("factorized_random", "FR, k = 8"),
         ("factorized_random_rank_32", "FR, k = 32"),
         ("factorized_dense_a_2", "FD, a = 2, b = n/2"),
         ("factorized_dense", "FD, a ~ b ~ sqrt(n)")),
        paper=(paper_column("synth_ablations", "wmt14_ende", "WMT'14 En-De",
                            "decode", ("bleu",), split="test"),),
        mini=(MINI_DEMO,)),
    Table(
        "kernel_lra",
        "Learning the Transformer Kernel: Long Range Arena accuracy",
        (("transformer", "Transformer (softmax)"),
         ("synthesizer", "Synthesizer"), ("performer", "Performer"),
         ("linformer", "Linformer")) + KERNEL_ROWS,
        paper=tuple(paper_column("kernel_lra", name, label, "decode",
                                 ("accuracy",), split="test")
                    for name, label in _LRA_TASKS),
        mini=(dataclasses.replace(
            MINI_LISTOPS,
            gin=MINI_LISTOPS.gin + ("tables/mini/unpacked.gin",)),),
        published={name: {"accuracy": _by_row(_LRA, [p[i] for p in
                                                     _LRA_PUBLISHED])}
                   for i, (name, _) in enumerate(_LRA_TASKS)}),
    Table(
        "kernel_glue",
        "Learning the Transformer Kernel: GLUE",
        (("transformer", "Transformer (softmax)"), ("performer", "Performer"))
        + KERNEL_ROWS,
        paper=(paper_column("kernel_glue", "glue", "GLUE", "decode",
                            ("average",)),),
        mini=(MINI_RECALL,)),
    Table(
        "kernel_sparsity",
        "Learning the Transformer Kernel: controllable sparsity "
        "(k relevant of n positions)",
        (("transformer", "Transformer (softmax)"), ("performer", "Performer"))
        + KERNEL_ROWS,
        paper=tuple(paper_column("kernel_sparsity", "sparsity_%dof1024" % k,
                                 "%d/1024 relevant" % k, "decode",
                                 ("accuracy",))
                    for k in (8, 64, 512)),
        mini=mini_sparsity("encoder_classifier")),
)}

# Lower is better for these metrics; everything else is higher-is-better.
LOWER_IS_BETTER = ("perplexity", "loss", "mean_edit")


# ================================ commands ===================================
@dataclasses.dataclass
class Step:
  """One mtf_synth call of a cell: train, pretrain or evaluate."""
  name: str
  model_dir: str
  argv: List[str]

  def command(self):
    return ["mtf_synth", "--model_dir=%s" % self.model_dir] + self.argv


def mesh_gin(mesh):
  return ["mesh/%s.gin" % mesh] if mesh else []


def gin_args(files, params=()):
  return (["--gin_file=%s" % f for f in files] +
          ["--gin_param=%s" % p for p in params])


def cell_steps(table, row, column, scale, model_dir_root, mesh=None,
               extra=()):
  """The mtf_synth calls of one cell, in order."""
  root = os.path.join(model_dir_root, scale, table.name, row)
  model_dir = os.path.join(root, column.name)
  run_files = list(column.gin) + [table.row_gin(row)] + mesh_gin(mesh)
  steps = []
  params = []
  if column.pretrain and scale == "paper":
    pretrain_dir = os.path.join(root, "pretrain")
    steps.append(Step("pretrain", pretrain_dir, gin_args(
        list(column.pretrain) + [table.row_gin(row)] + mesh_gin(mesh))
                      + list(extra)))
    params.append("utils.run.init_checkpoint='%s'" % os.path.join(
        pretrain_dir, "model.ckpt-%s" % "PRETRAIN_STEPS"))
  steps.append(Step("train", model_dir,
                    gin_args(run_files, params) + list(extra)))
  eval_gin = {"decode": "eval.gin", "perplexity": "perplexity_eval.gin"}
  if column.evaluation in eval_gin:
    files = [eval_gin[column.evaluation]] + run_files
    if scale != "paper":
      files.append("tables/%s/eval.gin" % scale)
    steps.append(Step("eval", model_dir, gin_args(
        files, ["eval_checkpoint_step=-1",
                "utils.run.dataset_split='%s'" % column.split]) + list(extra)))
  return steps


def gin_search_dirs():
  """The command line's gin search path, found without importing TF."""
  t5_dir = os.path.dirname(importlib.util.find_spec("t5").origin)
  return [os.path.join(REPO, "gin"), os.path.join(t5_dir, "models", "gin")]


_GIN_INCLUDE = re.compile(r"^\s*include\s+['\"]([^'\"]+)['\"]", re.M)


def gin_texts(files, search_dirs):
  """{name: text} of the gin `files` and of every file they include."""
  texts = {}
  pending = list(files)
  while pending:
    name = pending.pop()
    found = [os.path.join(d, name) for d in search_dirs
             if os.path.isfile(os.path.join(d, name))]
    if found and name not in texts:
      with open(found[0]) as f:
        texts[name] = f.read()
      pending += _GIN_INCLUDE.findall(texts[name])
  return texts


def cell_fingerprint(steps):
  """Hash of what decides a cell's result: its commands and gin texts."""
  digest = hashlib.sha256()
  search_dirs = gin_search_dirs()
  for step in steps:
    digest.update(shlex.join(step.command()).encode())
    files = [a.split("=", 1)[1] for a in step.argv
             if a.startswith("--gin_file=")]
    for name, text in sorted(gin_texts(files, search_dirs).items()):
      digest.update(("\0%s\0%s" % (name, text)).encode())
  return digest.hexdigest()[:16]


def resolve_pretrain_steps(steps):
  """Fills the pre-training checkpoint name in once its run has finished."""
  pretrain = [s for s in steps if s.name == "pretrain"]
  if not pretrain:
    return steps
  state = os.path.join(pretrain[0].model_dir, "checkpoint")
  latest = "model.ckpt-PRETRAIN_STEPS"
  if os.path.exists(state):
    with open(state) as f:
      first = f.readline()  # model_checkpoint_path: "model.ckpt-N"
    latest = first.split('"')[1].split("/")[-1]
  for step in steps:
    step.argv = [a.replace("model.ckpt-PRETRAIN_STEPS", latest)
                 for a in step.argv]
  return steps


# ================================ metrics ====================================
def read_scalars(model_dir):
  """{(relative dir, tag): [(step, value), ...]} of every event file."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  from tensorboard.backend.event_processing import event_file_loader  # pylint: disable=g-import-not-at-top
  scalars = {}
  pattern = os.path.join(model_dir, "**", "events.out.tfevents*")
  for path in sorted(glob.glob(pattern, recursive=True)):
    folder = os.path.relpath(os.path.dirname(path), model_dir)
    for event in event_file_loader.LegacyEventFileLoader(path).Load():
      for value in event.summary.value:
        if value.HasField("simple_value"):
          scalars.setdefault((folder, value.tag), []).append(
              (event.step, value.simple_value))
  return scalars


def _last(series):
  return sorted(series)[-1][1]


def metric_value(metric, column, scalars):
  """One number of a finished cell, or None when its events lack it."""
  if metric == "loss":  # training loss, mean of the last 4 logs (less noise)
    series = sorted(scalars.get((".", "loss"), []))[-4:]
    return sum(v for _, v in series) / len(series) if series else None
  if metric == "steps_per_sec":  # mean over logs, the first (warm-up) left out
    series = sorted(scalars.get((".", "steps_per_sec"), []))
    values = [v for _, v in series[1:]] or [v for _, v in series]
    return sum(values) / len(values) if values else None
  if metric == "perplexity":
    for (folder, tag), series in scalars.items():
      if folder.startswith("eval") and tag == "neg_log_perplexity":
        return math.exp(-_last(series))
    for (folder, tag), series in scalars.items():
      if folder.startswith("eval") and tag == "loss":
        return math.exp(_last(series))
    return None
  decode_dir = "%s_eval" % column.split
  found = {tag: _last(series) for (folder, tag), series in scalars.items()
           if folder == decode_dir and tag.startswith("eval/")}
  if metric == "average":  # GLUE-style: mean over tasks of their metrics' mean
    per_task = {}
    for tag, value in found.items():
      per_task.setdefault(tag.split("/")[1], []).append(value)
    means = [sum(v) / len(v) for v in per_task.values()]
    return sum(means) / len(means) if means else None
  values = [v for tag, v in found.items() if tag.split("/")[-1] == metric]
  return sum(values) / len(values) if values else None


def exact_match_by_prefix(prefix, column, model_dir):
  """Exact-match % of the last decodes whose input starts with `prefix:`.

  Splits a mixed task's score by its parts (e.g. reverse, which needs only
  positions, vs sort, which needs content), from the text files the decode
  eval writes beside its events.
  """
  folder = os.path.join(model_dir, "%s_eval" % column.split)
  predictions = sorted(glob.glob(os.path.join(folder, "*_predictions")),
                       key=lambda p: int(p.rsplit("_", 2)[-2]))
  if not predictions:
    return None
  task = os.path.basename(predictions[-1]).rsplit("_", 2)[0]
  lines = []
  for path in (os.path.join(folder, task + "_inputs"),
               os.path.join(folder, task + "_targets"), predictions[-1]):
    with open(path) as f:
      lines.append(f.read().splitlines())
  hits = [t.strip() == p.strip() for i, t, p in zip(*lines)
          if i.startswith(prefix + ":")]
  return 100.0 * sum(hits) / len(hits) if hits else None


def collect_metrics(column, model_dir):
  """{metric: value} of a finished cell: the column's, and the train loss."""
  scalars = read_scalars(model_dir)
  metrics = {m: (exact_match_by_prefix(m.split(":", 1)[1], column, model_dir)
                 if m.startswith("exact_match:") else
                 metric_value(m, column, scalars)) for m in column.metrics}
  metrics.setdefault("loss", metric_value("loss", column, scalars))
  return metrics


# ================================ running ====================================
def result_path(model_dir):
  return os.path.join(model_dir, "result.json")


def load_result(model_dir):
  try:
    with open(result_path(model_dir)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def previous_report(table, scale, results_dir):
  """Finished cells of the report in results_dir (TABLE.csv and
  TABLE.commands.sh), keyed like `results`; marked `carried_over`.

  They fill the cells that have no run folder here, so re-running a few rows
  in a fresh clone updates the committed table instead of emptying it.
  """
  base = os.path.join(results_dir, table.name)
  try:
    with open(base + ".csv", newline="") as f:
      records = list(csv.DictReader(f))
    with open(base + ".commands.sh") as f:
      commands = [line.rstrip("\n") for line in f
                  if not line.startswith("#")]
  except OSError:
    return {}
  previous = {}
  for record in records:
    if record["source"] == "ours (%s)" % scale and record["status"] == "ok":
      cell = previous.setdefault((record["row"], record["column"]), {
          "status": "ok", "metrics": {}, "carried_over": True})
      cell["metrics"][record["metric"]] = (float(record["value"])
                                           if record["value"] else None)
  for (row, column), cell in previous.items():
    model_dir = "/%s/%s/%s/%s" % (scale, table.name, row, column)
    cell["commands"] = [c for c in commands
                        if (model_dir + " ") in (c + " ")]
  return previous


def run_cell(table, row, column, steps, log=print):
  """Runs a cell's steps unless result.json says it finished; returns it."""
  model_dir = steps[-1].model_dir
  fingerprint = cell_fingerprint(steps)  # before pretrain paths are resolved
  done = load_result(model_dir)
  if done and done.get("status") == "ok":
    if done.get("fingerprint", fingerprint) != fingerprint:
      done.update(status="stale", error=(
          "finished with other commands or gin files than these; delete %s "
          "(or pass another --model_dir_root) to run it again" % model_dir))
      log("  %s/%s: stale: %s" % (row, column.name, done["error"]))
      return done
    log("  %s/%s: finished before, skipped" % (row, column.name))
    done["metrics"] = collect_metrics(column, model_dir)  # current extraction
    return done
  os.makedirs(model_dir, exist_ok=True)
  started = time.time()
  result = {"table": table.name, "row": row, "column": column.name,
            "status": "ok", "metrics": {}, "commands": [],
            "fingerprint": fingerprint}
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  for step in steps:
    resolve_pretrain_steps(steps)
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
    result["metrics"] = collect_metrics(column, model_dir)
    if result["metrics"][column.metrics[0]] is None:
      result.update(status="failed", error="no %s in the event files" %
                    column.metrics[0])
  result["seconds"] = round(time.time() - started, 1)
  with open(result_path(model_dir), "w") as f:
    json.dump(result, f, indent=1)
  log("  %s/%s: %s %s" % (row, column.name, result["status"],
                          result.get("error", result["metrics"])))
  return result


# ================================ reporting ==================================
def _fmt(value):
  if value is None:
    return ""
  return "%.4g" % value if isinstance(value, float) else str(value)


def report_rows(table, scale, results):
  """Long-format records: one per (row, column, metric), ours and paper's."""
  records = []
  for row, label in table.rows:
    for column in table.columns(scale):
      result = results.get((row, column.name)) or {}
      for metric in column.metrics:
        records.append({
            "row": row, "label": label, "source": "ours (%s)" % scale,
            "column": column.name, "metric": metric,
            "value": (result.get("metrics") or {}).get(metric),
            "status": result.get("status", "not run")})
    for column in table.paper:
      for metric in column.metrics:
        value = table.published.get(column.name, {}).get(metric, {}).get(row)
        records.append({"row": row, "label": label, "source": "paper",
                        "column": column.name, "metric": metric,
                        "value": value, "status": "published"})
  return records


def _headers(table, scale):
  ours = [(c, m) for c in table.columns(scale) for m in c.metrics]
  paper = [(c, m) for c in table.paper for m in c.metrics]
  return ours, paper


def markdown(table, scale, results, commands_file):
  ours, paper = _headers(table, scale)
  head = (["row"] + ["%s %s" % (c.label, m) for c, m in ours] + ["status"] +
          ["paper: %s %s" % (c.label, m) for c, m in paper])
  lines = ["# %s (%s scale)" % (table.title, scale), "",
           "| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
  for row, label in table.rows:
    statuses, cells = [], [label]
    for column, metric in ours:
      result = results.get((row, column.name)) or {}
      statuses.append(result.get("status", "not run"))
      cells.append(_fmt((result.get("metrics") or {}).get(metric))
                   if result.get("status") == "ok" else "")
    failed = sorted({s for s in statuses if s != "ok"})
    cells.append("ok" if not failed else "/".join(failed))
    for column, metric in paper:
      cells.append(_fmt(table.published.get(column.name, {}).get(
          metric, {}).get(row)))
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Paper numbers are the published ones (blank: not "
            "published or not listed); ours are measured by "
            "`scripts/reproduce_%s.sh --scale=%s`, exact commands in `%s`. "
            "Lower is better for %s." % (
                table.name, scale, os.path.basename(commands_file),
                ", ".join(LOWER_IS_BETTER))]
  carried = ["%s/%s" % k for k, r in sorted(results.items())
             if r.get("carried_over")]
  if carried:
    lines += ["", "Not re-run in the last run of the script (values kept "
              "from the report it rewrote): %s." % ", ".join(carried)]
  errors = [(k, r["error"]) for k, r in sorted(results.items())
            if r.get("status") != "ok" and r.get("error")]
  if errors:
    lines += ["", "Failed or stale cells:"] + ["- %s/%s: %s" % (k[0], k[1], e)
                                      for k, e in errors]
  return "\n".join(lines) + "\n"


def plot(table, scale, results, path):
  """One panel per metric: ours per column, then the paper's, by row."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  ours, paper = _headers(table, scale)
  panels = [("ours: %s %s" % (c.label, m), [
      ((results.get((r, c.name)) or {}).get("metrics") or {}).get(m)
      for r, _ in table.rows]) for c, m in ours]
  panels += [("paper: %s %s" % (c.label, m), [
      table.published.get(c.name, {}).get(m, {}).get(r) for r, _ in
      table.rows]) for c, m in paper if table.published.get(c.name, {}).get(m)]
  fig, axes = plt.subplots(1, len(panels), squeeze=False,
                           figsize=(3.2 * len(panels) + 1, 0.35 *
                                    len(table.rows) + 1.5))
  labels = [label for _, label in table.rows]
  for axis, (title, values) in zip(axes[0], panels):
    axis.barh(range(len(labels)), [v if v is not None else 0 for v in values],
              color=["C0" if title.startswith("ours") else "C1"] * len(values))
    for i, value in enumerate(values):
      axis.text(0, i, " " + (_fmt(value) if value is not None else "n/a"),
                va="center", fontsize=7)
    axis.set_yticks(range(len(labels)))
    axis.set_yticklabels(labels if axis is axes[0][0] else [], fontsize=7)
    axis.invert_yaxis()
    axis.set_title(title, fontsize=8)
  fig.suptitle("%s (%s)" % (table.title, scale), fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_report(table, scale, results, results_dir, commands):
  os.makedirs(results_dir, exist_ok=True)
  base = os.path.join(results_dir, table.name)
  with open(base + ".commands.sh", "w") as f:
    f.write("# Commands of scripts/reproduce_%s.sh --scale=%s, in order.\n"
            % (table.name, scale))
    f.write("".join(c + "\n" for c in commands))
  with open(base + ".md", "w") as f:
    f.write(markdown(table, scale, results, base + ".commands.sh"))
  records = report_rows(table, scale, results)
  with open(base + ".csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
  plot(table, scale, results, base + ".png")
  return base


# ================================ gin check ==================================
def check_gin(argv):
  """Parses a mtf_synth command's gin as the command line would, trains
  nothing; raises on an unknown binding, missing file, unknown task, ...

  Uses mtf_synth.cli's own preflight so the check is the one the command
  line runs before training.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  from mtf_synth import cli  # pylint: disable=g-import-not-at-top
  for module in cli._TASK_MODULES:  # pylint: disable=protected-access
    __import__(module)
  flags_ = flags.FLAGS
  was_parsed = flags_.is_parsed()
  flags_.unparse_flags()
  flags_(["mtf_synth"] + [a for a in argv if not a.startswith("--model_dir")]
         + ["--model_dir=/tmp/unused"])
  gin.clear_config()
  for path in cli.gin_search_dirs():
    gin.add_config_file_search_path(path)
  flags_.gin_file = (["runtime/defaults.gin", "runtime/local.gin"] +
                     list(flags_.gin_file or []))
  logging.disable(logging.ERROR)  # gin logs every search-path miss
  try:
    cli._preflight()  # pylint: disable=protected-access
  finally:
    logging.disable(logging.NOTSET)
    gin.clear_config()
    flags_.unparse_flags()
    if was_parsed:
      flags_.mark_as_parsed()


# ================================ main =======================================
def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("table", choices=sorted(TABLES))
  parser.add_argument("--scale", choices=SCALES, default="mini")
  parser.add_argument("--model_dir_root", default=None,
                      help="default: runs/tables")
  parser.add_argument("--results_dir", default=None,
                      help="default: results/SCALE")
  parser.add_argument("--mesh", default=None,
                      choices=["none", "cpu_2x2", "gpu", "tpu_2x2"],
                      help="gin/mesh/MESH.gin; default: tpu_2x2 with --tpu, "
                      "gpu at paper scale, none (model:1,batch:1) at mini")
  parser.add_argument("--rows", default=None, help="comma-separated row ids")
  parser.add_argument("--columns", default=None, help="comma-separated")
  parser.add_argument("--dry_run", action="store_true",
                      help="print the exact commands, run nothing")
  parser.add_argument("--check_gin", action="store_true",
                      help="parse every command's gin (no training)")
  parser.add_argument("--report_only", action="store_true",
                      help="write the table from the finished cells, run "
                      "nothing")
  args, extra = parser.parse_known_args(argv)
  if args.mesh is None:
    tpu = any(a.startswith("--tpu=") or a == "--tpu" for a in extra)
    args.mesh = ("tpu_2x2" if tpu else
                 "gpu" if args.scale == "paper" else "none")
  args.mesh = None if args.mesh == "none" else args.mesh
  args.model_dir_root = os.path.abspath(args.model_dir_root or
                                        os.path.join(REPO, "runs", "tables"))
  args.results_dir = os.path.abspath(args.results_dir or os.path.join(
      REPO, "results", args.scale))
  return args, extra


def selected(table, args):
  rows = [r for r, _ in table.rows]
  columns = list(table.columns(args.scale))
  if args.rows:
    unknown = set(args.rows.split(",")) - set(rows)
    if unknown:
      raise SystemExit("unknown rows %s; known: %s" % (sorted(unknown), rows))
    rows = [r for r in rows if r in args.rows.split(",")]
  if args.columns:
    columns = [c for c in columns if c.name in args.columns.split(",")]
  return rows, columns


def plan(table, args, extra):
  """[(row, column, steps)] of the selected cells."""
  rows, columns = selected(table, args)
  return [(row, column, cell_steps(table, row, column, args.scale,
                                   args.model_dir_root, args.mesh, extra))
          for row in rows for column in columns]


def main(argv=None):
  args, extra = parse_args(sys.argv[1:] if argv is None else argv)
  table = TABLES[args.table]
  cells = plan(table, args, extra)
  planned = {(row, column.name): [s.command() for s in steps]
             for row, column, steps in cells}
  commands = [c for cell_commands in planned.values() for c in cell_commands]
  if args.dry_run or args.check_gin:
    for command in commands:
      print(shlex.join(command))
    if args.check_gin:
      for command in commands:
        check_gin(command[1:])
      print("gin of %d commands parsed" % len(commands), file=sys.stderr)
    return 0
  print("%s, %s scale: %d cells in %s" % (table.title, args.scale, len(cells),
                                          args.model_dir_root), flush=True)
  results = {}
  for row, column, steps in ([] if args.report_only else cells):
    results[(row, column.name)] = run_cell(
        table, row, column, steps, log=lambda s: print(s, flush=True))
  # Cells not selected this time but finished earlier still go in the table:
  # from their run folder, else from the report being rewritten.
  previous = previous_report(table, args.scale, args.results_dir)
  for row, _ in table.rows:
    for column in table.columns(args.scale):
      cell = (row, column.name)
      if cell in results:
        continue
      model_dir = os.path.join(args.model_dir_root, args.scale, table.name,
                               row, column.name)
      done = load_result(model_dir)
      if done and done.get("status") == "ok":
        done["metrics"] = collect_metrics(column, model_dir)
      if done or cell in previous:
        results[cell] = done or previous[cell]
  # Each cell's commands as it ran (result.json), else as planned now.
  ran = [line for row, _ in table.rows for column in table.columns(args.scale)
         for line in ((results.get((row, column.name)) or {}).get("commands")
                      or map(shlex.join, planned.get((row, column.name), [])))]
  base = write_report(table, args.scale, results, args.results_dir, ran)
  print("wrote %s.{md,csv,png,commands.sh}" % base)
  failed = [k for k, r in results.items() if r.get("status") != "ok"]
  print("%d cells, %d failed" % (len(results), len(failed)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
