"""Slice and activation dtypes off TPU: t5 binds float32 over the config;
`mtf_synth.off_tpu_variable_dtype` says what runs, and a config whose
dtypes do not run as written gets a one-line note."""

import gin
import pytest
import tensorflow.compat.v1 as tf

from mesh_tensorflow.transformer import utils as mtf_utils
from mtf_synth import cli
from mtf_synth import compat

from cli_runner import T5_TINY_ON_DEMO, mtf_synth, scalars


def test_the_knob_outranks_t5s_float32_binding():
  gin.clear_config()
  gin.parse_config("mtf_synth.off_tpu_variable_dtype.activation_dtype = "
                   "'bfloat16'")
  try:
    with compat.variable_dtypes(compat.off_tpu_variable_dtype()):
      with gin.unlock_config():  # what t5's main does without --tpu
        gin.bind_parameter("utils.get_variable_dtype.activation_dtype",
                           "float32")
      dtype = mtf_utils.get_variable_dtype()
    assert dtype.activation_dtype == tf.bfloat16
    assert dtype.slice_dtype == tf.float32
    assert mtf_utils.get_variable_dtype().activation_dtype == tf.float32
  finally:
    gin.clear_config()


def test_a_config_dtype_that_does_not_run_gets_a_note(capsys):
  cli.check_command(T5_TINY_ON_DEMO + [
      "--gin_param=utils.get_variable_dtype.activation_dtype='bfloat16'"])
  notes = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith("mtf_synth: note:")]
  assert notes == [
      "mtf_synth: note: off TPU activation_dtype is float32, not the "
      "config's bfloat16 of utils.get_variable_dtype; set "
      "mtf_synth.off_tpu_variable_dtype.activation_dtype to change it"]
  cli.check_command(T5_TINY_ON_DEMO + [
      "--gin_param=utils.get_variable_dtype.activation_dtype='bfloat16'",
      "--gin_param=mtf_synth.off_tpu_variable_dtype.activation_dtype="
      "'bfloat16'"])
  assert "mtf_synth: note:" not in capsys.readouterr().err


@pytest.mark.slow
def test_bfloat16_activations_run_through_the_command_line(tmp_path):
  """Before the knob, both runs trained in float32 and logged equal losses."""
  losses = {}
  for dtype in ("float32", "bfloat16"):
    model_dir = str(tmp_path / dtype)
    result = mtf_synth(
        model_dir, *T5_TINY_ON_DEMO,
        "--gin_param=utils.run.train_steps=3",
        "--gin_param=mtf_synth.train_loop_settings.log_every_steps=1",
        "--gin_param=mtf_synth.train_loop_settings.summary_every_steps=1",
        "--gin_param=mtf_synth.off_tpu_variable_dtype.activation_dtype="
        "'%s'" % dtype)
    assert result.returncode == 0, result.stderr[-3000:]
    losses[dtype] = scalars(model_dir, "loss")
  assert sorted(losses["float32"]) == sorted(losses["bfloat16"]) == [1, 2, 3]
  for step, loss in losses["float32"].items():
    # bfloat16 keeps 8 bits of mantissa: close, and not the float32 value.
    assert losses["bfloat16"][step] == pytest.approx(loss, rel=0.05)
    assert losses["bfloat16"][step] != loss
