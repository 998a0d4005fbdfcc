"""The fault and bad-input catalogue: each case is one line, exit 2, no damage.

Every case runs the command line on one shared model_dir (checkpoints at
steps 0, 2, 4) and checks the exit code, the single `mtf_synth: error:` line
(the problem and the fix) and that the model_dir is unchanged: byte for byte
when the run stops before building a graph, checkpoint values when it goes
further (a restart re-writes the latest checkpoint's files with the same
values, and logs its command).
"""

import hashlib
import json
import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cli_runner import T5_TINY_ON_DEMO, checkpoint_digest, mtf_synth
from cli_runner import start_mtf_synth, train_tiny_t5
from mtf_synth.runtime import model_dir_lock


def _replace(args, prefix, new):
  return [new if a.startswith(prefix) else a for a in args]


def _without(args, *prefixes):
  return [a for a in args if not a.startswith(prefixes)]


_EVAL = ["--gin_file=eval.gin",
         "--gin_param=utils.run.dataset_split='validation'"]
_MODEL_API_EVAL = ["--use_model_api", "--mode=eval",
                   "--mixture_or_task=mtf_synth_demo"]

# name: (extra args, texts the error line holds, what may change: "nothing"
# (byte for byte) or "checkpoints" (their values stay)).
CASES = {
    "unknown_task": (
        _replace(T5_TINY_ON_DEMO, "--gin_param=MIXTURE_NAME",
                 "--gin_param=MIXTURE_NAME='mtf_synth_dmeo'"),
        ["unknown task or mixture 'mtf_synth_dmeo'", "mtf_synth_demo"],
        "nothing"),
    "no_task": (
        _without(T5_TINY_ON_DEMO, "--gin_file=dataset.gin",
                 "--gin_param=MIXTURE_NAME"),
        ["no task given", "MIXTURE_NAME", "python -m tasks list"], "nothing"),
    "missing_gin_file": (
        T5_TINY_ON_DEMO + ["--gin_file=models/no_such_model.gin"],
        ["no_such_model.gin", "searched in"], "nothing"),
    "gin_syntax_error_in_param": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps = (3"],
        ["gin cannot parse the config", "fix that line"], "nothing"),
    "unknown_binding": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.no_such_knob=3"],
        ["no_such_knob"], "nothing"),
    "unknown_configurable": (
        T5_TINY_ON_DEMO + ["--gin_param=NoSuchLayer.num_heads=3"],
        ["NoSuchLayer", "--module_import"], "nothing"),
    "train_steps_not_an_integer": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps='abc'"],
        ["utils.run.train_steps='abc' is not a positive integer"], "nothing"),
    "batch_size_zero": pytest.param(  # same check as train_steps_not_an_integer
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.batch_size=0"],
        ["utils.run.batch_size=0 is not a positive integer"], "nothing",
        marks=pytest.mark.slow),
    "batch_not_divisible_by_mesh": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.batch_size=7"],
        ["utils.run.batch_size=7", "utils.run.mesh_shape='model:2,batch:2'",
         "layout_rules", "multiple of 2"], "nothing"),
    "mesh_devices_do_not_match": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.mesh_devices=['/cpu:0']"],
        ["lists 1 devices", "has 4 slices"], "nothing"),
    "layer_gin_value": (
        T5_TINY_ON_DEMO + ["--gin_file=layers/synthesizer.gin",
                           "--gin_param=SynthesizerAttention.mode='randm'"],
        ["SynthesizerAttention.mode 'randm'", "joined by '+'"],
        "checkpoints"),
    "sequence_longer_than_max_length": (
        T5_TINY_ON_DEMO + ["--gin_param=Unitransformer.max_length=32"],
        ["is longer than the model's max_length 32"], "nothing"),
    "train_steps_below_checkpoint": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps=3"],
        ["train_steps=3 is below", "(4)", "train_steps >= 4"], "nothing"),
    "eval_step_that_does_not_exist": (
        T5_TINY_ON_DEMO + _EVAL + ["--gin_param=eval_checkpoint_step=3"],
        ["checkpoint step 3 is not in", "has steps 0, 2, 4",
         "eval_checkpoint_step"], "nothing"),
    "specific_checkpoint_that_does_not_exist": pytest.param(
        T5_TINY_ON_DEMO + _MODEL_API_EVAL + [
            "--checkpoint_mode=specific", "--checkpoint_steps=3"],
        ["checkpoint step 3 is not in", "has steps 0, 2, 4",
         "--checkpoint_steps"], "nothing", marks=pytest.mark.slow),
    "restore_with_another_model": pytest.param(
        T5_TINY_ON_DEMO + ["--gin_param=d_kv=32",
                           "--gin_param=utils.run.train_steps=6"],
        ["SelfAttention/k is float32 [32, 128] in checkpoint",
         "but float32 [32, 64] in the model", "operative_config.gin"],
        "checkpoints", marks=pytest.mark.slow),
    "empty_dataset": (
        _replace(T5_TINY_ON_DEMO, "--gin_param=MIXTURE_NAME",
                 "--gin_param=MIXTURE_NAME='cli_test_empty'")
        + ["--module_import=cli_test_tasks",
           "--gin_param=utils.run.train_steps=6"],
        ["yielded no batch"], "checkpoints"),
}


