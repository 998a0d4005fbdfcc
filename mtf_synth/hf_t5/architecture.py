"""The hyperparameters of one T5, read from either framework.

`T5Architecture` is what a Hugging Face config.json and a gin-built mesh TF
Bitransformer must agree on; each side refuses what the other cannot build.
"""

import dataclasses

import gin
from mesh_tensorflow.transformer import transformer_layers

from mtf_synth.errors import ConversionError

# mesh TF's relative position buckets have this maximum distance built in.
_MAX_DISTANCE = 128

# Hugging Face activation name -> the same function in mesh TF.
_HF_TO_MTF_ACTIVATION = {"relu": "relu", "gelu_new": "gelu",
                         "gelu_pytorch_tanh": "gelu", "silu": "swish",
                         "swish": "swish"}
_MTF_TO_HF_ACTIVATION = {"relu": "relu", "gelu": "gelu_new", "swish": "silu"}


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

