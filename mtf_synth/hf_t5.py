"""Hugging Face T5 checkpoints <-> mtf_synth (mesh TF) checkpoints.

Import (`import_hf_t5`): a transformers T5 directory (config.json and
model.safetensors or pytorch_model.bin, sharded or not; T5 v1.0: relu
feed-forward, lm_head tied to the embedding; T5 v1.1: gated-gelu wi_0/wi_1,
separate lm_head) becomes a mesh TF model directory: `model.gin` (the
architecture, plus any gin files / bindings given, e.g. a Synthesizer
mixture) and `model.ckpt-0` holding every variable of the model that gin
builds. Weights are placed by name: the mesh TF names transformers'
former `load_tf_weights_in_t5` read (encoder/block_000/layer_000/
SelfAttention/q, ...). A SynthesizerAttention takes the vanilla layer's
value and output projections (and, with a vanilla member, its query and key
projections); what has no Hugging Face counterpart (synthetic tables,
mixture weights) is freshly initialised from `seed`, and Hugging Face
weights the model does not use (the relative position biases under a
Synthesizer) are reported.

Export (`export_hf_t5`): a vanilla-attention mtf_synth checkpoint becomes
config.json + model.safetensors; a checkpoint with variables Hugging Face T5
has no module for (Synthesizer, kernel attention, ...) is refused.

Both build the model with gin exactly as the `mtf_synth` command line does
(mesh TF's defaults, mtf_synth's runtime defaults, then the given files),
and use (and clear) the global gin config. torch is only imported to read a
pytorch_model.bin.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sys
import tempfile

import mtf_synth  # noqa: F401  (compat patches first)  pylint: disable=unused-import

import gin  # pylint: disable=g-bad-import-order
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
from mesh_tensorflow.transformer import transformer_layers
from mesh_tensorflow.transformer import utils as mtf_utils
import numpy as np
import safetensors
from safetensors import numpy as safetensors_numpy
import tensorflow.compat.v1 as tf

from mtf_synth import errors

GIN_FILE = "model.gin"
_CHECKPOINT_PREFIX = "model.ckpt"
# mesh TF pads the vocabulary dim to a multiple of this
# (Unitransformer.vocab_divisor).
_VOCAB_DIVISOR = 128
# mesh TF's relative position buckets have this maximum distance built in.
_MAX_DISTANCE = 128

# Hugging Face activation name -> the same function in mesh TF.
_HF_TO_MTF_ACTIVATION = {"relu": "relu", "gelu_new": "gelu",
                         "gelu_pytorch_tanh": "gelu", "silu": "swish",
                         "swish": "swish"}
_MTF_TO_HF_ACTIVATION = {"relu": "relu", "gelu": "gelu_new", "swish": "silu"}

# mesh TF variable name -> Hugging Face parameter name, for vanilla T5.
_STACK = r"(encoder|decoder)/block_(\d+)/layer_(\d+)/"
_NAME_RULES = [
    (re.compile(r"shared/embedding$"), lambda m: "shared.weight"),
    (re.compile(r"decoder/logits/kernel$"), lambda m: "lm_head.weight"),
    (re.compile(r"(encoder|decoder)/rms_norm/scale$"),
     lambda m: "%s.final_layer_norm.weight" % m[1]),
    (re.compile(_STACK + r"rms_norm/scale$"),
     lambda m: "%s.block.%d.layer.%d.layer_norm.weight" % (
         m[1], int(m[2]), int(m[3]))),
    (re.compile(_STACK + r"(SelfAttention|EncDecAttention)/([qkvo])$"),
     lambda m: "%s.block.%d.layer.%d.%s.%s.weight" % (
         m[1], int(m[2]), int(m[3]), m[4], m[5])),
    # Shared by all layers of a stack ("bias_shared"), as in Hugging Face.
    (re.compile(r"(encoder|decoder)/block_000/layer_000/SelfAttention/"
                r"relative_attention_bias$"),
     lambda m: "%s.block.0.layer.0.SelfAttention.relative_attention_bias."
               "weight" % m[1]),
    (re.compile(_STACK + r"DenseReluDense/(wi|wi_0|wi_1|wo)/kernel$"),
     lambda m: "%s.block.%d.layer.%d.DenseReluDense.%s.weight" % (
         m[1], int(m[2]), int(m[3]), m[4])),
]
# Variables of other attention layers that play a vanilla SelfAttention
# variable's role (same shape up to splitting heads from d_kv).
_VANILLA_ROLES = [
    (re.compile(r"(.*)/SynthesizerAttention/vanilla/q$"), r"\1/SelfAttention/q"),
    (re.compile(r"(.*)/SynthesizerAttention/([kvo])$"), r"\1/SelfAttention/\2"),
    (re.compile(r"(.*)/KernelAttention/([qkvo])$"), r"\1/SelfAttention/\2"),
]
# Copies of shared.weight that Hugging Face files may hold.
_EMBEDDING_COPIES = ("encoder.embed_tokens.weight",
                     "decoder.embed_tokens.weight")
# Stored in some Hugging Face files, never read by T5.
_IGNORED_HF_NAMES = _EMBEDDING_COPIES + (
    "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)
_VOCAB_VARIABLES = ("shared/embedding", "decoder/logits/kernel")


# A checkpoint or configuration the converter cannot convert faithfully: a
# user error (one line, exit 2, from the command line).
ConversionError = errors.ConversionError


def hf_name(mtf_name):
  """The Hugging Face T5 parameter of a mesh TF variable, or None."""
  for pattern, name in _NAME_RULES:
    match = pattern.match(mtf_name)
    if match:
      return name(match)
  return None


def vanilla_name(mtf_name):
  """The vanilla T5 variable whose weights `mtf_name` starts from."""
  for pattern, replacement in _VANILLA_ROLES:
    if pattern.match(mtf_name):
      return pattern.sub(replacement, mtf_name)
  return mtf_name


def _round_up(n, divisor):
  return -(-n // divisor) * divisor


@dataclasses.dataclass(frozen=True)
class T5Architecture:
  """The hyperparameters both frameworks need to build the same T5."""
  vocab_size: int
  d_model: int
  d_kv: int
  d_ff: int
  num_heads: int
  num_layers: int
  num_decoder_layers: int
  relative_attention_num_buckets: int
  activation: str  # mesh TF activation name
  gated: bool  # wi_0 (activation) * wi_1 (linear), as in T5 v1.1
  tied: bool  # lm_head = embedding, logits scaled by d_model ** -0.5 (v1.0)
  dropout_rate: float
  layer_norm_epsilon: float

  @classmethod
  def from_hf_config(cls, config, lm_head_is_embedding):
    """From a Hugging Face T5 config.json dict.

    `lm_head_is_embedding`: whether the checkpoint has no separate lm_head.
    transformers >= 5 writes tie_word_embeddings = True for every T5 and
    records v1.1's unscaled logits as scale_decoder_outputs = False.
    """
    if config.get("model_type") not in ("t5", "mt5"):
      raise ConversionError("config.json has model_type %r: only T5 "
                            "checkpoints (t5, mt5) convert" %
                            config.get("model_type"))
    if config.get("relative_attention_max_distance",
                  _MAX_DISTANCE) != _MAX_DISTANCE:
      raise ConversionError(
          "relative_attention_max_distance = %s: mesh TF's relative "
          "attention has %d built in" % (
              config["relative_attention_max_distance"], _MAX_DISTANCE))
    feed_forward = config.get("feed_forward_proj", "relu")
    parts = feed_forward.split("-")
    # transformers reads "gated-gelu" as gelu_new (the tanh approximation).
    hf_activation = "gelu_new" if feed_forward == "gated-gelu" else parts[-1]
    if hf_activation not in _HF_TO_MTF_ACTIVATION or len(parts) > 2 or (
        len(parts) == 2 and parts[0] != "gated"):
      raise ConversionError(
          "feed_forward_proj %r has no mesh TF equivalent: supported "
          "activations are %s, optionally gated-" % (
              feed_forward, ", ".join(sorted(_HF_TO_MTF_ACTIVATION))))
    scaled = config.get("scale_decoder_outputs",
                        config.get("tie_word_embeddings", True))
    if scaled != lm_head_is_embedding:
      raise ConversionError(
          "the checkpoint has %s lm_head with %s logits; mesh TF builds "
          "either a tied, scaled one (T5 v1.0) or a separate, unscaled one "
          "(T5 v1.1)" % ("no separate" if lm_head_is_embedding else "a "
                         "separate", "scaled" if scaled else "unscaled"))
    num_layers = config.get("num_layers", 6)
    return cls(
        vocab_size=config.get("vocab_size", 32128),
        d_model=config.get("d_model", 512),
        d_kv=config.get("d_kv", 64),
        d_ff=config.get("d_ff", 2048),
        num_heads=config.get("num_heads", 8),
        num_layers=num_layers,
        num_decoder_layers=config.get("num_decoder_layers") or num_layers,
        relative_attention_num_buckets=config.get(
            "relative_attention_num_buckets", 32),
        activation=_HF_TO_MTF_ACTIVATION[hf_activation],
        gated=parts[0] == "gated",
        tied=lm_head_is_embedding,
        dropout_rate=config.get("dropout_rate", 0.1),
        layer_norm_epsilon=config.get("layer_norm_epsilon", 1e-6))

  @classmethod
  def from_model(cls, model, vocab_size):
    """From a gin-built vanilla T5 Bitransformer; refuses what HF lacks."""
    encoder = model.encoder.layer_stack.layers
    decoder = model.decoder.layer_stack.layers
    expected = ([transformer_layers.SelfAttention,
                 transformer_layers.DenseReluDense],
                [transformer_layers.SelfAttention,
                 transformer_layers.EncDecAttention,
                 transformer_layers.DenseReluDense])
    for layers, kinds in zip((encoder, decoder), expected):
      if [type(layer) for layer in layers] != kinds * (
          len(layers) // len(kinds)):
        raise ConversionError(
            "the gin model's layers (%s) are not T5's %s blocks" % (
                ", ".join(sorted({type(x).__name__ for x in layers})),
                "/".join(k.__name__ for k in kinds)))
    attention = [x for x in encoder + decoder
                 if isinstance(x, transformer_layers.SelfAttention)]
    feed_forward = [x for x in encoder + decoder
                    if isinstance(x, transformer_layers.DenseReluDense)]
    activations = _one_value("DenseReluDense.activation",
                             [x.activation for x in feed_forward])
    if not isinstance(activations, list):
      activations = [activations]
    gated = activations[1:] == ["linear"]
    activation = activations[0]
    if len(activations) != 1 + gated or not isinstance(activation, str) or (
        activation not in _MTF_TO_HF_ACTIVATION):
      raise ConversionError(
          "DenseReluDense.activation = %r has no Hugging Face equivalent "
          "(supported: one of %s, or [it, 'linear'])" % (
              activations, ", ".join(_MTF_TO_HF_ACTIVATION)))
    for knob, value in (("attention_func", None),
                        ("fold_scaling_into_initializer", True),
                        ("num_memory_heads", 0)):
      _one_value("SelfAttention." + knob,
                 [getattr(x, knob) for x in attention], required=value)
    _one_value("SelfAttention.relative_attention_type",
               [x.relative_attention_type for x in attention
                if type(x) is transformer_layers.SelfAttention],  # pylint: disable=unidiomatic-typecheck
               required="bias_shared")
    return cls(
        vocab_size=vocab_size,
        d_model=model.encoder.model_dim.size,
        d_kv=_one_value("SelfAttention.key_value_size",
                        [x.key_value_size for x in attention]),
        d_ff=_one_value("DenseReluDense.hidden_size",
                        [x.hidden_size for x in feed_forward]),
        num_heads=_one_value("SelfAttention.num_heads",
                             [x.num_heads for x in attention]),
        num_layers=len(encoder) // 2,
        num_decoder_layers=len(decoder) // 3,
        relative_attention_num_buckets=_one_value(
            "SelfAttention.relative_attention_num_buckets",
            [x.relative_attention_num_buckets for x in attention]),
        activation=activation,
        gated=gated,
        tied=model.decoder.shared_embedding_and_softmax_weights,
        dropout_rate=_one_value("DenseReluDense.dropout_rate",
                                [x.dropout_rate for x in feed_forward]),
        layer_norm_epsilon=_bound("transformer.sublayer_rms_norm.epsilon",
                                  1e-6))

  def hf_config(self):
    """A transformers T5 config.json dict."""
    activation = _MTF_TO_HF_ACTIVATION[self.activation]
    if self.gated:
      # "gated-gelu" is the name transformers gives T5 v1.1 (gelu_new).
      activation = "gated-" + ("gelu" if activation == "gelu_new"
                               else activation)
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "is_encoder_decoder": True,
        "vocab_size": self.vocab_size,
        "d_model": self.d_model,
        "d_kv": self.d_kv,
        "d_ff": self.d_ff,
        "num_heads": self.num_heads,
        "num_layers": self.num_layers,
        "num_decoder_layers": self.num_decoder_layers,
        "relative_attention_num_buckets": self.relative_attention_num_buckets,
        "relative_attention_max_distance": _MAX_DISTANCE,
        "feed_forward_proj": activation,
        "tie_word_embeddings": self.tied,
        "dropout_rate": self.dropout_rate,
        "layer_norm_epsilon": self.layer_norm_epsilon,
        "initializer_factor": 1.0,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    }

  def gin(self, source, gin_files=(), gin_params=()):
    """The gin file building this T5 (after `gin_files`, before params)."""
    activation = ([self.activation, "linear"] if self.gated
                  else self.activation)
    lines = [
        "# -*-Python-*-",
        "# T5 converted from the Hugging Face checkpoint %s" % source,
        "# by mtf_synth.hf_t5 (T5 %s layout)." % (
            "v1.0" if self.tied and not self.gated else
            "v1.1" if self.gated and not self.tied else "custom"),
        "# The task's vocabulary must have %d entries (mesh TF pads it to a "
        "multiple of %d: %d)." % (self.vocab_size, _VOCAB_DIVISOR,
                                 _round_up(self.vocab_size, _VOCAB_DIVISOR)),
        "",
        "import mtf_synth",
        "import mesh_tensorflow.transformer.transformer_layers",
        "",
    ] + ["include %r" % _include_path(path) for path in gin_files] + [
        "",
        "utils.run.model_type = 'bitransformer'",
        "Bitransformer.shared_embedding = True",
        "transformer.Unitransformer.positional_embedding = False",
        "transformer_layers.SelfAttention.relative_attention_type = "
        "'bias_shared'",
        "transformer_layers.SelfAttention.relative_attention_num_buckets = %d"
        % self.relative_attention_num_buckets,
        "d_model = %d" % self.d_model,
        "d_kv = %d" % self.d_kv,
        "d_ff = %d" % self.d_ff,
        "num_heads = %d" % self.num_heads,
        "encoder/transformer.make_layer_stack.num_layers = %d" %
        self.num_layers,
        "decoder/transformer.make_layer_stack.num_layers = %d" %
        self.num_decoder_layers,
        "transformer_layers.DenseReluDense.activation = %r" % (activation,),
        "transformer.Unitransformer.shared_embedding_and_softmax_weights = %r"
        % self.tied,
        "transformer.sublayer_rms_norm.epsilon = %r" % self.layer_norm_epsilon,
        "dropout_rate = %r" % self.dropout_rate,
        "# Attention layers replacing SelfAttention keep its heads and d_kv,",
        "# so they can start from its weights.",
        "mtf_synth.SynthesizerAttention.num_heads = %num_heads",
        "mtf_synth.SynthesizerAttention.key_value_size = %d_kv",
        "mtf_synth.KernelAttention.num_heads = %num_heads",
        "mtf_synth.KernelAttention.key_value_size = %d_kv",
        "",
    ] + list(gin_params)
    return "\n".join(lines) + "\n"


def _include_path(path):
  """A local gin file by absolute path; others stay on gin's search path."""
  return os.path.abspath(path) if os.path.exists(path) else path


