"""Learned-kernel linear attention ("Learning the Transformer Kernel") layer.

One class, `KernelAttention`, with a `kernel` knob naming a row of `KERNELS`,
rather than one class per kernel family: every kernel shares the q/k/v/o
projections, the padding mask, the causal chunked prefix sums and the
incremental decoding state; a kernel differs only in a pure feature map
(mtf_synth/attention/feature_maps.py) and the tensors it is fed (learned
parameters and random draws). A table row says exactly that, so adding a
kernel is one row, and gin selects it with one line:

  decoder/KernelAttention.kernel = "fastfood_prf"

Random draws ("noise") are redrawn or fixed by `redraw_features`:
  "train" (default)  a fresh sample every training step; evaluation and
                     decoding use the draw stored in the checkpoint (a
                     non-trainable variable initialised at step 0), so they
                     are deterministic. The reference code redraws at
                     evaluation too, making its scores noisy.
  "never"            always the stored draw (features fixed for the run).
  "always"           a fresh sample in every mode, like the reference code.
Decoding ("first_part" and "incremental" modes) always uses the stored draw:
a running state summed under one draw is only valid for that draw.

Causality follows the model: decoders (`context.model.fully_autoregressive`)
use causal linear attention, encoders attend to all unpadded keys. Packed
examples in one row are not separated (the running sums cross them), like
mesh TF's Conv1DLayer: train these layers without packing. There is no
attention dropout: no attention matrix exists to drop from.
"""

import dataclasses
from typing import Callable, Dict, List

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
from mesh_tensorflow.transformer import transformer_layers
import tensorflow.compat.v1 as tf

from mtf_synth import errors
from mtf_synth.attention import feature_maps as fm
from mtf_synth.attention import linear
from mtf_synth.layers import masks


@dataclasses.dataclass(frozen=True)
class KernelDims:
  """Named dims of one layer's kernel tensors."""
  key: mtf.Dimension       # d_kv
  heads: List[mtf.Dimension]  # [] with one head
  random: mtf.Dimension    # random_features: one per frequency omega
  noise: mtf.Dimension     # generator / GMM-RKS noise input, size d_kv
  blocks: mtf.Dimension    # FastFood d x d blocks
  hidden: mtf.Dimension    # generator hidden width, 4 d_kv


@dataclasses.dataclass(frozen=True)
class KernelInput:
  """A kernel input: its dims and how its (initial) value is sampled."""
  dims: Callable[[KernelDims], List[mtf.Dimension]]
  sampler: Callable  # (full shape list, dtype) -> tf.Tensor


@dataclasses.dataclass(frozen=True)
class Kernel:
  """A row of KERNELS: a feature map and what it is fed.

  features_fn(x, key_dim, **draws, **params[, smoothing]) -> features.
  features_per_frequency: features per random frequency (2 for cos/sin, 4
    for GMM-RKS's +-mu pair, 1 for positive maps), so every kernel has
    `num_features` features (plus the smoothing one) at equal cost.
  """
  features_fn: Callable
  features_per_frequency: int
  draws: Dict[str, KernelInput]
  params: Dict[str, KernelInput] = dataclasses.field(default_factory=dict)
  trigonometric: bool = False
  fastfood: bool = False


def _zeros(shape, dtype=tf.float32):
  return tf.zeros(shape, dtype)


def _ones(shape, dtype=tf.float32):
  return tf.ones(shape, dtype)


def _identity(shape, dtype=tf.float32):
  return tf.broadcast_to(tf.eye(shape[-2], shape[-1], dtype=dtype), shape)


def _uniform_over_sqrt_d(shape, dtype=tf.float32):
  bound = float(shape[-1]) ** -0.5
  return tf.random.uniform(shape, -bound, bound, dtype=dtype)


def _glorot(shape, dtype=tf.float32):
  # Per-head [.., fan_in, fan_out] weights: fans from the last two dims only.
  limit = (6.0 / (shape[-2] + shape[-1])) ** 0.5
  return tf.random.uniform(shape, -limit, limit, dtype=dtype)


def _gaussian_frequencies(dims):
  return [dims.key, dims.random]


def _noise_frequencies(dims):
  return [dims.noise, dims.random]


def _per_head_key(dims):
  return dims.heads + [dims.key]


def _per_head_block(dims):
  return dims.heads + [dims.blocks, dims.key]


def _per_head_hidden(dims):
  return dims.heads + [dims.hidden]


_GAUSSIAN = KernelInput(_gaussian_frequencies, fm.gaussian)
_NOISE = KernelInput(_noise_frequencies, fm.gaussian)
_FASTFOOD_DRAWS = {
    "permutation": KernelInput(lambda d: [d.blocks, d.key],
                               fm.random_permutations)}
