"""SynthesizerAttention vs a numpy reference of the paper's formulas (1e-5)."""

import types

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_harness import run_mtf, variable_outputs
from mtf_synth import errors
from mtf_synth.attention import synthesizer as synth
from mtf_synth.layers.synthesizer import SynthesizerAttention

BATCH, LENGTH, D_MODEL, HEADS, D_KV, MAX_LENGTH = 2, 6, 8, 2, 3, 12
COMPONENTS = list(synth.COMPONENTS)
MIXTURES = ["random+vanilla", "+".join(COMPONENTS)]
# Two packed examples per row (lengths 4 + 2, and 3 + 2 + padding).
PACKED_POSITION = np.array([[0, 1, 2, 3, 0, 1], [0, 1, 2, 0, 1, 0]])
PACKED_SEQUENCE_ID = np.array([[1, 1, 1, 1, 2, 2], [1, 1, 1, 2, 2, 0]])


def call_layer(mesh, layer, x, packed, causal, length=LENGTH, mode="eval",
               activation_dtype=tf.float32):
  """Calls `layer` on numpy `x` in a hand-made encoder/decoder Context
  (float32 weights, `activation_dtype` activations)."""
  batch_dim = mtf.Dimension("batch", BATCH)
  length_dim = mtf.Dimension("length", length)
  model_dim = mtf.Dimension("d_model", D_MODEL)
  length_range = mtf.range(mesh, length_dim, tf.int32)

  def ints(values):
    return mtf.import_tf_tensor(mesh, tf.constant(values, tf.int32),
                                [batch_dim, length_dim])

  context = transformer.Context(
      model=types.SimpleNamespace(model_dim=model_dim, max_length_dim=None),
      mesh=mesh, batch_dims=[batch_dim], length_dim=length_dim,
      variable_dtype=mtf.VariableDType(tf.float32, tf.float32,
                                       activation_dtype), mode=mode,
      position=ints(PACKED_POSITION) if packed else length_range,
      position_is_default=not packed,
      sequence_id=ints(PACKED_SEQUENCE_ID) if packed else None,
      read_priority=length_range if causal else None,
      write_priority=length_range if causal else None)
  x_mtf = mtf.import_tf_tensor(mesh, tf.constant(x, activation_dtype),
                               [batch_dim, length_dim, model_dim])
  with tf.variable_scope("layer"):
    return layer.call(context, x_mtf)


def make_layer(mode, **kwargs):
  return SynthesizerAttention(mode=mode, num_heads=HEADS, key_value_size=D_KV,
                              max_length=MAX_LENGTH, **kwargs)


def layer_outputs(mode, x, packed, causal, init_values=None,
                  activation_dtype=tf.float32, **layer_kwargs):
  """Runs one SynthesizerAttention on `x`; returns its output (float32) and
  weights."""
  layer = make_layer(mode, **layer_kwargs)

  def build(mesh):
    y = call_layer(mesh, layer, x, packed, causal,
                   activation_dtype=activation_dtype)
    return dict(variable_outputs(mesh), y=mtf.cast(y, tf.float32))

  out = run_mtf(build, seed=3, init_values=init_values)
  weights = {k.split("/", 1)[1]: v for k, v in out.items() if "/" in k}
  return out["y"], weights