def _one_value(knob, values, required=dataclasses.MISSING):
  """The single value `knob` has in every layer (and the one HF needs)."""
  distinct = sorted(set(map(repr, values)))
  if len(distinct) != 1:
    raise ConversionError("%s differs between layers (%s): Hugging Face T5 "
                          "uses one value" % (knob, ", ".join(distinct)))
  if required is not dataclasses.MISSING and values[0] != required:
    raise ConversionError("%s = %r: Hugging Face T5 has only %r" % (
        knob, values[0], required))
  return values[0]


def _bound(name, default):
  try:
    return gin.query_parameter(name)
  except ValueError:
    return default


@contextlib.contextmanager
def gin_model(gin_files, gin_params, vocab_size):
  """Yields the Bitransformer the gin config builds, the config still live.

  Parses what the `mtf_synth` command line parses: mesh TF's defaults,
  mtf_synth's runtime defaults, then `gin_files` and `gin_params`.
  """
  from mtf_synth import cli  # pylint: disable=g-import-not-at-top
  search_path, gin_files = cli.gin_search_path_and_files(gin_files)
  for path in search_path:
    gin.add_config_file_search_path(path)
  with gin.unlock_config():
    gin.clear_config()
    try:
      with cli.gin_parse_errors(ConversionError):
        gin.parse_config_file(os.path.join(
            os.path.dirname(mtf_utils.__file__), "gin", "defaults.gin"))
        gin.parse_config_files_and_bindings(
            gin_files, list(gin_params))
      yield transformer.make_bitransformer(input_vocab_size=vocab_size,
                                           output_vocab_size=vocab_size)
    finally:
      gin.clear_config()


