"""Trains a T5-compatible SentencePiece model on the text of a registered task.

T5's convention: id 0 = PAD, 1 = EOS, 2 = UNK, no BOS. The text is read from
the task's byte variant (`NAME_bytes`), whose *_pretokenized features hold the
preprocessed strings, so no vocabulary file is needed to make one.
"""
import hashlib
import os
from typing import Iterable, Iterator

import seqio
import sentencepiece as spm
import tensorflow as tf

from tasks import registry
from tasks.errors import TaskConfigError


def task_texts(task_name: str, split: str = "train",
               max_examples: int = 100_000) -> Iterator[str]:
  """The preprocessed "inputs" and "targets" strings of a task's examples."""
  names = seqio.TaskRegistry.names()
  byte_name = task_name + registry.BYTES_SUFFIX
  if byte_name in names:
    task_name = byte_name
  elif task_name not in names:
    raise TaskConfigError(
        f"Unknown task {task_name!r}: list tasks with `python -m tasks list`")
  task = seqio.get_mixture_or_task(task_name)
  dataset = task.get_dataset(None, split=split, shuffle=False,
                             try_in_mem_cache=False)
  for example in dataset.take(max_examples).as_numpy_iterator():
    for key in ("inputs_pretokenized", "targets_pretokenized"):
      if key in example:
        yield example[key].decode("utf-8", errors="replace")


def train(texts: Iterable[str], model_prefix: str, vocab_size: int = 32000,
          model_type: str = "unigram") -> str:
  """Trains on `texts`; returns the path of the written `.model` file."""
  directory = os.path.dirname(model_prefix)
  if directory:
    tf.io.gfile.makedirs(directory)
  # One thread and a fixed seed: the same texts give the same model file
  # (with several threads the full debian corpus gave different bytes).
  spm.set_random_generator_seed(0)
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_prefix=model_prefix,
      vocab_size=vocab_size, model_type=model_type,
      pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      # Small corpora cannot always fill vocab_size; take what they give.
      hard_vocab_limit=False, character_coverage=1.0,
      max_sentence_length=1 << 16, minloglevel=2, num_threads=1)
  return model_prefix + ".model"


def vocabulary_sha256(model_path: str) -> str:
  """sha256 of a model's pieces and scores, in id order: what tokenizes.
  (The file's own bytes also hold the path it was trained to.)"""
  processor = spm.SentencePieceProcessor(model_file=model_path)
  digest = hashlib.sha256()
  for i in range(processor.get_piece_size()):
    digest.update(("%s\t%r\n" % (processor.id_to_piece(i),
                                 processor.get_score(i))).encode("utf-8"))
  return digest.hexdigest()
