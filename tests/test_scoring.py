"""Scoring through the command line: utils.run's score_eval and t5's
score_from_file.gin / score_from_task.gin give each example its
log-likelihood, checked against a direct forward pass (scoring_reference).
"""

import os

import numpy as np
import pytest
import seqio

from cli_runner import T5_TINY_ON_DEMO, mtf_synth, scalars, train_tiny_t5
from scoring_reference import assert_log_likelihoods, source_texts

import tasks  # noqa: F401  (registers mtf_synth_demo)  pylint: disable=unused-import

_DEMO = seqio.get_mixture_or_task("mtf_synth_demo")
_VOCABULARY = _DEMO.output_features["targets"].vocabulary
_NUM_EXAMPLES = 12
_LATEST = "--gin_param=utils.run.eval_checkpoint_step=-1"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A tiny T5.1.1 trained 10 steps on the demo task (utils.run).

  Trained on one device (quicker), scored on T5_TINY_ON_DEMO's 2x2 mesh:
  checkpoints hold whole variables, whatever the mesh.
  """
  return train_tiny_t5(str(tmp_path_factory.mktemp("scored")),
                       "utils.run.mesh_shape='model:1,batch:1'",
                       "utils.run.train_steps=10")


def _validation_texts():
  return source_texts(_DEMO, "validation", _NUM_EXAMPLES)


def _read_lines(path):
  with open(path) as f:
    return f.read().splitlines()


def test_score_from_file(model_dir, tmp_path):
  inputs = ["reverse: a b c", "sort: c b a"]
  # Two targets per input: t5 scores each input against both.
  targets = ["c b a", "a b c", "a b c", "c a b"]
  (tmp_path / "inputs.txt").write_text("\n".join(inputs) + "\n")
  (tmp_path / "targets.txt").write_text("\n".join(targets) + "\n")
  scores = str(tmp_path / "scores")
  result = mtf_synth(
      model_dir, *T5_TINY_ON_DEMO, "--gin_file=score_from_file.gin", _LATEST,
      "--gin_param=inputs_filename='%s'" % (tmp_path / "inputs.txt"),
      "--gin_param=targets_filename='%s'" % (tmp_path / "targets.txt"),
      "--gin_param=scores_filename='%s'" % scores)
  assert result.returncode == 0, result.stderr[-3000:]
  assert _read_lines(scores + ".targets") == targets
  assert _read_lines(scores + ".lengths") == [
      str(len(_VOCABULARY.encode(t)) + 1) for t in targets]  # with EOS
  assert_log_likelihoods(
      [float(s) for s in _read_lines(scores + ".scores")], model_dir,
      _VOCABULARY, [inputs[0]] * 2 + [inputs[1]] * 2, targets)


def test_score_from_task(model_dir, tmp_path):
  scores = str(tmp_path / "scores")
  result = mtf_synth(
      model_dir, *T5_TINY_ON_DEMO, "--gin_file=score_from_task.gin", _LATEST,
      "--gin_param=utils.run.dataset_split='validation'",
      "--gin_param=mesh_eval_dataset_fn.num_eval_examples=%d" % _NUM_EXAMPLES,
      "--gin_param=scores_filename='%s'" % scores)
  assert result.returncode == 0, result.stderr[-3000:]
  inputs, targets = _validation_texts()
  assert _read_lines(scores + ".targets") == targets
  assert_log_likelihoods(
      [float(s) for s in _read_lines(scores + ".scores")], model_dir,
      _VOCABULARY, inputs, targets)


def test_score_eval(model_dir):
  # The demo task with a metric of scores (cli_test_tasks), as score_eval
  # hands the task's metrics each example's log-likelihood.
  result = mtf_synth(
      model_dir, *T5_TINY_ON_DEMO, "--module_import=cli_test_tasks",
      "--gin_file=eval.gin", "--gin_param=MIXTURE_NAME='cli_test_demo_scored'",
      "--gin_param=utils.run.mode='score_eval'",
      "--gin_param=eval_checkpoint_step=-1",
      "--gin_param=utils.run.dataset_split='validation'",
      "--gin_param=mesh_eval_dataset_fn.num_eval_examples=%d" % _NUM_EXAMPLES)
  assert result.returncode == 0, result.stderr[-3000:]
  eval_dir = os.path.join(model_dir, "validation_eval")
  scores = [float(s) for s in _read_lines(
      os.path.join(eval_dir, "cli_test_demo_scored_10_predictions"))]
  inputs, targets = _validation_texts()
  assert_log_likelihoods(scores, model_dir, _VOCABULARY, inputs, targets)
  mean = scalars(eval_dir, "eval/cli_test_demo_scored/mean_log_likelihood")
  assert mean[10] == pytest.approx(np.mean(scores), abs=1e-4)
