"""Imported vocabularies that mesh TF pads: the real size is known
(model.gin), padded ids leave every softmax, a task vocabulary of another
size is a one-line error, and scores equal Hugging Face's log-likelihoods.
"""

import json
import os

import gin
import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy

from cli_runner import T5_TINY_ON_DEMO, mtf_synth
from faults_vocab_tasks import VOCABULARY
from mtf_synth import errors
from mtf_synth import hf_t5
from mtf_synth import padded_vocabulary
from test_hf_t5 import hf_config, write_random_hf_t5

_VOCAB = 320  # mesh TF pads it to 384
# The demo's arguments without its model, on the 320-id task.
_ARGS = [a for a in T5_TINY_ON_DEMO if "models/" not in a
         and "MIXTURE_NAME" not in a] + [
             "--module_import=faults_vocab_tasks",
             "--gin_param=MIXTURE_NAME='faults_vocab_320'"]


@pytest.mark.parametrize("task_size, model_size, fits", [
    (320, 320, True), (259, 320, False), (384, 320, False),
    (32100, 32128, True), (32000, 32128, False), (259, None, True)])
def test_task_vocabulary_must_have_the_real_size(task_size, model_size,
                                                 fits):
  with gin.unlock_config():
    gin.bind_parameter("mtf_synth.vocabulary_size.size", model_size)
  try:
    if fits:
      padded_vocabulary.check_task_vocabulary(task_size)
    else:
      with pytest.raises(errors.UserError, match="has %d ids but the "
                         "model's has %d" % (task_size, model_size)):
        padded_vocabulary.check_task_vocabulary(task_size)
  finally:
    gin.clear_config()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  """(HF weights, ImportReport) of a random v1.1 T5 with 320 ids."""
  root = tmp_path_factory.mktemp("vocab")
  weights = write_random_hf_t5(str(root / "hf"), "v1.1", vocab_size=_VOCAB)
  return weights, hf_t5.import_hf_t5(str(root / "hf"), str(root / "mtf"))


def test_import_writes_the_real_size_and_export_drops_the_padding(
    imported, tmp_path):
  weights, report = imported
  with open(report.gin_file) as f:
    assert "mtf_synth.vocabulary_size.size = %d\n" % _VOCAB in f.read()
  assert hf_t5.read_checkpoint(report.checkpoint)["shared/embedding"].shape[
      0] == 384
  hf_t5.export_hf_t5(os.path.dirname(report.checkpoint), str(tmp_path))
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["vocab_size"] == _VOCAB
  exported = safetensors_numpy.load_file(str(tmp_path / "model.safetensors"))
  for name in ("shared.weight", "lm_head.weight"):
    np.testing.assert_array_equal(exported[name], weights[name])


def test_task_vocabulary_of_another_size_is_one_line(imported, tmp_path):
  _, report = imported
  demo = [a for a in T5_TINY_ON_DEMO if "models/" not in a]
  result = mtf_synth(str(tmp_path / "run"), *demo,
                     "--gin_file=%s" % report.gin_file,
                     "--gin_param=utils.run.train_steps=1")
  assert result.returncode == 2, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines()
           if line.startswith("mtf_synth: error:")]
  assert lines == [
      "mtf_synth: error: the task's vocabulary has 259 ids but the model's "
      "has 320 (mtf_synth.vocabulary_size.size, e.g. from the model.gin of "
      "`mtf_synth.hf_t5 import`): use the task whose vocabulary the "
      "checkpoint was trained with"], result.stderr[-3000:]
  assert not (tmp_path / "run").exists()


def _hf_log_likelihoods(torch, model, inputs, targets):
  """Sum of log p(target token) per (input, target) pair, EOS included."""
  scores = []
  for source, target in zip(inputs, targets):
    input_ids = torch.tensor([VOCABULARY.encode(source) + [1]])
    labels = torch.tensor([VOCABULARY.encode(target) + [1]])
    decoder_input_ids = torch.nn.functional.pad(labels[:, :-1], (1, 0))
    with torch.no_grad():
      logits = model(input_ids=input_ids,
                     decoder_input_ids=decoder_input_ids).logits
    log_probs = torch.log_softmax(logits.double(), -1)[0]
    scores.append(float(log_probs.gather(1, labels[0][:, None]).sum()))
  return scores


def test_scores_equal_hugging_face_log_likelihoods(tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(0)
  model = transformers.T5ForConditionalGeneration(transformers.T5Config(
      **dict(hf_config("v1.1"), vocab_size=_VOCAB))).eval()
  model.lm_head.weight = torch.nn.Parameter(  # untied, as v1.1
      torch.randn_like(model.lm_head.weight))
  with torch.no_grad():
    for name, parameter in model.named_parameters():
      if "layer_norm" in name:
        parameter.copy_(1.0 + 0.2 * torch.randn_like(parameter))
  model.save_pretrained(str(tmp_path / "hf"))
  report = hf_t5.import_hf_t5(str(tmp_path / "hf"), str(tmp_path / "mtf"))
  inputs = ["reverse: a b c", "sort: c b a", "reverse: x"]
  targets = ["c b a", "a b c", "x"]
  (tmp_path / "inputs.txt").write_text("\n".join(inputs) + "\n")
  (tmp_path / "targets.txt").write_text("\n".join(targets) + "\n")
  scores = str(tmp_path / "scores")
  result = mtf_synth(
      os.path.dirname(report.checkpoint), *_ARGS,
      "--gin_file=%s" % report.gin_file, "--gin_file=score_from_file.gin",
      "--gin_param=utils.run.eval_checkpoint_step=-1",
      "--gin_param=inputs_filename='%s'" % (tmp_path / "inputs.txt"),
      "--gin_param=targets_filename='%s'" % (tmp_path / "targets.txt"),
      "--gin_param=scores_filename='%s'" % scores)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(scores + ".scores") as f:
    ours = [float(line) for line in f.read().splitlines()]
  np.testing.assert_allclose(
      ours, _hf_log_likelihoods(torch, model, inputs, targets), rtol=0,
      atol=1e-4)
