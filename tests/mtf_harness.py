"""Runs small mesh TF computations in a TF1 graph for unit tests."""

import mtf_synth  # noqa: F401  (applies the compat patches first)

import mesh_tensorflow as mtf  # pylint: disable=g-bad-import-order
import numpy as np
import tensorflow.compat.v1 as tf

from mtf_synth.runtime import train_loop

# Loops as the command line builds them (cli.py: tf.disable_v2_behavior),
# Enter/Exit frames, not functional While ops.
tf.disable_control_flow_v2()


def virtual_cpu_config(num_devices):
  """A session config exposing `num_devices` CPU devices (/cpu:0..N-1), as
  the runtime configures the session of the default graph."""
  return train_loop.session_config(tf.get_default_graph(), tf.ConfigProto(
      device_count={"CPU": num_devices}, inter_op_parallelism_threads=2,
      intra_op_parallelism_threads=1))


def run_mtf(build_fn, mesh_shape="", layout_rules="", seed=0, feed_fn=None,
            init_values=None):
  """Builds `build_fn(mesh)` -> dict of mtf.Tensor, lowers it, returns numpy.

  mesh_shape "" runs on one device; e.g. "model:2,batch:2" runs on a
  PlacementMeshImpl over 4 virtual CPU devices. Variables are initialised
  from `seed`, so two calls with the same seed see the same weights whatever
  the layout (mesh TF initialises the full master variable before slicing).
  `init_values` ({variable name: array}) overrides chosen initial values.
  """
  mesh_shape = mtf.convert_to_shape(mesh_shape)
  layout_rules = mtf.convert_to_layout_rules(layout_rules)
  size = max(mesh_shape.size, 1)
  devices = ["/cpu:%d" % i for i in range(size)]
  with tf.Graph().as_default():
    tf.set_random_seed(seed)
    graph = mtf.Graph()
    mesh = mtf.Mesh(graph, "mesh")
    outputs = build_fn(mesh)
    mesh_impl = mtf.placement_mesh_impl.PlacementMeshImpl(
        mesh_shape, layout_rules, devices)
    lowering = mtf.Lowering(graph, {mesh: mesh_impl})
    tf_outputs = {k: lowering.export_to_tf_tensor(v)
                  for k, v in outputs.items()}
    overrides = [v.get_master().assign(init_values[v.name])
                 for v in graph.all_variables if v.name in (init_values or {})]
    with tf.Session(config=virtual_cpu_config(size)) as sess:
      sess.run(tf.global_variables_initializer())
      sess.run(overrides)
      sess.run(lowering.copy_masters_to_slices())
      values = sess.run(tf_outputs, feed_dict=feed_fn() if feed_fn else None)
  return {k: np.asarray(v) for k, v in values.items()}


def variable_outputs(mesh):
  """{variable name: its value as an mtf.Tensor}, to add to run_mtf outputs."""
  return {v.name: v.outputs[0] for v in mesh.graph.all_variables}


