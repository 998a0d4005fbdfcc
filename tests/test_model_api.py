"""t5's Model API (MtfModel) off TPU, as the README shows it: every mode
through the command line (`--use_model_api --mode=...`) and in Python
(`t5.models.MtfModel` after `import mtf_synth`), on one model the README's
train command trained.
"""

import glob
import os

import gin
import numpy as np
import pytest
import seqio
import t5
import tensorflow.compat.v1 as tf

from cli_runner import mtf_synth, scalars
from scoring_reference import assert_log_likelihoods, source_texts

import tasks  # noqa: F401  (registers mtf_synth_demo)  pylint: disable=unused-import

_TASK = "mtf_synth_demo"
_VOCABULARY = seqio.get_mixture_or_task(_TASK).output_features[
    "targets"].vocabulary
_BATCH_SIZE = 8
_LENGTH = 64
_STEPS = 10
_MODEL_API = [
    "--use_model_api", "--mixture_or_task=" + _TASK,
    "--gin_file=models/t5.1.1.tiny.gin", "--batch_size=%d" % _BATCH_SIZE,
    "--input_sequence_length=%d" % _LENGTH,
    "--target_sequence_length=%d" % _LENGTH,
    "--gin_param=mtf_synth.train_loop_settings.log_every_steps=5",
]
_INPUTS = ["reverse: a b c", "sort: c b a", "reverse: x y"]
_TARGETS = ["c b a", "a b c", "y x"]
# Short decodes and a few validation examples keep eval and predict quick.
_QUICK_BINDINGS = {"Bitransformer.decode.max_decode_length": 16,
                   "mesh_eval_dataset_fn.num_eval_examples": 12}


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
  """The README's Model API command: a tiny T5.1.1 trained 10 steps."""
  model_dir = str(tmp_path_factory.mktemp("model_api"))
  result = mtf_synth(model_dir, *_MODEL_API, "--mode=train",
                     "--train_steps=%d" % _STEPS)
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir


def _mtf_model(model_dir):
  return t5.models.MtfModel(
      model_dir=model_dir, tpu=None, batch_size=_BATCH_SIZE,
      sequence_length={"inputs": _LENGTH, "targets": _LENGTH})


@pytest.fixture
def clean_gin():
  """MtfModel reads and writes the global gin config: start and end empty."""
  gin.clear_config()
  with gin.unlock_config():
    for name, value in _QUICK_BINDINGS.items():
      gin.bind_parameter(name, value)
  yield
  gin.clear_config()


def _write_lines(path, lines):
  path.write_text("\n".join(lines) + "\n")
  return str(path)


def _read_lines(path):
  with open(path) as f:
    return f.read().splitlines()


def _load_and_run(export_dir, feeds):
  """Runs an exported SavedModel's serving signature on string inputs."""
  with tf.Graph().as_default(), tf.Session() as session:
    meta_graph = tf.saved_model.loader.load(session, ["serve"], export_dir)
    signature = meta_graph.signature_def["serving_default"]
    return session.run(
        {k: v.name for k, v in signature.outputs.items()},
        {signature.inputs[k].name: v for k, v in feeds.items()})


def _assert_decodes(lines):
  """One text line per input (not b'...' reprs)."""
  assert len(lines) == len(_INPUTS)
  assert not any(line.startswith("b'") for line in lines)


def _assert_eval_metrics(eval_dir, num_examples):
  accuracy = scalars(eval_dir, "eval/%s/sequence_accuracy" % _TASK)
  assert list(accuracy) == [_STEPS] and 0.0 <= accuracy[_STEPS] <= 1.0
  predictions = os.path.join(eval_dir, "%s_%d_predictions" % (_TASK, _STEPS))
  assert len(_read_lines(predictions)) == num_examples


