"""Pictures of what a SynthesizerAttention layer learned, for TensorBoard.

Off by default, and then free: with `mtf_synth.attention_images.every_steps`
0 the layer adds nothing to the graph. With N > 0 every SynthesizerAttention
layer adds, under its variable scope as the tag prefix LAYER (e.g.
`encoder/block_000/layer_000/SynthesizerAttention`):

  LAYER/table/random, LAYER/table/fixed_random   the table R, per head
  LAYER/table/factorized_random                  R1 R2^T, per head
  LAYER/alpha/MEMBER                             mixture weights (scalars)
  LAYER/attention/MEMBER                         evaluation only: attention
  LAYER/attention/mixture                          weights per head

Training writes the tables and alphas every N steps: they are the same for
every input, so the pictures are exactly what a validation example meets.
Attention weights depend on the input, and a training graph only sees
training batches; they are written by evaluation instead (`perplexity_eval`:
the first row of the first validation batch, once per evaluated checkpoint,
in its eval directory), and scripts/plot_attention.py draws them for the
first validation example. A member's attention is the softmax of its own
(masked) logits; "mixture" is that of the alpha-weighted sum the layer uses.

Each head is a grayscale image, black at its minimum and white at its
maximum. The values before that scaling are kept in the graph collection
ARRAYS, for the plot script.
"""

import gin
import mesh_tensorflow as mtf
import tensorflow.compat.v1 as tf

from mtf_synth import errors
from mtf_synth.attention import synthesizer as synth
from mtf_synth.layers import masks
from mtf_synth.runtime import train_loop

# (tag, tf.Tensor) of every picture's values: [heads, rows, columns] floats,
# or an alpha's scalar.
ARRAYS = "mtf_synth_attention_arrays"


@gin.configurable(module="mtf_synth")
def attention_images(every_steps=0):
  """gin knob: training writes the pictures every this many steps (0: off).

  Evaluation writes them (once per checkpoint) whenever this is not 0.
  """
  if isinstance(every_steps, bool) or not isinstance(every_steps, int) or (
      every_steps < 0):
    raise errors.UserError(
        "mtf_synth.attention_images.every_steps=%r: pass a number of steps "
        "(0 turns the pictures off)" % (every_steps,))
  return every_steps


class _Export(mtf.Operation):
  """Gives the whole value of an mtf tensor, as a tf tensor, to a function.

  The function runs at lowering time (as mtf.scalar_summary does), where
  the tensor's slices are combined into one.
  """

  def __init__(self, x, use_value, name):
    super().__init__([x], name=name)
    self._use_value = use_value

  def lower(self, lowering):
    mesh_impl = lowering.mesh_impl(self)
    if isinstance(mesh_impl, mtf.simd_mesh_impl.SimdMeshImpl):
      raise errors.UserError(
          "mtf_synth.attention_images needs a CPU/GPU mesh (TPU summaries "
          "would need a host call): set mtf_synth.attention_images."
          "every_steps = 0, and draw them with scripts/plot_attention.py")
    x = self.inputs[0]
    self._use_value(mesh_impl.export_to_tf_tensor(x, lowering.tensors[x]))


def _grayscale(tag, values):
  """One image summary of [heads, rows, columns], one image per head."""
  low = tf.reduce_min(values, axis=[1, 2], keepdims=True)
  high = tf.reduce_max(values, axis=[1, 2], keepdims=True)
  scaled = (values - low) / tf.maximum(high - low, 1e-30)
  pixels = tf.cast(tf.round(scaled * 255.0), tf.uint8)[..., None]
  return tf.raw_ops.ImageSummary(tag=tag, tensor=pixels,
                                 max_images=values.shape[0])


def _export_image(tag, x, dims, row_dim, column_dim, every_steps):
  def use_value(value):
    value = tf.cast(value, tf.float32)
    tf.add_to_collection(ARRAYS, (tag, value))
    tf.add_to_collection(train_loop.PERIODIC_SUMMARIES,
                         (every_steps, _grayscale(tag, value)))

  _Export(mtf.transpose(x, [dims.heads, row_dim, column_dim]), use_value,
          name="attention_image")


def _export_scalars(tags, x, every_steps):
  def use_value(value):
    for tag, scalar in zip(tags, tf.unstack(value)):
      tf.add_to_collection(ARRAYS, (tag, scalar))
    tf.add_to_collection(train_loop.PERIODIC_SUMMARIES, (
        every_steps, tf.raw_ops.ScalarSummary(tags=tags, values=value)))

  _Export(x, use_value, name="attention_scalars")


def _first_row(x, context):
  """x at index 0 of each batch dim it has."""
  for dim in x.shape.dims:
    if dim in context.batch_dims:
      x = mtf.gather(x, 0, dim)
  return x


def summarize(context, dims, members, weights, logits, mixed_logits, bias,
              alpha_logits):
  """Adds one layer's pictures (see the module docstring) when they are on.

  Args:
    context: the layer's mesh TF Context.
    dims: its SynthesizerDims.
    members: component names, in the mode's order.
    weights: {member: {weight name: mtf.Tensor}}.
    logits: each member's logits, in members' order.
    mixed_logits: the logits the layer attends with.
    bias: the masks' logits bias, or None.
    alpha_logits: [synth_members] mixture logits, or None.
  """
  every_steps = attention_images()
  if not every_steps or context.mode not in ("train", "eval"):
    return
  layer = tf.get_variable_scope().name
  for name in members:
    table = synth.COMPONENTS[name].table
    if table is not None:
      _export_image("%s/table/%s" % (layer, name), table(weights[name], dims),
                    dims, dims.query_table, dims.key_table, every_steps)
  if alpha_logits is not None:
    alpha = mtf.softmax(alpha_logits, alpha_logits.shape.dims[0])
    _export_scalars(["%s/alpha/%s" % (layer, name) for name in members],
                    alpha, every_steps)
  if context.mode != "eval":
    return
  memory_length = masks.memory_length(context)
  named_logits = list(zip(members, logits))
  if len(members) > 1:
    named_logits.append(("mixture", mixed_logits))
  for name, member_logits in named_logits:
    if bias is not None:
      member_logits += bias
    attention = _first_row(mtf.softmax(member_logits, memory_length),
                           context)
    _export_image("%s/attention/%s" % (layer, name), attention, dims,
                  context.length_dim, memory_length, every_steps)