def reference_logits(name, w, x, query_pos, memory_pos):
  """[batch, heads, query, key] logits of one component, in numpy."""
  b_idx = np.arange(BATCH)[:, None, None]
  q_idx = query_pos[:, :, None]
  m_idx = memory_pos[:, None, :]
  if name == "dense":
    hidden = np.maximum(np.einsum("bld,dhf->blhf", x, w["dense/w1"])
                        + w["dense/b1"], 0)
    rows = np.einsum("blhf,hfn->bhln", hidden, w["dense/w2"])
    rows += w["dense/b2"][None, :, None, :]
    return np.stack([rows[b_idx, h, np.arange(LENGTH)[None, :, None], m_idx]
                     for h in range(HEADS)], axis=1)
  if name in ("random", "fixed_random"):
    table = w[name + "/table"]
    return np.stack([table[h][q_idx, m_idx] for h in range(HEADS)], axis=1)
  if name == "factorized_dense":
    a = np.einsum("bld,dha->bhla", x, w[name + "/wa"])
    a += w[name + "/ba"][None, :, None]
    b = np.einsum("bld,dhc->bhlc", x, w[name + "/wb"])
    b += w[name + "/bb"][None, :, None]
    a_cols = np.take_along_axis(
        a, np.broadcast_to((m_idx % a.shape[-1])[:, None],
                           (BATCH, HEADS, LENGTH, LENGTH)), axis=-1)
    # Column j pairs A[j mod a] with B[j div a] (every pair once).
    b_cols = np.take_along_axis(
        b, np.broadcast_to((m_idx // a.shape[-1])[:, None],
                           (BATCH, HEADS, LENGTH, LENGTH)), axis=-1)
    return a_cols * b_cols
  if name == "factorized_random":
    table = np.einsum("hik,hjk->hij", w[name + "/r1"], w[name + "/r2"])
    return np.stack([table[h][q_idx, m_idx] for h in range(HEADS)], axis=1)
  assert name == "vanilla"
  q = np.einsum("bld,dhe->bhle", x, w["vanilla/q"])
  k = np.einsum("bld,dhe->bhle", x, w["k"])
  return np.einsum("bhie,bhje->bhij", q, k)


def reference_output(mode, w, x, packed, causal):
  members = mode.split("+")
  position = PACKED_POSITION if packed else np.tile(np.arange(LENGTH),
                                                    (BATCH, 1))
  logits = [reference_logits(m, w, x, position, position) for m in members]
  if len(members) > 1:
    alpha = np.exp(w["alpha_logits"]) / np.exp(w["alpha_logits"]).sum()
    logits = [sum(a * s for a, s in zip(alpha, logits))]
  visible = np.ones((BATCH, 1, LENGTH, LENGTH), bool)
  if causal:
    visible &= np.tril(np.ones((LENGTH, LENGTH), bool))
  if packed:
    sid = PACKED_SEQUENCE_ID
    visible &= (sid[:, :, None] == sid[:, None, :])[:, None]
  scores = logits[0] + np.where(visible, 0.0, -1e9)
  probs = np.exp(scores - scores.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  v = np.einsum("bld,dhe->bhle", x, w["v"])
  o = np.einsum("bhij,bhje->bhie", probs, v)
  return np.einsum("bhie,hed->bid", o, w["o"])


@pytest.mark.parametrize("packed,causal", [(False, False), (True, True)])
@pytest.mark.parametrize("mode", COMPONENTS + MIXTURES)
def test_matches_numpy_reference(mode, packed, causal):
  x = np.random.RandomState(0).normal(size=(BATCH, LENGTH, D_MODEL))
  x = x.astype(np.float32)
  members = len(mode.split("+"))
  # Unequal mixture weights, so a wrong alpha/member pairing shows.
  alpha = {"layer/alpha_logits": np.linspace(-1, 1.5, members)}
  y, w = layer_outputs(mode, x, packed, causal, init_values=alpha,
                       factorized_a=3, factorized_b=4,
                       factorized_random_rank=5, dense_hidden_size=7)
  expected = reference_output(mode, w, x.astype(np.float64), packed, causal)
  np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("a,b", [(4, 8), (16, 32)])
def test_factorized_dense_rows_have_a_times_b_distinct_logits(a, b):
  """a and b share factors, yet every row holds all a * b products (tiling
  both factors would give only lcm(a, b) distinct logits)."""
  layer = SynthesizerAttention(mode="factorized_dense", num_heads=HEADS,
                               key_value_size=D_KV, max_length=a * b,
                               factorized_a=a, factorized_b=b)
  x = np.random.RandomState(1).normal(size=(BATCH, a * b, D_MODEL))

  def build(mesh):
    dims = layer.dims(mtf.Dimension("d_model", D_MODEL), a * b)
    length_dim = mtf.Dimension("length", a * b)
    memory_dim = mtf.Dimension("memory_length", a * b)
    weights = {
        name: mtf.get_variable(mesh, name, mtf.Shape(spec.shape),
                               initializer=spec.initializer)
        for name, spec in synth.COMPONENTS["factorized_dense"].weights(
            dims).items()}
    features = synth.Features(
        x=mtf.import_tf_tensor(mesh, tf.constant(x, tf.float32),
                               [mtf.Dimension("batch", BATCH), length_dim,
                                dims.model]),
        keys=None, query_position=mtf.range(mesh, length_dim, tf.int32),
        memory_position=mtf.range(mesh, memory_dim, tf.int32),
        query_is_range=True, memory_is_range=True)
    logits = synth.factorized_dense_logits(weights, features, dims)
    return {"logits": mtf.transpose(
        logits, logits.shape - memory_dim + memory_dim)}

  rows = run_mtf(build)["logits"].reshape(-1, a * b)
  assert [len(np.unique(row)) for row in rows] == [a * b] * len(rows)


def test_bfloat16_activations_keep_logits_and_softmax_float32():
  """In the lowered graph of a bfloat16-activation layer, every op of each
  component's logits and of the softmaxes (mixture alphas, attention) is
  float32, while the value path is bfloat16."""
  members = MIXTURES[1].split("+")
  with tf.Graph().as_default() as graph:
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    x = np.zeros((BATCH, LENGTH, D_MODEL), np.float32)
    y = call_layer(mesh, make_layer(MIXTURES[1]), x, packed=True, causal=True,
                   activation_dtype=tf.bfloat16)
    mesh_impl = mtf.placement_mesh_impl.PlacementMeshImpl(
        mtf.convert_to_shape(""), mtf.convert_to_layout_rules(""), [""])
    mtf.Lowering(mesh.graph, {mesh: mesh_impl}).export_to_tf_tensor(y)
  dtypes = {}  # scope under the layer ("softmax_1" counted as "softmax")
  for op in graph.get_operations():
    if op.name.startswith("layer/"):
      scope = op.name.split("/")[1]
      scope = "softmax" if scope.startswith("softmax") else scope
      dtypes.setdefault(scope, set()).update(
          t.dtype for t in op.outputs if t.dtype.is_floating)
  assert {s: dtypes[s] for s in members + ["softmax"]} == {
      s: {tf.float32} for s in members + ["softmax"]}
  assert tf.bfloat16 in set.union(*dtypes.values())
  assert y.dtype == tf.bfloat16


@pytest.mark.parametrize("mode", COMPONENTS + MIXTURES)
def test_bfloat16_activations_match_float32(mode):
  """A bfloat16-activation layer is close to the float32 one. Logits with
  a large common offset (softmax ignores it) show that logits are float32:
  in bfloat16, 100 + z is rounded to steps of 0.5."""
  x = np.random.RandomState(0).normal(size=(BATCH, LENGTH, D_MODEL))
  x = x.astype(np.float32)
  rng = np.random.RandomState(1)
  offsets = {
      "layer/%s/table" % name: 100 + rng.normal(
          size=(HEADS, MAX_LENGTH, MAX_LENGTH))
      for name in ("random", "fixed_random") if name in mode.split("+")}
  if "dense" in mode.split("+"):
    offsets["layer/dense/b2"] = np.full((HEADS, MAX_LENGTH), 100.0)
  y = {dtype: layer_outputs(mode, x, packed=True, causal=True,
                            init_values=offsets, activation_dtype=dtype)[0]
       for dtype in (tf.float32, tf.bfloat16)}
  np.testing.assert_allclose(y[tf.bfloat16], y[tf.float32], atol=3e-2)


def built_parameter_counts(layer, length=LENGTH):
  """(trainable, fixed) sizes of the variables `layer` creates in a graph."""
  with tf.Graph().as_default():
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    x = np.zeros((BATCH, length, D_MODEL), np.float32)
    call_layer(mesh, layer, x, packed=False, causal=False, length=length)
    sizes = [(v.trainable, v.outputs[0].shape.size)
             for v in mesh.graph.all_variables]
  return (sum(n for t, n in sizes if t), sum(n for t, n in sizes if not t))


@pytest.mark.parametrize("mode", COMPONENTS + MIXTURES + ["random_plus"])
def test_parameter_count_formula_matches_graph(mode):
  layer = make_layer(mode, factorized_a=2, factorized_b=6,
                     factorized_random_rank=5, dense_hidden_size=7)
  assert (layer.parameter_count(D_MODEL, MAX_LENGTH) ==
          built_parameter_counts(layer))


def test_fixed_random_is_not_trainable():
  trainable, fixed = built_parameter_counts(make_layer("fixed_random"))
  assert fixed == HEADS * MAX_LENGTH ** 2
  assert trainable == 2 * D_MODEL * HEADS * D_KV


UPSTREAM_MODES = {
    "random": ["random"], "factorized": ["factorized_random"],
    "dense_minus": ["dense"], "random_plus": ["random", "vanilla"],
    "random_plus_alpha": ["random", "vanilla"],
    "dense_plus": ["dense", "vanilla"],
    "dense_plus_alpha": ["dense", "vanilla"]}


@pytest.mark.parametrize("alias",
                         sorted(set(UPSTREAM_MODES) | set(synth.ALIASES)))
def test_upstream_aliases(alias):
  """Every alias has its expected members here (a new one needs a row)."""
  assert make_layer(alias).members == UPSTREAM_MODES[alias]


@pytest.mark.parametrize("mode", ["nonsense", "random+random", "random+"])
def test_unknown_mode_is_an_error(mode):
  with pytest.raises(errors.UserError, match="SynthesizerAttention.mode"):
    make_layer(mode)


def test_sequence_longer_than_max_length_is_a_one_line_error():
  with pytest.raises(errors.UserError) as error:
    built_parameter_counts(make_layer("random"), length=MAX_LENGTH + 1)
  message = str(error.value)
  assert "max_length 12" in message and "\n" not in message


def test_vanilla_needs_no_max_length():
  layer = SynthesizerAttention(mode="vanilla", num_heads=HEADS,
                               key_value_size=D_KV)
  assert built_parameter_counts(layer, length=40)[0] == 4 * D_MODEL * HEADS * D_KV


@pytest.mark.parametrize("mesh_shape", ["", "model:2,batch:2"])
@pytest.mark.parametrize("shared_batch", [False, True])
def test_take_gathers_and_differentiates_like_one_hot_gather(mesh_shape,
                                                             shared_batch):
  """synth.take's tf.gather path (and its gradient) == mtf.gather."""
  rng = np.random.RandomState(2)
  heads, rows = mtf.Dimension("heads", 2), mtf.Dimension("synth_rows", 5)
  batch, length = mtf.Dimension("batch", 4), mtf.Dimension("length", 3)
  table_dims = [batch, heads, rows] if shared_batch else [heads, rows]
  table_np = rng.normal(size=[d.size for d in table_dims]).astype(np.float32)
  positions_np = rng.randint(0, rows.size, (batch.size, length.size))

  def build(mesh):
    table = mtf.import_tf_tensor(mesh, tf.constant(table_np), table_dims)
    positions = mtf.import_tf_tensor(
        mesh, tf.constant(positions_np, tf.int32), [batch, length])
    weights = mtf.import_tf_tensor(
        mesh, tf.constant(rng.normal(size=(4, 3, 2)).astype(np.float32)),
        [batch, length, heads])
    out = {}
    for name, taken in [
        ("take", synth.take(table, rows, positions, False)),
        ("one_hot", mtf.gather(table, positions, rows))]:
      loss = mtf.reduce_sum(taken * weights)
      out[name] = mtf.transpose(taken, [batch, length, heads])
      out[name + "_grad"], = mtf.gradients([loss], [table])
    return out

  out = run_mtf(build, mesh_shape=mesh_shape,
                layout_rules="heads:model,batch:batch")
  np.testing.assert_allclose(out["take"], out["one_hot"], atol=1e-6)
  np.testing.assert_allclose(out["take_grad"], out["one_hot_grad"], atol=1e-5)


def test_dropout_is_per_example_for_batch_free_logits():
  """random's weights are shared by the batch; its dropout masks are not."""
  x = np.random.RandomState(3).normal(size=(1, LENGTH, D_MODEL))
  x = np.repeat(x, BATCH, axis=0).astype(np.float32)  # identical examples
  layer = make_layer("random", dropout_rate=0.5)
  y = run_mtf(lambda mesh: {"y": call_layer(mesh, layer, x, False, False,
                                            mode="train")})["y"]
  assert not np.allclose(y[0], y[1])
