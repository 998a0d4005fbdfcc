"""Damaged and vanishing checkpoints: found, named, and never used.

A truncated `.data` shard, an empty `.index`, a missing shard, or a
`checkpoint` state file naming deleted files: eval and resume fall back to
the newest intact checkpoint with a warning naming both steps; an explicitly
requested damaged step is a one-line error (exit 2); the checkpoint files
are left as they were.
"""

import hashlib
import os
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cli_runner import T5_TINY_ON_DEMO, mtf_synth, train_tiny_t5
from mtf_synth import errors
from mtf_synth.runtime import checkpoints

_PERPLEXITY_EVAL = ["--gin_param=utils.run.mode='perplexity_eval'",
                    "--gin_param=utils.run.dataset_split='validation'"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A model_dir with checkpoints at steps 0, 2 and 4 (do not change it)."""
  return train_tiny_t5(str(tmp_path_factory.mktemp("trained") / "model"),
                       "utils.run.train_steps=4",
                       "utils.run.save_checkpoints_steps=2")


@pytest.fixture
def model_dir(trained, tmp_path):
  """A copy of `trained` to damage."""
  copy = str(tmp_path / "model")
  shutil.copytree(trained, copy)
  return copy


def _largest_shard(prefix):
  return max(tf.io.gfile.glob(prefix + ".data-*"), key=os.path.getsize)


def truncate_largest_shard(model_dir, step):
  """Cuts the step's largest .data shard in half; returns its path."""
  shard = _largest_shard(checkpoints.path(model_dir, step))
  with open(shard, "r+b") as f:
    f.truncate(os.path.getsize(shard) // 2)
  return shard


def empty_index(model_dir, step):
  index = checkpoints.path(model_dir, step) + ".index"
  open(index, "w").close()
  return index


def delete_files(model_dir, step):
  """Removes every file of the step (the state file still names it)."""
  prefix = checkpoints.path(model_dir, step)
  for name in tf.io.gfile.glob(prefix + ".*"):
    os.remove(name)
  return prefix + ".index"


DAMAGES = {
    "truncated_shard": (truncate_largest_shard, "is truncated or corrupt"),
    "empty_index": (empty_index, "is empty (0 bytes)"),
    "deleted_but_named_by_state_file": (delete_files, "is missing"),
}


def checkpoint_files_digest(model_dir):
  """Hash of the names and bytes of the checkpoint files and state file."""
  digest = hashlib.sha256()
  for name in sorted(os.listdir(model_dir)):
    if name.startswith("model.ckpt-") or name == "checkpoint":
      digest.update(name.encode())
      with open(os.path.join(model_dir, name), "rb") as f:
        digest.update(f.read())
  return digest.hexdigest()


def variables(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def _one_error_line(result):
  assert result.returncode == 2, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines()
           if line.startswith("mtf_synth: error:")]
  assert len(lines) == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert "In call to configurable" not in result.stderr
  return lines[0]


# Unit checks on a small sharded checkpoint (no command line).


def _save_sharded(directory, steps=(0, 2, 4)):
  """Checkpoints of two variables on two devices (two .data shards)."""
  with tf.Graph().as_default():
    with tf.device("/cpu:0"):
      tf.get_variable("a", initializer=np.arange(4096, dtype=np.float32))
    with tf.device("/cpu:1"):
      tf.get_variable("b", initializer=np.ones(8192, np.float32))
    config = tf.ConfigProto(device_count={"CPU": 2})
    with tf.Session(config=config) as session:
      session.run(tf.global_variables_initializer())
      saver = tf.train.Saver(sharded=True)
      for step in steps:
        saver.save(session, os.path.join(directory, "model.ckpt"),
                   global_step=step)


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_problem_names_the_file_and_newest_intact_skips_it(tmp_path, damage):
  directory = str(tmp_path)
  _save_sharded(directory)
  assert checkpoints.problem(checkpoints.path(directory, 4)) is None
  make, what = DAMAGES[damage]
  damaged_file = make(directory, 4)
  found = checkpoints.problem(checkpoints.path(directory, 4))
  assert found.startswith(damaged_file) and what in found, found
  assert checkpoints.newest_intact(directory) == checkpoints.path(directory, 2)
  assert checkpoints.latest_step(directory) == 2
  with pytest.raises(errors.DamagedCheckpointError) as raised:
    checkpoints.check_intact(directory, 4, "eval_checkpoint_step")
  assert damaged_file in str(raised.value)
  assert "intact: 0, 2" in str(raised.value)


def test_missing_shard_is_named(tmp_path):
  directory = str(tmp_path)
  _save_sharded(directory)
  shard = _largest_shard(checkpoints.path(directory, 4))
  os.remove(shard)
  assert checkpoints.problem(checkpoints.path(directory, 4)) == (
      "%s is missing" % shard)


def test_no_intact_checkpoint_is_an_error(tmp_path):
  directory = str(tmp_path)
  _save_sharded(directory, steps=(0, 2))
  empty_index(directory, 0)
  truncate_largest_shard(directory, 2)
  with pytest.raises(errors.DamagedCheckpointError) as raised:
    checkpoints.newest_intact(directory)
  assert "no checkpoint in %s can be restored" % directory in str(
      raised.value)
  assert "step 2:" in str(raised.value) and "step 0:" in str(raised.value)


def test_resume_rewrites_a_state_file_that_names_a_deleted_step(tmp_path):
  directory = str(tmp_path)
  _save_sharded(directory)
  delete_files(directory, 4)
  assert checkpoints.for_resume(directory) == checkpoints.path(directory, 2)
  assert tf.train.latest_checkpoint(directory) == checkpoints.path(
      directory, 2)
  os.remove(os.path.join(directory, "checkpoint"))  # no state file at all
  assert checkpoints.for_resume(directory) == checkpoints.path(directory, 2)
  assert tf.train.latest_checkpoint(directory) == checkpoints.path(
      directory, 2)


def test_pinned_checkpoint_survives_its_deletion(tmp_path):
  directory = str(tmp_path)
  _save_sharded(directory)
  held = checkpoints.pinned(directory)
  expected = variables(checkpoints.path(directory, 4))
  delete_files(directory, 4)
  got = variables(held)
  assert sorted(got) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_array_equal(got[name], value)
  assert checkpoints.unpinned(held) == checkpoints.path(directory, 4)
  assert [n for n in os.listdir(directory) if n.startswith(".mtf_synth")]
  checkpoints.release_pins()
  assert not [n for n in os.listdir(directory) if n.startswith(".mtf_synth")]


def test_every_checkpoint_is_held_in_turn_and_a_deleted_one_skipped(
    tmp_path, caplog):
  """eval_checkpoint_step='all' (or None, each as it is written): each
  checkpoint held while it is read, let go at the next; one a trainer
  deleted before it was reached is skipped with a warning."""
  from mesh_tensorflow.transformer import utils  # pylint: disable=g-import-not-at-top
  directory = str(tmp_path)
  _save_sharded(directory, steps=(2, 4, 6))  # "all" starts after step 0
  expected = variables(checkpoints.path(directory, 6))
  every = iter(utils.get_checkpoint_iterator("all", directory))
  first = next(every)
  assert checkpoints.unpinned(first) == checkpoints.path(directory, 2)
  assert first != checkpoints.path(directory, 2)  # a held copy
  delete_files(directory, 4)
  second = next(every)
  assert checkpoints.unpinned(second) == checkpoints.path(directory, 6)
  assert "model.ckpt-4 was deleted" in caplog.text and "skipped" in caplog.text
  assert not tf.io.gfile.glob(first + ".*")  # let go
  delete_files(directory, 6)
  got = variables(second)
  for name, value in expected.items():
    np.testing.assert_array_equal(got[name], value)
  assert list(every) == []
  assert not tf.io.gfile.glob(second + ".*")
  checkpoints.release_pins()


# The command line.


def _eval_falls_back(model_dir, damage):
  make, what = DAMAGES[damage]
  damaged_file = make(model_dir, 4)
  before = checkpoint_files_digest(model_dir)
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO, *_PERPLEXITY_EVAL,
                     "--gin_param=utils.run.eval_checkpoint_step=-1")
  assert result.returncode == 0, result.stderr[-3000:]
  warnings = [line for line in result.stderr.splitlines()
              if "checkpoint step 4 in %s is damaged (%s" % (
                  model_dir, damaged_file) in line and
              "using step 2, the newest intact checkpoint" in line
              and what in line]
  assert warnings, result.stderr[-3000:]
  assert "eval token_accuracy at step 2:" in result.stderr
  assert "at step 4:" not in result.stderr
  assert checkpoint_files_digest(model_dir) == before
  assert not [n for n in os.listdir(model_dir) if n.startswith(".mtf_synth")]


def test_eval_of_the_latest_falls_back_past_a_truncated_shard(model_dir):
  _eval_falls_back(model_dir, "truncated_shard")


@pytest.mark.slow  # the same path as the truncated shard's, another damage
@pytest.mark.parametrize("damage", ["empty_index",
                                    "deleted_but_named_by_state_file"])
def test_eval_of_the_latest_falls_back(model_dir, damage):
  _eval_falls_back(model_dir, damage)


def test_explicitly_requested_damaged_step_is_an_error(model_dir):
  shard = truncate_largest_shard(model_dir, 4)
  before = checkpoint_files_digest(model_dir)
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO, *_PERPLEXITY_EVAL,
                     "--gin_param=utils.run.eval_checkpoint_step=4")
  line = _one_error_line(result)
  for text in ("checkpoint step 4 in %s is damaged: %s" % (model_dir, shard),
               "is truncated or corrupt", "ask for an intact step with eval_checkpoint_step",
               "intact: 0, 2"):
    assert text in line, (text, line)
  assert checkpoint_files_digest(model_dir) == before


