"""Efficient-attention baselines' math as pure functions of mtf dims.

  Linformer (Wang et al. 2020): keys and values are projected along the
    sequence, memory_length -> projected_length, before softmax attention,
    so its cost is O(L k) (`project_length`).
  Lightweight / dynamic convolution (Wu et al. 2019): each channel c of
    x is convolved over positions with a softmax-normalised kernel of width
    K shared by the channels of its head; lightweight kernels are learned
    weights {heads, window}, dynamic ones are predicted from x_i at every
    position {.., length, heads, window} (`depthwise_convolution`).

Window w of a convolution at position i reads x[i + offsets[w]]; causal
offsets are -(K-1)..0, so the window order equals mesh TF's Conv1D decoding
state [x(t-K+1), ..., x(t)].
"""

import mesh_tensorflow as mtf
import tensorflow.compat.v1 as tf

WINDOW = "window"


def causal_offsets(kernel_size):
  return list(range(1 - kernel_size, 1))


def centred_offsets(kernel_size):
  left = kernel_size // 2
  return list(range(-left, kernel_size - left))


def windows(x, length_dim, offsets):
  """Stacks x[i + offset] (zero outside the sequence) over a "window" dim."""
  return mtf.stack([mtf.shift(x, -offset, length_dim, wrap=False)
                    for offset in offsets], WINDOW,
                   axis=x.shape.dims.index(length_dim) + 1)


def channel_heads(mesh, channel_dim, heads_dim, dtype=tf.float32):
  """One-hot {channel, heads}: channel c belongs to head c // (C / H)."""
  if channel_dim.size % heads_dim.size:
    raise ValueError("%s does not split into %s" % (channel_dim, heads_dim))
  channel = mtf.range(mesh, channel_dim, tf.int32)
  return mtf.one_hot(mtf.floordiv(channel, channel_dim.size // heads_dim.size),
                     heads_dim, dtype=dtype)


def depthwise_convolution(x_windows, weights, channel_dim, heads_dim):
  """out[.., c] = sum_w x_windows[.., w, c] * weights[.., head(c), w].

  Args:
    x_windows: {.., window, channel}, e.g. from `windows`.
    weights: {heads, window} (lightweight) or {.., heads, window} (dynamic),
      already normalised over the window.
    channel_dim: the channel (d_model) dim.
    heads_dim: the heads dim; channels are split evenly between heads.
  Returns:
    x_windows without the window dim.
  """
  window_dim = x_windows.shape.get_dim_by_name(WINDOW)
  heads = channel_heads(x_windows.mesh, channel_dim, heads_dim,
                        x_windows.dtype)
  return mtf.einsum([x_windows, weights, heads],
                    output_shape=x_windows.shape - window_dim)


def project_length(x, projection, length_dim):
  """Linformer: x {.., memory_length, ..} . E {memory_length, projected}."""
  return mtf.einsum(
      [x, projection],
      output_shape=(x.shape - length_dim)
      + (projection.shape - length_dim))
