"""Each cell's `mtf_synth` commands, and the fingerprint that tells a finished
cell's commands and gin files from changed ones."""

import dataclasses
import hashlib
import os
import re
import shlex
from typing import List

import tensorflow.compat.v1 as tf

from mtf_synth import cli


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
  if column.evaluation in EVAL_GIN:
    steps.append(eval_step("eval", model_dir, column.evaluation, column.split,
                           run_files, scale, extra))
  return steps


EVAL_GIN = {"decode": "eval.gin", "perplexity": "perplexity_eval.gin"}


def eval_step(name, model_dir, evaluation, split, run_files, scale, extra=(),
              checkpoint_step=-1):
  """The mtf_synth call that evaluates a checkpoint of a run of `run_files`:
  decode-and-score or perplexity (`evaluation`) on `split`."""
  files = [EVAL_GIN[evaluation]] + list(run_files)
  if scale != "paper":
    files.append("tables/%s/eval.gin" % scale)
  return Step(name, model_dir, gin_args(
      files, ["eval_checkpoint_step=%s" % checkpoint_step,
              "utils.run.dataset_split='%s'" % split]) + list(extra))


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


def _without_comments(text):
  """A gin text without its comment lines and blank lines: a calibration
  note added to a gin file leaves its cells' fingerprints as they were."""
  return "\n".join(line for line in text.splitlines()
                   if line.strip() and not line.lstrip().startswith("#"))


def cell_fingerprint(steps):
  """Hash of what decides a cell's result: its commands and gin texts
  (comment lines left out)."""
  digest = hashlib.sha256()
  search_dirs, _ = cli.gin_search_path_and_files(())
  for step in steps:
    digest.update(shlex.join(step.command()).encode())
    files = [a.split("=", 1)[1] for a in step.argv
             if a.startswith("--gin_file=")]
    for name, text in sorted(gin_texts(files, search_dirs).items()):
      digest.update(("\0%s\0%s" % (name, _without_comments(text))).encode())
  return digest.hexdigest()[:16]


def resolve_pretrain_steps(steps):
  """Fills the pre-training checkpoint name in once its run has finished."""
  pretrain = [s for s in steps if s.name == "pretrain"]
  if not pretrain:
    return steps
  checkpoint = tf.train.latest_checkpoint(pretrain[0].model_dir)
  latest = (os.path.basename(checkpoint) if checkpoint
            else "model.ckpt-PRETRAIN_STEPS")
  for step in steps:
    step.argv = [a.replace("model.ckpt-PRETRAIN_STEPS", latest)
                 for a in step.argv]
  return steps
