"""ListOps as in Long Range Arena (Tay et al. 2021), generated from a seed.

Follows LRA's generator: a value is drawn with probability 0.25 below the
maximum depth (always at it), otherwise an operator (MIN, MAX, MED, SM = sum
mod 10) over 2..max_args sub-trees; a tree's length counts one token per value
and two per operator (its name and `]`), and only trees with
min_length < length < max_length are kept. The text is LRA's without the
parentheses its loaders strip, so one whitespace token is one model token.
"""
import dataclasses
from typing import Dict, List, Sequence, Tuple

import numpy as np
import seqio
import tensorflow as tf

from tasks import vocabularies

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
VALUE_PROBABILITY = 0.25
TOKENS = OPERATORS + (END,) + tuple(str(d) for d in range(10))


@dataclasses.dataclass(frozen=True)
class ListOpsConfig:
  max_depth: int = 10
  max_args: int = 10
  min_length: int = 500
  max_length: int = 2000


LRA_CONFIG = ListOpsConfig()
SMALL_CONFIG = ListOpsConfig(max_depth=4, max_args=5, min_length=8,
                             max_length=100)


def _apply(operator: str, values: Sequence[int]) -> int:
  if operator == "[MIN":
    return min(values)
  if operator == "[MAX":
    return max(values)
  if operator == "[MED":
    return int(np.median(values))
  return sum(values) % 10


def _tree(rng: np.random.RandomState, depth: int,
          config: ListOpsConfig) -> Tuple[List[str], int]:
  """Tokens and value of a random tree whose root sits at `depth`."""
  if depth >= config.max_depth or rng.rand() > VALUE_PROBABILITY:
    value = int(rng.randint(10))
    return [str(value)], value
  operator = OPERATORS[rng.randint(len(OPERATORS))]
  tokens, values = [operator], []
  for _ in range(rng.randint(2, config.max_args + 1)):
    sub_tokens, sub_value = _tree(rng, depth + 1, config)
    tokens += sub_tokens
    values.append(sub_value)
  return tokens + [END], _apply(operator, values)


def listops_example(rng: np.random.RandomState,
                    config: ListOpsConfig = LRA_CONFIG) -> Dict[str, str]:
  """One example {"inputs": "[MAX 2 9 ]", "targets": "9"} within the bounds."""
  while True:
    tokens, value = _tree(rng, 1, config)
    if config.min_length < len(tokens) < config.max_length:
      return {"inputs": " ".join(tokens), "targets": str(value)}


class TokenVocabulary(seqio.Vocabulary):
  """Whitespace-separated tokens; ids 0 PAD, 1 EOS, 2 UNK as T5 expects."""

  _SPECIAL = ("<pad>", "</s>", "<unk>")

  def __init__(self, tokens: Sequence[str]):
    super().__init__(extra_ids=0)
    self._tokens = tuple(self._SPECIAL) + tuple(tokens)
    self._ids = {t: i for i, t in enumerate(self._tokens)}

  @property
  def eos_id(self) -> int:
    return 1

  @property
  def unk_id(self) -> int:
    return 2

  @property
  def _base_vocab_size(self) -> int:
    return len(self._tokens)

  def _encode(self, s: str) -> List[int]:
    return [self._ids.get(t, self.unk_id) for t in s.split()]

  def _decode(self, ids: Sequence[int]) -> str:
    return " ".join(self._tokens[i] for i in ids if i > self.eos_id)

  def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
    # Compares every word with the (few) tokens instead of using a lookup
    # table: tables are stateful, and mesh TF's one-shot iterators cannot
    # capture state.
    words = tf.strings.split(s)
    matches = tf.equal(words[:, tf.newaxis], tf.constant(self._tokens))
    ids = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int32)
    return tf.where(tf.reduce_any(matches, axis=1), ids, self.unk_id)

  def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
    kept = tf.ragged.boolean_mask(ids, ids > self.eos_id)
    return tf.strings.reduce_join(
        tf.gather(tf.constant(self._tokens), kept), axis=-1, separator=" ")

  def __eq__(self, other):
    return (isinstance(other, TokenVocabulary) and
            self._tokens == other._tokens)

  def __hash__(self):
    return hash(self._tokens)


VOCABULARY = TokenVocabulary(TOKENS)
OUTPUT_FEATURES = vocabularies.features(VOCABULARY)
