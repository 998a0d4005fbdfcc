"""Builds every paper-scale model of the tables and trains it 2 steps on CPU.

`scripts/reproduce_*.sh --scale=paper` needs prepared datasets and an
accelerator, so a shape or memory error in a paper model would first show
once one is allocated. This runs, for every paper cell of scripts/tables.py,
the cell's own training command (and the pre-training one of
synth_glue) through the `mtf_synth` command line, with the paper's gin
(model sizes, sequence lengths, vocabulary size, bfloat16 activations of
gin/mesh/gpu.gin) and only this changed: batch 1 on a model:1,batch:1 mesh,
2 steps, and the task replaced by a stand-in of random token ids with the
same features and vocabulary size (the user's SentencePiece model counted as
T5's: 32000 pieces + 100 sentinels).

Cells whose parsed gin differs only in the task, schedule, batch or decoding
settings share a model; each model is built once, and the report names the
cells it covers.

  python scripts/check_paper_models.py [--tables=a,b] [--work_dir=DIR]
      [--results=FILE] [--list]

Resumable: a model's outcome is kept in WORK_DIR/MODEL/result.json and a
re-run skips it (delete the folder to re-check). The table (row, cells,
gin, parameters ours and published, OK or the error, seconds) is rewritten
after every model.
"""

import argparse
import collections
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time

from mtf_synth import cli
from mtf_synth.tables import REPO
from mtf_synth.tables import planning
from mtf_synth.tables import specs

# The user's SentencePiece model has the size T5's has (cc_all.32000).
SENTENCEPIECE_PIECES = 32000
# Longer than every paper sequence (LRA: 4000); trimmed to each model's.
STAND_IN_TOKENS = 4096
STAND_IN_PREFIX = "paper_stand_in_"
MESH = "gpu"  # the paper-scale default without --tpu; CPU when no GPU
OVERRIDES = ("utils.run.batch_size=1", "utils.run.train_steps=2",
             "utils.run.mesh_shape='model:1,batch:1'",
             "mtf_synth.train_loop_settings.log_every_steps=1")
# Bindings that do not change the model graph (task, schedule, decoding):
# cells differing only in these share a model.
_NOT_MODEL = re.compile(
    r"^(import |(MIXTURE_NAME|run\.(batch_size|train_steps|"
    r"save_checkpoints_steps)|[^=]*learning_rate[^=]*|[^=]*decode\.\w+) =)")
_CHILD = "--train_with_stand_in"

# Published parameter counts in millions: {(table, column): {row: count}}.
# Synthesizer paper, MT/LM table (|theta|, the MT models) and C4 table.
_MT_PARAMS = {"transformer": 67, "fixed_random": 61, "random": 67,
              "factorized_random": 61, "dense": 62, "factorized_dense": 61,
              "random_dense": 67, "dense_vanilla": 74, "random_vanilla": 73}
PAPER_PARAMS_M = {
    ("synth_mt_lm", "wmt14_ende"): _MT_PARAMS,
    ("synth_mt_lm", "wmt14_enfr"): _MT_PARAMS,
    ("synth_c4", "c4"): {"transformer": 223, "dynamic_conv": 257,
                         "lightweight_conv": 224, "dense": 224,
                         "dense_vanilla": 243, "factorized_random": 207,
                         "random": 254, "random_vanilla": 292},
}


# ============================ the stand-in task =============================
def stand_in_vocabulary(vocabulary):
  """`vocabulary`, or one of its size where it needs the user's file."""
  import seqio  # pylint: disable=g-import-not-at-top
  from tasks import vocabularies  # pylint: disable=g-import-not-at-top
  if isinstance(vocabulary, vocabularies.UserSentencePieceVocabulary):
    return seqio.PassThroughVocabulary(
        SENTENCEPIECE_PIECES + vocabulary.extra_ids, eos_id=1)
  return vocabulary


