"""Download-free tasks generated from a seed.

Small tasks draw distinct examples from one numpy RandomState in memory, so
train and validation never share an example; LRA-scale tasks (see
`streamed_source`) generate each split lazily from its own seed instead.
Both regenerate faster than a cache would read, so neither permits caching.

Registered here (all bytes unless said otherwise):
- mtf_synth_demo: "reverse: q w e" -> "e w q" or "sort: q w e" -> "e q w"
  (20k/500; the demo's default; position- and content-based attention).
- mtf_synth_copy / _reverse / _sort: one transform each, 3..20 letters.
- mtf_synth_recall: associative recall "a3 f7 k1 ? f" -> "7" (content-based).
- mtf_synth_lm: a templated English corpus, "targets" only (decoder-only LM).
- mtf_synth_listops: small ListOps (depth <= 4, <= 5 arguments, 9..99 tokens).
- mtf_synth_sparsity_{k}of64: the rounded mean of k digits hidden among letters.
"""
import functools
from typing import Callable, Dict, Mapping

import numpy as np
import seqio
import tensorflow as tf
from t5.evaluation import metrics

from tasks import listops
from tasks import registry
from tasks import vocabularies

GeneratorFn = Callable[[np.random.RandomState], Dict[str, str]]

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SMALL_SPLITS = {"train": 20000, "validation": 500}


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
                     split_sizes: Mapping[str, int] = SMALL_SPLITS
                     ) -> seqio.DataSource:
  """A source over distinct examples generated once, in memory, from `seed`."""
  sizes = tuple(split_sizes.items())

  data_seed = seed

  def dataset_fn(split, shuffle_files, seed=None):
    # The data is fixed by data_seed; seqio shuffles examples with `seed`.
    del shuffle_files, seed
    return tf.data.Dataset.from_tensor_slices(
        _generate_splits(generator, data_seed, sizes)[split])

  return seqio.FunctionDataSource(dataset_fn, splits=list(split_sizes),
                                  caching_permitted=False)


def streamed_source(generator: GeneratorFn, seed: int,
                    split_sizes: Mapping[str, int]) -> seqio.DataSource:
  """A source generating each split lazily; split i uses seed (seed, i).

  For long examples (LRA) where generating everything up front would take
  minutes; splits are independent draws (long examples practically never
  repeat).
  """
  names = list(split_sizes)
  data_seed = seed

  def dataset_fn(split, shuffle_files, seed=None):
    del shuffle_files, seed  # Each split is fixed by (data_seed, index).
    def examples():
      rng = np.random.RandomState([data_seed, names.index(split)])
      for _ in range(split_sizes[split]):
        yield generator(rng)
    keys = generator(np.random.RandomState(0)).keys()
    return tf.data.Dataset.from_generator(
        examples, output_signature={
            k: tf.TensorSpec([], tf.string) for k in keys})

  return seqio.FunctionDataSource(dataset_fn, splits=names,
                                  caching_permitted=False)


# Sequence transforms: "copy" and "reverse" need only positions, "sort" needs
# the content of the letters.
TRANSFORMS = {
    "copy": list,
    "reverse": lambda letters: letters[::-1],
    "sort": sorted,
}


def transform_example(rng: np.random.RandomState,
                      operations=("reverse", "sort"),
                      min_letters: int = 3,
                      max_letters: int = 10) -> Dict[str, str]:
  """'sort: q w e' -> 'e q w': letters drawn with replacement."""
  operation = operations[rng.randint(len(operations))]
  letters = list(rng.choice(list(LETTERS),
                            size=rng.randint(min_letters, max_letters + 1)))
  return {"inputs": f"{operation}: " + " ".join(letters),
          "targets": " ".join(TRANSFORMS[operation](letters))}


def recall_example(rng: np.random.RandomState) -> Dict[str, str]:
  """'a3 f7 k1 ? f' -> '7': find the value stored under the queried key."""
  keys = rng.choice(list(LETTERS), size=rng.randint(2, 11), replace=False)
  values = rng.randint(10, size=len(keys))
  query = rng.randint(len(keys))
  pairs = " ".join(f"{k}{v}" for k, v in zip(keys, values))
  return {"inputs": f"{pairs} ? {keys[query]}", "targets": str(values[query])}


