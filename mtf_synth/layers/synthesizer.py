"""SynthesizerAttention: a mesh TF self-attention layer for every Synthesizer.

One gin line puts it in a stack:
  encoder/make_layer_stack.layers = [@mtf_synth.SynthesizerAttention,
                                     @transformer_layers.DenseReluDense]
  SynthesizerAttention.mode = "random+vanilla"
Cross attention stays `@transformer_layers.EncDecAttention` (dot product), as
in the paper's seq2seq models. The math lives in mtf_synth.attention.
"""

import functools

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import tensorflow.compat.v1 as tf

from mtf_synth import errors
from mtf_synth.attention import decoding
from mtf_synth.attention import synthesizer as synth
from mtf_synth.layers import attention_images
from mtf_synth.layers import masks


def _divisor_near_sqrt(n):
  """The largest a <= sqrt(n) dividing n: the default factorization a * b."""
  return max(a for a in range(1, int(n ** 0.5) + 1) if n % a == 0)


@gin.configurable(module="mtf_synth")
class SynthesizerAttention(transformer.TransformerLayer):
  """Multi-head Synthesizer self-attention (https://arxiv.org/abs/2005.00743).

  `mode` is a component or a '+' mixture of components (see
  mtf_synth.attention.synthesizer): dense, random, fixed_random,
  factorized_dense, factorized_random, vanilla; e.g. "random+vanilla". The
  upstream names random, factorized, dense_minus, random_plus,
  random_plus_alpha, dense_plus and dense_plus_alpha are aliases.

  Every variant projects values with Wv [d_model, heads, d_kv] and the output
  with Wo [heads, d_kv, d_model]. Parameter count, with d = d_model,
  h = num_heads, e = key_value_size, n = max_length, f = dense_hidden_size,
  a, b = factorized_a, factorized_b, k = factorized_random_rank and m the
  number of mixture members:
    shared (values, output)   2 d h e
    dense                     h (d f + f + f n + n)
    random                    h n^2
    fixed_random              h n^2, not trainable
    factorized_dense          h (d + 1)(a + b)
    factorized_random         2 h n k
    vanilla                   2 d h e   (Wq, Wk)
    mixture alphas            m if m > 1 else 0
  The total is the shared count plus each member's count (plus m);
  `parameter_count` computes it.

  Masks: causal (decoders), padding and packing (sequence_id) are applied to
  every component (mtf_synth.layers.masks). Positions are within-example positions (context.position,
  or counted from sequence_id when the model has no positional embedding and
  mesh TF passes no positions), so a packed example sees the same table
  entries as when unpacked. Unpacked rows slice the tables (and random
  logits stay batch-free); packed rows and decoding gather them.
  Incremental decoding caches the values (and the keys for vanilla); the
  synthesized logits need no cache, since they depend on the current token
  and positions only.

  Logits (every component, the mixture) and their softmax are float32
  whatever the activation dtype, as in mesh TF's attention with
  float32_logits=True: the logits side reads its inputs and weights in
  float32, and the attention weights are cast back to the activation dtype
  before they weight the values.
  """

  def __init__(self,
               mode="random",
               num_heads=8,
               key_value_size=128,
               max_length=None,
               dense_hidden_size=None,
               factorized_a=None,
               factorized_b=None,
               factorized_random_rank=8,
               dropout_rate=0.0):
    """Stores the hyperparameters (the paper's ablation knobs).

    Args:
      mode: a component name, a '+' mixture of them, or an upstream alias.
      num_heads: number of heads (the `heads` dim; layout `heads:model`).
      key_value_size: d_kv, per-head size of values (and vanilla keys).
      max_length: longest sequence the synthesized tables cover; None takes
        the model's positional max_length (Unitransformer.max_length).
      dense_hidden_size: dense synthesizer hidden size per head (default
        key_value_size).
      factorized_a, factorized_b: factorized dense sizes, a * b = max_length
        (default: a the largest divisor of max_length <= its square root).
      factorized_random_rank: k of factorized random, R = R1 R2^T.
      dropout_rate: dropout on the attention weights in training.
    """
    self.mode = mode
    self.members = synth.parse_mode(mode)
    self.num_heads = num_heads
    self.key_value_size = key_value_size
    self.max_length = max_length
    self.dense_hidden_size = dense_hidden_size or key_value_size
    self.factorized_a = factorized_a
    self.factorized_b = factorized_b
    self.factorized_random_rank = factorized_random_rank
    self.dropout_rate = dropout_rate

  @property
  def synthesized(self):
    return any(synth.COMPONENTS[m].synthesized for m in self.members)

  def _max_length(self, context):
    if self.max_length is not None:
      return self.max_length
    model_max_length = getattr(context.model, "max_length_dim", None)
    if model_max_length is None:
      raise errors.UserError("SynthesizerAttention needs max_length (the model has "
                       "no positional max_length): set "
                       "SynthesizerAttention.max_length in gin")
    return model_max_length.size

  def _factors(self, max_length):
    if "factorized_dense" not in self.members:
      return 1, 1  # unused
    a = self.factorized_a or (max_length // self.factorized_b
                              if self.factorized_b else
                              _divisor_near_sqrt(max_length))
    b = self.factorized_b or max_length // a
    if a * b != max_length:
      raise errors.UserError("SynthesizerAttention: factorized_a * factorized_b = "
                       "%d * %d must equal max_length %d" % (a, b, max_length))
    return a, b

  def dims(self, model_dim, max_length):
    a, b = self._factors(max_length)
    return synth.SynthesizerDims(
        model=model_dim,
        heads=mtf.Dimension("heads", self.num_heads),
        kv=mtf.Dimension("d_kv", self.key_value_size),
        query_table=mtf.Dimension("synth_query_position", max_length),
        key_table=mtf.Dimension("synth_key_position", max_length),
        hidden=mtf.Dimension("synth_hidden", self.dense_hidden_size),
        factor_a=mtf.Dimension("synth_factor_a", a),
        factor_b=mtf.Dimension("synth_factor_b", b),
        rank=mtf.Dimension("synth_rank", self.factorized_random_rank))

  def parameter_count(self, d_model, max_length):
    """(trainable, fixed) parameter counts from the docstring's formulas."""
    h, e, n = self.num_heads, self.key_value_size, max_length
    f, k = self.dense_hidden_size, self.factorized_random_rank
    a, b = self._factors(n)
    per_member = {
        "dense": h * (d_model * f + f + f * n + n),
        "random": h * n * n,
        "fixed_random": h * n * n,
        "factorized_dense": h * (d_model + 1) * (a + b),
        "factorized_random": 2 * h * n * k,
        "vanilla": 2 * d_model * h * e,
    }
    m = len(self.members)
    trainable = 2 * d_model * h * e + (m if m > 1 else 0)
    trainable += sum(per_member[x] for x in self.members
                     if synth.COMPONENTS[x].trainable)
    fixed = sum(per_member[x] for x in self.members
                if not synth.COMPONENTS[x].trainable)
    return trainable, fixed

  def _check_length(self, context, max_length):
    length = context.length_dim.size
    if self.synthesized and length > max_length:
      raise errors.UserError(
          "SynthesizerAttention(mode=%r): sequence length %d > max_length %d; "
          "raise SynthesizerAttention.max_length" % (self.mode, length,
                                                    max_length))

  def _variable(self, context, name, spec, trainable=True,
                activation_dtype=None):
    """A weight, read in `activation_dtype` (default the context's)."""
    dtype = context.variable_dtype
    if activation_dtype is not None:
      dtype = mtf.VariableDType(dtype.master_dtype, dtype.slice_dtype,
                                activation_dtype)
    return mtf.get_variable(context.mesh, name, mtf.Shape(spec.shape),
                            initializer=spec.initializer, trainable=trainable,
                            dtype=dtype)

  def _projection(self, context, name, x, dims, stddev):
    spec = synth.WeightSpec([dims.model, dims.heads, dims.kv], stddev)
    w = self._variable(context, name, spec)
    return mtf.einsum([x, w], reduced_dims=[dims.model])

  def _memory(self, context, x, dims):
    """Values (and vanilla keys), through the decoding cache."""
    stddev = dims.model.size ** -0.5
    incremental = context.mode == "incremental"
    m = x if incremental else masks.to_memory_length(context, x)
    memory = [self._projection(context, "v", m, dims, stddev)]
    if "vanilla" in self.members:
      memory.append(self._projection(context, "k", m, dims, stddev))
    if incremental:
      # Write this step's values/keys into the cache at `position`.
      memory = [decoding.write_at_position(cache, t, context.position,
                                           masks.memory_length(context))
                for cache, t in zip(context.get_states(len(memory)), memory)]
    elif context.mode == "first_part":
      memory = [decoding.cache_layout(t, masks.memory_length(context),
                                      dims.kv) for t in memory]
    if context.mode in ("incremental", "first_part"):
      context.record_new_states(memory)
    return memory[0], (memory[1] if len(memory) > 1 else None)

  def _positions(self, context, max_length):
    """Within-example (query, memory) positions and whether each is a range.

    Mesh TF passes the range 0..length-1 as context.position when the model
    has no positional embedding (T5's relative attention), packed or not; the
    within-example positions are then counted from sequence_id.

    When decoding, mesh TF keeps stepping rows that are already done until
    the last row is, so a row with a longer prompt reaches positions at and
    past the end of the sequence; their outputs are discarded (the decode
    writes them nowhere). Mesh TF's own layers look positions up by one-hot
    and read zeros there; the tables here are gathered, so those query
    positions are clipped to the last table row to stay in range.
    """
    memory_length = masks.memory_length(context)
    if context.mode == "incremental":
      return (mtf.minimum(context.position, max_length - 1), False,
              mtf.range(context.mesh, memory_length, tf.int32), True)
    position, is_range = context.position, context.position_is_default
    same_example = masks.same_example(context)
    if (is_range and same_example is not None and
        not getattr(context.model, "positional_embedding", True)):
      earlier = mtf.less(masks.to_memory_length(context, position), position)
      position = mtf.reduce_sum(
          mtf.to_int32(mtf.logical_and(same_example, earlier)),
          reduced_dim=memory_length)
      is_range = False
    return (position, is_range, masks.to_memory_length(context, position),
            is_range)

  def _component_weights(self, context, name, dims):
    component = synth.COMPONENTS[name]
    with tf.variable_scope(name):
      return {w: self._variable(context, w, spec, component.trainable,
                                activation_dtype=tf.float32)
              for w, spec in component.weights(dims).items()}

  def call(self, context, x, losses=None):
    """Synthesized (or mixed) attention over `x`'s own sequence."""
    del losses
    max_length = self._max_length(context) if self.synthesized else 1
    self._check_length(context, max_length)
    dims = self.dims(context.model.model_dim, max_length)
    values, keys = self._memory(context, x, dims)
    query_position, query_is_range, memory_position, memory_is_range = (
        self._positions(context, max_length))
    features = synth.Features(
        x=mtf.cast(x, tf.float32),
        # A decoding step reads the key cache in attend_prefix instead.
        keys=(None if keys is None or context.mode == "incremental" else
              mtf.cast(keys, tf.float32)),
        query_position=query_position,
        memory_position=memory_position, query_is_range=query_is_range,
        memory_is_range=memory_is_range)
    weights = {name: self._component_weights(context, name, dims)
               for name in self.members}
    alpha_logits = None
    if len(self.members) > 1:
      alpha_logits = self._variable(
          context, "alpha_logits", synth.WeightSpec(
              [mtf.Dimension("synth_members", len(self.members))], 0.0),
          activation_dtype=tf.float32)
    if context.mode == "incremental":
      o = self._attend_step(context, dims, features, weights, alpha_logits,
                            values, keys)
    else:
      o = self._attend(context, dims, features, weights, alpha_logits, values)
    wo = self._variable(context, "o", synth.WeightSpec(
        [dims.heads, dims.kv, dims.model],
        (dims.heads.size * dims.kv.size) ** -0.5))
    return mtf.einsum([o, wo], output_shape=x.shape)

  def _attend(self, context, dims, features, weights, alpha_logits, values):
    """The mixture's attention over the whole sequence (and its pictures)."""
    logits = [synth.COMPONENTS[name].logits(weights[name], features, dims)
              for name in self.members]
    mixed_logits = logits[0]
    if alpha_logits is not None:
      mixed_logits = synth.mix_logits(logits, alpha_logits,
                                      alpha_logits.shape.dims[0])
    bias = masks.attention_bias(context)
    attention_images.summarize(context, dims, self.members, weights, logits,
                               mixed_logits, bias, alpha_logits)
    return synth.attend(mixed_logits, values, masks.memory_length(context),
                        dims.kv, bias=bias, dropout_rate=self.dropout_rate,
                        train=context.train,
                        dropout_broadcast_dims=[context.length_dim])

  def _attend_step(self, context, dims, features, weights, alpha_logits,
                   values, keys):
    """One decoding step over the cache's filled prefix: the synthesized
    members' logits (a table row, or the step's dense row) and the vanilla
    member's alpha-scaled query against the key cache."""
    alphas = ([None] if alpha_logits is None else
              synth.mixture_weights(alpha_logits, alpha_logits.shape.dims[0]))
    terms, queries = [masks.attention_bias(context)], None
    for name, alpha in zip(self.members, alphas):
      if name == "vanilla":
        term = synth.dot_product_queries(weights[name], features, dims)
      else:
        term = synth.COMPONENTS[name].logits(weights[name], features, dims)
      term = term if alpha is None else alpha * term
      if name == "vanilla":
        queries = term
      else:
        terms.append(term)
    memory_length = masks.memory_length(context)
    return decoding.attend_prefix(
        values, memory_length, context.position, values.shape - memory_length,
        queries=queries, keys=keys, key_dim=dims.kv,
        logits=functools.reduce(mtf.add, [t for t in terms if t is not None]))