_FASTFOOD_PARAMS = {
    "signs": KernelInput(_per_head_block, fm.rademacher),
    "gaussian": KernelInput(_per_head_block, fm.gaussian),
    "scale": KernelInput(_per_head_block, fm.chi_over_sqrt_d),
}
_GENERATOR_PARAMS = {
    "hidden_weights": KernelInput(lambda d: d.heads + [d.noise, d.hidden],
                                  _glorot),
    "hidden_bias": KernelInput(_per_head_hidden, _zeros),
    "norm_scale": KernelInput(_per_head_hidden, _ones),
    "norm_bias": KernelInput(_per_head_hidden, _zeros),
    "output_weights": KernelInput(lambda d: d.heads + [d.hidden, d.key],
                                  _glorot),
    "output_bias": KernelInput(_per_head_key, _zeros),
}

KERNELS = {
    "rff": Kernel(fm.rff_features, 2, {"noise": _GAUSSIAN},
                  trigonometric=True),
    "performer": Kernel(
        fm.performer_features, 1,
        {"noise": KernelInput(_gaussian_frequencies, fm.orthogonal_gaussian)}),
    "gmm_rks": Kernel(
        fm.gmm_rks_features, 4, {"noise": _NOISE},
        {"mean": KernelInput(_per_head_key, _uniform_over_sqrt_d),
         "transform": KernelInput(lambda d: d.heads + [d.noise, d.key],
                             _identity)},
        trigonometric=True),
    "gmm_prf": Kernel(
        fm.gmm_prf_features, 1, {"noise": _GAUSSIAN},
        {"mean": KernelInput(_per_head_key, _uniform_over_sqrt_d),
         "log_scale": KernelInput(_per_head_key, _zeros)}),
    "fastfood_rks": Kernel(fm.fastfood_rks_features, 2, _FASTFOOD_DRAWS,
                           _FASTFOOD_PARAMS, trigonometric=True,
                           fastfood=True),
    "fastfood_prf": Kernel(fm.fastfood_prf_features, 1, _FASTFOOD_DRAWS,
                           _FASTFOOD_PARAMS, fastfood=True),
    "generative_rks": Kernel(fm.generative_rks_features, 2, {"noise": _NOISE},
                             _GENERATOR_PARAMS, trigonometric=True),
    "generative_prf": Kernel(fm.generative_prf_features, 1, {"noise": _NOISE},
                             _GENERATOR_PARAMS),
}

REDRAW_MODES = ("train", "never", "always")

# Feature maps, the states S, z (also the decoding states) and the
# normaliser are computed in float32 whatever the activation dtype, as mesh
# TF's softmax attention computes its logits (float32_logits): exp features
# and sums over the sequence lose too much in bfloat16. Only the q/k/v/o
# projections run in the activation dtype.
COMPUTE_DTYPE = tf.float32


def _initializer(sampler):
  def initializer(shape, dtype=tf.float32, partition_info=None):
    del partition_info
    return sampler(list(shape), dtype=dtype)
  return initializer


