"""Linformer and lightweight/dynamic convolutions: math, decoding, masks."""

import mesh_tensorflow as mtf
import mtf_harness
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import mtf_synth
from mtf_synth import errors
from mtf_synth.attention import baselines
from test_kernel_attention import LENGTH
from test_kernel_attention import logits_of
from test_kernel_attention import make_model
from test_kernel_attention import random_ids
from test_kernel_attention import VOCAB
from test_kernel_bfloat16 import layer_graph_ops

B, L, C, H, K = 2, 9, 6, 3, 4


def np_convolution(x, weights, offsets):
  """x [b, l, c]; weights [h, K] or [b, l, h, K] -> [b, l, c]."""
  heads = weights.shape[-2]
  per_head = x.shape[-1] // heads
  out = np.zeros_like(x)
  for i in range(x.shape[1]):
    for w, offset in enumerate(offsets):
      j = i + offset
      if 0 <= j < x.shape[1]:
        kernel = weights[..., w] if weights.ndim == 2 else weights[:, i, :, w]
        out[:, i] += x[:, j] * np.repeat(kernel, per_head, axis=-1)
  return out


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dynamic", [True, False])
def test_depthwise_convolution_matches_numpy(causal, dynamic):
  rng = np.random.RandomState(0)
  x = rng.randn(B, L, C)
  weights = rng.rand(B, L, H, K) if dynamic else rng.rand(H, K)
  offsets = (baselines.causal_offsets if causal
             else baselines.centred_offsets)(K)
  def build(mesh):
    batch, length = mtf.Dimension("batch", B), mtf.Dimension("length", L)
    channel, heads = mtf.Dimension("d_model", C), mtf.Dimension("heads", H)
    window = mtf.Dimension(baselines.WINDOW, K)
    weight_dims = ([batch, length, heads, window] if dynamic
                   else [heads, window])
    x_m = mtf.import_tf_tensor(mesh, tf.constant(x, tf.float32),
                               [batch, length, channel])
    w_m = mtf.import_tf_tensor(mesh, tf.constant(weights, tf.float32),
                               weight_dims)
    out = baselines.depthwise_convolution(
        baselines.windows(x_m, length, offsets), w_m, channel, heads)
    return {"out": mtf.transpose(out, x_m.shape)}
  got = mtf_harness.run_mtf(build)["out"]
  np.testing.assert_allclose(got, np_convolution(x, weights, offsets),
                             rtol=1e-5, atol=1e-5)


def test_project_length_matches_numpy():
  rng = np.random.RandomState(0)
  x, e = rng.randn(B, L, C), rng.randn(L, 4)
  def build(mesh):
    dims = [mtf.Dimension("batch", B), mtf.Dimension("memory_length", L),
            mtf.Dimension("d_kv", C)]
    x_m = mtf.import_tf_tensor(mesh, tf.constant(x, tf.float32), dims)
    e_m = mtf.import_tf_tensor(mesh, tf.constant(e, tf.float32),
                               [dims[1], mtf.Dimension("projected_length", 4)])
    out = baselines.project_length(x_m, e_m, dims[1])
    return {"out": mtf.transpose(out, [dims[0], e_m.shape.dims[1], dims[2]])}
  got = mtf_harness.run_mtf(build)["out"]
  np.testing.assert_allclose(got, np.einsum("blc,lk->bkc", x, e), rtol=1e-5,
                             atol=1e-5)


CONVOLUTIONS = [mtf_synth.LightweightConvolution, mtf_synth.DynamicConvolution]


def conv_layer(cls):
  return cls(kernel_size=K, num_heads=4)


