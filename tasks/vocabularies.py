"""Vocabularies for the tasks, and output features built from them.

- Bytes (`seqio.ByteVocabulary`): needs no file; the default of the generated
  tasks and of the byte-level LRA tasks, and the `_bytes` variant of every
  text task.
- SentencePiece from a user path: T5's default model lives in a gs:// bucket
  this machine cannot reach, so text tasks read the model named by the gin
  parameter `sentencepiece_model_path.path` or the
  environment variable MTF_SYNTH_SPM_MODEL (train one with
  scripts/train_sentencepiece.py). The path is resolved when the vocabulary is
  first used, so registering tasks needs no file; a missing file is a
  one-line TaskConfigError.
"""
from typing import Dict, Optional

import seqio

from tasks import sources

# T5 reserves 100 sentinel ids at the end of its vocabulary for span corruption.
T5_EXTRA_IDS = 100

BYTE_VOCABULARY = seqio.ByteVocabulary()
# Span corruption numbers its sentinels down from the top id; without extra
# ids they would fall on byte values that occur in UTF-8 text.
BYTE_VOCABULARY_WITH_SENTINELS = seqio.ByteVocabulary(extra_ids=T5_EXTRA_IDS)


def sentencepiece_model_path(path: Optional[str] = None) -> str:
  """`path` if given, else the user's model (gin or $MTF_SYNTH_SPM_MODEL)."""
  if path:
    return path
  return sources.require_user_path(
      "spm_model", what="SentencePiece model file",
      hint="train one: python scripts/train_sentencepiece.py --task TASK "
      "--output PREFIX")


class UserSentencePieceVocabulary(seqio.SentencePieceVocabulary):
  """A SentencePiece vocabulary whose file is looked up when first used."""

  def __init__(self, extra_ids: int = T5_EXTRA_IDS,
               model_path: Optional[str] = None):
    self._fixed_path = model_path
    super().__init__(sentencepiece_model_file="", extra_ids=extra_ids)

  @property
  def sentencepiece_model_file(self) -> str:
    return sentencepiece_model_path(self._fixed_path)

  def _model_context(self):
    path = self.sentencepiece_model_file
    if path != self._sentencepiece_model_file:
      # Another file than the loaded one (gin or the environment changed,
      # e.g. between tests): seqio would keep serving the first.
      self._model = None
      self._sentencepiece_model_file = path
    return super()._model_context()

  def __eq__(self, other):
    # Compare by configuration so that building a mixture needs no file.
    return (isinstance(other, UserSentencePieceVocabulary) and
            self._fixed_path == other._fixed_path and
            self._extra_ids == other._extra_ids)

  def __hash__(self):
    return hash((self._fixed_path, self._extra_ids))


SENTENCEPIECE_VOCABULARY = UserSentencePieceVocabulary()


def features(vocabulary: seqio.Vocabulary,
             with_inputs: bool = True) -> Dict[str, seqio.Feature]:
  """T5's output features ("inputs" optional, "targets") over `vocabulary`."""
  result = {"targets": seqio.Feature(vocabulary=vocabulary, add_eos=True)}
  if with_inputs:
    result["inputs"] = seqio.Feature(vocabulary=vocabulary, add_eos=True)
  return result


def byte_features(with_inputs: bool = True) -> Dict[str, seqio.Feature]:
  return features(BYTE_VOCABULARY, with_inputs)


def sentencepiece_features(
    with_inputs: bool = True) -> Dict[str, seqio.Feature]:
  return features(SENTENCEPIECE_VOCABULARY, with_inputs)
