"""Synthesizer attention math (Tay et al. 2021) as pure functions of mtf dims.

Every component returns attention logits with dims
  batch dims + {heads} + query dims + {memory_length}
where the query dims are {length} in full mode and none in incremental mode.
The layer (mtf_synth/layers/synthesizer.py) owns the variables, the masks and
the decoding cache; this module only says how logits are computed, so the
numpy reference in the tests can mirror it line by line.

Components (mode names) and their logits S(X) for query i and key j, per head:
  dense              W2 relu(W1 x_i + b1) + b2, a row of max_length logits,
                     column j taken at key position j
  random             R[i, j], R a trainable max_length x max_length table
  fixed_random       the same, R initialised randomly and never trained
  factorized_dense   A_i = Wa x_i + ba in R^a, B_i = Wb x_i + bb in R^b,
                     a * b = max_length, column j is A_i[j mod a] *
                     B_i[j div a]: every (A, B) pair once (see
                     factorized_dense_logits)
  factorized_random  R = R1 R2^T, R1, R2 in R^(max_length x k)
  vanilla            q_i . k_j (scaled dot product; scale folded into Wq init)

i and j are positions within the example (packed examples restart at 0).
A mode "c1+c2+..." mixes components with logits = sum_m alpha_m S_m(X),
alpha = softmax(learned alpha logits) so the alphas sum to 1 (paper eq. 6).

Upstream mesh TF `Synthesizer.synthesize_mode` names are accepted (ALIASES):
  random -> random            factorized -> factorized_random (done right:
  dense_minus -> dense        R1 R2^T, not one row broadcast to every query)
  random_plus, random_plus_alpha -> random+vanilla
  dense_plus, dense_plus_alpha   -> dense+vanilla
Upstream `*_plus` added the two logits unweighted and `*_plus_alpha` used a
sigmoid gate; both now get the paper's softmax-normalised alphas.
"""

import dataclasses
import functools
from typing import Callable, Dict, List, Optional

import mesh_tensorflow as mtf
import tensorflow.compat.v1 as tf

from mtf_synth import errors

ALIASES = {
    "factorized": "factorized_random",
    "dense_minus": "dense",
    "random_plus": "random+vanilla",
    "random_plus_alpha": "random+vanilla",
    "dense_plus": "dense+vanilla",
    "dense_plus_alpha": "dense+vanilla",
}


@dataclasses.dataclass(frozen=True)
class SynthesizerDims:
  """Named dimensions of one synthesizer layer's weights."""
  model: mtf.Dimension           # d_model
  heads: mtf.Dimension           # "heads": split it over a mesh dim
  kv: mtf.Dimension              # d_kv, per-head value (and key) size
  query_table: mtf.Dimension     # max_length rows of random tables
  key_table: mtf.Dimension       # max_length columns of synthesized logits
  hidden: mtf.Dimension          # dense synthesizer hidden size per head
  factor_a: mtf.Dimension        # factorized dense: a
  factor_b: mtf.Dimension        # factorized dense: b, a * b = max_length
  rank: mtf.Dimension            # factorized random: k


@dataclasses.dataclass(frozen=True)
class Features:
  """What the components read, for one call of the layer.

  x: query-side input, batch dims + [length] (absent when incremental)
     + [d_model].
  keys: dot-product keys, batch dims + [memory_length, heads, d_kv]; only
     when a vanilla component is present.
  query_position / memory_position: int32 positions within the example of
     the queries (dims of x minus d_model) and of the keys ([memory_length]
     or batch dims + [memory_length]).
  *_is_range: the positions are mtf.range over their one dimension, so the
     tables can be sliced instead of gathered (the unpacked fast path).
  """
  x: mtf.Tensor
  keys: Optional[mtf.Tensor]
  query_position: mtf.Tensor
  memory_position: mtf.Tensor
  query_is_range: bool
  memory_is_range: bool


@dataclasses.dataclass(frozen=True)
class WeightSpec:
  """Shape and initializer stddev of one weight (stddev 0: zeros)."""
  shape: List[mtf.Dimension]
  stddev: float

  @property
  def initializer(self):
    if self.stddev == 0:
      return tf.zeros_initializer()
    return tf.random_normal_initializer(stddev=self.stddev)