@gin.configurable(module="mtf_synth")
class KernelAttention(transformer.TransformerLayer):
  """Multi-head linear attention with a learned random-feature kernel."""

  def __init__(self,
               kernel="gmm_prf",
               num_heads=8,
               key_value_size=128,
               num_features=None,
               redraw_features="train",
               smoothing=1.0,
               causal_chunk_size=64,
               epsilon=linear.DEFAULT_EPSILON):
    """Create a KernelAttention layer.

    Args:
      kernel: a key of KERNELS: "rff", "performer", "gmm_rks", "gmm_prf",
        "fastfood_rks", "fastfood_prf", "generative_rks", "generative_prf".
      num_heads: an integer.
      key_value_size: d_kv, an integer (a power of two for FastFood).
      num_features: M, the number of random features; None for the power of
        two nearest d_kv ln d_kv.
      redraw_features: "train", "never" or "always" (module docstring).
      smoothing: the constant feature of trigonometric kernels (0: none).
      causal_chunk_size: chunk length of the causal prefix sums.
      epsilon: added to the attention normaliser.
    """
    if kernel not in KERNELS:
      raise errors.UserError("unknown KernelAttention.kernel %r; known: %s"
                             % (kernel, ", ".join(sorted(KERNELS))))
    if redraw_features not in REDRAW_MODES:
      raise errors.UserError(
          "KernelAttention.redraw_features must be one of %s, got %r" %
          (REDRAW_MODES, redraw_features))
    self.kernel = kernel
    self.num_heads = num_heads
    self.key_value_size = key_value_size
    self.num_features = num_features or fm.default_num_features(
        key_value_size)
    self.redraw_features = redraw_features
    self.smoothing = smoothing
    self.causal_chunk_size = causal_chunk_size
    self.epsilon = epsilon
    self._check_sizes()

  def _check_sizes(self):
    spec = KERNELS[self.kernel]
    frequencies = self.num_features // spec.features_per_frequency
    if frequencies * spec.features_per_frequency != self.num_features:
      raise errors.UserError(
          "%s needs KernelAttention.num_features divisible by %d, got %d" % (
              self.kernel, spec.features_per_frequency, self.num_features))
    if spec.fastfood and self.key_value_size & (self.key_value_size - 1):
      raise errors.UserError(
          "%s needs KernelAttention.key_value_size a power of two (FastFood's "
          "Walsh-Hadamard transform), got %d" % (self.kernel,
                                                 self.key_value_size))
    if spec.fastfood and frequencies % self.key_value_size:
      raise errors.UserError(
          "%s needs KernelAttention.num_features / %d divisible by "
          "key_value_size %d, got %d" % (
              self.kernel, spec.features_per_frequency, self.key_value_size,
              self.num_features))

  @property
  def kv_dim(self):
    return mtf.Dimension("d_kv", self.key_value_size)

  def kernel_dims(self, heads_dims):
    spec = KERNELS[self.kernel]
    frequencies = self.num_features // spec.features_per_frequency
    return KernelDims(
        key=self.kv_dim,
        heads=list(heads_dims),
        random=mtf.Dimension(fm.RANDOM_FEATURES, frequencies),
        noise=mtf.Dimension(fm.NOISE, self.key_value_size),
        blocks=mtf.Dimension(fm.FASTFOOD_BLOCKS,
                             max(frequencies // self.key_value_size, 1)),
        hidden=mtf.Dimension(fm.GENERATOR_HIDDEN, 4 * self.key_value_size))

  def _redraw(self, context):
    if context.mode in ("first_part", "incremental"):
      return False  # decoding states hold one draw's features
    if self.redraw_features == "always":
      return True
    return self.redraw_features == "train" and context.train

  def kernel_inputs(self, context, heads_dims):
    """The learned parameters and random draws the feature map is fed,
    read in COMPUTE_DTYPE."""
    spec = KERNELS[self.kernel]
    dims = self.kernel_dims(heads_dims)
    variable_dtype = mtf.VariableDType(
        context.variable_dtype.master_dtype,
        context.variable_dtype.slice_dtype, COMPUTE_DTYPE)
    inputs = {}
    for name, param in spec.params.items():
      inputs[name] = mtf.get_variable(
          context.mesh, "kernel_" + name, mtf.Shape(param.dims(dims)),
          initializer=_initializer(param.sampler), dtype=variable_dtype)
    for name, draw in spec.draws.items():
      shape = mtf.Shape(draw.dims(dims))
      stored = mtf.get_variable(
          context.mesh, "random_" + name, shape,
          initializer=_initializer(draw.sampler), dtype=variable_dtype,
          trainable=False)
      if self._redraw(context):
        inputs[name] = mtf.import_tf_tensor(
            context.mesh, draw.sampler(shape.to_integer_list,
                                       dtype=COMPUTE_DTYPE), shape)
      else:
        inputs[name] = stored
    if spec.trigonometric:
      inputs["smoothing"] = self.smoothing
    return inputs

  def feature_map(self, context, heads_dims):
    """Returns phi: Tensor with d_kv -> Tensor with "features"."""
    features_fn = KERNELS[self.kernel].features_fn
    inputs = self.kernel_inputs(context, heads_dims)
    return lambda x: features_fn(x, self.kv_dim, **inputs)

  def call(self, context, x, losses=None):
    """Call the layer."""
    del losses
    model = context.model
    if model.autoregressive and not model.fully_autoregressive:
      raise errors.UserError(
          "KernelAttention has no prefix-LM mode: use it in encoders or in "
          "fully autoregressive decoders (input_full_attention=False)")
    params = transformer_layers.attention_params(
        context=context, kv_dim=self.kv_dim, num_heads=self.num_heads,
        fold_scaling_into_initializer=False)
    phi = self.feature_map(context, params.query_heads_dims or [])
    # fold_scaling_into_initializer=False initialises Wq like Wk (the paper's
    # symmetric q and k), but then compute_q multiplies q by softmax's
    # d^-1/2; undo that: the feature map scales q and k by d^-1/4 each, so
    # the kernel sees q . k / sqrt(d) as in the paper.
    q = mtf.cast(params.compute_q(x), COMPUTE_DTYPE)
    q_features = phi(q * self.key_value_size ** 0.5)
    k_features = phi(mtf.cast(params.compute_k(x), COMPUTE_DTYPE))
    v = mtf.cast(params.compute_v(x), COMPUTE_DTYPE)
    features_dim = q_features.shape.get_dim_by_name(fm.FEATURES)

    if context.mode == "incremental":
      kv, k_sum = context.get_states(2)
      kv, k_sum = linear.update_state(kv, k_sum, k_features, v)
      context.record_new_states([kv, k_sum])
      o = linear.attend_to_state(q_features, kv, k_sum, features_dim,
                                 self.epsilon)
    elif model.fully_autoregressive:
      o = linear.causal_linear_attention(
          q_features, k_features, v, features_dim, context.length_dim,
          self.causal_chunk_size, self.epsilon)
      if context.mode == "first_part":
        decoded = mtf.cast(mtf.less(context.position, context.initial_position),
                           COMPUTE_DTYPE)
        context.record_new_states(list(linear.state_from_keys(
            k_features, v, context.length_dim, decoded)))
    else:
      o = linear.linear_attention(
          q_features, masks.to_memory_length(context, k_features),
          masks.to_memory_length(context, v), features_dim,
          masks.memory_length(context),
          key_mask=masks.memory_nonpadding(context, COMPUTE_DTYPE),
          epsilon=self.epsilon)
    return params.compute_output(mtf.cast(o, x.dtype), output_shape=x.shape)
