"""KernelAttention in mesh TF Unitransformers: decoding, causality, masks."""

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import mtf_harness
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import mtf_synth
from mtf_synth import errors
from mtf_synth.layers import kernel_attention

KERNELS = sorted(kernel_attention.KERNELS)
VOCAB = 13
LENGTH = 12


def make_model(layers, autoregressive, name="decoder"):
  return transformer.Unitransformer(
      layer_stack=mtf_harness.make_layer_stack(layers), d_model=16,
      input_vocab_size=VOCAB, output_vocab_size=VOCAB,
      autoregressive=autoregressive, max_length=LENGTH, vocab_divisor=1,
      name=name)


def kernel_layer(kernel, **kwargs):
  return mtf_synth.KernelAttention(kernel=kernel, num_heads=2,
                                   key_value_size=8, **kwargs)


def padding_sequence_id(inputs):
  """min(ids, 1): id 0 is padding, as mesh TF's Bitransformer makes its
  encoder's sequence_id from unpacked inputs."""
  return mtf.minimum(inputs, 1)


def logits_of(model, ids, mode="eval", sequence_id=padding_sequence_id):
  """Builder: logits of `model` on numpy ids (no shift), in `mode`, with
  the Context's sequence_id made by `sequence_id(inputs)` (None: none)."""
  def build(mesh):
    batch = mtf.Dimension("batch", ids.shape[0])
    length = mtf.Dimension("length", ids.shape[1])
    inputs = mtf.import_tf_tensor(mesh, tf.constant(ids, tf.int32),
                                  [batch, length])
    context = transformer.Context(
        model=model, mesh=mesh, batch_dims=[batch], length_dim=length,
        variable_dtype=mtf.VariableDType(tf.float32), mode=mode,
        position=mtf.range(mesh, length, tf.int32), position_is_default=True,
        sequence_id=sequence_id and sequence_id(inputs),
        inputs=inputs)
    with tf.variable_scope(model.name, reuse=tf.AUTO_REUSE):
      return model._call_internal(context, inputs)  # pylint: disable=protected-access
  return build


def random_ids(seed=0, batch=2, length=LENGTH):
  return np.random.RandomState(seed).randint(1, VOCAB, size=(batch, length))


@pytest.mark.parametrize("kernel", KERNELS)
def test_incremental_decode_equals_full_causal(kernel):
  model = make_model([kernel_layer(kernel, causal_chunk_size=4)] * 2, True)
  prefix = 5
  out = mtf_harness.run_mtf(
      lambda mesh: mtf_harness.full_and_incremental_logits(
          mesh, model, random_ids(), prefix))
  full = out["full"][:, prefix:]
  assert full.std() > 0.1  # the logits carry signal to compare
  np.testing.assert_allclose(out["incremental"], full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel", KERNELS)
def test_beam_search_incremental_equals_full_recompute(kernel):
  model = make_model([kernel_layer(kernel, causal_chunk_size=4)] * 2, True)
  mtf_harness.assert_beam_search_matches_full_recompute(model, LENGTH)


@pytest.mark.parametrize("kernel", ["gmm_prf", "fastfood_rks", "performer"])
def test_decoder_is_causal(kernel):
  model = make_model([kernel_layer(kernel, causal_chunk_size=4)], True)
  ids = random_ids()
  changed = ids.copy()
  changed[:, 7] = (changed[:, 7] % (VOCAB - 1)) + 1
  build = lambda ids_in: lambda mesh: {"logits": logits_of(model, ids_in)(mesh)}
  before = mtf_harness.run_mtf(build(ids))["logits"]
  after = mtf_harness.run_mtf(build(changed))["logits"]
  np.testing.assert_allclose(before[:, :7], after[:, :7], atol=1e-6)
  assert np.abs(before[:, 7:] - after[:, 7:]).max() > 1e-3


@pytest.mark.parametrize("kernel", ["gmm_rks", "generative_prf"])
def test_encoder_ignores_padding_keys(kernel):
  model = make_model([kernel_layer(kernel)], False, name="encoder")
  real = random_ids(length=8)
  padded = np.concatenate([real, np.zeros((2, 4), int)], axis=1)
  run = lambda ids: mtf_harness.run_mtf(
      lambda mesh: {"logits": logits_of(model, ids)(mesh)})["logits"]
  np.testing.assert_allclose(run(padded)[:, :8], run(real), rtol=1e-5,
                             atol=1e-5)


def test_encoder_is_bidirectional():
  model = make_model([kernel_layer("gmm_prf")], False, name="encoder")
  ids = random_ids()
  changed = ids.copy()
  changed[:, -1] = (changed[:, -1] % (VOCAB - 1)) + 1
  run = lambda ids_in: mtf_harness.run_mtf(
      lambda mesh: {"logits": logits_of(model, ids_in)(mesh)})["logits"]
  assert np.abs(run(ids)[:, 0] - run(changed)[:, 0]).max() > 1e-4


@pytest.mark.parametrize("redraw, train_equals_eval",
                         [("train", False), ("never", True)])
def test_redraw_in_training_only(redraw, train_equals_eval):
  model = make_model([kernel_layer("rff", redraw_features=redraw)], False,
                     name="encoder")
  ids = random_ids()
  def build(mesh):
    return {"train": logits_of(model, ids, "train")(mesh),
            "eval": logits_of(model, ids, "eval")(mesh),
            "eval_again": logits_of(model, ids, "eval")(mesh)}
  out = mtf_harness.run_mtf(build)
  np.testing.assert_array_equal(out["eval"], out["eval_again"])
  assert np.allclose(out["train"], out["eval"]) == train_equals_eval


@pytest.mark.parametrize("kernel", ["fastfood_prf", "gmm_rks"])
def test_heads_split_over_mesh_gives_same_logits(kernel):
  model = make_model([kernel_layer(kernel, causal_chunk_size=4)], True)
  build = lambda mesh: {"logits": logits_of(model, random_ids())(mesh)}
  one_device = mtf_harness.run_mtf(build)["logits"]
  split = mtf_harness.run_mtf(build, mesh_shape="model:2",
                              layout_rules="heads:model")["logits"]
  np.testing.assert_allclose(split, one_device, rtol=1e-5, atol=1e-5)


def test_default_num_features_and_gin():
  with gin.unlock_config():
    gin.parse_config("mtf_synth.KernelAttention.kernel = 'fastfood_rks'\n"
                     "mtf_synth.KernelAttention.key_value_size = 64")
  try:
    layer = mtf_synth.KernelAttention()
  finally:
    gin.clear_config()
  assert layer.kernel == "fastfood_rks"
  assert layer.num_features == 256


@pytest.mark.parametrize("kwargs", [
    {"kernel": "softmax"},
    {"redraw_features": "sometimes"},
    {"kernel": "gmm_rks", "num_features": 18},
    {"kernel": "fastfood_prf", "key_value_size": 8, "num_features": 12},
    {"kernel": "fastfood_rks", "key_value_size": 12, "num_features": 48},
])
def test_bad_arguments_raise(kwargs):
  with pytest.raises(errors.UserError):
    mtf_synth.KernelAttention(**kwargs)
