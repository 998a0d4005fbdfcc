"""The decoding loop's body compiled with XLA, off TPU.

Mesh TF decodes in a tf.while_loop whose body is some 370 small ops per
step at the demo size (2+2 layers, d_model 128, batch 32); TF's executor
spends more on each of them than their math (BENCHMARKS.md, issue 21). Off
TPU the loop's ops are marked for XLA (tf.xla.experimental.jit_scope), so a
step runs as one compiled cluster; on TPU XLA compiles everything already.
XLA wants static shapes, so attention inside a compiled loop reads the
whole cache, its unwritten part masked by the causal bias, instead of the
filled prefix (mtf_synth.attention.decoding.full_length_attention).

gin: `mtf_synth.decode_loop.compiled = False` decodes op by op.
"""

import gin
from mesh_tensorflow import simd_mesh_impl
import tensorflow.compat.v1 as tf

from mtf_synth.attention import decoding

_MARK = "_mtf_synth_compiled"


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
    with tf.xla.experimental.jit_scope(compile_ops=True,
                                       separate_compiled_gradients=False):
      with decoding.full_length_attention():
        return lower(self, lowering)

  return lower_maybe_compiled

