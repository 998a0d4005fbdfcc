"""Registers each text task twice: SentencePiece (NAME), bytes (NAME_bytes).

Both variants share source, preprocessors and metrics, so a table row can be
run with the paper's subword vocabulary (a user-given SentencePiece model) or,
with no file at all, with bytes.
"""
from typing import Callable, Iterable, Optional, Sequence, Tuple

import seqio

from tasks import vocabularies

BYTES_SUFFIX = "_bytes"
# (suffix, vocabulary) of each registered variant.
VARIANTS = (("", vocabularies.SENTENCEPIECE_VOCABULARY),
            (BYTES_SUFFIX, vocabularies.BYTE_VOCABULARY))


def add_text_task(name: str, source: seqio.DataSource,
                  text_preprocessors: Sequence[Callable],
                  metric_fns: Iterable[Callable] = (),
                  postprocess_fn: Optional[Callable] = None,
                  with_inputs: bool = True,
                  token_preprocessors: Sequence[Callable] = (),
                  variants=VARIANTS) -> None:
  """Registers `name` in each vocabulary variant with T5's token pipeline.

  text_preprocessors map raw examples to "inputs"/"targets" strings;
  token_preprocessors run on token ids after the cache point (e.g.
  span corruption) and before EOS is appended.
  """
  for suffix, vocabulary in variants:
    seqio.TaskRegistry.add(
        name + suffix,
        source=source,
        preprocessors=[
            *text_preprocessors,
            seqio.preprocessors.tokenize,
            seqio.CacheDatasetPlaceholder(),
            *token_preprocessors,
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=vocabularies.features(vocabulary, with_inputs),
        metric_fns=list(metric_fns),
        postprocess_fn=postprocess_fn)


def add_mixture(name: str, tasks_and_rates: Sequence[Tuple[str, float]],
                variants=VARIANTS) -> None:
  """Registers mixture `name` of each variant over that variant's tasks."""
  for suffix, _ in variants:
    seqio.MixtureRegistry.add(
        name + suffix,
        [(task + suffix, rate) for task, rate in tasks_and_rates])
