"""Incremental decoding: cache writes by index, attention over the filled prefix.

Mesh TF's incremental path (transformer_layers.SelfAttention) keeps each
layer's key/value cache at the full static length and, at every step,
  - writes the step's key and value with one-hot arithmetic over the whole
    cache: cache * (1 - one_hot(position)) + new * one_hot(position), two
    einsums, a transpose and an add per cache; and
  - attends over all `memory_length` positions, the unwritten ones masked.
Here a write is an index write (tf.tensor_scatter_nd_update on each slice;
inside the decode loop TF still copies the cache once per write, since the
loop variable's buffer is not handed over: a memcpy instead of the
arithmetic), and attention reads only positions 0..max(position) of each
slice: a dynamic slice inside the lowering, so mtf shapes stay static. The
causal bias hides every key past a row's position, so the result is
attention over the whole cache, summed in another order. Caches are kept as
[batch.., heads.., memory, kv] (cache_layout), and beam search reorders them
by index (gather_beams) rather than with a one-hot product.

On TPU (SimdMeshImpl) both lower as mesh TF's did, one-hot write and the full
length: XLA wants static shapes. Inside a loop compiled with XLA off TPU
(mtf_synth.decode_loop) writes stay index writes and attention reads the
full length. A layout may not split memory_length.
"""

import contextlib
import contextvars
import string

import mesh_tensorflow as mtf
from mesh_tensorflow import simd_mesh_impl
import tensorflow.compat.v1 as tf


_FULL_LENGTH = contextvars.ContextVar("mtf_synth_full_length_attention",
                                      default=False)


@contextlib.contextmanager
def full_length_attention():
  """Within: attend_prefix lowers to attention over the whole cache (static
  shapes, for XLA)."""
  token = _FULL_LENGTH.set(True)
  try:
    yield
  finally:
    _FULL_LENGTH.reset(token)


def _on_tpu(mesh_impl):
  return isinstance(mesh_impl, simd_mesh_impl.SimdMeshImpl)


def _check_memory_whole(mesh_impl, memory_dim):
  if mesh_impl.tensor_dimension_to_mesh_axis(memory_dim) is not None:
    raise ValueError("incremental decoding needs %s whole on each device; the "
                     "layout splits it" % memory_dim.name)


def cache_layout(cache, memory_dim, kv_dim):
  """`cache` as decoding keeps it: [batch.., heads.., memory, kv], so that
  both products of a step (q . keys, weights . values) are batched matmuls
  over the leading dims, with no transpose of the cache."""
  others = [d for d in cache.shape.dims if d not in (memory_dim, kv_dim)]
  return mtf.transpose(cache, others + [memory_dim, kv_dim])


def write_at_position(cache, update, position, memory_dim):
  """`cache` with `update` written at `position` along `memory_dim`.

  cache: [..., memory_dim, ...]; update: the cache's dims minus memory_dim
  (any order); position: int32 over some of the dims before memory_dim
  (batch) or a scalar. Rows whose position is past the end are left as they
  are (mesh TF's one-hot write is all zeros there).
  """
  memory_axis = cache.shape.dims.index(memory_dim)
  leading = cache.shape.dims[:memory_axis]
  trailing = cache.shape.dims[memory_axis + 1:]
  update = mtf.transpose(mtf.broadcast(update, mtf.Shape(leading + trailing)),
                         leading + trailing)
  position = mtf.broadcast(position, mtf.Shape(leading))
  return _WriteAtPosition(cache, update, position, memory_dim).outputs[0]


class _WriteAtPosition(mtf.Operation):
  """See write_at_position; decoding only (no gradient)."""

  def __init__(self, cache, update, position, memory_dim):
    super().__init__([cache, update, position], name="write_at_position")
    self._memory_dim = memory_dim
    self._outputs = [mtf.Tensor(self, cache.shape, cache.dtype)]

  def lower(self, lowering):
    mesh_impl = lowering.mesh_impl(self)
    _check_memory_whole(mesh_impl, self._memory_dim)
    size = self._memory_dim.size
    leading = self.inputs[2].shape.ndims

    def scatter(cache, update, position):
      in_range = position < size
      clipped = tf.minimum(position, size - 1)
      rows = tf.meshgrid(*[tf.range(n) for n in position.shape.as_list()],
                         indexing="ij")
      indices = tf.stack(rows + [clipped], axis=-1)
      if not _on_tpu(mesh_impl):
        # Past-the-end rows rewrite the last entry with what it holds.
        kept = tf.gather_nd(cache, indices)
        mask = tf.reshape(in_range, in_range.shape.as_list() +
                          [1] * (update.shape.ndims - leading))
        return tf.tensor_scatter_nd_update(
            cache, indices, tf.where_v2(mask, update, kept))
      one_hot = tf.one_hot(position, size, dtype=cache.dtype)
      one_hot = tf.reshape(one_hot, one_hot.shape.as_list() + [1] * (
          cache.shape.ndims - leading - 1))
      expanded = tf.expand_dims(update, leading)
      return cache * (1 - one_hot) + expanded * one_hot

    lowering.set_tensor_lowering(self.outputs[0], mesh_impl.slicewise(
        scatter, *[lowering.tensors[t] for t in self.inputs]))