def _assert_finetuned(pretrained_dir, finetuned_dir, steps):
  """Starts from the pretrained weights at their step, then trains on."""
  start = os.path.join(finetuned_dir, "model.ckpt-%d" % _STEPS)
  pretrained = tf.train.load_checkpoint(
      os.path.join(pretrained_dir, "model.ckpt-%d" % _STEPS))
  for name in pretrained.get_variable_to_shape_map():
    np.testing.assert_array_equal(tf.train.load_variable(start, name),
                                  pretrained.get_tensor(name), err_msg=name)
  latest = tf.train.latest_checkpoint(finetuned_dir)
  assert latest.endswith("model.ckpt-%d" % (_STEPS + steps))
  name = "decoder/logits/kernel"
  assert not np.array_equal(tf.train.load_variable(latest, name),
                            pretrained.get_tensor(name))


def _only_export(export_base):
  (export_dir,) = glob.glob(os.path.join(str(export_base), "*"))
  return export_dir


# The command line.


def test_cli_train(trained_dir):
  assert tf.train.latest_checkpoint(trained_dir).endswith(
      "model.ckpt-%d" % _STEPS)
  losses = scalars(trained_dir, "loss")
  assert losses[_STEPS] < losses[5]


def test_cli_predict_uses_the_tasks_vocabulary(trained_dir, tmp_path):
  outputs = str(tmp_path / "outputs.txt")
  result = mtf_synth(
      trained_dir, *_MODEL_API, "--mode=predict", "--temperature=0",
      "--gin_param=Bitransformer.decode.max_decode_length=16",
      "--input_file=" + _write_lines(tmp_path / "inputs.txt", _INPUTS),
      "--output_file=" + outputs)
  assert result.returncode == 0, result.stderr[-3000:]
  _assert_decodes(_read_lines("%s-%d" % (outputs, _STEPS)))


@pytest.mark.slow
def test_cli_score(trained_dir, tmp_path):
  scores = str(tmp_path / "scores")
  result = mtf_synth(
      trained_dir, *_MODEL_API, "--mode=score",
      "--input_file=" + _write_lines(tmp_path / "inputs.txt", _INPUTS),
      "--target_file=" + _write_lines(tmp_path / "targets.txt", _TARGETS),
      "--output_file=" + scores)
  assert result.returncode == 0, result.stderr[-3000:]
  assert _read_lines(scores + ".targets") == _TARGETS
  assert_log_likelihoods([float(s) for s in _read_lines(scores + ".scores")],
                         trained_dir, _VOCABULARY, _INPUTS, _TARGETS)


@pytest.mark.slow
def test_cli_eval(trained_dir, tmp_path):
  eval_dir = str(tmp_path / "eval")
  result = mtf_synth(
      trained_dir, *_MODEL_API, "--mode=eval", "--eval_summary_dir=" + eval_dir,
      *["--gin_param=%s=%r" % item for item in _QUICK_BINDINGS.items()])
  assert result.returncode == 0, result.stderr[-3000:]
  _assert_eval_metrics(eval_dir, _QUICK_BINDINGS[
      "mesh_eval_dataset_fn.num_eval_examples"])


@pytest.mark.slow
def test_cli_finetune(trained_dir, tmp_path):
  finetuned_dir = str(tmp_path / "finetuned")
  result = mtf_synth(finetuned_dir, *_MODEL_API, "--mode=finetune",
                     "--pretrained_model_dir=" + trained_dir,
                     "--train_steps=2")
  assert result.returncode == 0, result.stderr[-3000:]
  _assert_finetuned(trained_dir, finetuned_dir, 2)


@pytest.mark.slow
def test_cli_export_predict_and_score(trained_dir, tmp_path):
  for mode in ("export_predict", "export_score"):
    result = mtf_synth(
        trained_dir, *_MODEL_API, "--mode=" + mode, "--temperature=0",
        "--gin_param=Bitransformer.decode.max_decode_length=16",
        "--export_dir=%s" % (tmp_path / mode))
    assert result.returncode == 0, result.stderr[-3000:]
  decodes = _load_and_run(_only_export(tmp_path / "export_predict"),
                          {"inputs": _INPUTS})["outputs"]
  _assert_decodes([d.decode() for d in decodes])
  scores = _load_and_run(_only_export(tmp_path / "export_score"),
                         {"inputs": _INPUTS, "targets": _TARGETS})["scores"]
  assert_log_likelihoods(scores, trained_dir, _VOCABULARY, _INPUTS, _TARGETS)


