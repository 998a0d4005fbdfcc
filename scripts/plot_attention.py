"""Draws what the SynthesizerAttention layers of a model_dir learned, as PNGs.

  python scripts/plot_attention.py MODEL_DIR [--step N] [--split validation]
      [--output_dir DIR] [--module_import MODULE ...]

The pictures are the TensorBoard ones (mtf_synth/layers/attention_images.py):
the model of MODEL_DIR/operative_config.gin, with the weights of checkpoint
N (default: the latest), runs one forward pass in eval mode on the first
example of the split, and the layers' own summaries give the values. In DIR
(default MODEL_DIR/attention_plots/N), per layer LAYER (its variable scope,
'/' written as '.'):

  LAYER.table.MEMBER.png      random / fixed_random tables, factorized
                              random's R1 R2^T, one panel per head
  LAYER.attention.MEMBER.png  the example's attention weights per head, of
                              each member alone and of the mixture, cropped
                              to the example's length (no padding)
  LAYER.alpha.png             the mixture weights alpha
  histogram.MEMBER.WEIGHT.png the distribution of one learned weight, one
                              curve per layer (as the Synthesizer paper's
                              figure of the learned weights per layer)
"""

import argparse
import os
import sys

import mtf_synth  # noqa: F401  (applies the compat patches first)

import gin  # pylint: disable=g-bad-import-order
import matplotlib
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
from mesh_tensorflow.transformer import utils
import numpy as np
import seqio
import tensorflow.compat.v1 as tf
import tensorflow_datasets as tfds

from mtf_synth import errors
from mtf_synth.attention import synthesizer as synth
from mtf_synth.layers import attention_images
from mtf_synth.runtime import checkpoints

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,g-bad-import-order

_KINDS = ("table", "attention", "alpha")


def checkpoint_path(model_dir, step=None):
  """model_dir's checkpoint at `step` (None: the latest)."""
  path = (tf.train.latest_checkpoint(model_dir) if step is None else
          os.path.join(model_dir, "model.ckpt-%d" % step))
  if not path or not tf.io.gfile.exists(path + ".index"):
    steps = checkpoints.steps(model_dir)
    raise errors.UserError(
        "%s has no checkpoint%s: pass a trained model_dir%s" % (
            model_dir, "" if step is None else " at step %d" % step,
            " and --step from %s" % steps if steps else ""))
  return path


def _bound(name):
  """A gin parameter's value, macros (%NAME) resolved."""
  value = gin.query_parameter(name)
  if isinstance(value, gin.config.ConfigurableReference):
    return value.scoped_configurable_fn()
  return value


def _first_example(task_name, split, lengths):
  """The split's first example, {feature: ids zero-padded to its length}."""
  task = seqio.get_mixture_or_task(task_name)
  try:
    dataset = task.get_dataset(lengths, split=split, shuffle=False, seed=0)
    example = next(iter(tfds.as_numpy(dataset.take(1))))
  except (StopIteration, ValueError, tf.errors.OpError) as e:
    raise errors.UserError(
        "no %s example of %s to draw the attention of (%s): pass --split "
        "with a split of the task that holds data" % (
            split, task_name, " ".join(str(e).split()) or "empty")) from e
  padded = {}
  for key, length in lengths.items():
    ids = example[key][:length]
    padded[key] = np.pad(ids, (0, length - len(ids)))[None, :]
  return padded, task.output_features


def _logits_fn(model, model_type, ids):
  """Runs `model` on the ids in eval mode (adding the layers' pictures)."""

  def build(mesh):
    def to_mtf(key):
      dims = [mtf.Dimension("batch", 1),
              mtf.Dimension("length", ids[key].shape[1])]
      return mtf.import_tf_tensor(mesh, tf.constant(ids[key], tf.int32),
                                  mtf.Shape(dims))

    targets = to_mtf("targets")
    variable_dtype = mtf.VariableDType(tf.float32)
    if model_type == "bitransformer":
      return model.call_simple(inputs=to_mtf("inputs"), targets=targets,
                               compute_loss=False, mode="eval",
                               variable_dtype=variable_dtype)[0]
    return model.call_simple(
        inputs=transformer.autoregressive_inputs(targets), targets=targets,
        compute_loss=False, mode="eval", variable_dtype=variable_dtype,
        sequence_id=mtf.minimum(targets, 1))[0]

  return build


def pictures(model_dir, step=None, split="validation"):
  """{tag: values} of every picture, and the checkpoint they are from.

  Tags as in TensorBoard (LAYER/table/MEMBER, LAYER/attention/MEMBER,
  LAYER/alpha/MEMBER); attention weights are cropped to the example's
  length.
  """
  checkpoint = checkpoint_path(model_dir, step)
  reader = tf.train.load_checkpoint(checkpoint)
  gin.clear_config()
  try:
    gin.parse_config_file(os.path.join(model_dir, "operative_config.gin"),
                          skip_unknown=True)
    gin.bind_parameter("mtf_synth.attention_images.every_steps", 1)
    model_type = _bound("utils.run.model_type")
    if model_type not in ("bitransformer", "lm"):
      raise errors.UserError(
          "plot_attention draws bitransformer and lm models, not "
          "utils.run.model_type=%r: use TensorBoard's images "
          "(mtf_synth.attention_images.every_steps)" % model_type)
    task_name = _bound("get_vocabulary.mixture_or_task_name")
    lengths = {k: v for k, v in _bound("utils.run.sequence_length").items()
               if model_type == "bitransformer" or k == "targets"}
    ids, features = _first_example(task_name, split, lengths)
    model = utils.build_model(
        model_type=model_type,
        input_vocab_size=features[
            "inputs" if "inputs" in features else "targets"
        ].vocabulary.vocab_size,
        output_vocab_size=features["targets"].vocabulary.vocab_size)
    values = _run(_logits_fn(model, model_type, ids), reader)
  finally:
    gin.clear_config()
  if not values:
    raise errors.UserError("%s has no SynthesizerAttention layer to draw" %
                           model_dir)
  lengths = {"encoder": int((ids.get("inputs", ids["targets"]) > 0).sum()),
             "decoder": int((ids["targets"] > 0).sum())}
  for tag, value in values.items():
    if "/attention/" in tag:
      length = lengths[tag.split("/")[0]]
      values[tag] = value[:, :length, :length]
  return values, checkpoint


