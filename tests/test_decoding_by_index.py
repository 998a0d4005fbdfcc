"""Decoding by index (mtf_synth.attention.decoding): cache writes and
prefix attention against numpy, and mesh TF's SelfAttention decoding through
them equal to a full recompute (logits, greedy with ragged prompts, beam),
with the decode loop compiled by XLA (mtf_synth.decode_loop) and op by op."""

import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import attention
from mesh_tensorflow.transformer import transformer
from mesh_tensorflow.transformer import transformer_layers
import mtf_harness
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from mtf_synth.attention import decoding
from test_synthesizer_decode import greedy_full_sequence

VOCAB, LENGTH = 13, 10
B, H, M, D = 3, 2, 6, 4


def tensor(mesh, values, names, dtype=tf.float32):
  values = np.asarray(values)
  dims = [mtf.Dimension(n, s) for n, s in zip(names, values.shape)]
  return mtf.import_tf_tensor(mesh, tf.constant(values, dtype), dims)


def test_write_at_position_matches_numpy():
  """Rows at positions 0, 5 (the last) and 6 (past the end: unchanged);
  the update comes in another dim order than the cache."""
  rng = np.random.RandomState(0)
  cache, update = rng.randn(B, M, H, D), rng.randn(H, B, D)
  position = np.array([0, 5, 6])

  def build(mesh):
    c = tensor(mesh, cache, ["batch", "memory_length", "heads", "d_kv"])
    u = tensor(mesh, update, ["heads", "batch", "d_kv"])
    p = tensor(mesh, position, ["batch"], tf.int32)
    return {"out": decoding.write_at_position(c, u, p, c.shape.dims[1])}

  expected = cache.copy()
  for b, t in enumerate(position):
    if t < M:
      expected[b, t] = update[:, b]
  np.testing.assert_allclose(mtf_harness.run_mtf(build)["out"], expected,
                             rtol=1e-6)


@pytest.mark.parametrize("extra_logit", [None, 0.0])
def test_attend_prefix_equals_masked_attention_over_the_whole_cache(
    extra_logit):
  """Ragged positions with a causal bias: reading 0..max(position) equals
  softmax attention over every position; bias has no heads dim, values
  another dim order."""
  rng = np.random.RandomState(1)
  q, k, v = rng.randn(B, H, D), rng.randn(B, M, H, D), rng.randn(H, M, B, D)
  position = np.array([1, 3, 2])
  bias = np.where(np.arange(M)[None] <= position[:, None], 0.0, -1e9)

  def build(mesh):
    queries = tensor(mesh, q, ["batch", "heads", "d_kv"])
    keys = tensor(mesh, k, ["batch", "memory_length", "heads", "d_kv"])
    values = tensor(mesh, v, ["heads", "memory_length", "batch", "d_kv"])
    out = decoding.attend_prefix(
        values, keys.shape.dims[1],
        tensor(mesh, position, ["batch"], tf.int32), queries.shape,
        queries=queries, keys=keys, key_dim=queries.shape.dims[-1],
        logits=tensor(mesh, bias, ["batch", "memory_length"]),
        extra_logit=extra_logit)
    return {"out": out}

  logits = np.einsum("bhd,bmhd->bhm", q, k) + bias[:, None]
  if extra_logit is not None:
    logits = np.concatenate([logits, np.full((B, H, 1), extra_logit)], -1)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights = (weights / weights.sum(-1, keepdims=True))[..., :M]
  expected = np.einsum("bhm,hmbd->bhd", weights, v)
  np.testing.assert_allclose(mtf_harness.run_mtf(build)["out"], expected,
                             rtol=1e-5, atol=1e-6)


# Mesh TF SelfAttention decoders: learned positions; T5's shared relative
# bias without positions; multi-query shared keys/values with extra_logit.
CONFIGS = {
    "positional": (dict(), True),
    "t5_relative": (dict(relative_attention_type="bias_shared"), False),
    "multi_query_shared_kv": (dict(num_memory_heads=1, shared_kv=True,
                                   attention_kwargs={"extra_logit": 0.0}),
                              True),
}


