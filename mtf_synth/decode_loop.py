"""The decoding loop's body compiled with XLA, off TPU.

Mesh TF decodes in a tf.while_loop whose body is some 370 small ops per
step at the demo size (2+2 layers, d_model 128, batch 32); TF's executor
spends more on each of them than their math (BENCHMARKS.md, issue 21). Off
TPU the loop's ops are marked for XLA (tf.xla.experimental.jit_scope), so a
step runs as one compiled cluster; on TPU XLA compiles everything already.
XLA wants static shapes, so attention inside a compiled loop reads the
whole cache, its unwritten part masked by the causal bias, instead of the
filled prefix (mtf_synth.attention.decoding.full_length_attention). In the
compiled loop a product that reduces goes through tf.einsum even where one
input holds every dim (encoder-decoder attention's q . k and weights . v):
mesh TF broadcasts, multiplies and then reduces those, a product the size of
the encoder's keys written and read again at each step.

gin: `mtf_synth.decode_loop.compiled = False` decodes op by op.
"""

import contextvars

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow import simd_mesh_impl
import tensorflow.compat.v1 as tf

from mtf_synth.attention import decoding

_MARK = "_mtf_synth_compiled"
_LOWERING_COMPILED = contextvars.ContextVar("mtf_synth_lowering_compiled",
                                            default=False)


@gin.configurable(module="mtf_synth")
def decode_loop(compiled=True):
  """gin: whether decoding's while loop runs compiled (module docstring)."""
  return compiled


def marking_decode_loops(while_loop):
  """`mtf.while_loop` for mesh TF's decoders (the only callers of the
  package's and ops_with_redefined_builtins' name; training's microbatch
  loop calls ops.while_loop): its loop is marked for compilation when
  decode_loop.compiled."""

  def decoding_while_loop(*args, **kwargs):
    outputs = while_loop(*args, **kwargs)
    setattr(outputs[0].operation, _MARK, decode_loop())
    return outputs

  return decoding_while_loop


def lowering_marked_loops_compiled(lower):
  """WhileLoopOperation.lower: a marked loop's ops under jit_scope."""

  def lower_maybe_compiled(self, lowering):
    if not getattr(self, _MARK, False) or isinstance(
        lowering.mesh_impl(self), simd_mesh_impl.SimdMeshImpl):
      return lower(self, lowering)
    token = _LOWERING_COMPILED.set(True)
    try:
      with tf.xla.experimental.jit_scope(compile_ops=True,
                                         separate_compiled_gradients=False):
        with decoding.full_length_attention():
          return lower(self, lowering)
    finally:
      _LOWERING_COMPILED.reset(token)

  return lower_maybe_compiled


def reducing_einsums_as_dots_when_compiled(einsum_helper):
  """mesh TF's ops._einsum_helper: within a compiled loop's lowering, a
  floating-point product that reduces a dim is tf.einsum (a dot for XLA)."""

  def einsum_helper_maybe_dot(input_shapes, output_shape, mesh_impl):
    slice_fn, reduced_mesh_axes = einsum_helper(input_shapes, output_shape,
                                                mesh_impl)
    reduces = output_shape.ndims < len(
        set(d for shape in input_shapes for d in shape.dims))
    if not (_LOWERING_COMPILED.get() and reduces):
      return slice_fn, reduced_mesh_axes
    equation = mtf.ops._einsum_equation(input_shapes, output_shape)  # pylint: disable=protected-access

    def dot_if_floating(*slices):
      if slices[0].dtype.is_floating:
        return mesh_impl.einsum(equation, *slices)
      return slice_fn(*slices)

    return dot_if_floating, reduced_mesh_axes

  return einsum_helper_maybe_dot

