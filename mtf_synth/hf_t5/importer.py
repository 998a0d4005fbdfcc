"""Import: a Hugging Face T5 directory becomes an mtf_synth model directory.

A transformers T5 directory (config.json and model.safetensors or
pytorch_model.bin, sharded or not; T5 v1.0: relu feed-forward, lm_head tied
to the embedding; T5 v1.1: gated-gelu wi_0/wi_1, separate lm_head) becomes
`model.gin` (the architecture, plus any gin files / bindings given, e.g. a
Synthesizer mixture) and `model.ckpt-0` holding every variable of the model
that gin builds. A SynthesizerAttention takes the vanilla layer's value and
output projections (and, with a vanilla member, its query and key
projections); what has no Hugging Face counterpart (synthetic tables,
mixture weights) is freshly initialised from `seed`, and Hugging Face
weights the model does not use (the relative position biases under a
Synthesizer) are reported. torch is only imported to read a
pytorch_model.bin.
"""

import dataclasses
import json
import os
import pickle
import tempfile

import numpy as np
import safetensors
from safetensors import numpy as safetensors_numpy
import tensorflow.compat.v1 as tf

from mtf_synth.errors import ConversionError
from mtf_synth.hf_t5 import mtf_model
from mtf_synth.hf_t5 import names
from mtf_synth.hf_t5.architecture import T5Architecture

_CHECKPOINT_PREFIX = "model.ckpt"


def _weight_files(hf_dir, name):
  """The files of a weights file or of its sharded index, else []."""
  index = os.path.join(hf_dir, name + ".index.json")
  if os.path.exists(index):
    with open(index) as f:
      shards = sorted(set(json.load(f)["weight_map"].values()))
    return [os.path.join(hf_dir, shard) for shard in shards]
  path = os.path.join(hf_dir, name)
  return [path] if os.path.exists(path) else []


def _load_torch_file(path):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ConversionError(
        "%s needs torch to read: pip install torch, or save the model with "
        "safe_serialization=True (model.safetensors)" % path) from None
  state = torch.load(path, map_location="cpu", weights_only=True)
  return {k: v.float().numpy() for k, v in state.items()}


def read_hf_weights(hf_dir):
  """{parameter name: float32 array} from model.safetensors or .bin."""
  files = _weight_files(hf_dir, "model.safetensors")
  load = safetensors_numpy.load_file
  unreadable = (OSError, safetensors.SafetensorError)
  if not files:
    files = _weight_files(hf_dir, "pytorch_model.bin")
    load = _load_torch_file
    # torch's errors for a truncated or foreign file.
    unreadable = (OSError, RuntimeError, EOFError, pickle.UnpicklingError)
  if not files:
    raise ConversionError("%s has no model.safetensors or pytorch_model.bin"
                          % hf_dir)
  weights = {}
  for path in files:
    try:
      weights.update(load(path))
    except unreadable as e:
      raise ConversionError("%s cannot be read (%s): give a complete "
                            "transformers weights file" % (
                                path, " ".join(str(e).split()))) from e
  return {k: np.asarray(v, np.float32) for k, v in weights.items()}


def _lm_head_is_embedding(weights):
  """Whether the logits use the embedding (no separate lm_head)."""
  shared = weights["shared.weight"]
  for name in names.EMBEDDING_COPIES:
    if name in weights and not np.array_equal(weights[name], shared):
      raise ConversionError("%s differs from shared.weight: T5 shares one "
                            "input embedding" % name)
  return ("lm_head.weight" not in weights or
          np.array_equal(weights["lm_head.weight"], shared))


@dataclasses.dataclass
class ImportReport:
  checkpoint: str
  gin_file: str
  converted: list  # mesh TF variables holding Hugging Face weights
  fresh: list  # variables with no Hugging Face counterpart (initialised)
  unused: list  # Hugging Face parameters the model has no place for


def import_hf_t5(hf_dir, output_dir, gin_files=(), gin_params=(), seed=0):
  """Converts a Hugging Face T5 directory into an mtf_synth model dir.

  `gin_files` / `gin_params` change the model (e.g. layers/synthesizer.gin
  and SynthesizerAttention.mode = 'random+vanilla'); they are written into
  output_dir/model.gin with the architecture, so that file alone builds the
  model: pass it with --gin_file and, to fine-tune, point
  utils.run.init_checkpoint at output_dir/model.ckpt-0.
  """
  config_path = os.path.join(hf_dir, "config.json")
  if not os.path.exists(config_path):
    raise ConversionError("%s has no config.json: pass a transformers T5 "
                          "model directory" % hf_dir)
  with open(config_path) as f:
    try:
      config = json.load(f)
    except ValueError as e:
      raise ConversionError("%s is not JSON (%s): give transformers' "
                            "config.json" % (config_path, e)) from e
  weights = read_hf_weights(hf_dir)
  if "shared.weight" not in weights:
    raise ConversionError("%s has no shared.weight: not a T5 checkpoint" %
                          hf_dir)
  architecture = T5Architecture.from_hf_config(
      config, _lm_head_is_embedding(weights))
  gin_text = mtf_model.model_gin(architecture, hf_dir, gin_files, gin_params)
  # Built from a scratch copy of the gin: a failed import writes nothing.
  with tempfile.TemporaryDirectory() as scratch:
    scratch_gin = os.path.join(scratch, mtf_model.GIN_FILE)
    with open(scratch_gin, "w") as f:
      f.write(gin_text)
    values = mtf_model.model_variables([scratch_gin], [],
                                       architecture.vocab_size, seed)
  converted, fresh = [], []
  for name in sorted(values):
    source = names.hf_name(names.vanilla_name(name))
    if source is None:
      fresh.append(name)
    elif source not in weights:
      raise ConversionError("%s has no %s, which the model's %s needs" % (
          hf_dir, source, name))
    else:
      values[name] = names.to_mtf(names.vanilla_name(name), weights[source],
                                  values[name].shape)
      converted.append(name)
  used = {names.hf_name(names.vanilla_name(name)) for name in converted}
  ignored = set(names.IGNORED_HF_NAMES) | (
      {"lm_head.weight"} if architecture.tied else set())
  unused = sorted(set(weights) - used - ignored)
  gin_path = os.path.join(output_dir, mtf_model.GIN_FILE)
  with mtf_model.writing_to(output_dir):
    tf.io.gfile.makedirs(output_dir)
    with open(gin_path, "w") as f:
      f.write(gin_text)
    checkpoint = write_checkpoint(values, output_dir)
  return ImportReport(checkpoint, gin_path, converted, fresh, unused)


def write_checkpoint(values, output_dir, step=0):
  """Saves {name: array} (and global_step) as output_dir/model.ckpt-STEP."""
  with tf.Graph().as_default():
    variables = {name: tf.Variable(tf.zeros(value.shape, value.dtype),
                                   name="v%d" % i)
                 for i, (name, value) in enumerate(sorted(values.items()))}
    variables["global_step"] = tf.Variable(
        tf.constant(step, tf.int64), name="global_step")
    saver = tf.train.Saver(variables, sharded=False)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      for name, value in values.items():
        variables[name].load(value, sess)
      return saver.save(sess, os.path.join(output_dir, _CHECKPOINT_PREFIX),
                        global_step=step, write_meta_graph=False)