def attend_prefix(values, memory_dim, position, output_shape, queries=None,
                  keys=None, key_dim=None, logits=None, extra_logit=None,
                  float32_logits=True):
  """Attention of one decoding step over the cache's filled prefix.

  logits = queries . keys (over key_dim, if queries are given) + `logits`
  (a bias and any other additive logits), softmax over memory_dim (with
  mesh TF's `extra_logit`), then the weighted sum of `values`. Only
  memory positions 0..max(position) of each slice are read: every later key
  must be masked out by `logits` (the causal bias does that when decoding).
  With float32_logits the dot product runs in float32 (as mesh TF's
  attention); the weights take the values' dtype before the sum.
  """
  inputs = [values, position] + [t for t in (queries, keys, logits)
                                 if t is not None]
  roles = ["values", "position"] + [r for r, t in (
      ("queries", queries), ("keys", keys), ("logits", logits))
                                    if t is not None]
  return _AttendPrefix(inputs, roles, memory_dim, key_dim, output_shape,
                       extra_logit, float32_logits).outputs[0]


class _AttendPrefix(mtf.Operation):
  """See attend_prefix; decoding only (no gradient)."""

  def __init__(self, inputs, roles, memory_dim, key_dim, output_shape,
               extra_logit, float32_logits):
    super().__init__(inputs, name="attend_prefix")
    self._roles, self._memory_dim, self._key_dim = roles, memory_dim, key_dim
    self._extra_logit, self._float32_logits = extra_logit, float32_logits
    values = inputs[0]
    self._outputs = [mtf.Tensor(self, mtf.Shape(output_shape), values.dtype)]

  def _names(self, role):
    return [d.name for d in self.inputs[self._roles.index(role)].shape.dims]

  def lower(self, lowering):
    mesh_impl = lowering.mesh_impl(self)
    _check_memory_whole(mesh_impl, self._memory_dim)
    memory, key = self._memory_dim.name, getattr(self._key_dim, "name", None)
    names = {r: self._names(r) for r in self._roles}
    output_names = [d.name for d in self.outputs[0].shape.dims]
    # Logits dims: the output's that a logits term has, then memory; in
    # the `logits` input's own order where it has them all with memory last
    # (R's table rows), so that input is not transposed at every step.
    in_logits = {n for r in ("queries", "keys", "logits") for n in
                 names.get(r, ())} - {memory, key}
    logits_names = [n for n in output_names if n in in_logits] + [memory]
    if sorted(names.get("logits", ())) == sorted(logits_names) and (
        names["logits"][-1] == memory):
      logits_names = list(names["logits"])
    dot_names = [n for n in logits_names if n in names.get("queries", ()) or
                 n in names.get("keys", ())]
    letters = dict(zip(sorted(set().union(*names.values(), output_names)),
                       string.ascii_letters))

    def spell(dim_names):
      return "".join(letters[n] for n in dim_names)

    def prefix(tensor, role, length):
      if length is None or memory not in names[role]:
        return tensor
      axis = names[role].index(memory)
      shape = tensor.shape.as_list()
      size = [-1] * len(shape)
      size[axis], shape[axis] = length, None
      prefix_slice = tf.slice(tensor, [0] * len(shape), size)
      prefix_slice.set_shape(shape)
      return prefix_slice

    def attend(*slices):
      tensors = dict(zip(self._roles, slices))
      if _on_tpu(mesh_impl) or _FULL_LENGTH.get():
        length = None  # the whole cache
      else:
        length = tf.minimum(tf.reduce_max(tensors["position"]) + 1,
                            self._memory_dim.size)
      terms = []
      if "queries" in tensors:
        queries, keys = tensors["queries"], prefix(tensors["keys"], "keys",
                                                   length)
        if self._float32_logits:
          queries, keys = tf.cast(queries, tf.float32), tf.cast(keys,
                                                                tf.float32)
        dot = tf.einsum("%s,%s->%s" % (spell(names["queries"]),
                                       spell(names["keys"]), spell(dot_names)),
                        queries, keys)
        terms.append(_aligned(dot, dot_names, logits_names))
      if "logits" in tensors:
        terms.append(_aligned(prefix(tensors["logits"], "logits", length),
                              names["logits"], logits_names))
      logits = terms[0] if len(terms) == 1 else terms[0] + tf.cast(
          terms[1], terms[0].dtype)
      weights = _softmax_last_axis(logits, self._extra_logit)
      # The weights, not the value cache, take the other's dim order: a
      # batched product with its batch dims in another order transposes
      # an operand, and the cache is the large one.
      weights_names = [n for n in names["values"] if n in logits_names] + [
          n for n in logits_names if n not in names["values"]]
      if weights_names != logits_names:
        weights = tf.transpose(weights, [logits_names.index(n)
                                         for n in weights_names])
      values = prefix(tensors["values"], "values", length)
      return tf.einsum("%s,%s->%s" % (
          spell(weights_names), spell(names["values"]), spell(output_names)),
                       tf.cast(weights, values.dtype), values)

    lowering.set_tensor_lowering(self.outputs[0], mesh_impl.slicewise(
        attend, *[lowering.tensors[t] for t in self.inputs]))


