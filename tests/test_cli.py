"""End-to-end tests of the `mtf_synth` command line (t5_mesh_transformer flags).

Each test runs the command line in a subprocess on the generated demo task.
"""

import glob
import os
import time

import pytest
import tensorflow.compat.v1 as tf

from cli_runner import T5_TINY_ON_DEMO, checkpoint_digest, mtf_synth
from cli_runner import scalars, start_mtf_synth, train_tiny_t5


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
  """A tiny T5.1.1 trained 20 steps on a 2x2 CPU mesh, t5's own gin files."""
  return train_tiny_t5(str(tmp_path_factory.mktemp("t5_tiny")),
                       "utils.run.train_steps=20",
                       "utils.run.save_checkpoints_steps=10")


def test_train_writes_checkpoints_and_tensorboard_scalars(trained_dir):
  assert tf.train.latest_checkpoint(trained_dir).endswith("model.ckpt-20")
  assert os.path.exists(os.path.join(trained_dir, "model.ckpt-10.index"))
  losses = scalars(trained_dir, "loss")
  assert losses[20] < losses[5]  # it learns
  for tag in ("steps_per_sec", "tokens_per_sec", "learning_rate"):
    assert scalars(trained_dir, tag), tag
  assert os.path.exists(os.path.join(trained_dir, "operative_config.gin"))


def test_eval_decodes_validation_and_writes_metrics(trained_dir):
  result = mtf_synth(
      trained_dir, *T5_TINY_ON_DEMO, "--gin_file=eval.gin",
      "--gin_param=eval_checkpoint_step=-1",
      "--gin_param=utils.run.dataset_split='validation'",
      "--gin_param=Bitransformer.decode.max_decode_length=64")
  assert result.returncode == 0, result.stderr[-3000:]
  eval_dir = os.path.join(trained_dir, "validation_eval")
  assert glob.glob(os.path.join(eval_dir, "mtf_synth_demo_20_predictions"))
  accuracy = scalars(eval_dir, "eval/mtf_synth_demo/sequence_accuracy")
  assert list(accuracy) == [20]


def test_perplexity_eval(trained_dir):
  result = mtf_synth(
      trained_dir, *T5_TINY_ON_DEMO, "--gin_file=perplexity_eval.gin",
      "--gin_param=eval_checkpoint_step=-1",
      "--gin_param=utils.run.perplexity_eval_steps=2")
  assert result.returncode == 0, result.stderr[-3000:]
  (eval_dir,) = glob.glob(os.path.join(trained_dir, "eval_*"))
  token_accuracy = scalars(eval_dir, "token_accuracy")
  assert 0.0 < token_accuracy[20] <= 1.0


def test_perplexity_eval_stops_where_the_split_ends(trained_dir):
  """1000 batches asked of a 500-example split (batch 8): 63 batches run
  (the last one part padding), and the token-weighted metrics equal those
  of asking for exactly 63."""
  def perplexity_eval(steps):
    result = mtf_synth(
        trained_dir, *T5_TINY_ON_DEMO, "--gin_file=perplexity_eval.gin",
        "--gin_param=eval_checkpoint_step=-1",
        "--gin_param=utils.run.dataset_split='validation'",
        "--gin_param=utils.run.perplexity_eval_steps=%d" % steps)
    assert result.returncode == 0, result.stderr[-3000:]
    (eval_dir,) = glob.glob(os.path.join(
        trained_dir, "eval_mtf_synth_demo_validation_%d" % (8 * steps)))
    return result.stderr, eval_dir

  log, asked_1000 = perplexity_eval(1000)
  assert "the data ended after 63 of 1000 batches" in log
  log, asked_63 = perplexity_eval(63)
  assert "the data ended" not in log
  for tag in ("neg_log_perplexity", "token_accuracy"):
    assert scalars(asked_63, tag), tag
    assert scalars(asked_1000, tag) == scalars(asked_63, tag), tag


def test_infer_from_file_writes_text(trained_dir, tmp_path):
  inputs = tmp_path / "inputs.txt"
  inputs.write_text("reverse: a b c\nsort: c b a\n")
  outputs = tmp_path / "outputs.txt"
  result = mtf_synth(
      trained_dir, *T5_TINY_ON_DEMO, "--gin_file=infer.gin",
      "--gin_param=infer_checkpoint_step=-1",
      "--gin_param=Bitransformer.decode.max_decode_length=16",
      "--gin_param=input_filename='%s'" % inputs,
      "--gin_param=output_filename='%s'" % outputs)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = open(str(outputs) + "-20").read().splitlines()
  assert len(lines) == 2
  assert not any(line.startswith("b'") for line in lines)


def test_export_infer_writes_a_servable_saved_model(trained_dir, tmp_path):
  result = mtf_synth(
      trained_dir, *T5_TINY_ON_DEMO,
      "--gin_param=utils.run.mode='export_infer'",
      "--gin_param=utils.run.export_path='%s'" % tmp_path,
      "--gin_param=Bitransformer.decode.max_decode_length=16")
  assert result.returncode == 0, result.stderr[-3000:]
  (export_dir,) = glob.glob(str(tmp_path / "*"))
  with tf.Graph().as_default(), tf.Session() as session:
    meta_graph = tf.saved_model.loader.load(session, ["serve"], export_dir)
    signature = meta_graph.signature_def["serving_default"]
    outputs = session.run(
        signature.outputs["outputs"].name,
        {signature.inputs["inputs"].name: ["reverse: a b", "sort: b a"]})
  assert outputs.shape == (2,) and outputs.dtype == object


def test_bi_v1_made_small_trains(tmp_path):
  result = mtf_synth(
      str(tmp_path), "--gin_file=dataset.gin", "--gin_file=models/bi_v1.gin",
      "--gin_param=MIXTURE_NAME='mtf_synth_demo'",
      "--gin_param=d_model=32", "--gin_param=d_ff=64",
      "--gin_param=num_heads=2", "--gin_param=d_kv=16",
      "--gin_param=num_layers=1", "--gin_param=utils.run.batch_size=4",
      "--gin_param=utils.run.sequence_length={'inputs': 64, 'targets': 64}",
      "--gin_param=utils.run.mesh_shape='model:2,batch:2'",
      "--gin_param=utils.run.train_steps=3")
  assert result.returncode == 0, result.stderr[-3000:]
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-3")


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
  args = T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps=40",
                            "--gin_param=utils.run.save_checkpoints_steps=10"]
  uninterrupted, interrupted = str(tmp_path / "a"), str(tmp_path / "b")
  process = start_mtf_synth(interrupted, *args)
  try:
    while not os.path.exists(os.path.join(interrupted, "model.ckpt-10.index")):
      assert process.poll() is None, "training ended before its checkpoint"
      time.sleep(0.2)
  finally:
    process.kill()  # SIGKILL, mid-training
    process.wait()
  assert not os.path.exists(os.path.join(interrupted, "model.ckpt-40.index"))
  resumed = mtf_synth(interrupted, *args)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Skipping" in resumed.stderr  # the data position is restored
  # The killed trainer's lock is stale: taken over with a warning.
  assert "taking over the stale lock" in resumed.stderr
  straight = mtf_synth(uninterrupted, *args)
  assert straight.returncode == 0, straight.stderr[-3000:]
  for model_dir in (interrupted, uninterrupted):
    assert tf.train.latest_checkpoint(model_dir).endswith("model.ckpt-40")
  assert scalars(interrupted, "loss")[40] == pytest.approx(
      scalars(uninterrupted, "loss")[40], abs=1e-5)
