"""Download-free tasks generated in memory from a seed.

Each task draws distinct examples from one numpy RandomState, so train and
validation never share an example and every run sees the same data.
"""
import functools
from typing import Callable, Dict, Mapping

import numpy as np
import seqio
import tensorflow as tf
from t5.evaluation import metrics

from tasks import vocabularies

GeneratorFn = Callable[[np.random.RandomState], Dict[str, str]]

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@functools.lru_cache(maxsize=None)
def _generate_splits(generator: GeneratorFn, seed: int,
                     split_sizes: tuple) -> Mapping[str, Dict[str, list]]:
  """Draws sum(sizes) distinct examples and cuts them into the named splits."""
  rng = np.random.RandomState(seed)
  total = sum(size for _, size in split_sizes)
  seen, examples = set(), []
  while len(examples) < total:
    example = generator(rng)
    key = tuple(sorted(example.items()))
    if key not in seen:
      seen.add(key)
      examples.append(example)
  splits, start = {}, 0
  for name, size in split_sizes:
    chunk = examples[start:start + size]
    splits[name] = {k: [ex[k] for ex in chunk] for k in chunk[0]}
    start += size
  return splits


def generated_source(generator: GeneratorFn, seed: int,
                     split_sizes: Mapping[str, int]) -> seqio.DataSource:
  """A seqio source over examples generated (once, lazily) from `seed`."""
  sizes = tuple(split_sizes.items())

  def dataset_fn(split, shuffle_files):
    del shuffle_files  # Order is fixed; seqio shuffles examples.
    return tf.data.Dataset.from_tensor_slices(
        _generate_splits(generator, seed, sizes)[split])

  return seqio.FunctionDataSource(dataset_fn, splits=list(split_sizes))


def _letters(rng: np.random.RandomState, low: int, high: int) -> list:
  """Between low and high (inclusive) letters, drawn with replacement."""
  return list(rng.choice(list(LETTERS), size=rng.randint(low, high + 1)))


def reverse_or_sort_example(rng: np.random.RandomState) -> Dict[str, str]:
  """'reverse: q w e' -> 'e w q' (position) or 'sort: q w e' -> 'e q w' (content)."""
  letters = _letters(rng, 3, 10)
  if rng.rand() < 0.5:
    return {"inputs": "reverse: " + " ".join(letters),
            "targets": " ".join(reversed(letters))}
  return {"inputs": "sort: " + " ".join(letters),
          "targets": " ".join(sorted(letters))}


# Exact match, plus word-level edit distance: targets are space-separated
# letters, so t5's edit_distance counts wrong letters.
SEQ2SEQ_METRICS = [metrics.sequence_accuracy, metrics.edit_distance]

DEMO_TASK = "mtf_synth_demo"

seqio.TaskRegistry.add(
    DEMO_TASK,
    source=generated_source(reverse_or_sort_example, seed=0,
                            split_sizes={"train": 20000, "validation": 500}),
    preprocessors=[
        seqio.preprocessors.tokenize,
        seqio.preprocessors.append_eos_after_trim,
    ],
    output_features=vocabularies.byte_features(),
    metric_fns=SEQ2SEQ_METRICS)