Weights = Dict[str, mtf.Tensor]


def take(table, table_dim, positions, positions_are_range):
  """Entries of `table` along `table_dim` at `positions`.

  The result has the dims of `table` minus `table_dim` plus those of
  `positions`; dims they share (batch) are matched, not crossed. A range of
  positions slices; other positions (packed examples, incremental decoding)
  gather with tf.gather per slice, O(output) rather than a one-hot einsum's
  O(output * max_length).
  """
  if positions_are_range:
    position_dim, = positions.shape.dims
    sliced = mtf.slice(table, 0, position_dim.size, table_dim.name)
    return mtf.rename_dimension(sliced, table_dim.name, position_dim.name)
  shared = [d for d in positions.shape.dims if d in table.shape.dims]
  new = [d for d in positions.shape.dims if d not in table.shape.dims]
  # Only shared dims move (to the front, for batch_dims): the table keeps
  # its order otherwise, so a decoding step reads a row without a transpose
  # of the whole table.
  own = [d for d in table.shape.dims if d not in shared]
  axis, batch_dims = len(shared) + own.index(table_dim), len(shared)
  table = _in_order(table, shared + own)
  positions = _in_order(positions, shared + new)
  rest_before, rest_after = own[:own.index(table_dim)], own[
      own.index(table_dim) + 1:]

  def gather(table_slice, positions_slice):
    return tf.gather(table_slice, positions_slice, axis=axis,
                     batch_dims=batch_dims)

  def gather_grad(op, dy):
    return [_GatherGrad(dy, positions, table.shape, axis, batch_dims,
                        summed_dims=new).outputs[0], None]

  output_dims = shared + rest_before + new + rest_after
  return mtf.slicewise(gather, [table, positions],
                       output_shape=mtf.Shape(output_dims),
                       output_dtype=table.dtype,
                       splittable_dims=output_dims,
                       grad_function=gather_grad)


def _in_order(tensor, dims):
  return tensor if tensor.shape.dims == dims else mtf.transpose(tensor, dims)


class _GatherGrad(mtf.Operation):
  """Gradient of `take`'s gather with respect to the table.

  Scatter-adds per slice, then sums over the mesh axes that split the
  position dims not in the table (e.g. batch): the table is replicated across
  them, so each slice holds a partial sum. (mesh TF's generic slicewise
  gradient misses that sum.)
  """

  def __init__(self, dy, positions, table_shape, axis, batch_dims,
               summed_dims):
    super().__init__([dy, positions], name="synthesizer_gather_grad")
    self._outputs = [mtf.Tensor(self, table_shape, dy.dtype)]
    self._axis, self._batch_dims = axis, batch_dims
    self._summed_dims = summed_dims

  def lower(self, lowering):
    mesh_impl = lowering.mesh_impl(self)
    table_slice_shape = mesh_impl.slice_shape(self.outputs[0].shape)

    def scatter_add(dy_slice, positions_slice):
      zeros = tf.zeros(table_slice_shape, dy_slice.dtype)
      gathered = tf.gather(zeros, positions_slice, axis=self._axis,
                           batch_dims=self._batch_dims)
      return tf.convert_to_tensor(tf.gradients(gathered, zeros, dy_slice)[0])

    grad = mesh_impl.slicewise(scatter_add, lowering.tensors[self.inputs[0]],
                               lowering.tensors[self.inputs[1]])
    mesh_axes = [mesh_impl.tensor_dimension_to_mesh_axis(d)
                 for d in self._summed_dims]
    mesh_axes = [a for a in mesh_axes if a is not None]
    if mesh_axes:
      grad = mesh_impl.allreduce(grad, mesh_axes, "SUM")
    lowering.set_tensor_lowering(self.outputs[0], grad)


def _linear(x, w, b, dims):
  return mtf.einsum([x, w], reduced_dims=[dims.model]) + b


def dense_logits(w: Weights, f: Features, dims: SynthesizerDims):
  """D: logits_i = W2 relu(W1 x_i + b1) + b2, columns at key positions."""
  hidden = mtf.relu(_linear(f.x, w["w1"], w["b1"], dims))
  rows = mtf.einsum([hidden, w["w2"]], reduced_dims=[dims.hidden]) + w["b2"]
  return take(rows, dims.key_table, f.memory_position, f.memory_is_range)