_NOUNS = {"singular": ["cat", "dog", "bird", "child", "teacher", "robot"],
          "plural": ["cats", "dogs", "birds", "children", "teachers", "robots"]}
_VERBS = {"singular": ["sees", "likes", "follows", "helps"],
          "plural": ["see", "like", "follow", "help"]}
_ADJECTIVES = ["small", "red", "old", "happy", "quiet", "clever"]


def lm_example(rng: np.random.RandomState) -> Dict[str, str]:
  """1-2 sentences whose verb agrees with a subject across a relative clause."""
  def pick(options):
    return options[rng.randint(len(options))]

  sentences = []
  for _ in range(rng.randint(1, 3)):
    number = pick(["singular", "plural"])
    other = pick(["singular", "plural"])
    sentences.append(
        f"the {pick(_ADJECTIVES)} {pick(_NOUNS[number])} that "
        f"{pick(_VERBS[other])} the {pick(_NOUNS[other])} "
        f"{pick(_VERBS[number])} the {pick(_ADJECTIVES)} "
        f"{pick(_NOUNS[pick(['singular', 'plural'])])} .")
  return {"targets": " ".join(sentences)}


def sparsity_example(rng: np.random.RandomState, length: int = 64,
                     relevant: int = 8) -> Dict[str, str]:
  """`relevant` digits hidden among letters; the target is their rounded mean.

  The ideal attention is uniform over the digit positions, so its density
  is relevant/length. The digits scatter (+-2) around a per-example centre:
  the ten answers are about equally likely at every density (majority class
  <= 20%), and reading a single digit is right only 20-40% of the time, so
  the model has to average them.
  """
  chars = list(rng.choice(list(LETTERS), size=length))
  centre = rng.randint(10)
  digits = np.clip(centre + rng.randint(-2, 3, size=relevant), 0, 9)
  for position, digit in zip(rng.choice(length, relevant, replace=False),
                             digits):
    chars[position] = str(digit)
  return {"inputs": "".join(chars),
          "targets": str(int(np.floor(digits.mean() + 0.5)))}


# Exact match, plus word-level edit distance: targets are space-separated
# letters, so t5's edit_distance counts wrong letters.
SEQ2SEQ_METRICS = (metrics.sequence_accuracy, metrics.edit_distance)
CLASSIFICATION_METRICS = (metrics.accuracy,)

DEMO_TASK = "mtf_synth_demo"
registry.add_task(DEMO_TASK, generated_source(transform_example, seed=0),
                  metric_fns=SEQ2SEQ_METRICS)

for _seed, _operation in enumerate(TRANSFORMS, start=1):
  registry.add_task(
      f"mtf_synth_{_operation}",
      generated_source(functools.partial(transform_example,
                                         operations=(_operation,),
                                         max_letters=20), seed=_seed),
      metric_fns=SEQ2SEQ_METRICS)

registry.add_task("mtf_synth_recall", generated_source(recall_example, seed=4),
                  metric_fns=CLASSIFICATION_METRICS)

registry.add_task("mtf_synth_lm", generated_source(lm_example, seed=5),
                  output_features=vocabularies.byte_features(
                      with_inputs=False))

registry.add_task(
    "mtf_synth_listops",
    generated_source(functools.partial(listops.listops_example,
                                       config=listops.SMALL_CONFIG), seed=6),
    output_features=listops.OUTPUT_FEATURES,
    metric_fns=CLASSIFICATION_METRICS)

for _relevant in (2, 8, 32):
  registry.add_task(
      f"mtf_synth_sparsity_{_relevant}of64",
      generated_source(functools.partial(sparsity_example, length=64,
                                         relevant=_relevant),
                       seed=100 + _relevant),
      metric_fns=CLASSIFICATION_METRICS)
