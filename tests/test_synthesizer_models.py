"""SynthesizerAttention inside mesh TF models: causality, packing, decoding,
fixed random tables, and layout independence."""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
from mesh_tensorflow.transformer import transformer_layers
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_harness import run_mtf, train_mtf
from mtf_synth.attention import synthesizer as synth
from mtf_synth.layers.synthesizer import SynthesizerAttention

VOCAB, D_MODEL, LENGTH = 24, 16, 8
COMPONENTS = list(synth.COMPONENTS)
ALL_MIXED = "+".join(COMPONENTS)


def stack(layers):
  """A LayerStack with mesh TF's default sublayers (no dropout), named."""
  for i, layer in enumerate(layers):
    layer.set_name("layer_%03d" % i)
  return transformer.LayerStack(
      layers, sublayers_initial=[],
      sublayers_per_layer=[transformer.sublayer_rms_norm,
                           transformer.sublayer_call_layer,
                           transformer.sublayer_residual],
      sublayers_final=[transformer.sublayer_rms_norm])


def synthesizer(mode, max_length=None):
  """max_length None: the model's positional max_length (LENGTH)."""
  return SynthesizerAttention(mode=mode, num_heads=2, key_value_size=4,
                              factorized_random_rank=3, max_length=max_length)


def unitransformer(mode, autoregressive=True, name="decoder", enc_dec=False,
                   output_vocab=VOCAB, positional_embedding=True):
  layers = [synthesizer(mode, None if positional_embedding else LENGTH)]
  if enc_dec:
    layers.append(transformer_layers.EncDecAttention(num_heads=2,
                                                     key_value_size=4))
  layers.append(transformer_layers.DenseReluDense(hidden_size=32))
  return transformer.Unitransformer(
      stack(layers), d_model=D_MODEL, input_vocab_size=VOCAB,
      output_vocab_size=output_vocab, autoregressive=autoregressive,
      max_length=LENGTH, vocab_divisor=1, name=name,
      positional_embedding=positional_embedding)


def bitransformer(mode):
  return transformer.Bitransformer(
      unitransformer(mode, autoregressive=False, name="encoder",
                     output_vocab=None),
      unitransformer(mode, enc_dec=True))


def ints(mesh, values, names=("batch", "length")):
  values = np.asarray(values, np.int32)
  dims = [mtf.Dimension(n, s) for n, s in zip(names, values.shape)]
  return mtf.import_tf_tensor(mesh, tf.constant(values), dims)


def logits_of(model, inputs, **kwargs):
  return model.call_simple(inputs, None, compute_loss=False, mode="eval",
                           **kwargs)[0]


@pytest.mark.parametrize("mode", COMPONENTS + ["random+vanilla"])
def test_decoder_is_causal(mode):
  """Changing tokens from position 4 on leaves logits before 4 unchanged."""
  rng = np.random.RandomState(0)
  ids = rng.randint(2, VOCAB, size=(2, LENGTH))
  changed = ids.copy()
  changed[:, 4:] = (ids[:, 4:] + 1 + rng.randint(0, VOCAB - 3, (2, 4))) % (
      VOCAB - 2) + 2

  def build(mesh):
    model = unitransformer(mode)
    return {"a": logits_of(model, ints(mesh, ids)),
            "b": logits_of(model, ints(mesh, changed))}

  out = run_mtf(build)
  np.testing.assert_allclose(out["a"][:, :4], out["b"][:, :4], atol=1e-6)
  assert not np.allclose(out["a"][:, 4:], out["b"][:, 4:], atol=1e-4)


@pytest.mark.parametrize("autoregressive,positional_embedding", [
    (False, True), (True, True), (True, False)])
@pytest.mark.parametrize("mode", COMPONENTS + ["dense+vanilla"])
def test_packed_equals_unpacked(mode, autoregressive, positional_embedding):
  """Two examples packed in one row give the logits they give alone.

  Without a positional embedding (T5's setting) mesh TF drops the packed
  positions, so the layer must count them from sequence_id.
  """
  rng = np.random.RandomState(1)
  first, second = rng.randint(2, VOCAB, 3), rng.randint(2, VOCAB, 4)
  packed = [np.concatenate([first, second, [0]])]
  packed_id = [[1, 1, 1, 2, 2, 2, 2, 0]]
  packed_position = [[0, 1, 2, 0, 1, 2, 3, 0]]
  unpacked = np.zeros((2, LENGTH), np.int32)
  unpacked[0, :3], unpacked[1, :4] = first, second

  def build(mesh):
    model = unitransformer(mode, autoregressive=autoregressive,
                           positional_embedding=positional_embedding)
    return {
        "packed": logits_of(model, ints(mesh, packed),
                            sequence_id=ints(mesh, packed_id),
                            position=ints(mesh, packed_position)),
        "unpacked": logits_of(model, ints(mesh, unpacked),
                              sequence_id=ints(mesh, np.minimum(unpacked, 1))),
    }

  out = run_mtf(build)
  np.testing.assert_allclose(out["packed"][0, :3], out["unpacked"][0, :3],
                             atol=1e-5)
  np.testing.assert_allclose(out["packed"][0, 3:7], out["unpacked"][1, :4],
                             atol=1e-5)


