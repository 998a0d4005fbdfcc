"""Tasks of the Synthesizer paper (Tay et al. 2021), from prepared TFDS data.

Each task exists as NAME (SentencePiece from the user's model, see
tasks.vocabularies) and NAME_bytes (bytes). Preprocessors, postprocessors,
metrics and GLUE/SuperGLUE mixing weights are t5's:
- wmt14_ende, wmt14_enfr: t5 `translate`, sacreBLEU (t5 `bleu`).
- lm1b: decoder-only language modelling ("targets" only); perplexity is
  exp(per-token eval loss) from the runtime, so there is no metric_fn.
- cnn_dailymail: t5 `summarize`, ROUGE-1/2/Lsum (t5 `rouge`).
- glue_{cola,...}, super_glue_{boolq,...}, super_glue_wsc_simple_{train,eval},
  dpr_simple; mixtures glue_proportional, super_glue_proportional
  (examples-proportional, the T5 paper's weights).
- c4_span_corruption: T5's span corruption on c4/en (the DynamicConv
  comparison).
- ag_news, imdb: classification as text (t5 `glue` formatting), accuracy
  (the Linformer comparison; the paper uses encoder-only models).
PersonaChat is in tasks.personachat (user files).
"""
import functools

import tensorflow_datasets as tfds
from t5.data import glue_utils
from t5.data import postprocessors
from t5.data import preprocessors
from t5.evaluation import metrics

from tasks import registry
from tasks import vocabularies
from tasks.sources import PreparedTfdsSource

TRAIN_VALIDATION_TEST = ("train", "validation", "test")

# ==================================== WMT'14 ==================================
for _pair, _target in (("de-en", "de"), ("fr-en", "fr")):
  registry.add_text_task(
      f"wmt14_en{_target}",
      source=PreparedTfdsSource(f"wmt14_translate/{_pair}:1.0.0",
                                splits=TRAIN_VALIDATION_TEST),
      text_preprocessors=[functools.partial(
          preprocessors.translate, source_language="en",
          target_language=_target)],
      metric_fns=[metrics.bleu])

# ==================================== LM1B ====================================
registry.add_text_task(
    "lm1b",
    source=PreparedTfdsSource("lm1b:1.1.0", splits=("train", "test")),
    text_preprocessors=[functools.partial(
        preprocessors.rekey, key_map={"targets": "text"})],
    with_inputs=False)

# ================================ CNN/DailyMail ===============================
registry.add_text_task(
    "cnn_dailymail",
    source=PreparedTfdsSource("cnn_dailymail:3.4.0",
                              splits=TRAIN_VALIDATION_TEST),
    text_preprocessors=[functools.partial(
        preprocessors.summarize, article_key="article",
        summary_key="highlights")],
    metric_fns=[metrics.rouge])

# ===================================== GLUE ===================================
GLUE_SPLITS = {
    "mnli": ("train", "validation_matched", "validation_mismatched",
             "test_matched", "test_mismatched"),
    "mnli_matched": ("validation", "test"),
    "mnli_mismatched": ("validation", "test"),
    "ax": ("test",),
}
for _config in tfds.builder_cls("glue").builder_configs.values():
  registry.add_text_task(
      f"glue_{_config.name}",
      source=PreparedTfdsSource(
          f"glue/{_config.name}:2.0.0",
          splits=GLUE_SPLITS.get(_config.name, TRAIN_VALIDATION_TEST)),
      text_preprocessors=[glue_utils.get_glue_text_preprocessor(_config)],
      metric_fns=glue_utils.get_glue_metric(_config.name),
      postprocess_fn=glue_utils.get_glue_postprocess_fn(_config))

# =================================== SuperGLUE ================================
_AXB_KEYS = {"premise": "sentence1", "hypothesis": "sentence2",
             "label": "label", "idx": "idx"}
for _config in tfds.builder_cls("super_glue").builder_configs.values():
  if "wsc" in _config.name:
    continue  # T5 trains on the simplified WSC below instead.
  _rekey = ([functools.partial(preprocessors.rekey, key_map=_AXB_KEYS)]
            if _config.name == "axb" else [])
  registry.add_text_task(
      f"super_glue_{_config.name}",
      source=PreparedTfdsSource(
          f"super_glue/{_config.name}:1.0.2",
          splits=("test",) if _config.name in ("axb", "axg")
          else TRAIN_VALIDATION_TEST),
      text_preprocessors=_rekey + [
          glue_utils.get_glue_text_preprocessor(_config)],
      metric_fns=glue_utils.get_super_glue_metric(_config.name),
      postprocess_fn=glue_utils.get_glue_postprocess_fn(_config))

registry.add_text_task(
    "super_glue_wsc_simple_train",
    source=PreparedTfdsSource("super_glue/wsc.fixed:1.0.2", splits=("train",)),
    text_preprocessors=[functools.partial(preprocessors.wsc_simple,
                                          correct_referent_only=True)])
registry.add_text_task(
    "super_glue_wsc_simple_eval",
    source=PreparedTfdsSource("super_glue/wsc.fixed:1.0.2",
                              splits=("validation", "test")),
    text_preprocessors=[functools.partial(preprocessors.wsc_simple,
                                          correct_referent_only=False)],
    metric_fns=[metrics.accuracy],
    postprocess_fn=postprocessors.wsc_simple)
registry.add_text_task(
    "dpr_simple",
    source=PreparedTfdsSource("definite_pronoun_resolution:1.1.0",
                              splits=("train", "test")),
    text_preprocessors=[preprocessors.definite_pronoun_resolution_simple],
    metric_fns=[metrics.accuracy])


def _t5_weights(weight_mapping):
  """T5's examples-proportional weights, keyed by this module's task names."""
  def rename(t5_name):
    for version in ("_v001", "_v002", "_v102"):
      t5_name = t5_name.replace(version, "")
    return t5_name
  return [(rename(name), weight) for name, weight in weight_mapping.items()]


registry.add_mixture("glue_proportional",
                     _t5_weights(glue_utils.get_glue_weight_mapping()))
registry.add_mixture("super_glue_proportional",
                     _t5_weights(glue_utils.get_super_glue_weight_mapping()))

# ============================== C4 span corruption ============================
registry.add_text_task(
    "c4_span_corruption",
    source=PreparedTfdsSource("c4/en:3.1.0", splits=("train", "validation")),
    text_preprocessors=[functools.partial(
        preprocessors.rekey, key_map={"inputs": None, "targets": "text"})],
    token_preprocessors=[preprocessors.span_corruption],
    variants=(("", vocabularies.SENTENCEPIECE_VOCABULARY),
              (registry.BYTES_SUFFIX,
               vocabularies.BYTE_VOCABULARY_WITH_SENTINELS)))

# ============================ AG News and IMDb ================================
AG_NEWS_LABELS = ("World", "Sports", "Business", "Sci/Tech")
IMDB_LABELS = ("negative", "positive")
for _name, _tfds_name, _labels, _features in (
    ("ag_news", "ag_news_subset:1.0.0", AG_NEWS_LABELS,
     ("title", "description")),
    ("imdb", "imdb_reviews/plain_text:1.0.0", IMDB_LABELS, ("text",))):
  registry.add_text_task(
      _name,
      source=PreparedTfdsSource(_tfds_name, splits=("train", "test")),
      text_preprocessors=[functools.partial(
          preprocessors.glue, benchmark_name=_name, label_names=_labels,
          feature_names=_features, id_key=None)],
      metric_fns=[metrics.accuracy],
      postprocess_fn=functools.partial(
          postprocessors.string_label_to_class_id, label_classes=_labels))