def random_logits(w: Weights, f: Features, dims: SynthesizerDims):
  """R (and Fix): logits_ij = R[i, j], input-independent."""
  rows = take(w["table"], dims.query_table, f.query_position,
              f.query_is_range)
  return take(rows, dims.key_table, f.memory_position, f.memory_is_range)


def factorized_dense_logits(w: Weights, f: Features, dims: SynthesizerDims):
  """FD: logits_i = vec(A_i B_i^T), column j is A_i[j mod a] * B_i[j div a].

  The paper (Tay et al. 2021, Factorized Dense Synthesizer) writes
  A_i = F_A(X_i) in R^a, B_i = F_B(X_i) in R^b, H_A(A) = A tiled b times,
  H_B(B) = B tiled a times, C = H_A(A) * H_B(B). Read literally (both
  tiled), column j is A[j mod a] * B[j mod b], which repeats with period
  lcm(a, b): when a and b share factors a row has only lcm(a, b) distinct
  logits (32 of 512 at a = 16, b = 32). We read H_B as repeating each entry
  of B a times, so the a * b columns are all the products A[p] * B[q], as
  the factorization intends. Columns are taken at the key positions.
  """
  a = _linear(f.x, w["wa"], w["ba"], dims)
  b = _linear(f.x, w["wb"], w["bb"], dims)
  other = [d for d in a.shape.dims if d != dims.factor_a]
  # Merging (factor_b, factor_a) puts B[q] * A[p] at column q * a + p.
  outer = mtf.einsum([a, b], output_shape=other + [dims.factor_b,
                                                   dims.factor_a])
  rows = mtf.reshape(outer, other + [dims.key_table])
  return take(rows, dims.key_table, f.memory_position, f.memory_is_range)


def factorized_random_logits(w: Weights, f: Features, dims: SynthesizerDims):
  """FR: logits_ij = (R1 R2^T)[i, j] = R1[i] . R2[j]."""
  r1 = take(w["r1"], dims.query_table, f.query_position, f.query_is_range)
  r2 = take(w["r2"], dims.key_table, f.memory_position, f.memory_is_range)
  return mtf.einsum([r1, r2], reduced_dims=[dims.rank])


def random_table(w: Weights, dims: SynthesizerDims):
  """R itself, {heads, query_table, key_table}."""
  del dims
  return w["table"]


def factorized_random_table(w: Weights, dims: SynthesizerDims):
  """R1 R2^T, {heads, query_table, key_table} (logits of every position
  pair at once; the layer takes only the pairs it needs)."""
  return mtf.einsum([w["r1"], w["r2"]], reduced_dims=[dims.rank])


def dot_product_queries(w: Weights, f: Features, dims: SynthesizerDims):
  """V's queries q_i = Wq x_i."""
  return mtf.einsum([f.x, w["q"]], reduced_dims=[dims.model])


def dot_product_logits(w: Weights, f: Features, dims: SynthesizerDims):
  """V: logits_ij = q_i . k_j (1/sqrt(d_kv) is folded into Wq's init)."""
  return mtf.einsum([dot_product_queries(w, f, dims), f.keys],
                    reduced_dims=[dims.kv])


def mixture_weights(alpha_logits, members_dim):
  """alpha = softmax(alpha_logits), one scalar per member (sums to 1)."""
  alpha = mtf.softmax(alpha_logits, members_dim)
  return [mtf.gather(alpha, m, members_dim) for m in range(members_dim.size)]


def mix_logits(logits: List[mtf.Tensor], alpha_logits, members_dim):
  """sum_m alpha_m S_m with alpha = softmax(alpha_logits)."""
  terms = [a * s for a, s in zip(mixture_weights(alpha_logits, members_dim),
                                 logits)]
  return functools.reduce(lambda total, term: total + term, terms)


