"""The fault and bad-input catalogue: each case is one line, exit 2, no damage.

Every case runs the command line on one shared model_dir (checkpoints at
steps 0, 2, 4) and checks the exit code, the single `mtf_synth: error:` line
(the problem and the fix) and that the model_dir is unchanged: byte for byte
when the run stops before building a graph, checkpoint values when it goes
further (a restart re-writes the latest checkpoint's files with the same
values, and logs its command).
"""

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from cli_runner import T5_TINY_ON_DEMO, checkpoint_digest, mtf_synth
from cli_runner import start_mtf_synth
from mtf_synth import cli
from mtf_synth import errors
from mtf_synth.runtime import model_dir_lock
from mtf_synth.runtime import train_loop


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
    "mesh_devices_that_do_not_exist": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.mesh_devices=['/gpu:0', "
                           "'/gpu:1', '/gpu:2', '/gpu:7']"],
        ["mesh_devices names /gpu:0, which this machine does not have",
         "unbind mesh_devices"], "nothing"),
    "train_steps_beyond_int64": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps="
                           "10000000000000000000000"],
        ["train_steps=10000000000000000000000 is beyond the int64 range",
         "at most 9223372036854775807"], "nothing"),
    "unknown_mode": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.mode='no_such_mode'"],
        ["utils.run.mode='no_such_mode' is not a mode", "perplexity_eval"],
        "nothing"),
    "unknown_flag": (
        T5_TINY_ON_DEMO + ["--no_such_flag=3"],
        ["no_such_flag", "--helpfull"], "nothing"),
    "model_api_mode_not_in_the_flag_enum": (
        T5_TINY_ON_DEMO + ["--use_model_api", "--mode=no_such_mode"],
        ["--mode=no_such_mode", "--helpfull"], "nothing"),
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
def training(tmp_path_factory):
  """The training run that makes the shared model_dir (checkpoints at steps
  0, 2 and 4), from an empty working folder with an empty HOME and TMPDIR:
  (model_dir, CompletedProcess, {"cwd"/"home"/"tmp": folder})."""
  root = tmp_path_factory.mktemp("training")
  folders = {name: root / name for name in ("cwd", "home", "tmp")}
  for folder in folders.values():
    folder.mkdir()
  model_dir = str(root / "model")
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO,
                     "--gin_param=utils.run.train_steps=4",
                     "--gin_param=utils.run.save_checkpoints_steps=2",
                     cwd=folders["cwd"], env={"HOME": str(folders["home"]),
                                              "TMPDIR": str(folders["tmp"])})
  assert result.returncode == 0, result.stderr[-3000:]
  return model_dir, result, folders


@pytest.fixture(scope="module")
def model_dir(training):
  """A model_dir with checkpoints at steps 0, 2 and 4, shared by all cases."""
  return training[0]


def test_training_writes_only_model_dir_and_no_noise(training):
  """Nothing outside model_dir (working folder, HOME, TMPDIR: autograph's
  __autograph_generated_file*.py are removed at exit), no gin search-path
  misses, no cuInit line on a machine without a CUDA driver."""
  _, result, folders = training
  for name, folder in folders.items():
    written = sorted(os.path.relpath(os.path.join(root, f), folder)
                     for root, _, files in os.walk(folder) for f in files)
    # Keras (imported by TF) writes its config once, into a HOME without it.
    assert written == ([os.path.join(".keras", "keras.json")]
                       if name == "home" else []), name
  assert "step 4, loss" in result.stderr
  assert "Path not found" not in result.stderr
  if not cli._has_cuda_driver():  # pylint: disable=protected-access
    assert "Could not find cuda drivers" in result.stderr  # TF's own note
    assert "cuInit" not in result.stderr


def _error_line(result, expected, code=2):
  assert result.returncode == code, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines()
            if line.startswith("mtf_synth: error:")]
  assert len(errors) == 1, result.stderr[-3000:]
  for text in expected:
    assert text in errors[0], (text, errors[0])
  assert "Traceback" not in result.stderr
  assert "In call to configurable" not in result.stderr
  assert "FATAL" not in result.stderr
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


def _infer(model_dir, inputs, outputs, *args):
  return mtf_synth(
      model_dir, *T5_TINY_ON_DEMO, "--gin_file=infer.gin",
      "--gin_param=infer_checkpoint_step=-1", *args,
      "--gin_param=input_filename='%s'" % inputs,
      "--gin_param=output_filename='%s'" % outputs)


@pytest.mark.parametrize("text, expected", [
    (b"reverse: a b\n\xff\xfe binary\n", ", line 2, is not UTF-8"),
    (b"\n", " has no input lines")])
def test_bad_infer_input_names_the_file(model_dir, tmp_path, text, expected):
  inputs = tmp_path / "inputs.txt"
  inputs.write_bytes(text)
  before = tree_digest(model_dir)
  result = _infer(model_dir, inputs, tmp_path / "out.txt")
  _error_line(result, ["input file %s%s" % (inputs, expected)])
  assert tree_digest(model_dir) == before