def register_stand_in(mixture):
  """Registers STAND_IN_PREFIX + mixture: random ids, mixture's features."""
  import seqio  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  features = collections.OrderedDict(
      (key, seqio.Feature(stand_in_vocabulary(f.vocabulary), add_eos=f.add_eos))
      for key, f in seqio.get_mixture_or_task(mixture).output_features.items())

  def random_tokens(split, shuffle_files=False, seed=None):
    del split, shuffle_files, seed

    def example(index):
      # Ids from 3 on: 0, 1, 2 are padding, EOS and UNK in every vocabulary.
      return {key: tf.random.stateless_uniform(
          [STAND_IN_TOKENS], seed=tf.stack([index, i]), minval=3,
          maxval=feature.vocabulary.vocab_size, dtype=tf.int32)
              for i, (key, feature) in enumerate(features.items())}
    return tf.data.Dataset.range(1 << 30).map(example)

  seqio.TaskRegistry.add(
      STAND_IN_PREFIX + mixture,
      source=seqio.FunctionDataSource(random_tokens, splits=["train"]),
      preprocessors=[seqio.preprocessors.append_eos_after_trim],
      output_features=features)


def train_with_stand_in(mixture, mtf_synth_argv):
  """The `mtf_synth` command line, with the stand-in for `mixture`."""
  import tasks  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  register_stand_in(mixture)
  sys.argv = ["mtf_synth"] + mtf_synth_argv
  cli.console_main()


# ============================= models of the cells ==========================
class Model:
  """A distinct paper model and the cells (table, row, column) it covers."""

  def __init__(self, key, mixture, gin_files):
    self.key = key
    self.mixture = mixture
    self.gin_files = gin_files
    self.cells = []

  @property
  def name(self):
    table, row, column = self.cells[0]
    return "%s-%s-%s-%s" % (table, row, column, self.key[:8])


def parsed_config(gin_files):
  """(MIXTURE_NAME, gin's config text) of a command's gin files."""
  import gin  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  search_path, gin_files = cli.gin_search_path_and_files(gin_files)
  for path in search_path:
    gin.add_config_file_search_path(path)
  logging.disable(logging.ERROR)  # gin logs every search-path miss
  try:
    gin.parse_config_files_and_bindings(gin_files, [], finalize_config=False)
    return gin.query_parameter("%MIXTURE_NAME"), gin.config_str()
  finally:
    logging.disable(logging.NOTSET)
    gin.clear_config()


def model_key(mixture, config):
  """Hash of the bindings that shape the model, and of the features."""
  import seqio  # pylint: disable=g-import-not-at-top
  bindings = []
  for line in config.splitlines():
    if line[:1].isspace():  # a multi-line value goes on
      bindings[-1] += line
    elif line.strip() and not line.startswith("#"):
      bindings.append(line)
  kept = sorted(b for b in bindings if not _NOT_MODEL.match(b))
  features = {key: (stand_in_vocabulary(f.vocabulary).vocab_size, f.add_eos)
              for key, f in seqio.get_mixture_or_task(
                  mixture).output_features.items()}
  text = json.dumps([kept, sorted(features.items())])
  return hashlib.sha256(text.encode()).hexdigest()


def gin_files_of(step):
  return [a.split("=", 1)[1] for a in step.argv
          if a.startswith("--gin_file=")]


def paper_models(table_names):
  """The distinct models of the tables' paper cells, in table order."""
  # The task registry (the command line imports it too).
  import tasks  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  models = collections.OrderedDict()
  for name in table_names:
    table = specs.TABLES[name]
    for row, _ in table.rows:
      for column in table.paper:
        for step in planning.cell_steps(table, row, column, "paper",
                                        "/unused", mesh=MESH):
          if step.name == "eval":
            continue
          files = gin_files_of(step)
          mixture, config = parsed_config(files)
          key = model_key(mixture, config)
          model = models.setdefault(key, Model(key, mixture, files))
          cell = column.name if step.name == "train" else step.name
          model.cells.append((name, row, cell))
  return list(models.values())


