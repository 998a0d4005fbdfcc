"""Linear attention with a feature map, as pure functions of mtf dims.

  out_i = phi(q_i) . S / (phi(q_i) . z + eps),
  S = sum_j phi(k_j) v_j^T,  z = sum_j phi(k_j)

over visible keys j (Katharopoulos et al. 2020). Cost is linear in length:
the L x L attention matrix is never formed. One core serves three modes:

  full (encoder)   S, z summed over all unmasked keys (`linear_attention`)
  causal           S_i, z_i summed over j <= i (`causal_linear_attention`),
                   by chunks: a quadratic masked product inside each chunk
                   of `chunk_size` positions and prefix sums of per-chunk
                   states across chunks, so memory is O(L/C * F * d_v + L * C)
                   instead of O(L * F * d_v) for per-position prefix sums
  incremental      a running state (S, z) updated by one key per step
                   (`update_state`, `attend_to_state`); it equals the causal
                   computation at every position

Dims: features are phi(q) with {features}, phi(k) and v with the memory
length dim (full) or the same length dim (causal); v carries `value_dim`.
"""

import mesh_tensorflow as mtf
import tensorflow.compat.v1 as tf

DEFAULT_EPSILON = 1e-6


def state_from_keys(k_features, v, length_dim, key_mask=None):
  """S = sum_j phi(k_j) v_j^T and z = sum_j phi(k_j) over `length_dim`.

  Args:
    k_features: phi(k), with `length_dim` and "features".
    v: values, with `length_dim` and the value dim.
    length_dim: the dim summed over (memory_length or length).
    key_mask: optional 0/1 Tensor broadcastable to k_features; masked keys
      (padding, or positions not decoded yet) contribute nothing.
  Returns:
    (S, z): S without `length_dim`, with features and value dims; z with
    features.
  """
  if key_mask is not None:
    k_features *= key_mask
  kv = mtf.einsum([k_features, v],
                  output_shape=mtf.Shape(
                      [d for d in k_features.shape.dims if d != length_dim]
                      + [d for d in v.shape.dims
                         if d not in k_features.shape.dims]))
  return kv, mtf.reduce_sum(k_features, reduced_dim=length_dim)


def attend_to_state(q_features, kv, k_sum, features_dim,
                    epsilon=DEFAULT_EPSILON):
  """phi(q) . S / (phi(q) . z + eps)."""
  numerator = mtf.einsum(
      [q_features, kv],
      output_shape=mtf.Shape(
          [d for d in q_features.shape.dims if d != features_dim]
          + [d for d in kv.shape.dims
             if d not in q_features.shape.dims]))
  denominator = mtf.einsum([q_features, k_sum],
                           output_shape=q_features.shape - features_dim)
  return numerator / (denominator + epsilon)


def linear_attention(q_features, k_features, v, features_dim,
                     memory_length_dim, key_mask=None,
                     epsilon=DEFAULT_EPSILON):
  """Non-causal linear attention: every query sees every unmasked key."""
  kv, k_sum = state_from_keys(k_features, v, memory_length_dim, key_mask)
  return attend_to_state(q_features, kv, k_sum, features_dim, epsilon)


def update_state(kv, k_sum, k_features, v):
  """Adds one key/value (no length dim) to the running state (S, z)."""
  kv += mtf.einsum([k_features, v], output_shape=kv.shape)
  return kv, k_sum + k_features


def causal_linear_attention(q_features, k_features, v, features_dim,
                            length_dim, chunk_size=64,
                            epsilon=DEFAULT_EPSILON):
  """Causal linear attention: query i sees keys j <= i.

  Args:
    q_features: phi(q), with `length_dim` and `features_dim`.
    k_features: phi(k), with `length_dim` and `features_dim`.
    v: values, with `length_dim`.
    features_dim: the feature mtf.Dimension.
    length_dim: the (unsplit) sequence dim shared by queries and keys.
    chunk_size: positions per chunk; the largest divisor of the length not
      above it is used. 1 gives plain prefix sums, the length gives the
      masked quadratic form; all give the same result.
    epsilon: added to the normaliser.
  Returns:
    a Tensor with the dims of v (q's batch/head dims, `length_dim`, value).
  """
  chunk_size = max(c for c in range(1, min(chunk_size, length_dim.size) + 1)
                   if length_dim.size % c == 0)
  chunks_dim = mtf.Dimension("chunks", length_dim.size // chunk_size)
  chunk_dim = mtf.Dimension("chunk", chunk_size)
  key_chunk_dim = mtf.Dimension("key_chunk", chunk_size)

  def split(x, inner_dim):
    i = x.shape.dims.index(length_dim)
    return mtf.reshape(x, x.shape.dims[:i] + [chunks_dim, inner_dim]
                       + x.shape.dims[i + 1:])

  q = split(q_features, chunk_dim)
  k = split(k_features, key_chunk_dim)
  v = split(v, key_chunk_dim)

  # Keys in earlier chunks: exclusive prefix sums of per-chunk states.
  kv, k_sum = state_from_keys(k, v, key_chunk_dim)
  kv = mtf.cumsum(kv, chunks_dim, exclusive=True)
  k_sum = mtf.cumsum(k_sum, chunks_dim, exclusive=True)
  value_dims = [d for d in v.shape.dims if d not in k.shape.dims]
  output_shape = mtf.Shape(
      [d for d in q.shape.dims if d != features_dim] + value_dims)
  numerator = mtf.einsum([q, kv], output_shape=output_shape)
  denominator = mtf.einsum([q, k_sum], output_shape=q.shape - features_dim)

  # Keys earlier in the same chunk: masked feature-space scores.
  visible = mtf.cast(mtf.greater_equal(
      mtf.range(q.mesh, chunk_dim, tf.int32),
      mtf.range(q.mesh, key_chunk_dim, tf.int32)), q.dtype)
  scores = mtf.einsum([q, k, visible],
                      output_shape=(q.shape - features_dim) + key_chunk_dim)
  numerator += mtf.einsum([scores, v], output_shape=output_shape)
  denominator += mtf.reduce_sum(scores, reduced_dim=key_chunk_dim)

  out = numerator / (denominator + epsilon)
  i = out.shape.dims.index(chunks_dim)
  return mtf.reshape(out, out.shape.dims[:i] + [length_dim]
                     + out.shape.dims[i + 2:])
