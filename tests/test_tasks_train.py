"""Registered tasks train a few steps through the `mtf_synth` command line."""
import pytest

import cli_runner

TINY_MODEL = ["--gin_param=d_model=64", "--gin_param=d_ff=128",
              "--gin_param=num_heads=2", "--gin_param=d_kv=32"]


@pytest.mark.slow
def test_demo_task_trains_a_few_steps(tmp_path):
  task, lengths = "mtf_synth_demo", "{'inputs': 64, 'targets': 64}"
  model_dir = tmp_path / "model"
  result = cli_runner.mtf_synth(
      model_dir, "--gin_file=dataset.gin",
      "--gin_file=models/bi_v1_small.gin",
      f"--gin_param=MIXTURE_NAME='{task}'",
      "--gin_param=utils.run.train_steps=3",
      f"--gin_param=utils.run.sequence_length={lengths}",
      "--gin_param=utils.run.batch_size=('tokens_per_batch', 512)",
      *TINY_MODEL, timeout=500)
  assert result.returncode == 0, result.stderr[-3000:]
  assert (model_dir / "model.ckpt-3.index").exists()
  assert "loss" in result.stderr
