"""Mesh TF's SelfAttention, one decoding step by index (mtf_synth.attention.decoding).

compat routes `transformer_layers.SelfAttention.call` in "first_part" and
"incremental" modes here when the layer is one this step reproduces exactly: plain dot-product
attention (no `attention_func`, no hyper-prompts) with only `extra_logit` and
`float32_logits` among its attention kwargs. Anything else keeps mesh TF's
own step.
"""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer_layers
import tensorflow.compat.v1 as tf

from mtf_synth.attention import decoding

_ATTENTION_KWARGS = {"extra_logit", "float32_logits"}


def decodes_by_index(layer):
  """Whether `layer`'s decoding steps can run by index."""
  cls = transformer_layers.SelfAttention
  return (type(layer).attention_fn is cls.attention_fn and
          getattr(layer, "attention_func", None) is None and
          not getattr(layer, "hyperprompt_length_decoder", None) and
          set(layer.attention_kwargs) <= _ATTENTION_KWARGS)


def self_attention_first_part(layer, context, x, losses, call):
  """SelfAttention's `call` over the prompt, its key/value states recorded
  in decoding.cache_layout."""
  output = call(layer, context, x, losses)
  count = 1 if layer.shared_kv else 2
  context.new_states[-count:] = [
      decoding.cache_layout(state, layer.memory_length(context), layer.kv_dim)
      for state in context.new_states[-count:]]
  return output


def self_attention_step(layer, context, x, losses=None):
  """SelfAttention.call for one decoding step: the cache written by index,
  attention over its filled prefix."""
  params = layer.make_params(context)
  q = params.compute_q(x)
  memory_length = layer.memory_length(context)
  new = ([params.compute_kv(x)] if layer.shared_kv else
         [params.compute_k(x), params.compute_v(x)])
  caches = [decoding.write_at_position(old, t, context.position, memory_length)
            for old, t in zip(context.get_states(len(new)), new)]
  context.record_new_states(caches)
  k, v = caches * 2 if layer.shared_kv else caches
  memory_position = mtf.range(context.mesh, memory_length, tf.int32)
  bias = layer.compute_bias(context, memory_position, x,
                            params.query_heads_dims, q)
  kwargs = layer.attention_kwargs_from_context(context)
  o = decoding.attend_prefix(
      v, memory_length, context.position, q.shape - layer.kv_dim + layer.kv_dim,
      queries=q, keys=k, key_dim=layer.kv_dim, logits=bias,
      extra_logit=kwargs.get("extra_logit"),
      float32_logits=kwargs.get("float32_logits", True))
  output = params.compute_output(
      o, output_shape=layer.expected_attention_output_shape(x, params))
  return layer.layer_output_from_attention_output(context, output, losses)