def call_model(model, inputs, targets):
  """Logits of `model` (float32, eval mode) on mtf int Tensors."""
  return model.call_simple(
      inputs, targets, compute_loss=False, mode="eval",
      variable_dtype=mtf.VariableDType(tf.float32, tf.float32, tf.float32))[0]


def _variables(model):
  """{name: mtf.Variable} of `model`, built in the current TF graph."""
  mesh = mtf.Mesh(mtf.Graph(), "mesh")
  ids = mtf.ones(mesh, mtf.Shape([mtf.Dimension("batch", 1),
                                  mtf.Dimension("length", 1)]), tf.int32)
  call_model(model, ids, ids)
  return {v.name: v for v in mesh.graph.all_variables}


def model_variables(gin_files, gin_params, vocab_size, seed):
  """{name: initial value} of every variable of the gin-built model."""
  with gin_model(gin_files, gin_params, vocab_size) as model, \
      tf.Graph().as_default():
    tf.set_random_seed(seed)
    masters = {k: v.get_master() for k, v in _variables(model).items()}
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      return sess.run(masters)


def _to_mtf(name, array, shape):
  """A Hugging Face array laid out as mesh TF variable `name` of `shape`."""
  if name != "shared/embedding":
    array = array.T  # torch Linear [out, in]; relative bias [buckets, heads]
  if name in _VOCAB_VARIABLES:  # pad the vocab to mesh TF's multiple of 128
    array = np.pad(array, [(0, t - s) for s, t in zip(array.shape, shape)])
  if array.size != np.prod(shape, dtype=int):
    raise ConversionError(
        "the Hugging Face weights for %s have shape %s; the gin model's has "
        "%s (check the gin files and bindings)" % (name, array.T.shape,
                                                   list(shape)))
  return array.reshape(shape)


