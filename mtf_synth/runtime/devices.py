"""Which devices a mesh's slices run on when there is no TPU.

One process: its GPUs or virtual CPU devices. A cluster (runtime/cluster.py):
every task's, ordered so that the batch splits across tasks and the other
mesh dimensions (model) stay within a task.
"""

import re

import gin
import mesh_tensorflow as mtf
import tensorflow as tf

from mtf_synth import errors
from mtf_synth.runtime import cluster as cluster_lib


def mesh_size(mesh_shape):
  return mtf.convert_to_shape(mesh_shape).size


def default_mesh_devices(size, num_gpus):
  """All slices on GPUs when there are enough, else on virtual CPU devices.

  Virtual CPU devices (the session asks for `size` of them) let a
  'model:2,batch:2' mesh run on any machine, e.g. for smoke runs on 2 cores.
  """
  if num_gpus:
    if size > num_gpus:
      raise errors.MeshDevicesError(
          "mesh_shape has %d slices but this machine has %d GPUs: use a mesh "
          "of at most %d slices, or place it on virtual CPUs with "
          "--gin_param=\"utils.run.mesh_devices=%s\"" %
          (size, num_gpus, num_gpus, ["/cpu:%d" % i for i in range(size)]))
    return ["/gpu:%d" % i for i in range(size)]
  return ["/cpu:%d" % i for i in range(size)]


def check_mesh_devices(mesh_shape, mesh_devices, local=True):
  """One device per slice; on one process (`local`), devices it has.

  The session places ops softly (some have no kernel on the mesh's device),
  so a slice on a device the machine lacks would run elsewhere unsaid.
  Virtual CPUs are created for the devices named (any number).
  """
  size = mesh_size(mesh_shape)
  if mesh_devices is not None and len(mesh_devices) != size:
    raise errors.MeshDevicesError(
        "utils.run.mesh_devices lists %d devices but mesh_shape %r has %d "
        "slices: give one device per slice, or unbind mesh_devices to use "
        "the local GPUs or virtual CPUs" %
        (len(mesh_devices), str(mesh_shape), size))
  if not local:
    return
  num_gpus = len(tf.config.list_physical_devices("GPU"))
  for device in mesh_devices or []:
    spec = tf.DeviceSpec.from_string(device)
    kind = (spec.device_type or "CPU").upper()
    if spec.job not in (None, "localhost") or kind == "CPU" or (
        kind == "GPU" and (spec.device_index or 0) < num_gpus):
      continue
    raise errors.MeshDevicesError(
        "utils.run.mesh_devices names %s, which this machine does not have "
        "(it has %d GPUs): name devices it has (e.g. %s), or unbind "
        "mesh_devices to use the local GPUs or virtual CPUs" % (
            device, num_gpus, default_mesh_devices(size, num_gpus)))


def devices_per_task(mesh_shape, num_tasks):
  """How many slices each task of a cluster runs."""
  size = mesh_size(mesh_shape)
  if size % num_tasks:
    raise errors.MeshDevicesError(
        "mesh_shape %r has %d slices, which do not split evenly over the %d "
        "tasks of the cluster: use a mesh whose size is a multiple of %d, or "
        "another number of tasks" % (str(mesh_shape), size, num_tasks,
                                     num_tasks))
  return size // num_tasks


def cpus_per_task(mesh_shape, mesh_devices, num_tasks):
  """The CPU devices each task's server exposes for its slices.

  With mesh_devices given, enough for the highest CPU index they name.
  """
  pattern = re.compile(r"cpu:(\d+)$", re.IGNORECASE)
  named = [int(m.group(1)) + 1 for m in
           (pattern.search(d) for d in mesh_devices or []) if m]
  return max([devices_per_task(mesh_shape, num_tasks)] + named)


