"""Each bad input gives one clear error line, exit code 2, and no damage."""

import os

import pytest

from cli_runner import T5_TINY_ON_DEMO, checkpoint_digest, mtf_synth


def _replace(args, prefix, new):
  return [new if a.startswith(prefix) else a for a in args]


CASES = {
    "unknown_task": (
        _replace(T5_TINY_ON_DEMO, "--gin_param=MIXTURE_NAME",
                 "--gin_param=MIXTURE_NAME='mtf_synth_dmeo'"),
        ["unknown task or mixture 'mtf_synth_dmeo'", "mtf_synth_demo"]),
    "missing_gin_file": (
        T5_TINY_ON_DEMO + ["--gin_file=models/no_such_model.gin"],
        ["no_such_model.gin", "searched in"]),
    "unknown_binding": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.no_such_knob=3"],
        ["no_such_knob"]),
    "unknown_configurable": (
        T5_TINY_ON_DEMO + ["--gin_param=NoSuchLayer.num_heads=3"],
        ["NoSuchLayer", "--module_import"]),
    "mesh_devices_do_not_match": (
        T5_TINY_ON_DEMO + ["--gin_param=utils.run.mesh_devices=['/cpu:0']"],
        ["lists 1 devices", "has 4 slices"]),
    "sequence_longer_than_max_length": (
        T5_TINY_ON_DEMO + ["--gin_param=Unitransformer.max_length=32"],
        ["is longer than the model's max_length 32"]),
    "empty_dataset": (
        _replace(T5_TINY_ON_DEMO, "--gin_param=MIXTURE_NAME",
                 "--gin_param=MIXTURE_NAME='cli_test_empty'")
        + ["--module_import=cli_test_tasks"],
        ["yielded no batch"]),
    "non_finite_loss": (
        T5_TINY_ON_DEMO + [
            "--gin_param=utils.run.optimizer=@optimize.SgdOptimizer",
            "--gin_param=utils.run.learning_rate_schedule=1e30"],
        ["loss is", "at step", "training stopped before saving it"]),
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A model_dir holding a checkpoint that no error may change."""
  path = str(tmp_path_factory.mktemp("model"))
  result = mtf_synth(path, *T5_TINY_ON_DEMO,
                     "--gin_param=utils.run.train_steps=2")
  assert result.returncode == 0, result.stderr[-3000:]
  return path


def _assert_one_line_error(result, expected):
  assert result.returncode == 2, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines()
            if line.startswith("mtf_synth: error:")]
  assert len(errors) == 1, result.stderr[-3000:]
  for text in expected:
    assert text in errors[0]
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_line_error_and_keeps_checkpoints(case, model_dir):
  args, expected = CASES[case]
  before = checkpoint_digest(model_dir)
  steps = ["--gin_param=utils.run.train_steps=%d" % (
      6 if case == "non_finite_loss" else 4)]
  result = mtf_synth(model_dir, *(args + steps))
  _assert_one_line_error(result, expected)
  if case != "non_finite_loss":
    assert checkpoint_digest(model_dir) == before


def test_non_finite_loss_saves_nothing_after_the_bad_step(tmp_path):
  args, expected = CASES["non_finite_loss"]
  result = mtf_synth(str(tmp_path), *args,
                     "--gin_param=utils.run.train_steps=50",
                     "--gin_param=utils.run.save_checkpoints_steps=100")
  _assert_one_line_error(result, expected)
  checkpoints = sorted(f for f in os.listdir(tmp_path) if f.endswith(".index"))
  assert checkpoints == ["model.ckpt-0.index"]


def test_unwritable_model_dir(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  result = mtf_synth(str(blocker / "model"), *T5_TINY_ON_DEMO)
  _assert_one_line_error(result, ["is not writable", "--model_dir"])
  assert blocker.read_text() == "not a directory"
