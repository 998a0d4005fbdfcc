"""Task registration: the one place that writes a task's token pipeline.

As in seqio, a task is a source, preprocessors, output features and metric
functions, registered once by name. Every task here gets T5's token pipeline
after its text preprocessors (raw example -> "inputs"/"targets" strings):
tokenize, the cache point (where the source permits caching), token
preprocessors (e.g. span corruption), EOS.

Text tasks are registered twice, SentencePiece (NAME) and bytes (NAME_bytes),
with the same source, preprocessors and metrics, so a table row can be run
with the paper's subword vocabulary (a user-given SentencePiece model) or,
with no file at all, with bytes.
"""
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple

import seqio

from tasks import vocabularies

BYTES_SUFFIX = "_bytes"
# (suffix, vocabulary) of each registered variant.
VARIANTS = (("", vocabularies.SENTENCEPIECE_VOCABULARY),
            (BYTES_SUFFIX, vocabularies.BYTE_VOCABULARY))


def add_task(name: str, source: seqio.DataSource,
             output_features: Optional[Dict[str, seqio.Feature]] = None,
             text_preprocessors: Sequence[Callable] = (),
             token_preprocessors: Sequence[Callable] = (),
             metric_fns: Iterable[Callable] = (),
             postprocess_fn: Optional[Callable] = None) -> None:
  """Registers `name` with T5's token pipeline; bytes unless features given.

  text_preprocessors map raw examples to "inputs"/"targets" strings;
  token_preprocessors run on token ids after the cache point and before EOS
  is appended.
  """
  cache_point = ([seqio.CacheDatasetPlaceholder()]
                 if source.caching_permitted else [])
  seqio.TaskRegistry.add(
      name,
      source=source,
      preprocessors=[
          *text_preprocessors,
          seqio.preprocessors.tokenize,
          *cache_point,
          *token_preprocessors,
          seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=output_features or vocabularies.byte_features(),
      metric_fns=list(metric_fns),
      postprocess_fn=postprocess_fn)


def add_text_task(name: str, source: seqio.DataSource,
                  text_preprocessors: Sequence[Callable] = (),
                  metric_fns: Iterable[Callable] = (),
                  postprocess_fn: Optional[Callable] = None,
                  with_inputs: bool = True,
                  token_preprocessors: Sequence[Callable] = (),
                  variants=VARIANTS) -> None:
  """Registers `name` in each vocabulary variant (see `add_task`)."""
  for suffix, vocabulary in variants:
    add_task(name + suffix, source,
             output_features=vocabularies.features(vocabulary, with_inputs),
             text_preprocessors=text_preprocessors,
             token_preprocessors=token_preprocessors,
             metric_fns=metric_fns, postprocess_fn=postprocess_fn)


def add_mixture(name: str, tasks_and_rates: Sequence[Tuple[str, float]],
                variants=VARIANTS) -> None:
  """Registers mixture `name` of each variant over that variant's tasks."""
  for suffix, _ in variants:
    seqio.MixtureRegistry.add(
        name + suffix,
        [(task + suffix, rate) for task, rate in tasks_and_rates])