def _task_major_position(shape, batch_axes, pnum):
  """pnum's position when the batch axes vary slowest, the others fastest."""
  coordinates = mtf.pnum_to_processor_coordinates(shape, pnum)
  axes = list(batch_axes) + [a for a in range(shape.ndims)
                             if a not in batch_axes]
  position = 0
  for axis in axes:
    position = position * shape.dims[axis].size + coordinates[axis]
  return position


def order_over_tasks(mesh_shape, layout_rules, task_devices):
  """One device per slice from each task's list (all lists equally long).

  The tensor dimension "batch" is split across tasks: slices that differ
  only in the other mesh dimensions (model parallelism, which exchanges
  activations every layer) share a task; across tasks go the gradient sums.
  """
  shape = mtf.convert_to_shape(mesh_shape)
  rules = mtf.convert_to_layout_rules(layout_rules)
  batch_axis = rules.tensor_dimension_to_mesh_axis(
      mtf.Dimension("batch", 1), shape)
  batch_axes = [] if batch_axis is None else [batch_axis]
  flat = [device for devices in task_devices for device in devices]
  return [flat[_task_major_position(shape, batch_axes, pnum)]
          for pnum in range(shape.size)]


def _numbered(names, device_type):
  """The names of one device type, by device number (CPU:2 before CPU:10)."""
  prefix = "/device:%s:" % device_type
  return sorted((n for n in names if prefix in n),
                key=lambda n: int(n.rsplit(":", 1)[1]))


def cluster_mesh_devices(cluster, mesh_shape, layout_rules):
  """Every task's GPUs (CPU-only tasks: virtual CPUs), ordered."""
  per_task = devices_per_task(mesh_shape, cluster.num_tasks)
  listed = cluster_lib.list_devices(cluster)
  chosen = []
  for task in cluster.tasks:
    gpus = _numbered(listed[task], "GPU")
    # As on one process: too few GPUs is an error, not a silent CPU run.
    if gpus and len(gpus) < per_task:
      raise errors.MeshDevicesError(
          "mesh_shape %r needs %d devices on each of the %d tasks but task %s"
          " has %d GPUs: use a mesh of at most %d slices, or place it on "
          "virtual CPUs with utils.run.mesh_devices" % (
              str(mesh_shape), per_task, cluster.num_tasks,
              cluster_lib.describe(task), len(gpus),
              len(gpus) * cluster.num_tasks))
    devices = gpus or _numbered(listed[task], "CPU")
    if len(devices) < per_task:
      raise errors.MeshDevicesError(
          "mesh_shape %r needs %d devices on each of the %d tasks but task %s"
          " has %d: give every task the same command (its server creates the"
          " virtual CPUs)" % (str(mesh_shape), per_task, cluster.num_tasks,
                              cluster_lib.describe(task), len(devices)))
    chosen.append(devices[:per_task])
  ordered = order_over_tasks(mesh_shape, layout_rules, chosen)
  tf.get_logger().info("mesh devices over %d tasks: %s", cluster.num_tasks,
                       ", ".join(ordered))
  return ordered


@gin.configurable(module="mtf_synth")
def local_mesh_devices(mesh_shape=None, layout_rules=None):
  """gin: `utils.run.mesh_devices = @mtf_synth.local_mesh_devices()`.

  Args:
    mesh_shape: defaults to the value bound to `utils.run.mesh_shape`.
    layout_rules: on a cluster, which mesh axis the batch splits over;
      defaults to the value bound to `utils.run.layout_rules`.
  Returns:
    one device name per mesh slice.
  """
  if mesh_shape is None:
    mesh_shape = gin.query_parameter("utils.run.mesh_shape")
  cluster = cluster_lib.active()
  if cluster is not None:
    if layout_rules is None:
      layout_rules = gin.query_parameter("utils.run.layout_rules")
    return cluster_mesh_devices(cluster, mesh_shape, layout_rules)
  num_gpus = len(tf.config.list_physical_devices("GPU"))
  return default_mesh_devices(mesh_size(mesh_shape), num_gpus)