def _to_hf(name, array):
  return array if name == "shared/embedding" else array.T


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
  if not files:
    files = _weight_files(hf_dir, "pytorch_model.bin")
    load = _load_torch_file
  if not files:
    raise ConversionError("%s has no model.safetensors or pytorch_model.bin"
                          % hf_dir)
  weights = {}
  for path in files:
    try:
      weights.update(load(path))
    except (OSError, safetensors.SafetensorError) as e:
      raise ConversionError("%s cannot be read (%s): give a complete "
                            "transformers weights file" % (
                                path, " ".join(str(e).split()))) from e
  return {k: np.asarray(v, np.float32) for k, v in weights.items()}


def _lm_head_is_embedding(weights):
  """Whether the logits use the embedding (no separate lm_head)."""
  shared = weights["shared.weight"]
  for name in _EMBEDDING_COPIES:
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
  gin_text = architecture.gin(hf_dir, gin_files, gin_params)
  # Built from a scratch copy of the gin: a failed import writes nothing.
  with tempfile.TemporaryDirectory() as scratch:
    scratch_gin = os.path.join(scratch, GIN_FILE)
    with open(scratch_gin, "w") as f:
      f.write(gin_text)
    values = model_variables([scratch_gin], [], architecture.vocab_size,
                             seed)
  converted, fresh = [], []
  for name in sorted(values):
    source = hf_name(vanilla_name(name))
    if source is None:
      fresh.append(name)
    elif source not in weights:
      raise ConversionError("%s has no %s, which the model's %s needs" % (
          hf_dir, source, name))
    else:
      values[name] = _to_mtf(vanilla_name(name), weights[source],
                             values[name].shape)
      converted.append(name)
  used = {hf_name(vanilla_name(name)) for name in converted}
  ignored = set(_IGNORED_HF_NAMES) | (
      {"lm_head.weight"} if architecture.tied else set())
  unused = sorted(set(weights) - used - ignored)
  gin_path = os.path.join(output_dir, GIN_FILE)
  with _writing(output_dir):
    tf.io.gfile.makedirs(output_dir)
    with open(gin_path, "w") as f:
      f.write(gin_text)
    checkpoint = write_checkpoint(values, output_dir)
  return ImportReport(checkpoint, gin_path, converted, fresh, unused)


