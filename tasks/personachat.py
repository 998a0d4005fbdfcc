"""PersonaChat (ConvAI2) dialogue generation from the user's ParlAI files.

PersonaChat is not in TFDS. Give the folder holding ConvAI2's
train_self_original.txt and valid_self_original.txt with
--gin_param="user_paths.convai2_dir='DIR'" or MTF_SYNTH_CONVAI2_DIR=DIR.
Each turn becomes one example: inputs = "persona: <persona lines> dialogue:
<history> <partner's utterance>", targets = the persona owner's response.

Metrics (the Synthesizer paper reports BLEU-1, ROUGE-1/2/L, METEOR, CIDEr):
- bleu (BLEU-4, t5) and bleu_1: sacreBLEU with max n-gram order 1.
- rouge1, rouge2, rougeL: t5 `rouge`.
- METEOR: nltk's meteor_score (maintained). It needs the WordNet corpus for
  synonym matches, which cannot be downloaded here: without it the key is
  `meteor_exact_stem` (exact and Porter-stem matches only, lower than METEOR).
- CIDEr has no maintained package (pycocoevalcap is unmaintained and needs
  Java for its tokenizer). Substitute `cider_tfidf`: CIDEr's core, the cosine
  of TF-IDF weighted n-gram vectors (n = 1..4, IDF over the references,
  scikit-learn), averaged over n and scaled by 10 as CIDEr is; it omits
  CIDEr-D's length penalty and count clipping, so it is not comparable to
  published CIDEr numbers.
"""
import functools
from typing import Dict, List, Sequence

import numpy as np
import sacrebleu
import seqio
import tensorflow as tf
from t5.evaluation import metrics

from tasks import registry
from tasks.errors import TaskConfigError
from tasks.sources import require_user_path
from tasks.sources import user_split_file

CONVAI2_FILES = {"train": "train_self_original.txt",
                 "validation": "valid_self_original.txt"}
PERSONA_PREFIX = "your persona: "


def convai2_dir() -> str:
  return require_user_path("convai2_dir", "ConvAI2 (PersonaChat) folder",
                           "the folder with train_self_original.txt from "
                           "ParlAI's ConvAI2 download")


def parse_convai2(lines: Sequence[str]) -> List[Dict[str, str]]:
  """One example per turn of ParlAI's numbered ConvAI2 dialogue format."""
  examples, persona, history = [], [], []
  for line in lines:
    line = line.rstrip("\n")
    if not line.strip():
      continue
    number, _, text = line.partition(" ")
    if number == "1":  # Numbering restarts with each dialogue.
      persona, history = [], []
    if text.startswith(PERSONA_PREFIX):
      persona.append(text[len(PERSONA_PREFIX):])
      continue
    fields = text.split("\t")
    if len(fields) < 2:
      raise TaskConfigError(f"Malformed ConvAI2 line {line[:60]!r}: expected "
                            "'N utterance<TAB>response<TAB><TAB>candidates'")
    utterance, response = fields[0], fields[1]
    history.append(utterance)
    examples.append({
        "inputs": "persona: " + " ".join(persona) + " dialogue: " +
                  " ".join(history),
        "targets": response})
    history.append(response)
  return examples


def _read_convai2(split: str, shuffle_files: bool,
                  seed=None) -> tf.data.Dataset:
  del shuffle_files, seed  # Files are read in order; seqio shuffles.
  path = user_split_file(convai2_dir(), CONVAI2_FILES, split,
                         "ParlAI's ConvAI2 dialogues (numbered lines)")
  with tf.io.gfile.GFile(path) as f:
    examples = parse_convai2(f.readlines())
  return tf.data.Dataset.from_tensor_slices(
      {k: [ex[k] for ex in examples] for k in ("inputs", "targets")})


def bleu_1(targets: Sequence[str], predictions: Sequence[str]):
  """Corpus BLEU over unigrams only (sacreBLEU, t5's tokenizer)."""
  score = sacrebleu.BLEU(max_ngram_order=1, tokenize="intl").corpus_score(
      list(predictions), [list(targets)])
  return {"bleu_1": score.score}


class _NoWordNet:
  """Stands in for WordNet when its corpus is not installed: no synonyms."""

  def synsets(self, *args, **kwargs):
    del args, kwargs
    return []


@functools.lru_cache(maxsize=1)
def _wordnet():
  from nltk.corpus import wordnet  # pylint: disable=g-import-not-at-top
  try:
    wordnet.ensure_loaded()
    return wordnet, "meteor"
  except LookupError:
    return _NoWordNet(), "meteor_exact_stem"


def meteor(targets: Sequence[str], predictions: Sequence[str]):
  """Mean sentence METEOR x 100 (nltk); see the module docstring for WordNet."""
  # nltk and scikit-learn are imported by the metrics that use them: every
  # command imports the task registry, few score PersonaChat.
  from nltk.stem.porter import PorterStemmer  # pylint: disable=g-import-not-at-top
  from nltk.translate import meteor_score  # pylint: disable=g-import-not-at-top
  wordnet, key = _wordnet()
  stemmer = PorterStemmer()
  scores = [meteor_score.meteor_score([t.split()], p.split(), wordnet=wordnet,
                                      stemmer=stemmer)
            for t, p in zip(targets, predictions)]
  return {key: 100 * float(np.mean(scores))}


def cider_tfidf(targets: Sequence[str], predictions: Sequence[str]):
  """CIDEr substitute: mean over n=1..4 of TF-IDF n-gram cosine, x 10."""
  from sklearn.feature_extraction.text import TfidfVectorizer  # pylint: disable=g-import-not-at-top
  per_order = []
  for n in range(1, 5):
    vectorizer = TfidfVectorizer(ngram_range=(n, n), lowercase=True,
                                 token_pattern=r"\S+")
    try:
      references = vectorizer.fit_transform(targets)
    except ValueError:  # No n-grams of this order in any reference.
      continue
    hypotheses = vectorizer.transform(predictions)
    # Rows are L2-normalised, so the row-wise dot product is the cosine.
    per_order.append(np.asarray(
        references.multiply(hypotheses).sum(axis=1)).ravel())
  return {"cider_tfidf": 10 * float(np.mean(per_order)) if per_order else 0.0}


METRIC_FNS = [
    metrics.bleu, bleu_1,
    functools.partial(metrics.rouge, score_keys=("rouge1", "rouge2",
                                                 "rougeL")),
    meteor, cider_tfidf,
]

registry.add_text_task(
    "personachat",
    source=seqio.FunctionDataSource(_read_convai2, splits=CONVAI2_FILES),
    metric_fns=METRIC_FNS)