def _run(build_fn, reader):
  """Lowers build_fn's graph on one device with the checkpoint's weights."""
  with tf.Graph().as_default():
    graph = mtf.Graph()
    mesh = mtf.Mesh(graph, "mesh")
    build_fn(mesh)
    mesh_impl = mtf.placement_mesh_impl.PlacementMeshImpl(
        mtf.Shape([]), mtf.LayoutRules([]), [""])
    lowering = mtf.Lowering(graph, {mesh: mesh_impl})
    restore = [v.get_master().assign(
        reader.get_tensor(v.name).astype(np.float32))
               for v in graph.all_variables]
    arrays = dict(tf.get_collection(attention_images.ARRAYS))
    with tf.Session() as session:
      session.run(restore)
      session.run(lowering.copy_masters_to_slices())
      return session.run(arrays)


def _layer(tag):
  return next(tag.split("/" + kind)[0] for kind in _KINDS
              if "/%s" % kind in tag)


def _file_name(*parts):
  return ".".join(p.replace("/", ".") for p in parts) + ".png"


def _draw_heads(tag, value, path):
  heads = value.shape[0]
  figure, axes = plt.subplots(1, heads, figsize=(3.2 * heads, 3.2),
                              squeeze=False)
  for head, axis in enumerate(axes[0]):
    image = axis.imshow(value[head], cmap="viridis", interpolation="nearest")
    axis.set_title("head %d" % head, fontsize=9)
    axis.set_xlabel("key position", fontsize=8)
    axis.set_ylabel("query position", fontsize=8)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
  figure.suptitle(tag, fontsize=9)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def _draw_alpha(layer, alphas, path):
  figure, axis = plt.subplots(figsize=(max(4.0, 1.2 + 0.9 * len(alphas)), 3))
  axis.bar(list(alphas), list(alphas.values()))
  axis.set_ylim(0, 1)
  axis.set_ylabel("alpha")
  axis.set_title(layer, fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def _draw_histogram(title, weights_per_layer, path):
  figure, axis = plt.subplots(figsize=(6, 3.5))
  for layer, weights in weights_per_layer.items():
    axis.hist(weights.ravel(), bins=60, histtype="step", density=True,
              label=layer)
  axis.set_xlabel("weight value")
  axis.set_ylabel("density")
  axis.set_title(title, fontsize=9)
  axis.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def learned_weights(checkpoint, layers):
  """{(member, weight): {layer: array}} of every trainable synthetic weight."""
  reader = tf.train.load_checkpoint(checkpoint)
  names = reader.get_variable_to_shape_map()
  weights = {}
  for layer in layers:
    for name in sorted(names):
      member, _, weight = name[len(layer) + 1:].partition("/")
      component = synth.COMPONENTS.get(member)
      if (name.startswith(layer + "/") and weight and component and
          component.synthesized and component.trainable and
          "_slot_" not in weight):  # not the optimizer's slots
        weights.setdefault((member, weight), {})[layer] = reader.get_tensor(
            name)
  return weights


def write_pictures(values, checkpoint, output_dir):
  """Writes the PNGs; returns their paths."""
  tf.io.gfile.makedirs(output_dir)
  paths = []
  alphas = {}
  for tag, value in values.items():
    if "/alpha/" in tag:
      layer, member = tag.split("/alpha/")
      alphas.setdefault(layer, {})[member] = value
      continue
    paths.append(os.path.join(output_dir, _file_name(tag)))
    _draw_heads(tag, value, paths[-1])
  for layer, layer_alphas in alphas.items():
    paths.append(os.path.join(output_dir, _file_name(layer, "alpha")))
    _draw_alpha(layer, layer_alphas, paths[-1])
  layers = sorted({_layer(tag) for tag in values})
  for (member, weight), per_layer in sorted(
      learned_weights(checkpoint, layers).items()):
    paths.append(os.path.join(output_dir,
                              _file_name("histogram", member, weight)))
    _draw_histogram("%s/%s per layer (%s)" % (
        member, weight, os.path.basename(checkpoint)), per_layer, paths[-1])
  return paths


def main(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("model_dir")
  parser.add_argument("--step", type=int, default=None,
                      help="checkpoint step (default: the latest)")
  parser.add_argument("--split", default="validation",
                      help="the split whose first example is drawn")
  parser.add_argument("--output_dir", default=None,
                      help="default: MODEL_DIR/attention_plots/STEP")
  parser.add_argument("--module_import", action="append", default=["tasks"],
                      help="a module registering the model's task")
  args = parser.parse_args(argv)
  try:
    for module in args.module_import:
      __import__(module)
    values, checkpoint = pictures(args.model_dir, args.step, args.split)
    output_dir = args.output_dir or os.path.join(
        args.model_dir, "attention_plots", checkpoint.rsplit("-", 1)[1])
    paths = write_pictures(values, checkpoint, output_dir)
  except errors.UserError as e:
    sys.stderr.write("plot_attention: error: %s\n" % e)
    return 2
  print("wrote %d pictures of %s to %s" % (len(paths), checkpoint,
                                           output_dir))
  return 0


if __name__ == "__main__":
  sys.exit(main())
