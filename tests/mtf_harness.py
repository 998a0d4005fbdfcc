"""Runs small mesh TF computations in a TF1 graph for unit tests."""

import mtf_synth  # noqa: F401  (applies the compat patches first)

import mesh_tensorflow as mtf  # pylint: disable=g-bad-import-order
import numpy as np
import tensorflow.compat.v1 as tf


def virtual_cpu_config(num_devices):
  """A session config exposing `num_devices` CPU devices (/cpu:0..N-1)."""
  return tf.ConfigProto(device_count={"CPU": num_devices},
                        inter_op_parallelism_threads=2,
                        intra_op_parallelism_threads=1)


def run_mtf(build_fn, mesh_shape="", layout_rules="", seed=0, feed_fn=None):
  """Builds `build_fn(mesh)` -> dict of mtf.Tensor, lowers it, returns numpy.

  mesh_shape "" runs on one device; e.g. "model:2,batch:2" runs on a
  PlacementMeshImpl over 4 virtual CPU devices. Variables are initialised
  from `seed`, so two calls with the same seed see the same weights whatever
  the layout (mesh TF initialises the full master variable before slicing).
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
    with tf.Session(config=virtual_cpu_config(size)) as sess:
      sess.run(tf.global_variables_initializer())
      sess.run(lowering.copy_masters_to_slices())
      values = sess.run(tf_outputs, feed_dict=feed_fn() if feed_fn else None)
  return {k: np.asarray(v) for k, v in values.items()}