def attend(logits, values, memory_length_dim, kv_dim, bias=None,
           dropout_rate=0.0, train=False, dropout_broadcast_dims=()):
  """softmax over keys (after masking), then the weighted sum of values.

  The softmax runs in the logits' dtype (float32 under bfloat16 activations);
  the weights are then cast to the values' dtype.
  """
  if bias is not None:
    logits += bias
  weights = mtf.cast(mtf.softmax(logits, memory_length_dim), values.dtype)
  # Input-independent logits lack the batch dims; the values bring them.
  extra_dims = [d for d in values.shape.dims if d not in weights.shape.dims]
  output_shape = mtf.Shape(weights.shape.dims + extra_dims) - memory_length_dim
  if train and dropout_rate > 0:
    # Per-example dropout, even where the weights are shared by the batch.
    weights = mtf.broadcast(
        weights, output_shape - kv_dim + memory_length_dim)
    weights = mtf.dropout(weights, train, rate=dropout_rate,
                          noise_shape=weights.shape - dropout_broadcast_dims)
  return mtf.einsum([weights, values], output_shape=output_shape)


def _dense_weights(d: SynthesizerDims):
  return {
      "w1": WeightSpec([d.model, d.heads, d.hidden], d.model.size ** -0.5),
      "b1": WeightSpec([d.heads, d.hidden], 0.0),
      "w2": WeightSpec([d.heads, d.hidden, d.key_table],
                       d.hidden.size ** -0.5),
      "b2": WeightSpec([d.heads, d.key_table], 0.0),
  }


def _random_weights(d: SynthesizerDims):
  return {"table": WeightSpec([d.heads, d.query_table, d.key_table], 1.0)}


def _factorized_dense_weights(d: SynthesizerDims):
  stddev = d.model.size ** -0.5
  return {
      "wa": WeightSpec([d.model, d.heads, d.factor_a], stddev),
      "ba": WeightSpec([d.heads, d.factor_a], 0.0),
      "wb": WeightSpec([d.model, d.heads, d.factor_b], stddev),
      "bb": WeightSpec([d.heads, d.factor_b], 0.0),
  }


def _factorized_random_weights(d: SynthesizerDims):
  stddev = d.rank.size ** -0.25  # so R1 R2^T has unit variance
  return {"r1": WeightSpec([d.heads, d.query_table, d.rank], stddev),
          "r2": WeightSpec([d.heads, d.key_table, d.rank], stddev)}


def _dot_product_weights(d: SynthesizerDims):
  stddev = (d.model.size * d.kv.size) ** -0.5  # as SelfAttention's Wq
  return {"q": WeightSpec([d.model, d.heads, d.kv], stddev)}


@dataclasses.dataclass(frozen=True)
class Component:
  """One synthesizer component: its weights and its logits function."""
  weights: Callable[[SynthesizerDims], Dict[str, WeightSpec]]
  logits: Callable[[Weights, Features, SynthesizerDims], mtf.Tensor]
  trainable: bool = True
  synthesized: bool = True  # needs max_length tables (all but vanilla)
  # The input-free logits table (attention pictures); None when the logits
  # depend on the input.
  table: Optional[Callable[[Weights, SynthesizerDims], mtf.Tensor]] = None


COMPONENTS = {
    "dense": Component(_dense_weights, dense_logits),
    "random": Component(_random_weights, random_logits, table=random_table),
    "fixed_random": Component(_random_weights, random_logits,
                              trainable=False, table=random_table),
    "factorized_dense": Component(_factorized_dense_weights,
                                  factorized_dense_logits),
    "factorized_random": Component(_factorized_random_weights,
                                   factorized_random_logits,
                                   table=factorized_random_table),
    "vanilla": Component(_dot_product_weights, dot_product_logits,
                         synthesized=False),
}


def parse_mode(mode: str) -> List[str]:
  """'random+vanilla' (or an upstream alias) -> ['random', 'vanilla']."""
  members = ALIASES.get(mode, mode).split("+")
  unknown = [m for m in members if m not in COMPONENTS]
  if unknown or len(set(members)) != len(members):
    raise errors.UserError(
        "SynthesizerAttention.mode %r: use distinct components from %s joined "
        "by '+', or an alias from %s" % (mode, sorted(COMPONENTS),
                                         sorted(ALIASES)))
  return members
