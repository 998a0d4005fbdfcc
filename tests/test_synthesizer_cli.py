"""Every Synthesizer variant trains on the embedded task through the
`mtf_synth` command line (gin override of the mode) and decodes.

Slow (about 40 s per variant): pytest -m slow tests/test_synthesizer_cli.py
"""

import re

import pytest

import cli_runner
from mtf_synth.attention import synthesizer as synth

MODES = list(synth.COMPONENTS) + ["random+vanilla", "dense+vanilla"]
LENGTH = 32


def mtf_synth(model_dir, mode, *extra):
  """Runs `python -m mtf_synth` on a tiny encoder-decoder; returns its log."""
  params = [
      "MIXTURE_NAME = 'mtf_synth_demo'",
      "d_model = 64", "num_layers = 1", "d_ff = 128", "num_heads = 2",
      "d_kv = 16",
      "SynthesizerAttention.mode = '%s'" % mode,
      "SynthesizerAttention.max_length = %d" % LENGTH,
      "SynthesizerAttention.num_heads = 2",
      "SynthesizerAttention.key_value_size = 16",
      "utils.run.sequence_length = {'inputs': %d, 'targets': %d}" % (
          LENGTH, LENGTH),
      "utils.run.batch_size = ('tokens_per_batch', 1024)",
      "mtf_synth.train_loop_settings.log_every_steps = 10",
  ] + list(extra)
  done = cli_runner.mtf_synth(
      model_dir, "--gin_file=dataset.gin", "--gin_file=models/bi_v1.gin",
      "--gin_file=layers/synthesizer.gin",
      *("--gin_param=%s" % p for p in params))
  log = done.stdout + done.stderr
  assert done.returncode == 0, log[-3000:]
  return log


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_trains_with_falling_loss_and_decodes(mode, tmp_path):
  log = mtf_synth(tmp_path, mode, "utils.run.train_steps = 60")
  losses = [float(x) for x in re.findall(r"step \d+, loss ([\d.]+)", log)]
  assert len(losses) >= 3, log[-3000:]
  assert losses[-1] < 0.7 * losses[0], losses
  log = mtf_synth(tmp_path, mode, "include 'eval.gin'",
                  "Bitransformer.decode.max_decode_length = %d" % LENGTH,
                  "utils.run.eval_checkpoint_step = -1",
                  "utils.run.eval_summary_dir = '%s'" % (tmp_path / "eval"),
                  "utils.run.batch_size = ('tokens_per_batch', 1024)")
  assert re.search(r"mtf_synth_demo/sequence_accuracy at step 60", log), (
      log[-3000:])
