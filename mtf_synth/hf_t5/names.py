"""Which Hugging Face T5 parameter each mesh TF variable is, and its layout.

Weights are placed by name: the mesh TF names transformers' former
`load_tf_weights_in_t5` read (encoder/block_000/layer_000/SelfAttention/q,
...). Variables of other attention layers that play a vanilla layer's role
start from that layer's weights.
"""

import re

import numpy as np

from mtf_synth.errors import ConversionError

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
EMBEDDING_COPIES = ("encoder.embed_tokens.weight",
                    "decoder.embed_tokens.weight")
# Stored in some Hugging Face files, never read by T5.
IGNORED_HF_NAMES = EMBEDDING_COPIES + (
    "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)
_VOCAB_VARIABLES = ("shared/embedding", "decoder/logits/kernel")


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


def to_mtf(name, array, shape):
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


def to_hf(name, array):
  """A mesh TF variable's array laid out as its Hugging Face parameter."""
  return array if name == "shared/embedding" else array.T
