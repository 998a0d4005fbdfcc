"""The gradients' grouped all-reduce (mtf_synth/gradient_allreduce.py):
bit-identical to mesh TF's per-tensor ring, and fewer tensors between the
tasks of a cluster."""

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow import placement_mesh_impl
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf import rewriter_config_pb2

import mtf_synth  # noqa: F401  pylint: disable=unused-import
from mtf_synth import errors
from mtf_synth import gradient_allreduce

# Sizes on both sides of allreduce_ring's rule (>= 1024 and divisible by the
# number of devices: cut into shards; else whole).
SHAPES = ([3, 5], [64, 32], [33, 96], [7, 150], [1024])


@pytest.fixture(autouse=True)
def graph_mode():
  with tf.Graph().as_default():
    yield


def _random(shape, rng):
  # Magnitudes over 12 decades, so the order of the additions shows.
  return (rng.standard_normal(shape) *
          10.0 ** rng.integers(-6, 6, shape)).astype(np.float32)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_grouped_ring_equals_mesh_tfs_ring_bit_for_bit(n):
  rng = np.random.default_rng(n)
  devices = ["/device:CPU:0"] * n
  values = [[_random(shape, rng) for _ in devices] for shape in SHAPES]
  tensors = [[tf.constant(v) for v in vs] for vs in values]
  grouped = gradient_allreduce.grouped_allreduce_ring(tensors, devices)
  one_by_one = [placement_mesh_impl.allreduce_ring(xs, devices)
                for xs in tensors]
  with tf.Session() as session:
    grouped, one_by_one = session.run((grouped, one_by_one))
  for shape, vs, ours, theirs in zip(SHAPES, values, grouped, one_by_one):
    for device_sum, reference in zip(ours, theirs):
      assert device_sum.shape == tuple(shape)
      np.testing.assert_array_equal(device_sum, reference)
    # A sum, to float32 rounding of its largest terms.
    error = np.abs(ours[0] - np.sum(vs, axis=0, dtype=np.float64))
    assert np.all(error <= 1e-6 * np.sum(np.abs(vs), axis=0))
  # The association differs between shards of a 4-way ring: equal bits
  # above are not a coincidence of exact sums.
  if n == 4:
    assert not all(np.array_equal(o[0], np.sum(v, axis=0))
                   for o, v in zip(one_by_one, values))


def _sgd_step(devices, when):
  """Lowers one SGD step of three weights, the batch split over `devices`;
  returns the lowering, the step and the weights' tf tensors."""
  gin.clear_config()
  gin.parse_config(["mtf_synth.group_gradient_allreduce.when = %r" % when])
  graph = mtf.Graph()
  mesh = mtf.Mesh(graph, "mesh")
  batch, d_in = mtf.Dimension("batch", 8), mtf.Dimension("d_in", 48)
  d_out = mtf.Dimension("d_out", 40)
  rng = np.random.default_rng(0)
  x = mtf.import_tf_tensor(mesh, tf.constant(_random([8, 48], rng)),
                           mtf.Shape([batch, d_in]))
  weights = [mtf.get_variable(
      mesh, "w%d" % i, mtf.Shape([d_in, d_out]),
      initializer=tf.constant_initializer(rng.standard_normal([48, 40])))
             for i in range(3)]
  hidden = mtf.add_n([mtf.einsum([x, w], mtf.Shape([batch, d_out]))
                      for w in weights])
  loss = mtf.reduce_sum(mtf.square(hidden)) * 1e-12
  grads = mtf.gradients([loss], weights)
  updates = mtf.optimize.SgdOptimizer(0.1).apply_grads(
      grads, graph.trainable_variables)
  mesh_impl = placement_mesh_impl.PlacementMeshImpl(
      mtf.convert_to_shape("batch:%d" % len(devices)),
      mtf.convert_to_layout_rules("batch:batch"), devices)
  lowering = mtf.Lowering(graph, {mesh: mesh_impl})
  step = tf.group([lowering.lowered_operation(op) for op in updates])
  values = [lowering.export_to_tf_tensor(w) for w in weights]
  gin.clear_config()
  return lowering, step, values


def _tensors_between_tasks():
  """TF edges whose producer and consumer sit in different tasks."""
  crossing = set()
  for op in tf.get_default_graph().get_operations():
    for x in op.inputs:
      tasks = {tf.DeviceSpec.from_string(o.device or "").task
               for o in (x.op, op)}
      if None not in tasks and len(tasks) == 2:
        crossing.add(x.name)
  return crossing


def test_a_cluster_mesh_sends_one_tensor_per_shard_not_per_weight():
  devices = ["/job:worker/replica:0/task:0/device:CPU:0",
             "/job:worker/replica:0/task:1/device:CPU:0"]
  counts = {}
  for when in ("never", "across_tasks"):
    with tf.Graph().as_default():
      _sgd_step(devices, when)
      counts[when] = len([name for name in _tensors_between_tasks()
                          if name.startswith("grouped_gradient_allreduce/")])
  # Per weight, mesh TF's ring sends each of its 2 shards both ways;
  # grouped, the two rings (one per shard) carry all three weights.
  assert counts == {"never": 3 * 2 * 2, "across_tasks": 2 * 2}


# Grappler off: on one device it rewrites mesh TF's tree of adds (a cluster's
# adds sit on different devices, where it may not).
_AS_BUILT = tf.ConfigProto(graph_options=tf.GraphOptions(
    rewrite_options=rewriter_config_pb2.RewriterConfig(
        disable_meta_optimizer=True)))


def test_grouped_step_trains_as_mesh_tf_bit_for_bit():
  devices = ["/device:CPU:0"] * 4  # a 4-way ring: association matters
  trained, initial = {}, None
  for when in ("never", "always"):
    with tf.Graph().as_default():
      lowering, step, values = _sgd_step(devices, when)
      if when == "always":
        names = [op.name for op in tf.get_default_graph().get_operations()]
        assert any("concat" in name for name in names)
      with tf.Session(config=_AS_BUILT) as session:
        session.run(tf.global_variables_initializer())
        session.run(lowering.copy_masters_to_slices())
        initial = session.run(values)
        session.run(step)
        trained[when] = session.run(values)
  for ours, theirs, before in zip(trained["always"], trained["never"],
                                  initial):
    assert not np.allclose(ours, before, rtol=0, atol=1e-3)  # it trained
    np.testing.assert_array_equal(ours, theirs)


def test_unknown_when_is_one_line():
  gin.clear_config()
  gin.parse_config(["mtf_synth.group_gradient_allreduce.when = 'sometimes'"])
  try:
    with pytest.raises(errors.UserError, match="'across_tasks', 'always', "
                       "'never'"):
      gradient_allreduce.group_gradient_allreduce()
  finally:
    gin.clear_config()
