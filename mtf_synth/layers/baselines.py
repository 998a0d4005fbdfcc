"""The Synthesizer paper's efficient baselines as mesh TF layers.

  Linformer              softmax attention over keys/values projected along
                         the sequence to `projected_length`; encoders only.
  LightweightConvolution Wu et al. (2019) LightConv block: GLU input
                         projection, softmax-normalised depthwise kernels
                         shared per head, output projection.
  DynamicConvolution     the same with kernels predicted from each position.

The convolutions are causal in decoders (`context.model.fully_autoregressive`:
window x(t-K+1)..x(t)) and centred in encoders (prefix LMs are refused); they decode incrementally
with mesh TF's Conv1D state (the last K inputs), so a decode step costs
O(K d). Linformer's length projection mixes every position into every
projected key, so it has no causal form and raises in decoders.
They are written anew rather than configured from mesh TF's
LocalConvAttnBlock so that kernels are shared per head as in the paper, the
causal or centred window is explicit, and the math is a pure function
(mtf_synth/attention/baselines.py) with a numpy reference test.
"""

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import attention
from mesh_tensorflow.transformer import transformer
from mesh_tensorflow.transformer import transformer_layers
import tensorflow.compat.v1 as tf

from mtf_synth import errors
from mtf_synth.attention import baselines
from mtf_synth.layers import masks


@gin.configurable(module="mtf_synth")
class Linformer(transformer.TransformerLayer):
  """Multi-head attention with keys and values projected along length."""

  def __init__(self, num_heads=8, key_value_size=128, projected_length=256,
               share_kv_projection=False, dropout_rate=0.0):
    """Create a Linformer layer.

    Args:
      num_heads: an integer.
      key_value_size: d_kv, an integer.
      projected_length: k, the projected sequence length.
      share_kv_projection: one projection for keys and values (Linformer's
        "key-value sharing") instead of two.
      dropout_rate: attention-probability dropout in training.
    """
    self.num_heads = num_heads
    self.key_value_size = key_value_size
    self.projected_length = projected_length
    self.share_kv_projection = share_kv_projection
    self.dropout_rate = dropout_rate

  def call(self, context, x, losses=None):
    """Call the layer."""
    del losses
    if context.model.autoregressive:
      raise errors.UserError(
          "Linformer's length projection sees future positions; use it in "
          "encoders only")
    kv_dim = mtf.Dimension("d_kv", self.key_value_size)
    params = transformer_layers.attention_params(
        context=context, kv_dim=kv_dim, num_heads=self.num_heads)
    memory_length = masks.memory_length(context)
    projected = mtf.Dimension("projected_length", self.projected_length)
    m = masks.to_memory_length(context, x)
    mask = masks.memory_nonpadding(context, context.activation_dtype)
    if mask is not None:  # padded keys and values project to nothing
      m *= mask

    def projection(name):
      return mtf.get_variable(
          context.mesh, name, mtf.Shape([memory_length, projected]),
          initializer=tf.random_normal_initializer(
              stddev=self.projected_length ** -0.5),
          dtype=context.variable_dtype)
    k_projection = projection("length_projection_k")
    v_projection = (k_projection if self.share_kv_projection
                    else projection("length_projection_v"))
    k = baselines.project_length(params.compute_k(m), k_projection,
                                 memory_length)
    v = baselines.project_length(params.compute_v(m), v_projection,
                                 memory_length)
    # A zero bias: mesh TF's 2-D sharding helper (run when the model has a
    # layout) reads bias.shape and fails on None.
    o = attention.attention(
        params.compute_q(x), k, v, projected, kv_dim, kv_dim,
        bias=mtf.zeros(context.mesh, [projected], context.activation_dtype),
        dropout_rate=self.dropout_rate if context.train else 0.0,
        context=context)
    return params.compute_output(o, output_shape=x.shape)


class _Convolution(transformer_layers.Conv1D):
  """LightConv/DynamicConv block; subclasses say where kernels come from."""

  def __init__(self, kernel_size=7, num_heads=16):
    """Create the layer.

    Args:
      kernel_size: K, the window width (odd keeps encoder windows centred).
      num_heads: H; channels d_model are split evenly between heads, and the
        channels of one head share a kernel.
    """
    self.kernel_size = kernel_size
    self.num_heads = num_heads

  def kernel_logits(self, context, x, heads_dim, window_dim):
    raise NotImplementedError

  def call(self, context, x, losses=None):
    """Call the layer."""
    del losses
    model_dim = context.model.model_dim
    if model_dim.size % self.num_heads:
      raise errors.UserError(
          "%s: d_model %d does not split into num_heads %d; set %s.num_heads "
          "to a divisor of d_model" % (type(self).__name__, model_dim.size,
                                       self.num_heads, type(self).__name__))
    heads_dim = mtf.Dimension("heads", self.num_heads)
    window_dim = mtf.Dimension(baselines.WINDOW, self.kernel_size)
    x = mtf.layers.dense_product(
        x, reduced_dims=[model_dim], new_dims=[model_dim],
        activation_functions=["linear", "sigmoid"],
        variable_dtype=context.variable_dtype, name="glu_input")
    if context.model.autoregressive and not context.model.fully_autoregressive:
      # A centred window would let targets see later targets, a causal one
      # would ignore the prefix's full attention: neither is what was asked.
      raise errors.UserError(
          "%s has no prefix-LM mode: use it in encoders or in fully "
          "autoregressive decoders (input_full_attention=False)"
          % type(self).__name__)
    causal = context.model.fully_autoregressive
    if context.mode == "incremental":
      state = self.record_states_incremental_mode(context, x,
                                                  self.kernel_size)
      x_windows = mtf.rename_dimension(state, "length", baselines.WINDOW)
    else:
      if context.mode == "first_part":
        self.record_states_first_part_mode(context, x, self.kernel_size)
      mask = None if causal else masks.nonpadding(context,
                                                  context.activation_dtype)
      if mask is not None:
        x *= mask
      offsets = (baselines.causal_offsets if causal
                 else baselines.centred_offsets)(self.kernel_size)
      x_windows = baselines.windows(x, context.length_dim, offsets)
    weights = mtf.softmax(
        self.kernel_logits(context, x, heads_dim, window_dim), window_dim)
    out = baselines.depthwise_convolution(x_windows, weights, model_dim,
                                          heads_dim)
    return mtf.layers.dense(
        out, reduced_dims=[model_dim], new_dims=[model_dim],
        variable_dtype=context.variable_dtype, name="output")


@gin.configurable(module="mtf_synth")
class LightweightConvolution(_Convolution):
  """Lightweight convolution: learned kernels {heads, window}."""

  def kernel_logits(self, context, x, heads_dim, window_dim):
    return mtf.get_variable(
        context.mesh, "kernel_logits", mtf.Shape([heads_dim, window_dim]),
        initializer=tf.random_normal_initializer(stddev=0.1),
        dtype=context.variable_dtype)


@gin.configurable(module="mtf_synth")
class DynamicConvolution(_Convolution):
  """Dynamic convolution: kernels predicted from x_i at every position."""

  def kernel_logits(self, context, x, heads_dim, window_dim):
    return mtf.layers.dense(
        x, reduced_dims=[context.model.model_dim],
        new_dims=[heads_dim, window_dim], use_bias=True,
        variable_dtype=context.variable_dtype, name="kernel_logits")
