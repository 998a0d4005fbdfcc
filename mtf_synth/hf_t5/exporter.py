"""Export: a vanilla-attention mtf_synth checkpoint becomes Hugging Face T5.

The checkpoint is written as config.json + model.safetensors; a checkpoint
with variables Hugging Face T5 has no module for (Synthesizer, kernel
attention, ...) is refused.
"""

import json
import os

import numpy as np
from safetensors import numpy as safetensors_numpy
import tensorflow.compat.v1 as tf

from mtf_synth import padded_vocabulary
from mtf_synth.errors import ConversionError
from mtf_synth.hf_t5 import mtf_model
from mtf_synth.hf_t5 import names
from mtf_synth.hf_t5.architecture import T5Architecture


def read_checkpoint(checkpoint):
  """{name: array} of a checkpoint file prefix or a model_dir's latest."""
  if tf.io.gfile.isdir(checkpoint):
    latest = tf.train.latest_checkpoint(checkpoint)
    if latest is None:
      raise ConversionError("%s has no checkpoint" % checkpoint)
    checkpoint = latest
  try:
    reader = tf.train.load_checkpoint(checkpoint)
  except (ValueError, tf.errors.OpError) as e:
    raise ConversionError(
        "no checkpoint at %s (%s): pass a model_dir or a checkpoint prefix "
        "such as MODEL_DIR/model.ckpt-1000" % (checkpoint, " ".join(
            str(getattr(e, "message", e)).split()))) from e
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def _is_model_variable(name):
  """False for the step counter and optimizer slots (e.g. q_slot_vc)."""
  return name != "global_step" and "_slot_" not in name


def default_gin_files(checkpoint):
  """The gin the checkpoint's run recorded, or the importer's model.gin."""
  model_dir = (checkpoint if tf.io.gfile.isdir(checkpoint)
               else os.path.dirname(checkpoint))
  for name in ("operative_config.gin", mtf_model.GIN_FILE):
    path = os.path.join(model_dir, name)
    if tf.io.gfile.exists(path):
      return [path]
  raise ConversionError(
      "%s has no operative_config.gin or %s: pass the model's gin files" % (
          model_dir, mtf_model.GIN_FILE))


def _unpadded(hf_name, array, vocab_size):
  """The rows of the real vocabulary, of the [vocab, d_model] parameters."""
  return array[:vocab_size] if hf_name in ("shared.weight",
                                           "lm_head.weight") else array


def export_hf_t5(checkpoint, output_dir, gin_files=None, gin_params=()):
  """Writes a vanilla T5 checkpoint as transformers' config + safetensors.

  `gin_files` default to the model directory's operative_config.gin (or
  model.gin). Returns the written T5Architecture.
  """
  values = {name: value for name, value in read_checkpoint(checkpoint).items()
            if _is_model_variable(name)}
  foreign = sorted(name for name in values if names.hf_name(name) is None)
  if foreign:
    raise ConversionError(
        "%s has %d variables Hugging Face T5 has no module for (%s%s): only "
        "vanilla-attention T5 models export" % (
            checkpoint, len(foreign), ", ".join(foreign[:3]),
            ", ..." if len(foreign) > 3 else ""))
  if "shared/embedding" not in values:
    raise ConversionError("%s has no shared/embedding: not a T5 "
                          "encoder-decoder with a shared embedding" %
                          checkpoint)
  vocab_size = values["shared/embedding"].shape[0]
  if gin_files is None:
    gin_files = default_gin_files(checkpoint)
  with mtf_model.gin_model(gin_files, gin_params, vocab_size) as model, \
      tf.Graph().as_default():
    # The real vocabulary: the rows mesh TF padded are not exported.
    vocab_size = padded_vocabulary.vocabulary_size() or vocab_size
    architecture = T5Architecture.from_model(model, vocab_size)
    expected = {name: tuple(v.shape.to_integer_list)
                for name, v in mtf_model.variables_of(model).items()}
  mismatched = sorted(
      name for name in set(expected) | set(values)
      if name not in values or name not in expected
      or values[name].shape != expected[name])
  if mismatched:
    raise ConversionError(
        "the checkpoint does not match the gin model at %s: check the gin "
        "files" % ", ".join(mismatched[:3]))
  with mtf_model.writing_to(output_dir):
    tf.io.gfile.makedirs(output_dir)
    with open(os.path.join(output_dir, "config.json"), "w") as f:
      json.dump(architecture.hf_config(), f, indent=2, sort_keys=True)
    safetensors_numpy.save_file(
        {names.hf_name(name): np.ascontiguousarray(
            _unpadded(names.hf_name(name), names.to_hf(name, value),
                      vocab_size), np.float32)
         for name, value in values.items()},
        os.path.join(output_dir, "model.safetensors"),
        metadata={"format": "pt"})
  return architecture
