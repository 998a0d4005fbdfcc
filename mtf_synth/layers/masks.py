"""Self-attention masks and the key-side length dim, as functions of a Context.

Every mtf_synth layer reads masks here, with mesh TF's rules
(`transformer_layers.SelfAttention.compute_bias`, `transformer.Context`):

  memory_length  the key-side copy of `length` (same size, another name), so
                 query x key tensors have two distinct named dims.
  padding        sequence_id == 0 (Context.nonpadding). `context.inputs` is
                 never read as padding: in a decoder it holds the shifted
                 targets, whose first position is the start id 0, and the
                 Bitransformer always gives its encoder a sequence_id
                 (min(inputs, 1) when the data is not packed). A model given
                 no sequence_id has no padding, for these layers as for mesh
                 TF's SelfAttention.
  packing        a query sees the keys of its own example: equal
                 subsequence_id if the context has one (several targets per
                 input), else equal sequence_id. Padding (id 0) is one more
                 "example", so real queries never see padding keys.
  causal         read_priority[query] >= write_priority[key]: causal
                 decoders, prefix LMs and incremental decoding (where
                 read_priority is the step's position).
"""

import functools

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import attention
import tensorflow.compat.v1 as tf


def memory_length(context):
  """The key-side length dim: `memory_length`, of the context's length."""
  return mtf.Dimension("memory_length", context.length_dim.size)


def to_memory_length(context, x):
  """`x` with its length dim renamed to memory_length (the key side)."""
  return mtf.replace_dimensions(x, context.length_dim, memory_length(context))


def _over_length(context, ids):
  """`ids` if it is a Tensor over the context's length, else None (mesh TF
  passes 1 or None for "no ids", and decode steps have no length dim)."""
  if isinstance(ids, mtf.Tensor) and context.length_dim in ids.shape:
    return ids
  return None


def nonpadding(context, dtype):
  """[batch.., length]: 1 at real positions, 0 at padding; None if the
  context has no sequence_id over its length (nothing is padding)."""
  sequence_id = _over_length(context, context.sequence_id)
  if sequence_id is None:
    return None
  return mtf.cast(mtf.not_equal(sequence_id, 0), dtype)


def memory_nonpadding(context, dtype):
  """nonpadding over memory_length (which keys are real), or None."""
  mask = nonpadding(context, dtype)
  return None if mask is None else to_memory_length(context, mask)


def packing_id(context):
  """The ids that separate packed examples, over length, or None:
  subsequence_id when it is a Tensor, else sequence_id (as compute_bias)."""
  ids = next((ids for ids in (context.subsequence_id, context.sequence_id)
              if isinstance(ids, mtf.Tensor)), None)
  return _over_length(context, ids)


def same_example(context):
  """[batch.., length, memory_length] bool: query and key are in the same
  packed example (or both padding); None without packing ids."""
  ids = packing_id(context)
  if ids is None:
    return None
  return mtf.equal(ids, to_memory_length(context, ids))


def causal(context):
  """[.., length or none, memory_length] bool: the key is visible from the
  query by read/write priority; None when every key is (encoders)."""
  if context.read_priority is None:
    return None
  return mtf.greater_equal(context.read_priority,
                           to_memory_length(context, context.write_priority))


def attention_bias(context, dtype=tf.float32):
  """The causal and packing masks as one additive logits bias (0 where
  visible, -1e9 elsewhere), or None when nothing is masked."""
  visible = [v for v in (causal(context), same_example(context))
             if v is not None]
  if not visible:
    return None
  return attention.visibility_mask_to_attention_bias(
      functools.reduce(mtf.logical_and, visible), dtype)