def train_mtf(build_loss_fn, steps, mesh_shape="", layout_rules="", seed=0,
              optimizer_fn=None):
  """Builds `build_loss_fn(mesh)` -> scalar loss and takes `steps` updates.

  Returns {"losses": [...], "before": {var: array}, "after": {var: array},
  "trainable": names of the mtf trainable variables (what optimizers
  update), "tf_trainable": names of the TF trainable variables}; the default
  optimizer is Adafactor, as in T5.
  """
  mesh_shape = mtf.convert_to_shape(mesh_shape)
  layout_rules = mtf.convert_to_layout_rules(layout_rules)
  size = max(mesh_shape.size, 1)
  with tf.Graph().as_default():
    tf.set_random_seed(seed)
    graph = mtf.Graph()
    mesh = mtf.Mesh(graph, "mesh")
    loss = build_loss_fn(mesh)
    variables = graph.trainable_variables
    grads = mtf.gradients([loss], [v.outputs[0] for v in variables])
    # Gradients are computed in one session run and applied from feeds in
    # the next: one run doing both races slice reads against slice assigns.
    grad_feeds = [tf.placeholder(tf.float32, v.outputs[0].shape.to_integer_list)
                  for v in variables]
    optimizer = (optimizer_fn or mtf.optimize.AdafactorOptimizer)()
    update_ops = optimizer.apply_grads(
        [mtf.import_tf_tensor(mesh, f, v.outputs[0].shape)
         for f, v in zip(grad_feeds, variables)], variables)
    values = variable_outputs(mesh)
    mesh_impl = mtf.placement_mesh_impl.PlacementMeshImpl(
        mesh_shape, layout_rules, ["/cpu:%d" % i for i in range(size)])
    lowering = mtf.Lowering(graph, {mesh: mesh_impl})
    tf_loss = lowering.export_to_tf_tensor(loss)
    tf_grads = [lowering.export_to_tf_tensor(g) for g in grads]
    tf_values = {k: lowering.export_to_tf_tensor(v) for k, v in values.items()}
    tf_update = tf.group([lowering.lowered_operation(op) for op in update_ops])
    tf_trainable = [v.op.name for v in tf.trainable_variables()]
    with tf.Session(config=virtual_cpu_config(size)) as sess:
      sess.run(tf.global_variables_initializer())
      sess.run(lowering.copy_masters_to_slices())
      before = sess.run(tf_values)
      losses = []
      for _ in range(steps):
        step_loss, step_grads = sess.run([tf_loss, tf_grads])
        losses.append(step_loss)
        sess.run(tf_update, feed_dict=dict(zip(grad_feeds, step_grads)))
      after = sess.run(tf_values)
  return {"losses": losses, "before": before, "after": after,
          "trainable": [v.name for v in variables],
          "tf_trainable": tf_trainable}


def full_and_incremental_logits(mesh, model, ids, prefix_length):
  """Logits of a decoder run on all of `ids` and decoded one step at a time.

  `ids` (numpy int [batch, length]) are the decoder's inputs as they are
  (no shift): logits at position t may use ids[:, :t + 1]. The incremental
  run records states with a "first_part" pass over ids[:, :prefix_length]
  (later positions zeroed, as in sample_autoregressive) and then feeds one
  id per "incremental" step, as mesh TF decoding does. Returns mtf Tensors
  {"full": [batch, length, vocab], "incremental": [batch, steps, vocab]}
  for steps = positions prefix_length .. length - 1.
  """
  from mesh_tensorflow.transformer import transformer  # pylint: disable=g-import-not-at-top
  batch, length = ids.shape
  batch_dim = mtf.Dimension("batch", batch)
  length_dim = mtf.Dimension("length", length)
  variable_dtype = mtf.VariableDType(tf.float32)
  inputs = mtf.import_tf_tensor(mesh, tf.constant(ids, tf.int32),
                                [batch_dim, length_dim])
  positions = mtf.range(mesh, length_dim, tf.int32)

  def make_context(mode, context_inputs, **kwargs):
    return transformer.Context(
        model=model, mesh=mesh, batch_dims=[batch_dim],
        length_dim=length_dim, variable_dtype=variable_dtype, mode=mode,
        new_states=[], constant_states=[], inputs=context_inputs, **kwargs)

  # Causal by read/write priority, as call_simple makes an autoregressive
  # model's context (mesh TF's attention layers mask by them).
  with tf.variable_scope(model.name):
    full = model._call_internal(  # pylint: disable=protected-access
        make_context("eval", inputs, position=positions,
                     position_is_default=True, write_priority=positions,
                     read_priority=positions), inputs)

  prefix = inputs * mtf.cast(mtf.less(positions, prefix_length), tf.int32)
  first_part = make_context(
      "first_part", prefix, position=positions, position_is_default=True,
      initial_position=mtf.constant(mesh, prefix_length, [batch_dim],
                                    tf.int32),
      write_priority=positions, read_priority=positions)
  with tf.variable_scope(model.name, reuse=True):
    model._call_internal(first_part, prefix)  # pylint: disable=protected-access
  states = first_part.new_states
  steps = []
  for t in range(prefix_length, length):
    position = mtf.constant(mesh, t, [batch_dim], tf.int32)
    step_ids = mtf.gather(inputs, t, length_dim)
    context = make_context("incremental", step_ids, position=position,
                           states=states, write_priority=positions,
                           read_priority=position)
    with tf.variable_scope(model.name, reuse=True):
      steps.append(model._call_internal(context, step_ids))  # pylint: disable=protected-access
    states = context.new_states
  step_dim = mtf.Dimension("length", length - prefix_length)
  return {"full": full, "incremental": mtf.stack(steps, step_dim.name, axis=1)}


