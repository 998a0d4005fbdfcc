"""The TPU side of the Estimator: device assignment and a replicated step.

Untested on TPU hardware (none is reachable here); the graph construction is
covered by tests/test_runtime_tpu.py with a synthetic 2x2 slice. Only
training is replicated on the TPU; evaluation, decoding and export build the
model without params["context"], which mesh TF places on the host CPU.
"""

import tensorflow.compat.v1 as tf


class TPUContext:
  """What TPUEstimator passed model_fns as params["context"].

  mesh TF's model_fn reads num_hosts, num_replicas, device_assignment and
  tpu_host_placement_function to build its SimdMeshImpl and variable placer.
  """

  def __init__(self, device_assignment, job_name=None):
    self.device_assignment = device_assignment
    self.num_replicas = device_assignment.num_replicas
    self.num_hosts = device_assignment.topology.num_tasks
    self._job = "/job:%s" % job_name if job_name else ""

  def tpu_host_placement_function(self, host_id=0):
    return "%s/task:%d/device:CPU:0" % (self._job, host_id)


def initialize_system(master, num_replicas=None):
  """Initializes the TPU system at `master`; returns its DeviceAssignment.

  num_replicas defaults to every core of the slice, as TPUEstimator did.
  """
  with tf.Graph().as_default(), tf.Session(master) as session:
    serialized = session.run(tf.tpu.initialize_system())
  topology = tf.tpu.experimental.Topology(serialized=serialized)
  num_replicas = num_replicas or (topology.num_tasks *
                                  topology.num_tpus_per_task)
  return tf.tpu.experimental.DeviceAssignment.build(
      topology, num_replicas=num_replicas)


def replicated_spec(call_model_fn, features, mode, params, device_assignment):
  """Runs the model_fn in tpu.replicate; returns its spec with host tensors.

  Every replica gets the whole batch (mesh TF imports features fully
  replicated and slices them by replica id). The returned spec's loss is the
  replicated step's output, whose op also runs the train op.
  """
  keys = sorted(features)
  specs = []

  def step(*flat_features):
    spec = call_model_fn(dict(zip(keys, flat_features)), None, mode, params)
    specs.append(spec)
    with tf.control_dependencies([spec.train_op] if spec.train_op is not None
                                 else []):
      return [tf.identity(spec.loss)]

  inputs = [[features[k] for k in keys]] * device_assignment.num_replicas
  outputs = tf.tpu.replicate(step, inputs=inputs,
                             device_assignment=device_assignment)
  loss = outputs[0][0]
  return specs[0]._replace(loss=loss, train_op=loss.op)