@pytest.mark.parametrize("cls", CONVOLUTIONS)
def test_convolution_incremental_decode_equals_full(cls):
  model = make_model([conv_layer(cls), conv_layer(cls)], True)
  prefix = 3
  out = mtf_harness.run_mtf(
      lambda mesh: mtf_harness.full_and_incremental_logits(
          mesh, model, random_ids(), prefix))
  full = out["full"][:, prefix:]
  assert full.std() > 0.1
  np.testing.assert_allclose(out["incremental"], full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", CONVOLUTIONS)
def test_convolution_beam_search_incremental_equals_full_recompute(cls):
  model = make_model([conv_layer(cls), conv_layer(cls)], True)
  mtf_harness.assert_beam_search_matches_full_recompute(model, LENGTH)


def run_logits(model, ids):
  return mtf_harness.run_mtf(
      lambda mesh: {"logits": logits_of(model, ids)(mesh)})["logits"]


def changed_at(ids, position):
  changed = ids.copy()
  changed[:, position] = (changed[:, position] % (VOCAB - 1)) + 1
  return changed


@pytest.mark.parametrize("cls", CONVOLUTIONS)
@pytest.mark.parametrize("causal", [True, False])
def test_convolution_receptive_field(cls, causal):
  """One layer: changing token t changes exactly the outputs whose window
  holds t: t..t+K-1 when causal, t-K+1+K//2..t+K//2 when centred."""
  model = make_model([conv_layer(cls)], causal,
                     name="decoder" if causal else "encoder")
  ids, t = random_ids(), 6
  delta = np.abs(run_logits(model, ids)
                 - run_logits(model, changed_at(ids, t))).max(axis=(0, 2))
  offsets = (baselines.causal_offsets if causal
             else baselines.centred_offsets)(K)
  affected = {t - offset for offset in offsets}
  for i, change in enumerate(delta):
    if i in affected:
      assert change > 1e-4, (i, delta)
    else:
      assert change < 1e-6, (i, delta)


@pytest.mark.parametrize("cls", CONVOLUTIONS)
def test_encoder_convolution_ignores_padding(cls):
  model = make_model([conv_layer(cls)], False, name="encoder")
  real = random_ids(length=8)
  padded = np.concatenate([real, np.zeros((2, 4), int)], axis=1)
  np.testing.assert_allclose(run_logits(model, padded)[:, :8],
                             run_logits(model, real), rtol=1e-5, atol=1e-5)


def linformer_model():
  return make_model([mtf_synth.Linformer(num_heads=2, key_value_size=8,
                                         projected_length=4)],
                    False, name="encoder")


def test_linformer_ignores_padding_keys():
  """Padded keys project to nothing: their projection rows do not matter."""
  model = linformer_model()
  ids = random_ids()
  ids[:, 8:] = 0
  def build(mesh):
    out = {"logits": logits_of(model, ids)(mesh)}
    out.update(mtf_harness.variable_outputs(mesh))
    return out
  first = mtf_harness.run_mtf(build)
  names = [n for n in first if "length_projection" in n]
  assert len(names) == 2
  rng = np.random.RandomState(5)
  perturbed = {}
  for name in names:
    value = first[name].copy()
    value[8:] = rng.randn(*value[8:].shape)
    perturbed[name] = value
  second = mtf_harness.run_mtf(build, init_values=perturbed)
  np.testing.assert_allclose(second["logits"][:, :8], first["logits"][:, :8],
                             rtol=1e-5, atol=1e-5)
  for name in names:  # the override took effect
    assert not np.allclose(second[name], first[name])


def test_linformer_rejects_decoders():
  model = make_model([mtf_synth.Linformer(num_heads=2, key_value_size=8,
                                          projected_length=4)], True)
  with pytest.raises(errors.UserError, match="encoders only"):
    run_logits(model, random_ids())


@pytest.mark.parametrize("layer", [
    lambda: conv_layer(mtf_synth.LightweightConvolution),
    lambda: conv_layer(mtf_synth.DynamicConvolution),
    lambda: mtf_synth.KernelAttention(kernel="performer", num_heads=2,
                                      key_value_size=8)])
def test_prefix_lms_are_refused(layer):
  """input_full_attention: targets must not see later targets, and the
  prefix must see all of itself; these layers have no form doing both."""
  model = make_model([layer()], True)
  model.input_full_attention = True
  with pytest.raises(errors.UserError, match="no prefix-LM mode"):
    run_logits(model, random_ids())


@pytest.mark.parametrize("layer", [mtf_synth.LightweightConvolution,
                                   mtf_synth.DynamicConvolution])
def test_convolution_heads_must_divide_d_model(layer):
  model = make_model([layer(kernel_size=3, num_heads=3)], False)
  with pytest.raises(errors.UserError, match="num_heads 3"):
    run_logits(model, random_ids())


def test_linformer_softmax_is_float32_under_bfloat16():
  """Logits and softmax in float32 (mesh TF's float32_logits), the weights
  cast to the values' bfloat16 only for the weighted sum."""
  ops, out = layer_graph_ops(
      mtf_synth.Linformer(num_heads=2, key_value_size=8, projected_length=4),
      causal=False)
  scores = [op.outputs[0] for op in ops
            if {"length", "projected_length"}.issubset(
                op.outputs[0].shape.dimension_names)]
  assert [t.dtype for t in scores[:-1]] == [tf.float32] * (len(scores) - 1)
  assert any(t.operation.name == "softmax/exp" for t in scores)
  assert scores[-1].dtype == out.dtype == tf.bfloat16