# ================================== running =================================
def run_order(models):
  """Round-robin over the tables, so an interrupted sweep covers them all."""
  seen = collections.Counter()
  ranked = []
  for model in models:
    table = model.cells[0][0]
    ranked.append((seen[table], list(specs.TABLES).index(table), model))
    seen[table] += 1
  return [model for *_, model in sorted(ranked, key=lambda r: r[:2])]


def _result_path(work_dir, model):
  return os.path.join(work_dir, model.name, "result.json")


def load_result(work_dir, model):
  try:
    with open(_result_path(work_dir, model)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


_PARAMS = re.compile(r"Trainable Variables\s+count: (\d+)\s+Total size: (\d+)")
_LOSS = re.compile(r"step (\d+), loss ([-\w.]+)")


def check_model(model, work_dir, timeout):
  """Builds `model` and trains it 2 steps; returns (and saves) the result."""
  model_dir = os.path.join(work_dir, model.name)
  shutil.rmtree(model_dir, ignore_errors=True)
  os.makedirs(model_dir)
  argv = (["--model_dir=%s" % os.path.join(model_dir, "run")] +
          ["--gin_file=%s" % f for f in model.gin_files] +
          ["--gin_param=%s" % p for p in OVERRIDES] +
          ["--gin_param=MIXTURE_NAME='%s%s'" % (STAND_IN_PREFIX,
                                                model.mixture)])
  log_path = os.path.join(model_dir, "train.log")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MTF_SYNTH_TRACEBACK="1")
  started = time.time()
  with open(log_path, "w") as log:
    try:
      code = subprocess.call(
          [sys.executable, os.path.abspath(__file__), _CHILD, model.mixture,
           "--"] + argv, stdout=log, stderr=subprocess.STDOUT, env=env,
          cwd=REPO, timeout=timeout)
    except subprocess.TimeoutExpired:
      code = "timeout after %d s" % timeout
  seconds = round(time.time() - started, 1)
  with open(log_path) as f:
    text = f.read()
  params = _PARAMS.findall(text)
  losses = {int(s): float(v) for s, v in _LOSS.findall(text)}
  result = {"cells": model.cells, "gin": model.gin_files,
            "mixture": model.mixture, "command": argv, "seconds": seconds,
            "params": int(params[-1][1]) if params else None,
            "losses": losses, "status": "ok"}
  if code != 0 or sorted(losses) != [1, 2]:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    errors = [l for l in lines if "Error" in l] or lines[-1:] or [""]
    result.update(status="failed", error="exit %s: %s" % (code,
                                                          errors[-1][:300]))
  shutil.rmtree(os.path.join(model_dir, "run"), ignore_errors=True)
  with open(_result_path(work_dir, model), "w") as f:
    json.dump(result, f, indent=1)
  return result


# ================================= reporting ================================
def _millions(count):
  return "" if count is None else "%.1fM" % (count / 1e6)


def paper_params(model):
  counts = {PAPER_PARAMS_M[(t, c)][r] for t, r, c in model.cells
            if r in PAPER_PARAMS_M.get((t, c), {})}
  return ", ".join("%dM" % c for c in sorted(counts))


def _cells_text(cells):
  by_table = collections.OrderedDict()
  for table, _, column in cells:
    by_table.setdefault(table, [])
    if column not in by_table[table]:
      by_table[table].append(column)
  return "; ".join("%s: %s" % (t, ", ".join(c)) for t, c in by_table.items())


