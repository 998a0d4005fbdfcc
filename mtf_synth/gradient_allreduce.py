"""The gradients' all-reduce over the `batch` mesh axes, one message per
shard instead of one per variable when the mesh spans several tasks.

Mesh TF sums each weight's gradient over the devices that hold different
parts of the batch lazily (mtf.LazyAllreduceSum) and reduces it when the
optimizer reads it: on a PlacementMeshImpl that is a ring of per-tensor
copies between devices, so a cluster sends every variable's gradient as its
own gRPC tensor. `GroupedAllreduce` (routed in front of the optimizer by
compat) reduces every pending gradient of a step together: each device's
shards of all of them are concatenated and the ring runs once per shard.

The result is bit-identical to mesh TF's per-tensor reduction:
`grouped_allreduce_ring` cuts each tensor into the same shards and reduces
shard k in the same device order as `allreduce_ring` does, and a sum of
concatenated tensors adds the same pairs of numbers.

gin: `mtf_synth.group_gradient_allreduce.when` = "across_tasks" (default:
where the mesh's devices span more than one task), "always" or "never"
(mesh TF's per-tensor reduction).
"""

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow import placement_mesh_impl
import tensorflow.compat.v1 as tf

from mtf_synth import errors

_WHEN = ("across_tasks", "always", "never")


@gin.configurable(module="mtf_synth")
def group_gradient_allreduce(when="across_tasks"):
  """gin: when the gradients' all-reduce runs grouped (module docstring)."""
  if when not in _WHEN:
    raise errors.UserError(
        "mtf_synth.group_gradient_allreduce.when=%r: use one of %s" % (
            when, ", ".join(repr(w) for w in _WHEN)))
  return when


def spans_tasks(devices):
  """Whether `devices` (TF device strings) belong to more than one task."""
  tasks = set()
  for device in devices:
    spec = tf.DeviceSpec.from_string(device)
    tasks.add((spec.job, spec.replica, spec.task))
  return len(tasks) > 1


def _circular_shift(values, n):
  n %= len(values)
  return values[-n:] + values[:-n]


def grouped_allreduce_ring(tensor_lists, devices):
  """Sums of several tensors over `devices`, as mesh TF's allreduce_ring
  gives them one by one, with one ring per shard.

  Args:
    tensor_lists: a list (one per tensor) of lists of tf.Tensors (one per
      device, in `devices` order).
    devices: device strings.
  Returns:
    the reduced tensors, in the same nesting.
  """
  n = len(devices)
  if n == 1:
    return tensor_lists
  # pieces[k][d]: the flat parts device d contributes to shard k's ring.
  pieces = [[[] for _ in devices] for _ in range(n)]
  layouts = []  # per tensor: its shape and the shards it was cut into
  for xs in tensor_lists:
    shape = xs[0].shape.as_list()
    size = mtf.list_product(shape)
    # allreduce_ring's rule: small or uneven tensors go whole, unshifted.
    shards = n if size >= 1024 and size % n == 0 else 1
    layouts.append((shape, shards))
    for d, (x, device) in enumerate(zip(xs, devices)):
      with tf.device(device):
        flat = tf.reshape(x, [-1])
        for k, part in enumerate(tf.split(flat, shards) if shards > 1
                                 else [flat]):
          pieces[k][d].append(part)
  reduced = []  # reduced[k][d]: shard k's parts on device d
  for k in range(n):
    if not pieces[k][0]:
      reduced.append(None)
      continue
    sizes = [part.shape.as_list()[0] for part in pieces[k][0]]
    joined = []
    for parts, device in zip(pieces[k], devices):
      with tf.device(device):
        joined.append(tf.concat(parts, 0) if len(parts) > 1 else parts[0])
    sums = _circular_shift(placement_mesh_impl.allreduce_ring_single_shard(
        _circular_shift(joined, k), _circular_shift(devices, k), "SUM"), -k)
    split = []
    for total, device in zip(sums, devices):
      with tf.device(device):
        split.append(tf.split(total, sizes) if len(sizes) > 1 else [total])
    reduced.append(split)
  taken = [0] * n  # parts of each shard handed back so far
  results = []
  for shape, shards in layouts:
    per_device = []
    for d, device in enumerate(devices):
      with tf.device(device):
        parts = [reduced[k][d][taken[k]] for k in range(shards)]
        per_device.append(tf.reshape(
            tf.concat(parts, 0) if shards > 1 else parts[0], shape))
    for k in range(shards):
      taken[k] += 1
    results.append(per_device)
  return results


def _grouped(mesh_impl):
  if not isinstance(mesh_impl, placement_mesh_impl.PlacementMeshImpl):
    return False  # on TPU, XLA combines the all-reduces itself
  when = group_gradient_allreduce()
  return when == "always" or (when == "across_tasks" and
                              spans_tasks(mesh_impl.devices))


class GroupedAllreduce(mtf.Operation):
  """Identity on `inputs` (one mesh's gradients); lowered, the pending lazy
  sums among them are reduced together, per (mesh axes, dtype)."""

  def __init__(self, inputs, name="grouped_gradient_allreduce"):
    super().__init__(inputs, name=name)
    self._outputs = [mtf.Tensor(self, x.shape, x.dtype) for x in inputs]

  def gradient(self, grad_ys):
    return grad_ys

  def lower(self, lowering):
    mesh_impl = lowering.mesh_impl(self)
    lowered = [lowering.tensors[x] for x in self.inputs]
    groups = {}
    if _grouped(mesh_impl):
      for x, value in zip(self.inputs, lowered):
        if isinstance(value, mtf.LazyAllreduceSum) and (
            value._reduced is None):  # pylint: disable=protected-access
          group = groups.setdefault((tuple(value.mesh_axes), x.dtype), [])
          if all(value is not other for other in group):
            group.append(value)
    for (mesh_axes, _), sums in groups.items():
      _reduce_together(mesh_impl, sums, list(mesh_axes))
    for output, value in zip(self.outputs, lowered):
      lowering.set_tensor_lowering(output, value.to_laid_out_tensor())


def _reduce_together(mesh_impl, sums, mesh_axes):
  """Reduces the LazyAllreduceSums `sums` in one grouped ring per processor
  group, and leaves each one's result where its to_laid_out_tensor finds
  it (mesh TF's counters included)."""
  inputs = [s.laid_out_input.to_laid_out_tensor().tensor_list for s in sums]
  results = [[None] * mesh_impl.size for _ in sums]
  for group in mtf.processor_groups(mesh_impl.shape, mesh_axes):
    reduced = grouped_allreduce_ring(
        [[xs[p] for p in group] for xs in inputs],
        [mesh_impl.devices[p] for p in group])
    for result, ys in zip(results, reduced):
      for p, y in zip(group, ys):
        result[p] = y
  for lazy, result in zip(sums, results):
    lazy._reduced = mesh_impl.LaidOutTensor(result)  # pylint: disable=protected-access
    if lazy.add_counter_fn:
      lazy.add_counter_fn()


def grouped_gradients(grads):
  """`grads` (mtf Tensors or None) passed through one GroupedAllreduce per
  mesh; what mesh TF's Optimizer.apply_grads is given (compat routes it)."""
  by_mesh = {}
  for i, grad in enumerate(grads):
    if grad is not None:
      by_mesh.setdefault(grad.mesh, []).append(i)
  grads = list(grads)
  for indices in by_mesh.values():
    outputs = GroupedAllreduce([grads[i] for i in indices]).outputs
    for i, output in zip(indices, outputs):
      grads[i] = output
  return grads