def tree_digest(path):
  """Hash of every file's relative path and bytes under path."""
  digest = hashlib.sha256()
  for root, dirs, files in os.walk(path):
    dirs.sort()
    for name in sorted(files):
      full = os.path.join(root, name)
      digest.update(os.path.relpath(full, path).encode())
      with open(full, "rb") as f:
        digest.update(f.read())
  return digest.hexdigest()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A model_dir with checkpoints at steps 0, 2 and 4, shared by all cases."""
  return train_tiny_t5(str(tmp_path_factory.mktemp("model")),
                       "utils.run.train_steps=4",
                       "utils.run.save_checkpoints_steps=2")


def _error_line(result, expected, code=2):
  assert result.returncode == code, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines()
            if line.startswith("mtf_synth: error:")]
  assert len(errors) == 1, result.stderr[-3000:]
  for text in expected:
    assert text in errors[0], (text, errors[0])
  assert "Traceback" not in result.stderr
  return errors[0]


def _digest(model_dir, what):
  return (tree_digest(model_dir) if what == "nothing"
          else checkpoint_digest(model_dir))


@pytest.mark.parametrize("case", [
    pytest.param(name, marks=case.marks) if hasattr(case, "marks") else name
    for name, case in sorted(CASES.items())])
def test_bad_input_gives_one_line_error_and_keeps_model_dir(case, model_dir):
  case = CASES[case]
  args, expected, may_change = getattr(case, "values", case)
  before = _digest(model_dir, may_change)
  _error_line(mtf_synth(model_dir, *args), expected)
  assert _digest(model_dir, may_change) == before


def test_corrupt_sentencepiece_model(model_dir, tmp_path, monkeypatch):
  corrupt = tmp_path / "spm.model"
  corrupt.write_bytes(b"\x00not a sentencepiece model\xff" * 4)
  monkeypatch.setenv("MTF_SYNTH_SPM_MODEL", str(corrupt))
  before = tree_digest(model_dir)
  result = mtf_synth(model_dir, *_replace(
      T5_TINY_ON_DEMO, "--gin_param=MIXTURE_NAME",
      "--gin_param=MIXTURE_NAME='ag_news'"))
  _error_line(result, ["SentencePiece model %s cannot be loaded" % corrupt,
                       "_bytes"])
  assert tree_digest(model_dir) == before


def test_undecodable_infer_input_names_file_and_line(model_dir, tmp_path):
  inputs = tmp_path / "inputs.txt"
  inputs.write_bytes(b"reverse: a b\n\xff\xfe binary\n")
  before = tree_digest(model_dir)
  result = mtf_synth(
      model_dir, *T5_TINY_ON_DEMO, "--gin_file=infer.gin",
      "--gin_param=infer_checkpoint_step=-1",
      "--gin_param=input_filename='%s'" % inputs,
      "--gin_param=output_filename='%s'" % (tmp_path / "out.txt"))
  _error_line(result, ["input file %s, line 2, is not UTF-8" % inputs])
  assert tree_digest(model_dir) == before


def test_training_past_train_steps_does_nothing(model_dir):
  before = tree_digest(model_dir)
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO,
                     "--gin_param=utils.run.train_steps=4")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "is at step 4 = train_steps already: nothing to train" in (
      result.stderr)
  assert tree_digest(model_dir) == before


def test_no_checkpoint_creates_nothing(tmp_path):
  absent = tmp_path / "never_trained"
  result = mtf_synth(str(absent), *T5_TINY_ON_DEMO, *_EVAL,
                     "--gin_param=eval_checkpoint_step=-1")
  _error_line(result, ["model_dir %s does not exist" % absent,
                       "train there first"])
  assert os.listdir(tmp_path) == []


def test_second_trainer_refuses_while_the_lock_is_held(model_dir):
  model_dir_lock.acquire(model_dir)  # this test process is the holder
  try:
    before = tree_digest(model_dir)
    result = mtf_synth(model_dir, *T5_TINY_ON_DEMO,
                       "--gin_param=utils.run.train_steps=6")
    _error_line(result, ["being trained by another process",
                         "pid %d" % os.getpid(), "another --model_dir"])
    assert tree_digest(model_dir) == before
  finally:
    model_dir_lock.release(model_dir)


def test_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
  lock = tmp_path / model_dir_lock.LOCK_FILENAME
  stale = {"host": "gone", "pid": 999999, "start_time": "2020-01-01T00:00"}
  lock.write_text(json.dumps(stale))
  model_dir_lock.acquire(str(tmp_path))
  try:
    holder = json.loads(lock.read_text())
    assert holder["pid"] == os.getpid()
    assert "stale lock" in caplog.text and "pid 999999" in caplog.text
  finally:
    model_dir_lock.release(str(tmp_path))
  assert lock.read_text() == ""


@pytest.mark.slow
def test_two_trainers_started_together_one_trains(tmp_path):
  args = T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps=3"]
  first, second = (start_mtf_synth(str(tmp_path), *args, capture=True)
                   for _ in range(2))
  results = []
  for process in (first, second):
    _, stderr = process.communicate(timeout=600)
    results.append(subprocess.CompletedProcess(
        process.args, process.returncode, "", stderr))
  codes = sorted(r.returncode for r in results)
  assert codes == [0, 2], [r.stderr[-2000:] for r in results]
  loser = [r for r in results if r.returncode == 2][0]
  _error_line(loser, ["being trained by another process"])
  assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".index")) == [
      "model.ckpt-0.index", "model.ckpt-3.index"]


def test_no_arguments_prints_usage_and_writes_nothing(tmp_path):
  result = mtf_synth(None, cwd=tmp_path, timeout=300)
  assert result.returncode == 2
  assert "usage: mtf_synth --model_dir=DIR" in result.stderr
  assert "python -m tasks list" in result.stderr
  assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_help_shows_the_main_flags():
  result = mtf_synth(None, "--help", timeout=300)
  # absl's --help exits 1 after printing.
  for flag in ("--model_dir", "--gin_file", "--gin_param", "--tpu"):
    assert flag in result.stdout, flag


def test_model_dir_is_required(tmp_path):
  result = mtf_synth(None, *T5_TINY_ON_DEMO, cwd=tmp_path, timeout=300)
  _error_line(result, ["no --model_dir given", "--model_dir=DIR"])


def test_non_finite_loss_saves_nothing_after_the_bad_step(tmp_path):
  result = mtf_synth(str(tmp_path), *T5_TINY_ON_DEMO,
                     "--gin_param=utils.run.optimizer=@optimize.SgdOptimizer",
                     "--gin_param=utils.run.learning_rate_schedule=1e30",
                     "--gin_param=utils.run.train_steps=50",
                     "--gin_param=utils.run.save_checkpoints_steps=100")
  _error_line(result, ["loss is", "at step", "training stopped before "
                       "saving it"])
  checkpoints = sorted(f for f in os.listdir(tmp_path) if f.endswith(".index"))
  assert checkpoints == ["model.ckpt-0.index"]


def test_unwritable_model_dir(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  result = mtf_synth(str(blocker / "model"), *T5_TINY_ON_DEMO)
  _error_line(result, ["is not writable", "--model_dir"])
  assert blocker.read_text() == "not a directory"


@pytest.mark.slow
def test_failed_save_names_path_and_keeps_previous_checkpoint(model_dir):
  # A file where the saver writes its temporary folder: the save fails as
  # on a full disk, after the restart has re-written checkpoint 4.
  blocker = os.path.join(model_dir, "model.ckpt-6_temp")
  with open(blocker, "w") as f:
    f.write("in the way")
  before = checkpoint_digest(model_dir)
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO,
                     "--gin_param=utils.run.train_steps=6",
                     "--gin_param=utils.run.save_checkpoints_steps=2")
  _error_line(result, ["could not write checkpoint %s/model.ckpt-6" %
                       model_dir, "model.ckpt-4 is kept"])
  assert checkpoint_digest(model_dir) == before
  assert not [f for f in os.listdir(model_dir) if "ckpt-6" in f]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM])
def test_signal_saves_and_resume_is_bit_exact(tmp_path, signum):
  """SIGTERM at a random step, restart: variables equal an unbroken run's."""
  args = T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps=30",
                            "--gin_param=utils.run.save_checkpoints_steps=100"]
  interrupted, straight = str(tmp_path / "a"), str(tmp_path / "b")
  process = start_mtf_synth(interrupted, *args, capture=True)
  first = os.path.join(interrupted, "model.ckpt-0.index")
  deadline = time.time() + 300
  while not os.path.exists(first):
    assert process.poll() is None, "training ended before its checkpoint"
    assert time.time() < deadline, "no checkpoint after 300 s"
    time.sleep(0.2)
  time.sleep(random.uniform(0.5, 4.0))
  process.send_signal(signum)
  _, stderr = process.communicate(timeout=300)
  line = _error_line(subprocess.CompletedProcess(None, process.returncode,
                                                 "", stderr),
                     ["stopped by %s at step" % signal.Signals(signum).name,
                      "run the same command to resume"],
                     code=128 + signum)
  step = int(line.split("at step ")[1].split(",")[0])
  assert 0 < step < 30
  assert tf.train.latest_checkpoint(interrupted).endswith("-%d" % step)
  for model_dir in (interrupted, straight):
    result = mtf_synth(model_dir, *args)
    assert result.returncode == 0, result.stderr[-3000:]
  a = tf.train.load_checkpoint(tf.train.latest_checkpoint(interrupted))
  b = tf.train.load_checkpoint(tf.train.latest_checkpoint(straight))
  names = sorted(a.get_variable_to_shape_map())
  assert names == sorted(b.get_variable_to_shape_map())
  for name in names:
    np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name))
