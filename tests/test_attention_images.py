"""Attention pictures: TensorBoard images while training and evaluating
(mtf_synth/layers/attention_images.py) and scripts/plot_attention.py."""

import glob
import io
import os
import sys

import mesh_tensorflow as mtf
import numpy as np
import pytest
import seqio
import tensorflow.compat.v1 as tf
from PIL import Image
import tasks  # noqa: F401  (registers mtf_synth_demo)

import gin
from cli_runner import mtf_synth
from mtf_synth import errors
from mtf_synth.runtime import train_loop
from scoring_reference import encode, source_texts
from test_synthesizer_models import bitransformer, ints

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir,
                                "scripts"))
import plot_attention  # noqa: E402  pylint: disable=g-import-not-at-top

LENGTH, HEADS, STEPS, EVERY = 32, 2, 4, 2
ENCODER = "encoder/block_000/layer_000/SynthesizerAttention"
DECODER = "decoder/block_000/layer_000/SynthesizerAttention"
ENCODER_MODE = ["random", "factorized_random", "vanilla"]
DECODER_MODE = ["fixed_random", "vanilla"]
MODEL = [
    "--gin_file=dataset.gin", "--gin_file=models/bi_v1.gin",
    "--gin_file=layers/synthesizer.gin",
    "--gin_param=MIXTURE_NAME='mtf_synth_demo'",
    "--gin_param=d_model=32", "--gin_param=num_layers=1",
    "--gin_param=d_ff=64", "--gin_param=num_heads=%d" % HEADS,
    "--gin_param=d_kv=8",
    "--gin_param=encoder/SynthesizerAttention.mode='%s'" % "+".join(
        ENCODER_MODE),
    "--gin_param=decoder/SynthesizerAttention.mode='%s'" % "+".join(
        DECODER_MODE),
    "--gin_param=SynthesizerAttention.max_length=%d" % LENGTH,
    "--gin_param=SynthesizerAttention.num_heads=%d" % HEADS,
    "--gin_param=SynthesizerAttention.key_value_size=8",
    "--gin_param=utils.run.sequence_length={'inputs': %d, 'targets': %d}" % (
        LENGTH, LENGTH),
    "--gin_param=utils.run.batch_size=4",
    "--gin_param=utils.run.mesh_shape='model:2,batch:2'",
    "--gin_param=mtf_synth.attention_images.every_steps=%d" % EVERY,
]
TABLES = {"%s/table/%s" % (ENCODER, m) for m in ("random",
                                                 "factorized_random")}
TABLES.add("%s/table/fixed_random" % DECODER)
ALPHAS = {"%s/alpha/%s" % (layer, m) for layer, mode in
          ((ENCODER, ENCODER_MODE), (DECODER, DECODER_MODE)) for m in mode}