def test_truncated_infer_inputs_are_counted_in_a_note(model_dir, tmp_path):
  inputs = tmp_path / "inputs.txt"
  inputs.write_text("reverse: a b\nsort: %s\nsort: %s\n" % ("x " * 30,
                                                             "y " * 5000))
  outputs = tmp_path / "out.txt"
  result = _infer(model_dir, inputs, outputs,
                  "--gin_param=Bitransformer.decode.max_decode_length=8")
  assert result.returncode == 0, result.stderr[-3000:]
  notes = [line for line in result.stderr.splitlines()
           if line.startswith("mtf_synth: note:") and str(inputs) in line]
  assert notes == [
      "mtf_synth: note: 2 of the 3 lines of input file %s are longer than "
      "sequence_length['inputs'] = 64 tokens and are cut to it: raise "
      "utils.run.sequence_length (and Unitransformer.max_length) to decode "
      "them whole" % inputs], result.stderr[-3000:]
  with open("%s-4" % outputs) as f:
    assert len(f.read().splitlines()) == 3


def test_init_checkpoint_of_another_shape(model_dir, tmp_path):
  before = checkpoint_digest(model_dir)
  result = mtf_synth(
      str(tmp_path / "new"), *T5_TINY_ON_DEMO, "--gin_param=d_kv=32",
      "--gin_param=utils.run.train_steps=2",
      "--gin_param=utils.run.init_checkpoint='%s/model.ckpt-4'" % model_dir)
  _error_line(result, ["SelfAttention/k", "(32, 64)", "[32, 128]",
                       "utils.run.init_checkpoint must hold the model's "
                       "variables", "operative_config.gin"])
  assert checkpoint_digest(model_dir) == before
  assert not [f for f in os.listdir(tmp_path / "new") if "ckpt" in f]


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


@pytest.mark.slow  # the same check as test_no_checkpoint_creates_nothing's
def test_model_dir_without_checkpoint_stays_empty(tmp_path):
  result = mtf_synth(str(tmp_path), *T5_TINY_ON_DEMO, *_EVAL,
                     "--gin_param=eval_checkpoint_step=-1")
  _error_line(result, ["no checkpoint in model_dir %s" % tmp_path,
                       "train there first"])
  assert os.listdir(tmp_path) == []


@pytest.mark.slow  # the same except clause as gin_syntax_error_in_param
def test_gin_syntax_error_in_a_file(model_dir, tmp_path):
  bad = tmp_path / "bad.gin"
  bad.write_text("utils.run.train_steps = 4\nd_model = (128\n")
  before = tree_digest(model_dir)
  result = mtf_synth(model_dir, *T5_TINY_ON_DEMO, "--gin_file=%s" % bad)
  _error_line(result, ["gin cannot parse the config", "fix that line"])
  assert tree_digest(model_dir) == before


def _save(directory, variables):
  """Writes {name: array} as a checkpoint; returns its path."""
  with tf.Graph().as_default():
    saved = [tf.get_variable(name, initializer=value, use_resource=True)
             for name, value in variables.items()]
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      return tf.train.Saver(saved).save(session,
                                        os.path.join(directory, "model.ckpt"),
                                        global_step=0)


def _model(variables):
  """A graph holding variables {name: (shape, dtype)}."""
  graph = tf.Graph()
  with graph.as_default():
    for name, (shape, dtype) in variables.items():
      tf.get_variable(name, shape, dtype, use_resource=True)
  return graph


def test_checkpoint_variables_the_model_does_not_use_are_listed(tmp_path,
                                                               caplog):
  checkpoint = _save(str(tmp_path), {
      "shared/embedding": np.zeros([4, 2], np.float32),
      "decoder/logits/kernel": np.zeros([2, 4], np.float32)})
  train_loop.check_checkpoint_fits(
      checkpoint, _model({"shared/embedding": ([4, 2], tf.float32)}))
  assert "are not in this model and are not restored" in caplog.text
  assert "decoder/logits/kernel" in caplog.text


def test_model_variable_missing_from_checkpoint_is_named(tmp_path, caplog):
  checkpoint = _save(str(tmp_path), {"a": np.zeros([2], np.float32)})
  model = _model({"a": ([2], tf.float32), "b/kernel": ([3], tf.float32),
                  "c/kernel": ([3], tf.float32)})
  with pytest.raises(errors.CheckpointMismatchError) as raised:
    train_loop.check_checkpoint_fits(checkpoint, model)
  message = str(raised.value)
  assert "\n" not in message
  assert "model variable b/kernel (and 1 more, listed above) is not in " \
         "checkpoint %s" % checkpoint in message
  assert "operative_config.gin" in message
  assert "b/kernel, c/kernel" in caplog.text