def assert_beam_search_matches_full_recompute(model, length, seed=0):
  """Beam search through the decode cache == recomputing every step, and
  the decode is not one constant token (so the comparison means something)."""
  out = run_mtf(lambda mesh: beam_search_incremental_and_full(
      mesh, model, length), seed=seed)
  np.testing.assert_array_equal(out["incremental"], out["full"])
  assert len(np.unique(out["full"])) > 1


def beam_search_incremental_and_full(mesh, model, length, batch=2, beam=3,
                                     alpha=0.6):
  """Beam search of a decoder-only `model`, twice: as mesh TF decodes it
  (first_part pass, then incremental states reordered across beams), and
  with each step's logits recomputed from the whole sequence so far.

  Both run mesh TF's beam search; only how a step's logits are computed
  differs, so the decodes must be equal. Returns mtf Tensors
  {"incremental": [batch, length], "full": [batch, length]} (best beams).
  """
  from mesh_tensorflow.transformer import transformer  # pylint: disable=g-import-not-at-top
  length_dim = mtf.Dimension("length", length)
  zeros = mtf.zeros(mesh, mtf.Shape([mtf.Dimension("batch", batch),
                                     mtf.Dimension("beam", beam),
                                     length_dim]), tf.int32)
  decode_length = mtf.constant(mesh, length_dim.size, dtype=tf.int32)
  incremental = model.beam_search(zeros, decode_length, alpha=alpha)
  full = beam_search_full_recompute(
      lambda ids: model.call_simple(transformer.autoregressive_inputs(ids),
                                    None, compute_loss=False, mode="eval")[0],
      zeros, decode_length, alpha)
  return {"incremental": incremental, "full": full}


def beam_search_full_recompute(sequence_logits, initial_ids, decode_length,
                               alpha):
  """Mesh TF's beam search with each step's logits taken from
  `sequence_logits(ids)` ([batch, beam, length, vocab] logits of the whole
  sequence so far) instead of a decode cache; returns the best beams
  [batch, length]."""
  from mesh_tensorflow import beam_search  # pylint: disable=g-import-not-at-top
  beam_dim, length_dim = initial_ids.shape.dims[-2:]

  def step_logits(step_num, ids, states):
    logits = mtf.gather(sequence_logits(ids), step_num, length_dim)
    return mtf.to_float(logits), states

  beams, _ = beam_search.beam_search(
      step_logits, initial_ids, alpha, states=[], decode_length=decode_length,
      use_tpu=True, dtype=tf.float32)
  return mtf.gather(beams, mtf.constant(initial_ids.mesh, 0, dtype=tf.int32),
                    beam_dim)


def make_layer_stack(layers):
  """A LayerStack with mesh TF's default sublayers, without parsing gin."""
  from mesh_tensorflow.transformer import transformer  # pylint: disable=g-import-not-at-top
  return transformer.LayerStack(
      layers,
      sublayers_initial=[],
      sublayers_per_layer=[transformer.sublayer_rms_norm,
                           transformer.sublayer_call_layer,
                           transformer.sublayer_residual],
      sublayers_final=[transformer.sublayer_rms_norm])