ATTENTION = {"%s/attention/%s" % (layer, m) for layer, mode in
             ((ENCODER, ENCODER_MODE), (DECODER, DECODER_MODE))
             for m in mode + ["mixture"]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A tiny encoder-decoder trained STEPS steps on a 2x2 mesh, images on."""
  path = str(tmp_path_factory.mktemp("attention_images"))
  result = mtf_synth(path, *MODEL,
                     "--gin_param=utils.run.train_steps=%d" % STEPS)
  assert result.returncode == 0, result.stderr[-3000:]
  return path


def summaries(log_dir):
  """{(step, tag): tf.Summary.Value} of the event files in log_dir."""
  values = {}
  for path in glob.glob(os.path.join(log_dir, "events.out.tfevents*")):
    for event in tf.train.summary_iterator(path):
      for value in event.summary.value:
        values[event.step, value.tag] = value
  return values


def head_tags(tags):
  return {"%s/image/%d" % (tag, head) for tag in tags
          for head in range(HEADS)}


def grayscale(table):
  """What the image summary shows: each head min-max scaled to 0..255."""
  low = table.min(axis=(1, 2), keepdims=True)
  high = table.max(axis=(1, 2), keepdims=True)
  return np.round((table - low) / (high - low) * 255).astype(np.uint8)


def softmax(logits):
  e = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def checkpoint_value(model_dir, name, step=STEPS):
  return tf.train.load_variable(
      os.path.join(model_dir, "model.ckpt-%d" % step), name)


def lowered_summaries(every_steps, mode):
  """The periodic summaries and graph ops of a lowered bitransformer."""
  gin.clear_config()
  if every_steps is not None:
    gin.bind_parameter("mtf_synth.attention_images.every_steps", every_steps)
  try:
    with tf.Graph().as_default() as graph:
      mesh = mtf.Mesh(mtf.Graph(), "mesh")
      ids = ints(mesh, np.ones([2, 8]))
      bitransformer("random+vanilla").call_simple(
          inputs=ids, targets=ids, compute_loss=True, mode=mode,
          variable_dtype=mtf.VariableDType(tf.float32))
      mtf.Lowering(mesh.graph, {mesh: mtf.placement_mesh_impl.
                                PlacementMeshImpl([], [], [""])})
      return (graph.get_collection(train_loop.PERIODIC_SUMMARIES),
              {op.type for op in graph.get_operations()})
  finally:
    gin.clear_config()


def test_off_by_default_adds_nothing_to_the_graph():
  periodic, op_types = lowered_summaries(None, "train")
  assert not periodic
  assert not op_types & {"ImageSummary", "ScalarSummary"}
  periodic, op_types = lowered_summaries(5, "train")
  assert {every for every, _ in periodic} == {5}
  assert "ImageSummary" in op_types


def test_a_negative_period_is_a_user_error():
  with pytest.raises(errors.UserError, match="every_steps=-1"):
    lowered_summaries(-1, "train")


def test_training_writes_tables_and_alphas_every_n_steps(model_dir):
  values = summaries(model_dir)
  image_steps = {step for step, tag in values if "/table/" in tag}
  assert image_steps == {1, 3}  # the first step, then every EVERY steps
  assert {tag for step, tag in values if step == 3 and
          "/table/" in tag} == head_tags(TABLES)
  for tag in head_tags(TABLES):
    assert (values[3, tag].image.height,
            values[3, tag].image.width) == (LENGTH, LENGTH)
  assert {tag for step, tag in values if step == 3 and
          "/alpha/" in tag} == ALPHAS
  assert not {tag for _, tag in values if "/attention/" in tag}
  alpha = sum(values[3, tag].simple_value for tag in ALPHAS
              if tag.startswith(ENCODER))
  assert alpha == pytest.approx(1.0, abs=1e-6)


def test_tensorboard_table_shows_the_checkpoint_values(model_dir):
  # The fixed random table is never trained: step 1's picture is the table.
  table = checkpoint_value(
      model_dir, DECODER + "/fixed_random/table").astype(np.float32)
  values = summaries(model_dir)
  for head in range(HEADS):
    tag = "%s/table/fixed_random/image/%d" % (DECODER, head)
    pixels = np.asarray(Image.open(io.BytesIO(
        values[1, tag].image.encoded_image_string)))
    np.testing.assert_allclose(pixels.astype(int),
                               grayscale(table)[head].astype(int), atol=1)


def test_plot_script_draws_the_checkpoint(model_dir, tmp_path):
  values, checkpoint = plot_attention.pictures(model_dir)
  assert checkpoint.endswith("model.ckpt-%d" % STEPS)
  assert set(values) == TABLES | ALPHAS | ATTENTION
  random = checkpoint_value(model_dir, ENCODER + "/random/table")
  np.testing.assert_allclose(values[ENCODER + "/table/random"], random,
                             rtol=1e-6)
  r1 = checkpoint_value(model_dir, ENCODER + "/factorized_random/r1")
  r2 = checkpoint_value(model_dir, ENCODER + "/factorized_random/r2")
  np.testing.assert_allclose(values[ENCODER + "/table/factorized_random"],
                             np.einsum("hqk,hmk->hqm", r1, r2), rtol=1e-5,
                             atol=1e-6)
  fixed = checkpoint_value(model_dir, DECODER + "/fixed_random/table")
  np.testing.assert_allclose(values[DECODER + "/table/fixed_random"], fixed)
  for layer, mode in ((ENCODER, ENCODER_MODE), (DECODER, DECODER_MODE)):
    alpha = softmax(checkpoint_value(model_dir, layer + "/alpha_logits"))
    np.testing.assert_allclose(
        [values["%s/alpha/%s" % (layer, m)] for m in mode], alpha, rtol=1e-6)

  # The first validation example, encoded apart from the script.
  task = seqio.get_mixture_or_task("mtf_synth_demo")
  vocabulary = task.output_features["targets"].vocabulary
  inputs, targets = source_texts(task, "validation", 1)
  input_length = int((encode(vocabulary, inputs, LENGTH) > 0).sum())
  target_length = int((encode(vocabulary, targets, LENGTH) > 0).sum())
  n, m = input_length, target_length
  np.testing.assert_allclose(values[ENCODER + "/attention/random"],
                             softmax(random[:, :n, :n]), rtol=1e-5, atol=1e-7)
  causal = np.triu(np.full([m, m], -np.inf), 1)
  np.testing.assert_allclose(values[DECODER + "/attention/fixed_random"],
                             softmax(fixed[:, :m, :m] + causal), rtol=1e-5,
                             atol=1e-7)
  for tag in ATTENTION:
    length = n if tag.startswith(ENCODER) else m
    assert values[tag].shape == (HEADS, length, length), tag
    np.testing.assert_allclose(values[tag].sum(axis=-1), 1.0, rtol=1e-5)
    if tag.startswith(DECODER):
      assert not np.triu(values[tag], 1).any(), tag

  paths = plot_attention.write_pictures(values, checkpoint, str(tmp_path))
  names = {os.path.basename(p) for p in paths}
  assert names == (
      {tag.replace("/", ".") + ".png" for tag in TABLES | ATTENTION} |
      {"%s.alpha.png" % layer.replace("/", ".")
       for layer in (ENCODER, DECODER)} |
      {"histogram.random.table.png", "histogram.factorized_random.r1.png",
       "histogram.factorized_random.r2.png"})
  for path in paths:
    assert Image.open(path).size[0] > 100, path


def test_plot_script_missing_step_is_one_line(model_dir, capsys):
  assert plot_attention.main([model_dir, "--step", "7"]) == 2
  error = capsys.readouterr().err
  assert error.count("\n") == 1
  assert "no checkpoint at step 7" in error and "[0, 4]" in error


@pytest.mark.slow
def test_perplexity_eval_writes_attention_of_the_first_validation_row(
    model_dir):
  result = mtf_synth(model_dir, *MODEL, "--gin_file=perplexity_eval.gin",
                     "--gin_param=eval_checkpoint_step=-1",
                     "--gin_param=utils.run.dataset_split='validation'",
                     "--gin_param=utils.run.perplexity_eval_steps=2")
  assert result.returncode == 0, result.stderr[-3000:]
  (eval_dir,) = glob.glob(os.path.join(model_dir, "eval_*validation*"))
  values = summaries(eval_dir)
  images = {tag for step, tag in values if step == STEPS and
            values[step, tag].HasField("image")}
  assert images == head_tags(TABLES | ATTENTION)
  for tag in head_tags(ATTENTION):
    assert (values[STEPS, tag].image.height,
            values[STEPS, tag].image.width) == (LENGTH, LENGTH)
  assert ALPHAS <= {tag for _, tag in values}