@pytest.mark.parametrize("saved, model, expected", [
    (np.zeros([2, 3], np.float32), ([3, 2], tf.float32),
     ["variable w is float32 [2, 3] in checkpoint", "but float32 [3, 2] in "
      "the model", "operative_config.gin"]),
    (np.zeros([2], tf.bfloat16.as_numpy_dtype), ([2], tf.float32),
     ["variable w is bfloat16 [2] in checkpoint", "but float32 [2] in the "
      "model", "utils.get_variable_dtype.master_dtype='bfloat16'"]),
])
def test_shape_or_dtype_mismatch_names_both_and_the_knob(tmp_path, saved,
                                                        model, expected):
  checkpoint = _save(str(tmp_path), {"w": saved})
  with pytest.raises(errors.CheckpointMismatchError) as raised:
    train_loop.check_checkpoint_fits(checkpoint, _model({"w": model}))
  for text in expected:
    assert text in str(raised.value), (text, str(raised.value))


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
  """Exactly one trains; the other exits 2 as soon as it reaches the lock
  (before building its graph), long before the first has trained."""
  args = T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps=3"]
  started = time.time()
  processes = [start_mtf_synth(str(tmp_path), *args, capture=True)
               for _ in range(2)]
  # Read both stderr pipes while waiting, so neither blocks on a full pipe.
  stderrs = [[] for _ in processes]
  readers = [threading.Thread(target=lambda p=p, out=out: out.append(
      p.stderr.read())) for p, out in zip(processes, stderrs)]
  for reader in readers:
    reader.start()
  ended = [None, None]
  while None in ended:
    assert time.time() - started < 600, "trainers still running after 600 s"
    for i, process in enumerate(processes):
      if ended[i] is None and process.poll() is not None:
        ended[i] = time.time() - started
    time.sleep(0.1)
  for reader in readers:
    reader.join()
  results = [subprocess.CompletedProcess(p.args, p.returncode, "", out[0])
             for p, out in zip(processes, stderrs)]
  codes = sorted(r.returncode for r in results)
  assert codes == [0, 2], [r.stderr[-2000:] for r in results]
  winner, loser = sorted(range(2), key=lambda i: -results[i].returncode)[::-1]
  _error_line(results[loser], ["being trained by another process"])
  assert "step 3, loss" in results[winner].stderr
  assert "step 3, loss" not in results[loser].stderr
  # The loser stops at the lock, before any graph is built; the winner
  # still builds, trains and saves after that.
  assert "Trainable Variables" not in results[loser].stderr
  assert ended[loser] < ended[winner], ended
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


@contextlib.contextmanager
def _small_disk(folder, size):
  """A tmpfs of `size` mounted on folder (needs root; skips otherwise)."""
  folder.mkdir()
  if os.geteuid() != 0 or subprocess.run(
      ["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", str(folder)],
      capture_output=True, check=False).returncode != 0:
    pytest.skip("needs root to mount a small tmpfs")
  try:
    yield folder
  finally:
    subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.slow
def test_disk_full_during_a_save(tmp_path):
  """A real full disk: model_dir on a small tmpfs, filled after checkpoint 0
  (needs root to mount it). The save at the end fails with one line naming
  the path, checkpoint 0 is kept, no temporary file is left, and once there
  is space again the same command resumes and finishes."""
  with _small_disk(tmp_path / "disk", "128m") as disk:
    model_dir = str(disk / "model")
    args = T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps=30",
                              "--gin_param=utils.run.save_checkpoints_steps="
                              "1000"]
    process = start_mtf_synth(model_dir, *args, capture=True)
    stderr = []
    reader = threading.Thread(target=lambda: stderr.append(
        process.stderr.read()))
    reader.start()
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(model_dir, "model.ckpt-0.meta")):
      assert process.poll() is None, "training ended before its checkpoint"
      assert time.time() < deadline, "no checkpoint after 300 s"
      time.sleep(0.2)
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
      with pytest.raises(OSError, match="No space left"):
        while True:
          f.write(b"\0" * (1 << 20))
    process.wait(timeout=600)
    reader.join()
    _error_line(subprocess.CompletedProcess(None, process.returncode, "",
                                            stderr[0]),
                ["could not write checkpoint %s/model.ckpt-30 (" % model_dir,
                 "No space left on device",
                 "model.ckpt-0 is kept", "free space"])
    assert tf.train.latest_checkpoint(model_dir).endswith("model.ckpt-0")
    assert not [f for f in os.listdir(model_dir)
                if "_temp" in f or ".tmp" in f or "ckpt-30" in f]
    os.remove(filler)
    result = mtf_synth(model_dir, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert tf.train.latest_checkpoint(model_dir).endswith("model.ckpt-30")


@pytest.mark.slow
def test_disk_full_before_the_first_checkpoint(tmp_path):
  """model_dir on a 6 MB tmpfs (needs root): the graph written before the
  first checkpoint does not fit. One line naming the file, no temporary
  left."""
  with _small_disk(tmp_path / "disk", "6m") as disk:
    model_dir = str(disk / "model")
    result = mtf_synth(model_dir, *T5_TINY_ON_DEMO,
                       "--gin_param=utils.run.train_steps=2")
    _error_line(result, ["could not write %s/graph.pbtxt (" % model_dir,
                         "No space left on device",
                         "before the first checkpoint", "free space"])
    assert not [f for f in os.listdir(model_dir) if ".tmp" in f or "ckpt" in f]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_and_resume_is_bit_exact(tmp_path, signum):
  """SIGTERM (preemption) or SIGINT (Ctrl-C) at a random step, restart:
  variables equal an unbroken run's."""
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