@contextlib.contextmanager
def _writing(output_dir):
  """A folder that cannot be written is the user's to fix."""
  try:
    yield
  except (OSError, tf.errors.OpError) as e:
    raise ConversionError("cannot write to %s (%s): pass an output folder "
                          "you can write to" % (output_dir, " ".join(
                              str(getattr(e, "message", e)).split()))) from e


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
  for name in ("operative_config.gin", GIN_FILE):
    path = os.path.join(model_dir, name)
    if tf.io.gfile.exists(path):
      return [path]
  raise ConversionError(
      "%s has no operative_config.gin or %s: pass the model's gin files" % (
          model_dir, GIN_FILE))


def export_hf_t5(checkpoint, output_dir, gin_files=None, gin_params=()):
  """Writes a vanilla T5 checkpoint as transformers' config + safetensors.

  `gin_files` default to the model directory's operative_config.gin (or
  model.gin). Returns the written T5Architecture.
  """
  values = {name: value for name, value in read_checkpoint(checkpoint).items()
            if _is_model_variable(name)}
  foreign = sorted(name for name in values if hf_name(name) is None)
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
  with gin_model(gin_files, gin_params, vocab_size) as model, \
      tf.Graph().as_default():
    architecture = T5Architecture.from_model(model, vocab_size)
    expected = {name: tuple(v.shape.to_integer_list)
                for name, v in _variables(model).items()}
  mismatched = sorted(
      name for name in set(expected) | set(values)
      if name not in values or name not in expected
      or values[name].shape != expected[name])
  if mismatched:
    raise ConversionError(
        "the checkpoint does not match the gin model at %s: check the gin "
        "files" % ", ".join(mismatched[:3]))
  with _writing(output_dir):
    tf.io.gfile.makedirs(output_dir)
    with open(os.path.join(output_dir, "config.json"), "w") as f:
      json.dump(architecture.hf_config(), f, indent=2, sort_keys=True)
    safetensors_numpy.save_file(
        {hf_name(name): np.ascontiguousarray(_to_hf(name, value),
                                             np.float32)
         for name, value in values.items()},
        os.path.join(output_dir, "model.safetensors"),
        metadata={"format": "pt"})
  return architecture