@pytest.mark.parametrize("damage", [
    "empty_index",
    pytest.param("deleted_but_named_by_state_file", marks=pytest.mark.slow)])
def test_resume_falls_back_and_retrains_the_same_weights(trained, model_dir,
                                                         damage):
  """Training resumes from step 2 and writes step 4 again: bit-equal to the
  step 4 it replaces (training is deterministic); steps 0 and 2 stay."""
  original = variables(checkpoints.path(trained, 4))
  make, what = DAMAGES[damage]
  make(model_dir, 4)
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO,
                     "--gin_param=utils.run.train_steps=4",
                     "--gin_param=utils.run.save_checkpoints_steps=2")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "checkpoint step 4 in %s is damaged" % model_dir in result.stderr
  assert what in result.stderr
  assert "using step 2, the newest intact checkpoint" in result.stderr
  assert "Restoring parameters from %s" % checkpoints.path(
      model_dir, 2) in result.stderr
  assert tf.train.latest_checkpoint(model_dir) == checkpoints.path(
      model_dir, 4)
  retrained = variables(checkpoints.path(model_dir, 4))
  assert sorted(retrained) == sorted(original)
  for name, value in original.items():
    np.testing.assert_array_equal(retrained[name], value, err_msg=name)
  for step in (0, 2):
    for name in ("index", "data-00000-of-00002", "data-00001-of-00002"):
      suffix = "model.ckpt-%d.%s" % (step, name)
      with open(os.path.join(trained, suffix), "rb") as a, open(
          os.path.join(model_dir, suffix), "rb") as b:
        assert a.read() == b.read(), suffix


def test_held_files_of_a_killed_reader_are_removed_by_the_next(tmp_path):
  directory = str(tmp_path)
  _save_sharded(directory)
  abandoned = tmp_path / ".mtf_synth_reading_0123abcd"
  abandoned.mkdir()
  (abandoned / "held").write_text("")  # its lock, no longer held
  os.link(checkpoints.path(directory, 4) + ".index",
          abandoned / "model.ckpt-4.index")
  held = checkpoints.pinned(directory)
  try:
    assert not abandoned.exists()
    assert os.path.exists(held + ".index")
  finally:
    checkpoints.release_pins()