def markdown(models, results):
  lines = [
      "# Paper-scale models, built and trained 2 steps on CPU", "",
      "`python scripts/check_paper_models.py`: every paper cell's training "
      "command of `scripts/tables.py` (mesh `%s`), with %s and the task "
      "replaced by random token ids of the task's features and vocabulary "
      "size (user SentencePiece = %d pieces + sentinels). Parameters are "
      "mesh TF's trainable total (vocabulary padded to a multiple of 128); "
      "paper: the Synthesizer paper's published counts (MT table, C4 table)."
      % (MESH, ", ".join("`%s`" % o for o in OVERRIDES),
         SENTENCEPIECE_PIECES), "",
      "| row | table(s): cells | model gin | params (ours) | params (paper) "
      "| built + 2 steps | seconds |", "|---|---|---|---|---|---|---|"]
  for model in models:
    result = results.get(model.key) or {}
    status = result.get("status", "not run")
    if status == "failed":
      status = "error: " + result["error"].replace("|", "/")
    rows = sorted({r for _, r, _ in model.cells})
    lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
        ", ".join(rows), _cells_text(model.cells),
        " ".join("`%s`" % f for f in model.gin_files
                 if not f.startswith("mesh/")),
        _millions(result.get("params")), paper_params(model), status,
        result.get("seconds", "")))
  ok = sum(1 for m in models if (results.get(m.key) or {}).get("status")
           == "ok")
  cells = sum(len(m.cells) for m in models)
  lines += ["", "%d models (covering %d cells): %d built and trained 2 steps "
            "with gin/mesh/gpu.gin's bfloat16 activations." % (
                len(models), cells, ok)]
  return "\n".join(lines) + "\n"


def write_report(path, models, results):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(markdown(models, results))


# =================================== main ===================================
def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument("--tables", default=",".join(specs.TABLES),
                      help="comma-separated table names (default: all)")
  parser.add_argument("--work_dir", default=os.path.join(
      REPO, "runs", "paper_models"))
  parser.add_argument("--results", default=os.path.join(
      REPO, "results", "paper", "models.md"))
  parser.add_argument("--timeout", type=int, default=3600,
                      help="seconds per model")
  parser.add_argument("--models", default=None,
                      help="comma-separated parts of model names: check only "
                      "the models whose name contains one")
  parser.add_argument("--report_only", action="store_true",
                      help="rewrite the table from the finished models, run "
                      "nothing")
  parser.add_argument("--list", action="store_true",
                      help="print the distinct models and their cells only")
  args = parser.parse_args(argv)
  unknown = set(args.tables.split(",")) - set(specs.TABLES)
  if unknown:
    parser.error("unknown tables %s; known: %s" % (sorted(unknown),
                                                    sorted(specs.TABLES)))
  return args


def main(argv):
  if argv[:1] == [_CHILD]:
    return train_with_stand_in(argv[1], argv[3:])
  args = parse_args(argv)
  # The report always covers every model; the flags select what runs.
  every_model = paper_models(list(specs.TABLES))
  tables = set(args.tables.split(","))
  models = [m for m in every_model
            if tables & {t for t, _, _ in m.cells} and
            (not args.models or
             any(part in m.name for part in args.models.split(",")))]
  if args.list:
    for model in models:
      print("%s  %s" % (model.name, _cells_text(model.cells)))
    print("%d models, %d cells" % (len(models),
                                   sum(len(m.cells) for m in models)))
    return 0
  results = {m.key: load_result(args.work_dir, m) for m in every_model}
  for i, model in enumerate([] if args.report_only else run_order(models)):
    if results[model.key] is None:
      print("[%d/%d] %s ..." % (i + 1, len(models), model.name), flush=True)
      results[model.key] = check_model(model, args.work_dir, args.timeout)
      write_report(args.results, every_model, results)
    result = results[model.key]
    print("[%d/%d] %s: %s, %s params, %s s" % (
        i + 1, len(models), model.name,
        result.get("error", result["status"]),
        _millions(result.get("params")), result["seconds"]), flush=True)
  write_report(args.results, every_model, results)
  failed = [m.name for m in models
            if (results[m.key] or {}).get("status", "ok") != "ok"]
  not_run = sum(1 for m in models if results[m.key] is None)
  print("%d models, %d not run, %d failed%s; table: %s" % (
      len(models), not_run, len(failed),
      (": " + ", ".join(failed)) if failed else "", args.results))
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