def lm_loss(mode, batch_size=4, packed=False):
  """A decoder-only language-model loss builder on fixed random tokens.

  packed: each row holds two examples (3 + 4 tokens, then padding).
  """
  targets = np.random.RandomState(3).randint(2, VOCAB, (batch_size, LENGTH))
  targets[0, 6:] = 0
  packing = {}
  if packed:
    targets[:, 7] = 0
    packing = {"sequence_id": [[1, 1, 1, 2, 2, 2, 2, 0]] * batch_size,
               "position": [[0, 1, 2, 0, 1, 2, 3, 0]] * batch_size}

  def build(mesh):
    model = unitransformer(mode)
    t = ints(mesh, targets)
    kwargs = {k: ints(mesh, v) for k, v in packing.items()}
    kwargs.setdefault("sequence_id", mtf.minimum(t, 1))
    return model.call_simple(
        transformer.autoregressive_inputs(t, kwargs["sequence_id"]), t,
        compute_loss=True, mode="train", **kwargs)[1]
  return build


def test_fixed_random_is_not_trained():
  result = train_mtf(lm_loss("fixed_random+random"), steps=3)
  fixed = [n for n in result["before"] if "/fixed_random/" in n]
  trained = [n for n in result["before"] if "/random/" in n]
  assert fixed and trained
  assert not any("/fixed_random/" in n for n in result["trainable"])
  # Its TF master variable is not trainable either. (Mesh TF's lowering
  # makes per-device "_slice_N" copies of every variable that TF lists as
  # trainable; mtf optimizers never see those.)
  assert not [n for n in result["tf_trainable"]
              if "/fixed_random/" in n and "_slice_" not in n]
  for name in fixed:
    np.testing.assert_array_equal(result["before"][name],
                                  result["after"][name])
  for name in trained:  # the same kind of table, trainable, did move
    assert not np.allclose(result["before"][name], result["after"][name])
  assert result["losses"][-1] < result["losses"][0]


def test_bitransformer_loss_is_layout_independent():
  """One device vs model:2,batch:2 with heads:model,batch:batch."""
  inputs_np = np.random.RandomState(4).randint(2, VOCAB, (4, LENGTH))
  targets_np = np.random.RandomState(5).randint(2, VOCAB, (4, LENGTH))
  inputs_np[1, 6:] = targets_np[2, 5:] = 0

  def build(mesh):
    model = bitransformer(ALL_MIXED)
    loss = model.call_simple(ints(mesh, inputs_np), ints(mesh, targets_np),
                             compute_loss=True, mode="eval")[1]
    return {"loss": loss}

  one = run_mtf(build, seed=6)["loss"]
  split = run_mtf(build, mesh_shape="model:2,batch:2",
                  layout_rules="heads:model,batch:batch", seed=6)["loss"]
  np.testing.assert_allclose(one, split, rtol=1e-5, atol=1e-5)


def test_packed_training_is_layout_independent():
  """Losses over a few training steps (packed rows, so the gather path and
  its gradients) agree on one device and on a model:2,batch:2 mesh."""
  one = train_mtf(lm_loss(ALL_MIXED, packed=True), steps=3, seed=7)["losses"]
  assert one[-1] < one[0]
  split = train_mtf(lm_loss(ALL_MIXED, packed=True), steps=3, seed=7,
                    mesh_shape="model:2,batch:2",
                    layout_rules="heads:model,batch:batch")["losses"]
  np.testing.assert_allclose(one, split, rtol=1e-5, atol=1e-5)


def test_example_gin_file_builds_synthesizer_stacks():
  import os  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(__file__), "..", "gin", "layers",
                      "synthesizer.gin")
  with gin.unlock_config():
    gin.clear_config()
    try:
      gin.parse_config_file(path)
      with gin.config_scope("decoder"):
        layers = transformer.make_layer_stack().layers
    finally:
      gin.clear_config()
  assert [type(l).__name__ for l in layers[:3]] == [
      "SynthesizerAttention", "EncDecAttention", "DenseReluDense"]
  assert layers[0].members == ["random", "vanilla"]
  assert layers[0].max_length == 512
