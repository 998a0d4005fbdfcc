"""Which local devices a mesh's slices run on when there is no TPU."""

import gin
import mesh_tensorflow as mtf
import tensorflow as tf

from mtf_synth import errors


class MeshDevicesError(errors.UserError):
  """The mesh shape and the devices given for it do not fit together."""


def mesh_size(mesh_shape):
  return mtf.convert_to_shape(mesh_shape).size


def default_mesh_devices(size, num_gpus):
  """All slices on GPUs when there are enough, else on virtual CPU devices.

  Virtual CPU devices (the session asks for `size` of them) let a
  'model:2,batch:2' mesh run on any machine, e.g. for smoke runs on 2 cores.
  """
  if num_gpus:
    if size > num_gpus:
      raise MeshDevicesError(
          "mesh_shape has %d slices but this machine has %d GPUs: use a mesh "
          "of at most %d slices, or place it on virtual CPUs with "
          "--gin_param=\"utils.run.mesh_devices=%s\"" %
          (size, num_gpus, num_gpus, ["/cpu:%d" % i for i in range(size)]))
    return ["/gpu:%d" % i for i in range(size)]
  return ["/cpu:%d" % i for i in range(size)]


def check_mesh_devices(mesh_shape, mesh_devices):
  size = mesh_size(mesh_shape)
  if mesh_devices is not None and len(mesh_devices) != size:
    raise MeshDevicesError(
        "utils.run.mesh_devices lists %d devices but mesh_shape %r has %d "
        "slices: give one device per slice, or unbind mesh_devices to use "
        "the local GPUs or virtual CPUs" %
        (len(mesh_devices), str(mesh_shape), size))


@gin.configurable(module="mtf_synth")
def local_mesh_devices(mesh_shape=None):
  """gin: `utils.run.mesh_devices = @mtf_synth.local_mesh_devices()`.

  Args:
    mesh_shape: defaults to the value bound to `utils.run.mesh_shape`.
  Returns:
    one device name per mesh slice.
  """
  if mesh_shape is None:
    mesh_shape = gin.query_parameter("utils.run.mesh_shape")
  num_gpus = len(tf.config.list_physical_devices("GPU"))
  return default_mesh_devices(mesh_size(mesh_shape), num_gpus)