def decoder(config, layers=2):
  kwargs, positional = CONFIGS[config]
  stack = []
  for _ in range(layers):
    stack += [transformer_layers.SelfAttention(num_heads=2, key_value_size=4,
                                               **kwargs),
              transformer_layers.DenseReluDense(hidden_size=16)]
  return transformer.Unitransformer(
      layer_stack=mtf_harness.make_layer_stack(stack), d_model=8,
      input_vocab_size=VOCAB, output_vocab_size=VOCAB, autoregressive=True,
      max_length=LENGTH, vocab_divisor=1, name="decoder",
      positional_embedding=positional)


def random_ids(seed=0, batch=2):
  return np.random.RandomState(seed).randint(2, VOCAB, size=(batch, LENGTH))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_incremental_logits_equal_full(config):
  prefix = 3
  out = mtf_harness.run_mtf(lambda mesh: mtf_harness.full_and_incremental_logits(
      mesh, decoder(config), random_ids(), prefix))
  full = out["full"][:, prefix:]
  assert full.std() > 0.1
  np.testing.assert_allclose(out["incremental"], full, rtol=1e-4, atol=1e-5)


def test_incremental_logits_equal_full_on_a_2x2_mesh():
  """Batch and heads split over 4 devices: each slice reads its own prefix."""
  prefix = 2
  model = decoder("t5_relative")
  build = lambda mesh: mtf_harness.full_and_incremental_logits(
      mesh, model, random_ids(batch=4), prefix)
  one = mtf_harness.run_mtf(build)
  mesh = mtf_harness.run_mtf(build, mesh_shape="model:2,batch:2",
                             layout_rules="heads:model,batch:batch")
  np.testing.assert_allclose(mesh["incremental"], one["incremental"],
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(one["incremental"], one["full"][:, prefix:],
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_ragged_prompts_decode_equals_full_decode(config, compiled):
  """Prompts of 3 and 2 tokens, decoded to max_length (the row with the
  longer prompt steps past the end)."""
  prompts_np = np.zeros((2, LENGTH), np.int32)
  prompts_np[0, :3], prompts_np[1, :2] = [5, 6, 7], [8, 9]
  model = decoder(config)

  def build(mesh):
    prompts = tensor(mesh, prompts_np, ["batch", "length"], tf.int32)
    batch, length_dim = prompts.shape.dims
    incremental = model.sample_autoregressive(
        prompts, stop_at_token=1, never_end=True, temperature=0.0)
    full = greedy_full_sequence(
        mesh, model, batch, length_dim,
        lambda ids: model.call_simple(transformer.autoregressive_inputs(ids),
                                      None, compute_loss=False,
                                      mode="eval")[0],
        prompts=prompts, never_end_token=1)
    return {"incremental": incremental, "full": full}

  out = mtf_harness.run_mtf(build, seed=3)
  np.testing.assert_array_equal(out["incremental"], out["full"])
  assert len(np.unique(out["full"][:, 3:])) > 1


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_beam_search_incremental_equals_full_recompute(config, compiled):
  mtf_harness.assert_beam_search_matches_full_recompute(decoder(config),
                                                        LENGTH, seed=3)


def decode_graph_op_types(layer):
  """TF op types of a lowered one-layer greedy decode."""
  model = transformer.Unitransformer(
      layer_stack=mtf_harness.make_layer_stack([layer]), d_model=8,
      input_vocab_size=VOCAB, output_vocab_size=VOCAB, autoregressive=True,
      max_length=LENGTH, vocab_divisor=1, name="decoder")
  with tf.Graph().as_default() as graph:
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    ids = mtf.zeros(mesh, mtf.Shape([mtf.Dimension("batch", 2),
                                     mtf.Dimension("length", LENGTH)]),
                    tf.int32)
    out = model.sample_autoregressive(ids, temperature=0.0,
                                      has_partial_sequences=False)
    mesh_impl = mtf.placement_mesh_impl.PlacementMeshImpl("", "", ["/cpu:0"])
    mtf.Lowering(mesh.graph, {mesh: mesh_impl}).export_to_tf_tensor(out)
    graph_def = graph.as_graph_def()  # the loop body is a library function
    return {node.op for node in graph_def.node} | {
        node.op for f in graph_def.library.function for node in f.node_def}


class OwnAttentionFunction(transformer_layers.SelfAttention):
  """A subclass with its own attention function: decoding by index cannot
  know what it computes."""

  @property
  def attention_fn(self):
    return attention.attention


def test_plain_self_attention_decodes_by_index_and_others_as_mesh_tf():
  plain = decode_graph_op_types(transformer_layers.SelfAttention(
      num_heads=2, key_value_size=4))
  assert "TensorScatterUpdate" in plain
  other = decode_graph_op_types(OwnAttentionFunction(num_heads=2,
                                                     key_value_size=4))
  assert "TensorScatterUpdate" not in other


def test_beam_search_reorders_states_by_index():
  with tf.Graph().as_default():
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    ids = mtf.zeros(mesh, mtf.Shape([mtf.Dimension("batch", 2),
                                     mtf.Dimension("beam", 3),
                                     mtf.Dimension("length", LENGTH)]),
                    tf.int32)
    decoder("positional").beam_search(
        ids, mtf.constant(mesh, LENGTH, dtype=tf.int32), alpha=0.6)
    operations = [type(op).__name__ for loop in mesh.graph.operations
                  for op in getattr(loop, "_body_ops", ())]
  # One reorder per cache: 2 layers x (keys, values).
  assert operations.count("_GatherBeams") == 4


def traced_decode(decode):
  """One traced run of `decode(mesh)` (an mtf decode): {op type:
  executions}, the decoded ids."""
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    mesh = mtf.Mesh(mtf.Graph(), "mesh")
    out = decode(mesh)
    mesh_impl = mtf.placement_mesh_impl.PlacementMeshImpl("", "", ["/cpu:0"])
    lowering = mtf.Lowering(mesh.graph, {mesh: mesh_impl})
    tf_out = lowering.export_to_tf_tensor(out)
    with tf.Session(config=mtf_harness.virtual_cpu_config(1)) as sess:
      sess.run(tf.global_variables_initializer())
      sess.run(lowering.copy_masters_to_slices())
      metadata = tf.RunMetadata()
      value = sess.run(tf_out, options=tf.RunOptions(
          trace_level=tf.RunOptions.FULL_TRACE), run_metadata=metadata)
  executions = {}
  for device in metadata.step_stats.dev_stats:
    for node in device.node_stats:
      op = node.timeline_label.split(" = ", 1)[-1].split("(", 1)[0]
      executions[op] = executions.get(op, 0) + 1
  return executions, value


def greedy(mesh):
  ids = mtf.zeros(mesh, mtf.Shape([mtf.Dimension("batch", 2),
                                   mtf.Dimension("length", LENGTH)]),
                  tf.int32)
  return decoder("t5_relative").sample_autoregressive(
      ids, temperature=0.0, has_partial_sequences=False, stop_at_token=1,
      never_end=True)


def beam(mesh):
  return mtf_harness.beam_search_incremental_and_full(
      mesh, decoder("t5_relative"), LENGTH)["incremental"]


@pytest.mark.parametrize("decode", [greedy, beam])
def test_decode_loop_runs_compiled_unless_gin_says_not(decode, compiled):
  """Compiled, each step of the loop is one XLA launch (its einsums run
  inside it); op by op there is none, and each step slices the cache's
  filled prefix. (The tests above hold both to a full recompute.)"""
  executions, decoded = traced_decode(decode)
  launches = executions.get("_XlaRun", 0)
  einsums = executions.get("Einsum", 0) + executions.get("_MklEinsum", 0)
  if compiled:
    assert launches >= LENGTH - 1, sorted(executions.items())
    assert einsums < LENGTH, sorted(executions.items())
  else:
    assert launches == 0, sorted(executions.items())
    assert executions.get("Slice", 0) >= LENGTH - 1, sorted(executions.items())
  assert len(np.unique(decoded)) > 1