def _aligned(tensor, names, target_names):
  """`tensor` transposed to `target_names`' order, size 1 where it lacks one
  of them (so it broadcasts). Where the order only moves axes of size 1 (or
  none), a reshape does it: a transpose copies, once per decoding step."""
  present = [n for n in target_names if n in names]
  order = [names.index(n) for n in present]
  static = tensor.shape.as_list()
  moved = [i for i in order if static[i] != 1]
  if moved != sorted(moved):
    tensor = tf.transpose(tensor, order)
    order = list(range(len(order)))
  sizes = tf.unstack(tf.shape(tensor)) if present else []
  shape = [sizes[order[present.index(n)]] if n in names else 1
           for n in target_names]
  return tf.reshape(tensor, tf.stack(shape))


def _softmax_last_axis(logits, extra_logit):
  """mtf.softmax(logits, extra_logit=...) over the last axis."""
  if extra_logit is None:
    return tf.nn.softmax(logits, axis=-1)
  top = tf.maximum(tf.reduce_max(logits, axis=-1, keepdims=True), extra_logit)
  exp = tf.exp(logits - top)
  return exp / (tf.reduce_sum(exp, axis=-1, keepdims=True) +
                tf.exp(extra_logit - top))


def gather_beams(state, selector, old_beam_dim, output_shape):
  """Beam search's state reorder, einsum([state, selector]) reducing
  `old_beam_dim` with a one-hot selector [batch.., old_beam, beam], as an
  index gather: each new beam copies its old beam's slice."""
  new_dims = [d for d in selector.shape.dims if d not in state.shape.dims]
  shared = [d for d in selector.shape.dims
            if d in state.shape.dims and d != old_beam_dim]
  index = mtf.reduce_sum(
      mtf.to_int32(selector) * mtf.range(state.mesh, old_beam_dim, tf.int32),
      reduced_dim=old_beam_dim)
  index = mtf.transpose(index, shared + new_dims)
  others = [d for d in state.shape.dims if d not in shared]
  state = mtf.transpose(state, shared + others)
  gathered = _GatherBeams(state, index, old_beam_dim, new_dims).outputs[0]
  return mtf.transpose(gathered, output_shape)


class _GatherBeams(mtf.Operation):
  """See gather_beams; decoding only (no gradient)."""

  def __init__(self, state, index, old_beam_dim, new_dims):
    super().__init__([state, index], name="gather_beams")
    self._old_beam_dim = old_beam_dim
    self._axis = state.shape.dims.index(old_beam_dim)
    self._batch_dims = index.shape.ndims - len(new_dims)
    dims = state.shape.dims
    self._outputs = [mtf.Tensor(self, mtf.Shape(
        dims[:self._axis] + new_dims + dims[self._axis + 1:]), state.dtype)]

  def lower(self, lowering):
    mesh_impl = lowering.mesh_impl(self)
    _check_memory_whole(mesh_impl, self._old_beam_dim)

    def gather(state, index):
      if not _on_tpu(mesh_impl):
        return tf.gather(state, index, axis=self._axis,
                         batch_dims=self._batch_dims)
      one_hot = tf.one_hot(index, self._old_beam_dim.size, dtype=state.dtype)
      letters = string.ascii_letters[:state.shape.ndims]
      new = string.ascii_letters[state.shape.ndims:index.shape.ndims +
                                 state.shape.ndims - self._batch_dims]
      batch, old = letters[:self._batch_dims], letters[self._axis]
      output = letters[:self._axis] + new + letters[self._axis + 1:]
      return tf.einsum("%s,%s->%s" % (batch + new + old, letters, output),
                       one_hot, state)

    lowering.set_tensor_lowering(self.outputs[0], mesh_impl.slicewise(
        gather, *[lowering.tensors[t] for t in self.inputs]))
