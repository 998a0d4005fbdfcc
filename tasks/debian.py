"""Tasks on the `debian` corpus: real human-written text built offline.

scripts/build_corpus.py builds the corpus (tasks/debian_corpus.py) into
data/debian/ (or the folder named by `debian_corpus_dir.path` /
MTF_SYNTH_DEBIAN_DIR) with a SentencePiece model trained on its train
splits, the vocabulary of every task here (NAME_bytes: bytes). Stand-ins for
the Synthesizer paper's datasets, formatted as t5 formats those:
- debian_l10n_ende, debian_l10n_enfr: "translate English to German: ..." ->
  the German (French) message of the packages' gettext catalogs; sacreBLEU
  (as wmt14_ende, wmt14_enfr) and placeholder accuracy
  (tasks/placeholders.py); splits train, validation, test and heldout
  (catalogs of packages the corpus never reads).
- debian_lm: English paragraphs of manual pages and python3-doc, "targets"
  only; perplexity from the runtime's perplexity eval (as lm1b).
- debian_sections: a package description -> its archive section (10
  balanced labels); accuracy (as ag_news, imdb).
"""
import functools
import os

import gin
import seqio
import tensorflow as tf
from t5.data import postprocessors
from t5.data import preprocessors
from t5.evaluation import metrics

from tasks import debian_corpus
from tasks import placeholders
from tasks import registry
from tasks import sources
from tasks import vocabularies
from tasks.errors import TaskConfigError

DEFAULT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__),
                                           os.pardir, "data", "debian"))
BUILD_COMMAND = "python scripts/build_corpus.py"


@gin.configurable
def debian_corpus_dir(path=None) -> str:
  """gin `path`, else $MTF_SYNTH_DEBIAN_DIR, else the repository's
  data/debian (where the builder writes by default)."""
  return path or os.environ.get(sources.env_var("debian_dir")) or DEFAULT_DIR


def corpus_file(relative_path: str) -> str:
  path = os.path.join(debian_corpus_dir(), relative_path)
  if not tf.io.gfile.exists(path):
    raise TaskConfigError(
        f"debian corpus file {path} not found: build the corpus with "
        f"`{BUILD_COMMAND}` (or set MTF_SYNTH_DEBIAN_DIR to where it is)")
  return path


class CorpusVocabulary(vocabularies.UserSentencePieceVocabulary):
  """The SentencePiece model the builder trained, found when first used."""

  def __init__(self):
    # The path depends on gin / the environment at use, not at registration.
    super().__init__(model_path="debian corpus")

  @property
  def sentencepiece_model_file(self) -> str:
    return corpus_file(debian_corpus.SPM_PREFIX + ".model")


VARIANTS = (("", CorpusVocabulary()),
            (registry.BYTES_SUFFIX, vocabularies.BYTE_VOCABULARY))


def tsv_source(dataset: str, keys) -> seqio.DataSource:
  """A source over one dataset's split files: one example per line, the
  tab-separated fields named by `keys`."""
  def read(split, shuffle_files, seed=None):
    del shuffle_files, seed  # Files are read in order; seqio shuffles.
    path = corpus_file(debian_corpus.dataset_files("", dataset)[split])

    def parse(line):
      fields = tf.strings.split(line, "\t")
      return {key: fields[i] for i, key in enumerate(keys)}

    return tf.data.TextLineDataset(path).map(parse)

  return seqio.FunctionDataSource(
      read, splits=debian_corpus.dataset_splits(dataset))


for _language in debian_corpus.LANGUAGES:
  registry.add_text_task(
      f"debian_l10n_en{_language}",
      source=tsv_source(f"l10n_en{_language}", ("en", _language)),
      text_preprocessors=[functools.partial(
          preprocessors.translate, source_language="en",
          target_language=_language)],
      metric_fns=[metrics.bleu, placeholders.placeholder_accuracy],
      postprocess_fn=placeholders.keep_source,
      variants=VARIANTS)

registry.add_text_task(
    "debian_lm",
    source=tsv_source("lm", ("targets",)),
    with_inputs=False,
    variants=VARIANTS)


def _label_index(example):
  """The section name as its index in SECTIONS (t5's `glue` wants ints)."""
  example = dict(example)
  example["label"] = tf.argmax(tf.cast(tf.equal(
      example["label"], debian_corpus.SECTIONS), tf.int64))
  return example


registry.add_text_task(
    "debian_sections",
    source=tsv_source("sections", ("label", "text")),
    text_preprocessors=[
        seqio.map_over_dataset(_label_index),
        functools.partial(preprocessors.glue, benchmark_name="debian_sections",
                          label_names=debian_corpus.SECTIONS,
                          feature_names=("text",), id_key=None)],
    metric_fns=[metrics.accuracy],
    postprocess_fn=functools.partial(
        postprocessors.string_label_to_class_id,
        label_classes=debian_corpus.SECTIONS),
    variants=VARIANTS)
