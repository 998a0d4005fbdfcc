"""KernelAttention end to end against a numpy reference of the paper's layer.

"Learning the Transformer Kernel" (Chowdhury et al.): q = x Wq, k = x Wk,
v = x Wv; q and k each scaled by d^-1/4; out_i = phi(q_i) . S_i /
(phi(q_i) . z_i + eps) with S_i, z_i summed over the keys query i sees;
then Wo. The layer runs in a tiny mtf graph, its variables (projections,
kernel parameters, stored draws) are read back and fed to the reference.
"""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import mtf_harness
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import mtf_synth
from mtf_synth.attention import linear
from mtf_synth.layers import kernel_attention
import test_kernel_feature_maps as np_maps

BATCH, LENGTH, D_MODEL, HEADS, D_KV = 2, 12, 16, 2, 8
PAD_FROM = 9  # example 0's positions >= PAD_FROM are padding


def padded_ids():
  ids = np.random.RandomState(0).randint(1, 10, size=(BATCH, LENGTH))
  ids[0, PAD_FROM:] = 0
  return ids


def run_layer(layer, causal, x, ids, variable_dtype=None, init_values=None):
  """The layer's output on x [batch, length, d_model] (as float32) and its
  variables {full name: value}; `init_values` overrides variables. Id 0 is
  padding (sequence_id = min(ids, 1), as mesh TF's Bitransformer makes)."""
  model = transformer.Unitransformer(
      layer_stack=mtf_harness.make_layer_stack([layer]), d_model=D_MODEL,
      input_vocab_size=10, output_vocab_size=10, autoregressive=causal,
      max_length=LENGTH, name="decoder" if causal else "encoder")

  def build(mesh):
    batch = mtf.Dimension("batch", BATCH)
    length = mtf.Dimension("length", LENGTH)
    context = transformer.Context(
        model=model, mesh=mesh, batch_dims=[batch], length_dim=length,
        variable_dtype=variable_dtype or mtf.VariableDType(tf.float32),
        mode="eval", position=mtf.range(mesh, length, tf.int32),
        position_is_default=True,
        sequence_id=mtf.import_tf_tensor(
            mesh, tf.constant(np.minimum(ids, 1), tf.int32), [batch, length]))
    x_mtf = mtf.import_tf_tensor(
        mesh, tf.constant(x, context.activation_dtype),
        [batch, length, model.model_dim])
    with tf.variable_scope("layer"):
      out = layer.call(context, x_mtf)
    return dict(mtf_harness.variable_outputs(mesh),
                out=mtf.cast(out, tf.float32))
  values = mtf_harness.run_mtf(build, init_values=init_values)
  return values.pop("out"), values


def reference_layer(kernel, x, ids, variables, causal, smoothing=1.0):
  """The paper's layer in numpy (float64)."""
  variables = {name.split("/")[-1]: value
               for name, value in variables.items()}
  def heads(w):  # mesh TF's combined {heads * d_kv} -> [.., heads, d_kv]
    return w.reshape(D_MODEL, HEADS, D_KV)
  q, k, v = (np.einsum("bld,dhk->blhk", x, heads(variables[name]))
             for name in ("q", "k", "v"))
  scale = D_KV ** -0.25
  arrays = {name.split("_", 1)[1]: value for name, value in variables.items()
            if name.startswith(("kernel_", "random_"))}
  def phi(t):
    flat = np_maps.np_feature_map(kernel, scale * t.reshape(-1, HEADS, D_KV),
                                  arrays, smoothing)
    return flat.reshape(BATCH, LENGTH, HEADS, -1)
  scores = np.einsum("bihf,bjhf->bhij", phi(q), phi(k))
  if causal:
    scores *= np.tril(np.ones((LENGTH, LENGTH)))
  else:
    scores *= (ids != 0)[:, None, None, :]
  out = (np.einsum("bhij,bjhk->bihk", scores, v)
         / (scores.sum(-1)[..., None].transpose(0, 2, 1, 3)
            + linear.DEFAULT_EPSILON))
  wo = variables["o"].reshape(HEADS, D_KV, D_MODEL)
  return np.einsum("blhk,hkd->bld", out, wo)


@pytest.mark.parametrize("causal", [False, True], ids=["encoder", "decoder"])
@pytest.mark.parametrize("kernel", sorted(kernel_attention.KERNELS))
def test_layer_matches_paper_formula(kernel, causal):
  layer = mtf_synth.KernelAttention(
      kernel=kernel, num_heads=HEADS, key_value_size=D_KV, num_features=32,
      causal_chunk_size=4)
  x = np.random.RandomState(1).randn(BATCH, LENGTH, D_MODEL)
  ids = padded_ids()
  got, variables = run_layer(layer, causal, x, ids)
  want = reference_layer(kernel, x, ids, variables, causal)
  assert np.abs(want).max() > 0.1  # an output with signal to compare
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_query_and_key_weights_start_alike():
  """Wq is initialised like Wk (no softmax 1/sqrt(d) folded into it)."""
  _, variables = run_layer(
      mtf_synth.KernelAttention(kernel="rff", num_heads=HEADS,
                                key_value_size=D_KV),
      False, np.zeros((BATCH, LENGTH, D_MODEL)), padded_ids())
  for name in ("layer/q", "layer/k"):
    assert variables[name].std() == pytest.approx(D_MODEL ** -0.5, rel=0.15)
