"""The gin-built mesh TF model: its gin file, the model, its variables.

Built with gin exactly as the `mtf_synth` command line builds it (mesh TF's
defaults, mtf_synth's runtime defaults, then the given files), using (and
clearing) the global gin config.
"""

import contextlib
import os

import gin
import mesh_tensorflow as mtf
from mesh_tensorflow.transformer import transformer
from mesh_tensorflow.transformer import utils as mtf_utils
import tensorflow.compat.v1 as tf

from mtf_synth import padded_vocabulary
from mtf_synth.errors import ConversionError

GIN_FILE = "model.gin"


def model_gin(architecture, source, gin_files=(), gin_params=()):
  """The gin file building `architecture` (after `gin_files`, before
  `gin_params`); `source` names the converted checkpoint."""
  activation = ([architecture.activation, "linear"] if architecture.gated
                else architecture.activation)
  lines = [
      "# -*-Python-*-",
      "# T5 converted from the Hugging Face checkpoint %s" % source,
      "# by mtf_synth.hf_t5 (T5 %s layout)." % (
          "v1.0" if architecture.tied and not architecture.gated else
          "v1.1" if architecture.gated and not architecture.tied else
          "custom"),
      "# The task's vocabulary must have %d entries (mesh TF pads it to a "
      "multiple of %d: %d rows," % (
          architecture.vocab_size, padded_vocabulary.VOCAB_DIVISOR,
          padded_vocabulary.round_up(architecture.vocab_size)),
      "# the padded ids masked out of every softmax).",
      "",
      "import mtf_synth",
      "import mesh_tensorflow.transformer.transformer_layers",
      "",
      "mtf_synth.vocabulary_size.size = %d" % architecture.vocab_size,
  ] + ["include %r" % _include_path(path) for path in gin_files] + [
      "",
      "utils.run.model_type = 'bitransformer'",
      "Bitransformer.shared_embedding = True",
      "transformer.Unitransformer.positional_embedding = False",
      "transformer_layers.SelfAttention.relative_attention_type = "
      "'bias_shared'",
      "transformer_layers.SelfAttention.relative_attention_num_buckets = %d"
      % architecture.relative_attention_num_buckets,
      "d_model = %d" % architecture.d_model,
      "d_kv = %d" % architecture.d_kv,
      "d_ff = %d" % architecture.d_ff,
      "num_heads = %d" % architecture.num_heads,
      "encoder/transformer.make_layer_stack.num_layers = %d" %
      architecture.num_layers,
      "decoder/transformer.make_layer_stack.num_layers = %d" %
      architecture.num_decoder_layers,
      "transformer_layers.DenseReluDense.activation = %r" % (activation,),
      "transformer.Unitransformer.shared_embedding_and_softmax_weights = %r"
      % architecture.tied,
      "transformer.sublayer_rms_norm.epsilon = %r" %
      architecture.layer_norm_epsilon,
      "dropout_rate = %r" % architecture.dropout_rate,
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


def variables_of(model):
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
    masters = {k: v.get_master() for k, v in variables_of(model).items()}
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      return sess.run(masters)


@contextlib.contextmanager
def writing_to(output_dir):
  """A folder that cannot be written is the user's to fix."""
  try:
    yield
  except (OSError, tf.errors.OpError) as e:
    raise ConversionError("cannot write to %s (%s): pass an output folder "
                          "you can write to" % (output_dir, " ".join(
                              str(getattr(e, "message", e)).split()))) from e
