"""Placeholder accuracy (tasks/placeholders.py) on hand-written messages,
through the debian translation task's postprocessor and metric list."""

import pytest
import seqio

from tasks import debian  # noqa: F401  pylint: disable=unused-import
from tasks import placeholders

SOURCE = "translate English to German: Cannot copy %s to %s: %d%% done"


def _targets(*sources):
  return [placeholders.keep_source(b"Ziel", {"inputs_pretokenized":
                                             s.encode()}, is_target=True)
          for s in sources]


def _accuracy(source, prediction):
  return placeholders.placeholder_accuracy(_targets(source), [prediction])[
      "placeholder_accuracy"]


@pytest.mark.parametrize("prediction", [
    "Kann %s nicht nach %s kopieren: %d%% erledigt",
    "%d%% erledigt: %s kann nicht nach %s kopiert werden",   # reordered
    "Kann %2$s nicht nach %1$s kopieren: %3$d%% erledigt",   # positions
    "Kann %s nicht nach %s kopieren: %d Prozent erledigt",   # %% is text
])
def test_same_placeholders_in_any_order_count(prediction):
  assert _accuracy(SOURCE, prediction) == 100.0


@pytest.mark.parametrize("prediction", [
    "Kann %s nicht kopieren: %d%% erledigt",                 # missing
    "Kann %s nicht nach %s %s kopieren: %d%% erledigt",      # extra
    "Kann %s nicht nach %d kopieren: %d%% erledigt",         # changed
    "Kann % s nicht nach %s kopieren: %d%% erledigt",        # broken
    "Kann %s nicht nach %s kopieren: %ld%% erledigt",        # length
])
def test_missing_extra_or_changed_placeholders_do_not(prediction):
  assert _accuracy(SOURCE, prediction) == 0.0


def test_named_and_brace_placeholders():
  source = "Delete %(count)d files from {0} in {name}?"
  assert _accuracy(source, "{name}: %(count)d Dateien aus {0} löschen?") == (
      100.0)
  assert _accuracy(source, "{name}: %(anzahl)d Dateien aus {0} löschen?") == (
      0.0)
  assert _accuracy(source, "%(count)d Dateien aus {1} in {name} löschen?") == (
      0.0)
  assert placeholders.placeholders("%<PRIu64> bytes, %-10.3lf s") == {
      "%<PRIu64>": 1, "%-10.3lf": 1}


def test_accuracy_counts_sources_with_placeholders_and_all_outputs():
  targets = _targets("open %s now", "open it now", "open %d of %d")
  result = placeholders.placeholder_accuracy(
      targets, ["öffne %s jetzt", "öffne %s jetzt", "öffne %d"])
  assert result == {"placeholder_accuracy": 50.0,
                    "placeholder_accuracy_all": pytest.approx(100 / 3)}


def test_targets_keep_their_text_for_bleu():
  (target,) = _targets(SOURCE)
  assert target == "Ziel" and target.source == SOURCE
  assert placeholders.keep_source("Vorhersage", {}, is_target=False) == (
      "Vorhersage")
  with pytest.raises(ValueError, match="keep_source"):
    placeholders.placeholder_accuracy(["Ziel"], ["Ziel"])


def test_translation_tasks_report_bleu_and_placeholder_accuracy():
  task = seqio.get_mixture_or_task("debian_l10n_ende")
  targets = [task.postprocess_fn("Datei %s öffnen", example={
      "inputs_pretokenized": b"translate English to German: Open file %s"},
                                 is_target=True)]
  scores = {}
  for metric_fn in task.metric_fns:
    scores.update(metric_fn(targets, ["Datei %s öffnen"]))
  assert scores["bleu"] == pytest.approx(100.0)
  assert scores["placeholder_accuracy"] == 100.0
