"""Linear attention core against the explicit kernel-matrix computation."""

import mesh_tensorflow as mtf
import mtf_harness
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_synth.attention import linear

B, H, L, F, V = 2, 3, 10, 6, 4
EPS = linear.DEFAULT_EPSILON


@pytest.fixture(name="qkv")
def fixture_qkv():
  rng = np.random.RandomState(0)
  q = rng.rand(B, H, L, F) + 0.1   # positive features, like phi's
  k = rng.rand(B, H, L, F) + 0.1
  v = rng.randn(B, H, L, V)
  return q, k, v


def explicit_attention(q, k, v, visible):
  """The L x L kernel matrix K = phi(q) phi(k)^T, masked and normalised."""
  kernel = np.einsum("bhif,bhjf->bhij", q, k) * visible
  return (np.einsum("bhij,bhjv->bhiv", kernel, v)
          / (kernel.sum(-1, keepdims=True) + EPS))


def import_qkv(mesh, q, k, v, key_length_name):
  b, h = mtf.Dimension("batch", B), mtf.Dimension("heads", H)
  length = mtf.Dimension("length", L)
  key_length = mtf.Dimension(key_length_name, L)
  features = mtf.Dimension("features", F)
  value = mtf.Dimension("d_kv", V)
  def imported(array, dims):
    return mtf.import_tf_tensor(mesh, tf.constant(array, tf.float32), dims)
  return (imported(q, [b, h, length, features]),
          imported(k, [b, h, key_length, features]),
          imported(v, [b, h, key_length, value]), features, length, key_length)


def test_non_causal_with_padding_matches_kernel_matrix(qkv):
  q, k, v = qkv
  key_mask = np.ones((B, L))
  key_mask[0, 7:] = 0  # padding keys of example 0
  def build(mesh):
    q_m, k_m, v_m, features, length, memory = import_qkv(
        mesh, q, k, v, "memory_length")
    del length
    mask = mtf.import_tf_tensor(
        mesh, tf.constant(key_mask, tf.float32),
        [q_m.shape.dims[0], memory])
    out = linear.linear_attention(q_m, k_m, v_m, features, memory,
                                  key_mask=mask)
    return {"out": mtf.transpose(out, q_m.shape.dims[:3] + v_m.shape.dims[3:])}
  got = mtf_harness.run_mtf(build)["out"]
  visible = np.broadcast_to(key_mask[:, None, None, :], (B, H, L, L))
  np.testing.assert_allclose(got, explicit_attention(q, k, v, visible),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 5, 64])
def test_causal_matches_lower_triangular_kernel_matrix(qkv, chunk_size):
  q, k, v = qkv
  def build(mesh):
    q_m, k_m, v_m, features, length, _ = import_qkv(mesh, q, k, v, "length")
    out = linear.causal_linear_attention(q_m, k_m, v_m, features, length,
                                         chunk_size=chunk_size)
    return {"out": mtf.transpose(out, q_m.shape.dims[:3] + v_m.shape.dims[3:])}
  got = mtf_harness.run_mtf(build)["out"]
  visible = np.tril(np.ones((L, L)))
  np.testing.assert_allclose(got, explicit_attention(q, k, v, visible),
                             rtol=1e-5, atol=1e-5)


def test_running_state_equals_causal(qkv):
  q, k, v = qkv
  def build(mesh):
    q_m, k_m, v_m, features, length, _ = import_qkv(mesh, q, k, v, "length")
    kv = mtf.zeros(mesh, [q_m.shape.dims[0], q_m.shape.dims[1], features,
                          v_m.shape.dims[-1]])
    k_sum = mtf.zeros(mesh, [q_m.shape.dims[0], q_m.shape.dims[1], features])
    steps = []
    for t in range(L):
      kv, k_sum = linear.update_state(
          kv, k_sum, mtf.gather(k_m, t, length), mtf.gather(v_m, t, length))
      steps.append(linear.attend_to_state(mtf.gather(q_m, t, length), kv,
                                          k_sum, features))
    incremental = mtf.stack(steps, "length", axis=2)
    causal = linear.causal_linear_attention(q_m, k_m, v_m, features, length,
                                            chunk_size=4)
    return {"incremental": incremental,
            "causal": mtf.transpose(causal, incremental.shape)}
  out = mtf_harness.run_mtf(build)
  np.testing.assert_allclose(out["incremental"], out["causal"], rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(
      out["causal"], explicit_attention(q, k, v, np.tril(np.ones((L, L)))),
      rtol=1e-5, atol=1e-5)


def test_future_keys_do_not_change_causal_outputs(qkv):
  q, k, v = qkv
  k2, v2 = k.copy(), v.copy()
  k2[:, :, 6:] += 1.0
  v2[:, :, 6:] -= 2.0
  def causal(k_in, v_in):
    def build(mesh):
      q_m, k_m, v_m, features, length, _ = import_qkv(mesh, q, k_in, v_in,
                                                      "length")
      out = linear.causal_linear_attention(q_m, k_m, v_m, features, length,
                                           chunk_size=4)
      return {"out": mtf.transpose(out,
                                   q_m.shape.dims[:3] + v_m.shape.dims[3:])}
    return mtf_harness.run_mtf(build)["out"]
  before, after = causal(k, v), causal(k2, v2)
  np.testing.assert_allclose(before[:, :, :6], after[:, :, :6], atol=1e-6)
  assert np.abs(before[:, :, 6:] - after[:, :, 6:]).max() > 1e-2
