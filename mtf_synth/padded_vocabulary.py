"""A model's real vocabulary size, and the ids mesh TF pads beyond it.

mesh TF rounds the vocabulary dimension up to a multiple of 128
(Unitransformer.vocab_divisor): a Hugging Face T5 of 320 tokens gets 384
rows, and the 64 padded ids would enter every softmax. With the real size
bound (`mtf_synth.vocabulary_size.size`, which `mtf_synth.hf_t5 import`
writes into model.gin), the logits of padded ids are pushed to -1e9 where
mesh TF computes them (compat routes Unitransformer._call_internal and
_compute_loss here), so loss, scoring, perplexity and decoding see the real
vocabulary only.
"""

import gin
import mesh_tensorflow as mtf
import tensorflow.compat.v1 as tf

from mtf_synth import errors

# mesh TF's Unitransformer.vocab_divisor default.
VOCAB_DIVISOR = 128
_MASKED_LOGIT = -1e9


def round_up(size):
  return -(-size // VOCAB_DIVISOR) * VOCAB_DIVISOR


@gin.configurable(module="mtf_synth")
def vocabulary_size(size=None):
  """gin: the model's real vocabulary size (None: every row is a token).

  Args:
    size: how many ids the model's softmax covers; the rows mesh TF pads
      beyond it are masked out.
  Returns:
    size.
  """
  return size


def mask_padded_ids(logits):
  """logits with the ids from vocabulary_size() on at -1e9."""
  size = vocabulary_size()
  vocab_dim = logits.shape.get_dim_by_name("vocab")
  if size is None or size >= vocab_dim.size:
    return logits
  padded = mtf.greater_equal(mtf.range(logits.mesh, vocab_dim, tf.int32),
                             size)
  return logits + mtf.cast(padded, logits.dtype) * _MASKED_LOGIT


def logits_without_padded_ids(call_internal):
  """Unitransformer._call_internal returning masked logits."""
  def call_internal_masked(self, context, inputs, targets=None):
    output = call_internal(self, context, inputs, targets)
    return output if self.output_vocab_dim is None else mask_padded_ids(
        output)

  return call_internal_masked


def loss_without_padded_ids(compute_loss):
  """Unitransformer._compute_loss over masked logits."""
  def compute_loss_masked(self, context, logits, targets, output_vocab_dim):
    masked = mask_padded_ids(logits)
    if masked is not logits and self.label_smoothing:
      raise errors.UserError(
          "Unitransformer.label_smoothing=%r spreads the targets over the "
          "padded vocabulary ids that mtf_synth.vocabulary_size.size=%d "
          "masks out: set label_smoothing = 0.0 for this model" % (
              self.label_smoothing, vocabulary_size()))
    return compute_loss(self, context, masked, targets, output_vocab_dim)

  return compute_loss_masked


def check_task_vocabulary(task_size):
  """The task's vocabulary fits the model's real vocabulary size.

  Equal sizes; or, when the real size is itself a multiple of 128 (the
  checkpoint's authors padded it, as T5's 32128 rows for its 32100
  SentencePiece ids), any task vocabulary that pads to it.

  Raises:
    UserError: it does not (another vocabulary's ids would be read as this
      model's, without a word).
  """
  size = vocabulary_size()
  if size is None or task_size == size or (
      size % VOCAB_DIVISOR == 0 and round_up(task_size) == size):
    return
  raise errors.UserError(
      "the task's vocabulary has %d ids but the model's has %d "
      "(mtf_synth.vocabulary_size.size, e.g. from the model.gin of "
      "`mtf_synth.hf_t5 import`): use the task whose vocabulary the "
      "checkpoint was trained with" % (task_size, size))
