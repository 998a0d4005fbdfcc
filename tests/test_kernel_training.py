"""Every kernel and baseline layer trains through the `mtf_synth` command line.

A tiny encoder-decoder (one layer, d_model 64) learns the generated
`mtf_synth_reverse` task for 200 steps; the logged loss must fall.
"""

import re

import pytest

import cli_runner
from mtf_synth.layers import kernel_attention

KERNELS = list(kernel_attention.KERNELS)
TINY_MODEL = ["d_model=64", "num_layers=1", "d_ff=128", "num_heads=2",
              "d_kv=16", "KernelAttention.num_heads=2",
              "KernelAttention.key_value_size=16"]
STEPS = 200


def convolution_stacks(name):
  return [
      "encoder/make_layer_stack.layers = [@mtf_synth.%s, "
      "@transformer_layers.DenseReluDense]" % name,
      "decoder/make_layer_stack.layers = [@mtf_synth.%s, "
      "@transformer_layers.EncDecAttention, "
      "@transformer_layers.DenseReluDense]" % name,
      "%s.kernel_size = 5" % name, "%s.num_heads = 4" % name]

LAYERS = dict(
    [(k, ["KernelAttention.kernel = '%s'" % k]) for k in KERNELS] + [
        ("linformer", [
            "encoder/make_layer_stack.layers = [@mtf_synth.Linformer, "
            "@transformer_layers.DenseReluDense]",
            "decoder/make_layer_stack.layers = ["
            "@transformer_layers.SelfAttention, "
            "@transformer_layers.EncDecAttention, "
            "@transformer_layers.DenseReluDense]",
            "Linformer.num_heads = 2", "Linformer.key_value_size = 16",
            "Linformer.projected_length = 16"]),
        ("lightweight_conv", convolution_stacks("LightweightConvolution")),
        ("dynamic_conv", convolution_stacks("DynamicConvolution")),
    ])


def train_losses(model_dir, gin_params):
  """Runs `python -m mtf_synth`; returns {step: loss} from its log."""
  params = TINY_MODEL + gin_params + [
      "MIXTURE_NAME = 'mtf_synth_reverse'",
      "utils.run.train_steps = %d" % STEPS,
      "utils.run.sequence_length = {'inputs': 32, 'targets': 32}",
      "utils.run.batch_size = ('tokens_per_batch', 512)",
      "mtf_synth.train_loop_settings.log_every_steps = 20"]
  result = cli_runner.mtf_synth(
      model_dir, "--gin_file=dataset.gin",
      "--gin_file=models/bi_bert_base.gin",
      "--gin_file=layers/kernel_attention.gin",
      *("--gin_param=%s" % p for p in params), timeout=500)
  assert result.returncode == 0, result.stderr[-3000:]
  return {int(step): float(loss) for step, loss in re.findall(
      r"step (\d+), loss ([0-9.]+)", result.stderr)}


@pytest.mark.slow
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layer_trains_with_falling_loss(layer, tmp_path):
  losses = train_losses(tmp_path / "model", LAYERS[layer])
  steps = sorted(losses)
  assert steps and steps[-1] == STEPS, losses
  first, last = losses[steps[0]], sum(losses[s] for s in steps[-3:]) / 3
  assert last < 0.8 * first, losses
