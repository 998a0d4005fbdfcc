"""Every task's metric functions on hand-made predictions.

Targets and predictions are given as the task's postprocess_fn leaves them
(class ids for GLUE-style tasks, dicts for MultiRC/ReCoRD, text otherwise).
"""
import functools

import pytest
import seqio
from t5.data import postprocessors

import tasks  # pylint: disable=unused-import
from tasks import personachat
from tasks import placeholders

SENTENCES = ["the cat sat on the mat .", "a small dog ran home .",
             "it rained all day in the city .", "we like green tea ."]

# Best value of each metric key; 100 unless listed.
BEST = {"min_edit": 0, "max_edit": 0, "mean_edit": 0, "median_edit": 0,
        "sum_edit": 0, "cider_tfidf": 10.0}
# METEOR's fragmentation penalty keeps even an exact copy just under 100.
NEAR_BEST = {"meteor": 99.0, "meteor_exact_stem": 99.0}


def _postprocess_name(task):
  fn = task.postprocessor
  return getattr(fn, "func", fn).__name__ if fn else None


def perfect_case(task):
  """(targets, predictions) that a perfect model gives on `task`."""
  kind = _postprocess_name(task)
  if kind == "string_to_float":
    targets = [1.0, 2.4, 3.8, 5.0]
  elif kind == "multirc":
    targets = [{"value": v, "group": g}
               for v, g in [(1, 0), (0, 0), (1, 1), (0, 2)]]
  elif kind == "record":
    targets = [{"value": ["Paris", "the capital"], "group": (0, 0)},
               {"value": ["Bob"], "group": (0, 1)}]
    return targets, [{"value": "Paris"}, {"value": "Bob"}]
  elif kind == "string_label_to_class_id":
    classes = len(task.postprocessor.keywords["label_classes"])
    targets = [i % classes for i in range(2 * classes)]
  elif kind == "wsc_simple":
    targets = [1, 0, 1, 1]
  elif kind == "keep_source":
    # Translations that keep their source's placeholders (one reordered).
    pairs = [("%s files", "%s Dateien"), ("{0} of {1}", "{1} von {0}"),
             ("%1$s in %2$d", "%2$d in %1$s"), ("Quit", "Beenden")]
    targets = [placeholders.keep_source(t, {"inputs_pretokenized": s},
                                        is_target=True) for s, t in pairs]
    return targets, [str(t) for t in targets]
  else:
    assert kind is None, f"{task.name}: untested postprocessor {kind}"
    targets = list(SENTENCES)
  return targets, list(targets)


def _scores(task, targets, predictions):
  results = {}
  for metric_fn in task.metric_fns:
    results.update(metric_fn(targets, predictions))
  return results


TASKS_WITH_METRICS = sorted(
    n for n in seqio.TaskRegistry.names()
    if seqio.get_mixture_or_task(n).metric_fns)


def test_all_scored_tasks_are_covered():
  assert len(TASKS_WITH_METRICS) >= 60
  for name in ("mtf_synth_demo", "wmt14_ende", "cnn_dailymail", "glue_cola",
               "super_glue_record", "personachat", "lra_listops", "imdb"):
    assert name in TASKS_WITH_METRICS


@pytest.mark.parametrize("name", TASKS_WITH_METRICS)
def test_perfect_predictions_score_best(name):
  task = seqio.get_mixture_or_task(name)
  results = _scores(task, *perfect_case(task))
  assert results
  for key, value in results.items():
    if key in NEAR_BEST:
      assert NEAR_BEST[key] < value <= 100, (key, value)
    else:
      assert value == pytest.approx(BEST.get(key, 100.0)), (key, value)


def test_bleu_known_imperfect_is_the_brevity_penalty():
  # Every n-gram of the 6-token prediction is right; the reference has 7
  # tokens, so BLEU = exp(1 - 7/6).
  task = seqio.get_mixture_or_task("wmt14_ende")
  results = _scores(task, ["the cat sat on the mat today"],
                    ["the cat sat on the mat"])
  assert results["bleu"] == pytest.approx(84.648, abs=0.01)


def test_rouge_known_imperfect():
  task = seqio.get_mixture_or_task("cnn_dailymail_bytes")
  results = _scores(task, ["the cat sat"], ["the cat"])
  # Unigrams: precision 1, recall 2/3; bigrams: precision 1, recall 1/2.
  assert results["rouge1"] == pytest.approx(80.0)
  assert results["rouge2"] == pytest.approx(200 / 3)
  assert results["rougeLsum"] == pytest.approx(80.0)


def test_glue_known_imperfect():
  targets, predictions = [1, 1, 0, 0], [1, 0, 0, 0]
  cola = _scores(seqio.get_mixture_or_task("glue_cola"), targets, predictions)
  # Matthews: (TP*TN - FP*FN) / sqrt(...) = 2 / sqrt(12).
  assert cola["matthews_corrcoef"] == pytest.approx(100 * 2 / 12 ** 0.5)
  mrpc = _scores(seqio.get_mixture_or_task("glue_mrpc"), targets, predictions)
  assert mrpc["accuracy"] == pytest.approx(75.0)
  assert mrpc["f1"] == pytest.approx(200 / 3)


def test_classification_postprocessing_maps_label_names_to_ids():
  task = seqio.get_mixture_or_task("ag_news_bytes")
  predictions = [task.postprocess_fn(p) for p in
                 ["Sports", "World", "Sci/Tech", "nonsense"]]
  assert predictions == [1, 0, 3, -1]
  assert _scores(task, [1, 0, 2, 3], predictions)["accuracy"] == 50.0


def test_lra_accuracy_on_class_strings():
  task = seqio.get_mixture_or_task("lra_listops")
  assert _scores(task, ["1", "7", "0", "9"],
                 ["1", "7", "3", "2"])["accuracy"] == 50.0


def test_personachat_known_imperfect():
  results = _scores(seqio.get_mixture_or_task("personachat"),
                    ["a b c d"], ["a b x y"])
  assert results["bleu_1"] == pytest.approx(50.0)
  assert results["rouge1"] == pytest.approx(50.0)
  assert results["rougeL"] == pytest.approx(50.0)
  # Disjoint n-grams score zero on the CIDEr substitute.
  assert personachat.cider_tfidf(["a b c d"], ["x y z w"])["cider_tfidf"] == 0
  meteor = personachat.meteor(["the cats sat"], ["the cat sat"])
  assert 0 < list(meteor.values())[0] < 100


def test_untested_postprocessor_would_fail():
  fake = seqio.Task(
      "fake_postprocessed", source=seqio.FunctionDataSource(
          lambda split, shuffle_files: None, splits=["train"]),
      output_features={}, postprocess_fn=functools.partial(
          postprocessors.lower_text))
  with pytest.raises(AssertionError):
    perfect_case(fake)