# Python: t5.models.MtfModel.


@pytest.mark.slow  # finetune (not slow) trains through MtfModel.train too
def test_python_train(trained_dir, tmp_path, clean_gin):
  del clean_gin
  # The model the command line trained (its operative config), from scratch.
  gin.parse_config_file(os.path.join(trained_dir, "operative_config.gin"),
                        skip_unknown=True)
  model_dir = str(tmp_path / "trained")
  _mtf_model(model_dir).train(_TASK, steps=2)
  assert tf.train.latest_checkpoint(model_dir).endswith("model.ckpt-2")


def test_python_predict(trained_dir, tmp_path, clean_gin):
  del clean_gin
  outputs = str(tmp_path / "outputs.txt")
  _mtf_model(trained_dir).predict(
      _write_lines(tmp_path / "inputs.txt", _INPUTS), outputs,
      temperature=0.0, vocabulary=_VOCABULARY)
  _assert_decodes(_read_lines("%s-%d" % (outputs, _STEPS)))


def test_python_score_strings_and_task(trained_dir, clean_gin):
  del clean_gin
  model = _mtf_model(trained_dir)
  string_scores, targets = model.score(_INPUTS, _TARGETS,
                                       vocabulary=_VOCABULARY)
  assert targets == _TARGETS
  task_scores, task_targets = model.score(mixture_or_task_name=_TASK,
                                          mixture_or_task_split="validation",
                                          vocabulary=_VOCABULARY)
  inputs, targets = source_texts(
      seqio.get_mixture_or_task(_TASK), "validation",
      _QUICK_BINDINGS["mesh_eval_dataset_fn.num_eval_examples"])
  assert task_targets == targets
  # (The reference clears the gin config the scoring reads: it comes last.)
  assert_log_likelihoods(string_scores, trained_dir, _VOCABULARY, _INPUTS,
                         _TARGETS)
  assert_log_likelihoods(task_scores, trained_dir, _VOCABULARY, inputs,
                         targets)


def test_python_eval(trained_dir, tmp_path, clean_gin):
  del clean_gin
  eval_dir = str(tmp_path / "eval")
  _mtf_model(trained_dir).eval(_TASK, checkpoint_steps=-1,
                               summary_dir=eval_dir)
  _assert_eval_metrics(eval_dir, _QUICK_BINDINGS[
      "mesh_eval_dataset_fn.num_eval_examples"])


def test_python_finetune(trained_dir, tmp_path, clean_gin):
  del clean_gin
  finetuned_dir = str(tmp_path / "finetuned")
  _mtf_model(finetuned_dir).finetune(_TASK, finetune_steps=2,
                                     pretrained_model_dir=trained_dir)
  _assert_finetuned(trained_dir, finetuned_dir, 2)


def test_python_export_predict_and_score(trained_dir, tmp_path, clean_gin):
  del clean_gin
  model = _mtf_model(trained_dir)
  decoder = model.export(str(tmp_path / "predict"), temperature=0.0,
                         vocabulary=_VOCABULARY)
  scorer = model.export(str(tmp_path / "score"), vocabulary=_VOCABULARY,
                        eval_with_score=True)
  decodes = _load_and_run(decoder, {"inputs": _INPUTS})["outputs"]
  _assert_decodes([d.decode() for d in decodes])
  scores = _load_and_run(scorer, {"inputs": _INPUTS,
                                  "targets": _TARGETS})["scores"]
  assert_log_likelihoods(scores, trained_dir, _VOCABULARY, _INPUTS, _TARGETS)
