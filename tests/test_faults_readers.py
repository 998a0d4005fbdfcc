"""Readers beside a writer: eval, infer and export of the latest checkpoint
while a trainer saves every 2 steps and keeps 3 (deleting the older ones).

Each reader holds the checkpoint it picked (checkpoints.pinned), so the
trainer deleting it mid-read changes nothing: every reader exits 0 and
reports the step it read; for at least one of them that step is gone from
model_dir by the time it ends (the deletion really happened under it; how
many depends on how fast the trainer runs beside them).
"""

import glob
import os
import re
import signal
import subprocess
import time

import pytest
import tensorflow.compat.v1 as tf

from cli_runner import T5_TINY_ON_DEMO, mtf_synth, start_mtf_synth
from mtf_synth.runtime import checkpoints

_TRAINER = T5_TINY_ON_DEMO + [
    "--gin_param=utils.run.train_steps=100000",
    "--gin_param=utils.run.save_checkpoints_steps=2",
    "--gin_param=utils.run.keep_checkpoint_max=3"]
_DECODE = "--gin_param=Bitransformer.decode.max_decode_length=8"


@pytest.fixture
def trainer(tmp_path):
  """A running trainer's model_dir, once it has deleted a checkpoint."""
  model_dir = str(tmp_path / "model")
  process = start_mtf_synth(model_dir, *_TRAINER)
  try:
    deadline = time.time() + 300
    while not os.path.exists(checkpoints.path(model_dir, 8) + ".index"):
      assert process.poll() is None, "the trainer ended"
      assert time.time() < deadline, "no checkpoint 8 after 300 s"
      time.sleep(0.5)
    yield model_dir
    assert process.poll() is None, "the trainer ended while readers ran"
  finally:
    process.send_signal(signal.SIGTERM)
    try:
      process.wait(timeout=120)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


def _read_step_is_gone(model_dir, step):
  """Whether the trainer deleted `step` while it was read; no held files
  are left either way."""
  assert not glob.glob(os.path.join(model_dir, ".mtf_synth_reading_*"))
  return step not in checkpoints.steps(model_dir)


def _held_step(stderr):
  match = re.search(r"reading checkpoint \S+model\.ckpt-(\d+) \(held as",
                    stderr)
  assert match, stderr[-3000:]
  return int(match.group(1))


@pytest.mark.slow
def test_eval_infer_and_export_beside_a_trainer(trainer, tmp_path):
  model_dir = trainer
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO,
                     "--gin_param=utils.run.mode='perplexity_eval'",
                     "--gin_param=utils.run.dataset_split='validation'",
                     "--gin_param=utils.run.eval_checkpoint_step=-1")
  assert result.returncode == 0, result.stderr[-3000:]
  step = _held_step(result.stderr)
  assert "eval token_accuracy at step %d:" % step in result.stderr
  gone = [_read_step_is_gone(model_dir, step)]

  inputs = tmp_path / "inputs.txt"
  inputs.write_text("reverse: a b c\nsort: c b a\n")
  outputs = tmp_path / "outputs.txt"
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO, "--gin_file=infer.gin",
                     "--gin_param=infer_checkpoint_step=-1", _DECODE,
                     "--gin_param=input_filename='%s'" % inputs,
                     "--gin_param=output_filename='%s'" % outputs)
  assert result.returncode == 0, result.stderr[-3000:]
  step = _held_step(result.stderr)
  with open("%s-%d" % (outputs, step)) as f:
    assert len(f.read().splitlines()) == 2
  gone.append(_read_step_is_gone(model_dir, step))

  exports = tmp_path / "exports"
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO, _DECODE,
                     "--gin_param=utils.run.mode='export_infer'",
                     "--gin_param=utils.run.export_path='%s'" % exports)
  assert result.returncode == 0, result.stderr[-3000:]
  step = _held_step(result.stderr)
  (export_dir,) = glob.glob(str(exports / "*"))
  saved = tf.train.load_checkpoint(os.path.join(export_dir, "variables",
                                                 "variables"))
  assert saved.get_tensor("global_step") == step
  gone.append(_read_step_is_gone(model_dir, step))
  assert any(gone), "no reader's checkpoint was deleted while it was read"