def _print_names(label, names):
  if names:
    print("%s (%d): %s" % (label, len(names), ", ".join(names)))


def main(argv=None):
  """`python -m mtf_synth.hf_t5 {import,export} ...`; user errors exit 2."""
  parser = argparse.ArgumentParser(
      prog="python -m mtf_synth.hf_t5",
      description="Hugging Face T5 <-> mtf_synth checkpoints.")
  commands = parser.add_subparsers(dest="command", required=True)
  to_mtf = commands.add_parser(
      "import", help="HF_DIR (config.json + weights) -> MODEL_DIR "
      "(model.gin + model.ckpt-0)")
  to_mtf.add_argument("hf_dir")
  to_mtf.add_argument("model_dir")
  to_mtf.add_argument("--seed", type=int, default=0,
                      help="initialises variables with no HF counterpart")
  to_hf = commands.add_parser(
      "export", help="CHECKPOINT (model_dir or file prefix) -> HF_DIR "
      "(config.json + model.safetensors)")
  to_hf.add_argument("checkpoint")
  to_hf.add_argument("hf_dir")
  for command in (to_mtf, to_hf):
    command.add_argument("--gin_file", action="append", default=None,
                         help="gin file changing (import) or describing "
                         "(export) the model; repeatable")
    command.add_argument("--gin_param", action="append", default=[],
                         help="gin binding; repeatable")
  args = parser.parse_args(argv)
  tf.logging.set_verbosity(tf.logging.ERROR)
  try:
    if args.command == "import":
      report = import_hf_t5(args.hf_dir, args.model_dir,
                            args.gin_file or [], args.gin_param, args.seed)
      print("wrote %s and %s: %d variables from %s" % (
          report.gin_file, report.checkpoint, len(report.converted),
          args.hf_dir))
      _print_names("freshly initialised (no Hugging Face counterpart)",
                   report.fresh)
      _print_names("Hugging Face weights this model does not use",
                   report.unused)
    else:
      architecture = export_hf_t5(args.checkpoint, args.hf_dir, args.gin_file,
                                  args.gin_param)
      print("wrote %s/config.json and model.safetensors (%s)" % (
          args.hf_dir, architecture))
  except errors.UserError as e:  # anything else is a bug: its traceback
    if os.environ.get("MTF_SYNTH_TRACEBACK"):
      raise
    print("mtf_synth.hf_t5: error: %s" % " ".join(str(e).split()),
          file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  main()
