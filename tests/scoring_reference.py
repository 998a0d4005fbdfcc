"""Log-likelihoods of texts under a trained model_dir, by a direct forward pass.

The reference the scoring tests compare mesh TF's scores with: the model
that operative_config.gin describes, with the weights of the latest
checkpoint, gives logits for the whole (input, target) pair at once, and numpy
sums log p(token) over the target tokens. It shares nothing with the scoring
path but the model's forward pass: not the input pipeline, batching and
padding, the score model_fn, nor its cross-entropy and masking.
"""

import os

import gin
import mesh_tensorflow as mtf
import numpy as np
import tensorflow.compat.v1 as tf
import tensorflow_datasets as tfds

from mesh_tensorflow.transformer import utils
from mtf_harness import run_mtf

EOS_ID = 1


def encode(vocabulary, texts, length):
  """Token ids of each text followed by EOS, zero-padded to `length`."""
  ids = np.zeros([len(texts), length], np.int32)
  for row, text in enumerate(texts):
    tokens = list(vocabulary.encode(text)) + [EOS_ID]
    ids[row, :len(tokens)] = tokens
  return ids


def source_texts(task, split, count):
  """(inputs, targets) text of a task's first `count` examples of `split`."""
  dataset = task.source.get_dataset(split, shuffle=False).take(count)
  examples = list(tfds.as_numpy(dataset))
  return ([ex["inputs"].decode() for ex in examples],
          [ex["targets"].decode() for ex in examples])


def _log_softmax(logits):
  logits = logits.astype(np.float64)
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def log_likelihoods(model_dir, vocabulary, inputs, targets, length=64):
  """log p(target | input) for each pair, from the latest checkpoint.

  Parses the model's operative config, so leaves the gin config cleared.
  """
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
  weights = {name: reader.get_tensor(name).astype(np.float32)
             for name in reader.get_variable_to_shape_map()}
  input_ids = encode(vocabulary, inputs, length)
  target_ids = encode(vocabulary, targets, length)
  model_variables = []

  def logits_fn(mesh):
    model = utils.build_model(
        model_type="bitransformer", input_vocab_size=vocabulary.vocab_size,
        output_vocab_size=vocabulary.vocab_size)
    shape = [mtf.Dimension("batch", len(inputs)),
             mtf.Dimension("length", length)]

    def ids(array):
      return mtf.import_tf_tensor(mesh, tf.constant(array), shape)

    logits, _ = model.call_simple(
        inputs=ids(input_ids), targets=ids(target_ids), compute_loss=False,
        mode="eval", variable_dtype=mtf.VariableDType(tf.float32))
    model_variables.extend(v.name for v in mesh.graph.all_variables)
    return {"logits": logits}

  gin.clear_config()
  try:
    gin.parse_config_file(os.path.join(model_dir, "operative_config.gin"),
                          skip_unknown=True)
    logits = run_mtf(logits_fn, init_values=weights)["logits"]
  finally:
    gin.clear_config()
  missing = set(model_variables) - set(weights)
  assert not missing, "variables not in the checkpoint: %s" % sorted(missing)
  log_probs = np.take_along_axis(_log_softmax(logits), target_ids[..., None],
                                 axis=-1)[..., 0]
  return (log_probs * (target_ids > 0)).sum(axis=-1)


def assert_log_likelihoods(scores, model_dir, vocabulary, inputs, targets,
                           atol=1e-4):
  """`scores` are the pairs' log-likelihoods, and these differ.

  atol 1e-4 allows for save_scores' "%g" (6 significant digits, so 5e-5 at
  |score| < 100).
  """
  expected = log_likelihoods(model_dir, vocabulary, inputs, targets)
  assert len(set(np.round(expected, 3))) > 1
  np.testing.assert_allclose(np.asarray(scores, np.float64), expected,
                             rtol=0, atol=atol)
