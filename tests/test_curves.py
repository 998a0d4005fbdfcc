"""Learning-curve cells (mtf_synth/tables/curves.py, scripts/curves.py): the
plateau rule, chunked training that stops at it, resuming after an
interruption, skipping finished cells, the report; mtf_synth calls are
replaced by a fake run that records what it was asked to do."""

import fcntl
import json
import os
import re
import subprocess

import pytest

from mtf_synth.tables import cells
from mtf_synth.tables import curve_report
from mtf_synth.tables import curves

RULE = curves.Settings(eval_every=100, max_steps=2000, window=0.25,
                       min_gain=0.01, min_steps=400)


def test_plateau_is_the_first_step_less_than_1_percent_better_than_at_75():
  losses = {100: 3.0, 200: 2.0, 300: 1.5, 400: 1.2, 500: 1.1, 600: 1.0,
            700: 0.95, 800: 0.9, 900: 0.898, 1000: 0.897}
  # 400 vs 300: 20% better; 800 vs 600: 10%; 900 vs 600 (last <= 675):
  # 10.2%; 1000 vs 700 (last <= 750): 5.6%; none below 1% yet.
  assert curves.plateau_step(losses, RULE) is None
  losses.update({1100: 0.896, 1200: 0.895, 1300: 0.894})
  # 1100 vs 800 (last <= 825; 0.9 -> 0.896: 0.44%) is the first.
  assert curves.plateau_step(losses, RULE) == 1100


def test_plateau_needs_min_steps_and_counts_a_rising_loss():
  flat = {100: 1.0, 200: 1.0, 300: 1.0, 400: 1.0, 500: 1.0}
  assert curves.plateau_step(flat, RULE) == 400
  assert curves.plateau_step({s: v for s, v in flat.items() if s < 400},
                             RULE) is None
  rising = {100: 2.0, 200: 1.5, 300: 1.2, 400: 1.3}
  assert curves.plateau_step(rising, RULE) == 400


def loss_at(step):
  """A validation loss that flattens: less than 1% better over a quarter of
  the steps from some step on."""
  return 1.0 + 20.0 / step


class FakeRuns:
  """Stands in for the mtf_synth calls of one curve cell: training moves
  the checkpoint, evaluations write numbers at their checkpoint step."""

  def __init__(self, monkeypatch, fail_at=None):
    self.checkpoint = {}
    self.found = {}
    self.calls = []
    self.fail_at = fail_at
    self.test_predictions = {}  # model_dir -> what its test decode writes
    monkeypatch.setattr(cells, "run_step", self.run_step)
    monkeypatch.setattr(curves.checkpoints, "latest_step",
                        lambda d: self.checkpoint.get(d))
    monkeypatch.setattr(curves, "series", lambda d: {
        k: dict(v) for k, v in self.found.get(d, {}).items()})

  def run_step(self, step, command, cell, log):
    del cell, log
    text = " ".join(command)
    self.calls.append((step.name, text))
    if step.name == self.fail_at:
      return "killed"
    found = self.found.setdefault(step.model_dir, {})
    if step.name == "train":
      self.checkpoint[step.model_dir] = int(re.search(
          r"train_steps=(\d+)", text).group(1))
      return None
    at = int(re.search(r"eval_checkpoint_step=(\d+)", text).group(1))
    assert at == self.checkpoint[step.model_dir]  # the newest checkpoint
    kind, split = step.name.split("_")
    if kind == "perplexity":
      found.setdefault(split + "/loss", {})[at] = loss_at(at)
    else:
      found.setdefault(split + "/bleu", {})[at] = 30 - loss_at(at)
      found.setdefault(split + "/placeholder_accuracy", {})[at] = 90.0
      if split == "test" and step.model_dir in self.test_predictions:
        _write_decodes(step.model_dir, split, at, TARGETS,
                       self.test_predictions[step.model_dir])
    return None


def ende_cell(tmp_path, **kwargs):
  return curves.plan(curves.CURVES[0], "random", 1, str(tmp_path), **kwargs)


def test_cell_trains_in_chunks_to_the_plateau_then_tests(tmp_path,
                                                         monkeypatch):
  runs = FakeRuns(monkeypatch)
  cell = ende_cell(tmp_path)
  result = curves.run_curve_cell(cell, RULE, log=lambda _: None)
  expected = curves.plateau_step({s: loss_at(s) for s in
                                  range(100, 2001, 100)}, RULE)
  assert expected and result["status"] == "ok"
  assert result["plateau_step"] == result["stop_step"] == expected
  names = [name for name, _ in runs.calls]
  chunks = expected // 100
  assert names == (["train", "perplexity_validation", "decode_validation"]
                   * chunks + ["decode_test", "decode_heldout"])
  trained = [int(re.search(r"train_steps=(\d+)", c).group(1))
             for n, c in runs.calls if n == "train"]
  assert trained == list(range(100, expected + 1, 100))
  assert all("random_seed=1" in c for n, c in runs.calls if n == "train")
  with open(os.path.join(cell.model_dir, "result.json")) as f:
    assert json.load(f)["fingerprint"] == cell.fingerprint()


def test_cap_stops_a_cell_that_keeps_improving(tmp_path, monkeypatch):
  FakeRuns(monkeypatch)
  capped = curves.Settings(100, 500, 0.25, 0.01, 400)
  result = curves.run_curve_cell(ende_cell(tmp_path), capped,
                                 log=lambda _: None)
  assert (result["status"], result["stop_step"],
          result["plateau_step"]) == ("ok", 500, None)


def test_interrupted_cell_resumes_at_its_first_chunk_without_numbers(
    tmp_path, monkeypatch):
  runs = FakeRuns(monkeypatch, fail_at="decode_validation")
  cell = ende_cell(tmp_path)
  result = curves.run_curve_cell(cell, RULE, log=lambda _: None)
  assert result["status"] == "failed"
  assert [n for n, _ in runs.calls] == ["train", "perplexity_validation",
                                        "decode_validation"]
  runs.fail_at, runs.calls = None, []
  result = curves.run_curve_cell(cell, RULE, log=lambda _: None)
  assert result["status"] == "ok"
  # Step 100 was trained and its loss evaluated: only its decode again.
  assert [n for n, _ in runs.calls][:2] == ["decode_validation", "train"]
  # result.json lists every call of both runs.
  assert len(result["commands"]) == 3 + len(runs.calls)
  runs.calls = []
  again = curves.run_curve_cell(cell, RULE, log=lambda _: None)
  assert runs.calls == [] and again["stop_step"] == result["stop_step"]


def test_budget_run_goes_on_from_the_plateau_to_exactly_that_step(
    tmp_path, monkeypatch):
  runs = FakeRuns(monkeypatch)
  cell = ende_cell(tmp_path)
  records = str(tmp_path / "records")
  plateau = curves.run_curve_cell(cell, RULE, records, log=lambda _: None)
  stop = plateau["stop_step"]
  runs.calls = []
  budget = stop + 300
  budget_records = str(tmp_path / "budget_records")
  result = curves.run_curve_cell(cell, RULE, budget_records,
                                 log=lambda _: None, budget=budget)
  assert (result["status"], result["stop_step"], result["plateau_step"]) == (
      "ok", budget, None)
  # On from the plateau's last chunk, not from the start; the test splits
  # at the budget step.
  assert [n for n, _ in runs.calls] == (
      ["train", "perplexity_validation", "decode_validation"] * 3 +
      ["decode_test", "decode_heldout"])
  assert all("eval_checkpoint_step=%d" % budget in c
             for n, c in runs.calls[-2:])
  assert max(result["series"]["validation/loss"]) == budget
  # The plateau cell keeps its result, record and numbers.
  assert cells.load_result(cell.model_dir)["stop_step"] == stop
  for known in (curves.known_result(cell), curves.load_record(records, cell)):
    assert max(known["series"]["validation/loss"]) == stop
  assert curves.run_curve_cell(cell, RULE, records, log=lambda _: None)[
      "series"] == plateau["series"]
  assert curves.known_result(cell, budget=budget)["stop_step"] == budget
  assert curves.load_record(budget_records, cell)["stop_step"] == budget
  runs.calls = []
  curves.run_curve_cell(cell, RULE, budget_records, log=lambda _: None,
                        budget=budget)
  assert runs.calls == []


def test_changed_settings_make_a_finished_cell_stale(tmp_path, monkeypatch):
  runs = FakeRuns(monkeypatch)
  curves.run_curve_cell(ende_cell(tmp_path), RULE, log=lambda _: None)
  runs.calls = []
  other = ende_cell(tmp_path, extra=["--gin_param=dropout_rate=0.2"])
  result = curves.run_curve_cell(other, RULE, log=lambda _: None)
  assert result["status"] == "stale" and runs.calls == []
  assert "move or delete" in result["error"]


def test_a_recorded_cell_is_skipped_on_a_fresh_machine(tmp_path,
                                                       monkeypatch):
  """The run folders stay behind on the machine; the committed record of a
  finished cell (result, numbers, final decodes) skips it anywhere."""
  runs = FakeRuns(monkeypatch)
  records = str(tmp_path / "records")
  cell = ende_cell(tmp_path / "old_machine")
  runs.test_predictions[cell.model_dir] = WORSE
  result = curves.run_curve_cell(cell, RULE, records, log=lambda _: None)
  assert result["decodes"]["test"] == (TARGETS, WORSE)
  assert result["decodes"]["heldout"] is None  # none written
  runs.calls = []
  fresh = ende_cell(tmp_path / "new_machine")
  assert curves.known_result(fresh, records)["stop_step"] == (
      result["stop_step"])
  again = curves.run_curve_cell(fresh, RULE, records, log=lambda _: None)
  assert runs.calls == []
  assert again["series"] == result["series"]  # steps are ints again
  assert again["decodes"]["test"] == [TARGETS, WORSE]  # JSON lists
  assert again["fingerprint"] == fresh.fingerprint()
  # Other settings: the record does not count; the run replaces it.
  other = ende_cell(tmp_path / "new_machine",
                    extra=["--gin_param=dropout_rate=0.2"])
  replaced = curves.run_curve_cell(other, RULE, records, log=lambda _: None)
  assert runs.calls and replaced["status"] == "ok"
  assert curves.load_record(records, other)["fingerprint"] == (
      other.fingerprint()) != fresh.fingerprint()


def test_a_cell_finished_before_records_gets_its_record(tmp_path,
                                                        monkeypatch):
  FakeRuns(monkeypatch)
  cell = ende_cell(tmp_path)
  result = curves.run_curve_cell(cell, RULE, log=lambda _: None)
  records = str(tmp_path / "records")
  assert curves.load_record(records, cell) is None
  curves.run_curve_cell(cell, RULE, records, log=lambda _: None)
  assert curves.load_record(records, cell)["stop_step"] == (
      result["stop_step"])


def _write_decodes(model_dir, split, step, targets, predictions):
  folder = os.path.join(model_dir, "%s_eval" % split)
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "debian_l10n_ende_targets"), "w") as f:
    f.write("\n".join(targets) + "\n")
  with open(os.path.join(folder, "debian_l10n_ende_%d_predictions" % step),
            "w") as f:
    f.write("\n".join(predictions) + "\n")


TARGETS = ["Die Datei %d wurde nicht gefunden" % i for i in range(40)] + [
    "Kann das Verzeichnis %s nicht lesen" % w for w in "abcdefghij"]
WORSE = ["Die Datei wurde %d nicht" % i for i in range(40)] + [
    "Verzeichnis kann nicht %s" % w for w in "abcdefghij"]


def test_bleu_gap_is_t5s_bleu_difference_with_a_bootstrap_interval():
  from t5.evaluation import metrics  # pylint: disable=g-import-not-at-top
  gap, low, high = curve_report.bleu_gap(TARGETS, TARGETS, WORSE)
  assert gap == pytest.approx(metrics.bleu(TARGETS, TARGETS)["bleu"] -
                              metrics.bleu(TARGETS, WORSE)["bleu"])
  assert 0 < low <= gap <= high
  mixed = TARGETS[:25] + WORSE[25:]
  gap, low, high = curve_report.bleu_gap(TARGETS, mixed, mixed)
  assert (gap, low, high) == (0, 0, 0)
  gap, low, high = curve_report.bleu_gap(TARGETS, mixed, WORSE)
  assert low < gap < high


def test_report_has_each_cell_its_plateau_gaps_and_a_plot_per_column(
    tmp_path, monkeypatch):
  runs = FakeRuns(monkeypatch)
  results = {}
  for row in ("random", "transformer"):
    cell = curves.plan(curves.CURVES[0], row, 1, str(tmp_path))
    runs.test_predictions[cell.model_dir] = (
        TARGETS if row == "random" else WORSE)
    results[(row, "debian_l10n_ende", 1)] = curves.run_curve_cell(
        cell, RULE, log=lambda _: None)
  result = results[("random", "debian_l10n_ende", 1)]
  base = curve_report.write_report(results, RULE, str(tmp_path / "out"),
                                   result["commands"])
  with open(base + ".md") as f:
    text = f.read()
  assert "less than 1% below the loss at the last evaluated step at or " \
         "before 0.75 s" in text
  row = [l for l in text.splitlines()
         if l.startswith("| Synthesizer (R) | 1 |")][0]
  assert "plateau at %d" % result["stop_step"] in row
  assert "| Transformer | 0 | not run |" in text
  gap = curve_report.bleu_gap(TARGETS, TARGETS, WORSE)
  assert "| R - Transformer | test | 1 | %+.2f | %+.2f to %+.2f |" % gap in (
      text)
  # No heldout decodes written: the gap of its BLEU, no interval.
  assert "| R - Transformer | heldout | 1 | +0.00 | (decodes not kept) |" in (
      text)
  assert "Ran on: %s." % curves.machine() in text
  assert os.path.getsize(base + "_debian_l10n_ende.png") > 0
  assert os.path.getsize(base + "_debian_lm.png") > 0
  with open(base + ".csv") as f:
    lines = f.read().splitlines()
  assert len(lines) == 1 + sum(len(v) for r in results.values()
                               for v in r["series"].values())
  budget = curve_report.write_report(results, RULE, str(tmp_path / "out"),
                                     result["commands"], budget=3000)
  assert os.path.basename(budget) == "curves_budget3000"
  with open(budget + ".md") as f:
    assert "to exactly 3000 steps, the plateau rule off" in f.read()


def test_launch_script_runs_one_copy_at_a_time():
  """scripts/small_curves.sh exits while another copy holds its lock (2
  cores: one training process)."""
  repo = os.path.join(os.path.dirname(__file__), os.pardir)
  path = os.path.join(repo, "runs", "small_curves.lock")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "a") as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      pass  # the real run holds it
    run = subprocess.run(["bash", os.path.join(repo, "scripts",
                                               "small_curves.sh"),
                          "--dry_run"], capture_output=True, text=True,
                         check=False)
  assert run.returncode == 2
  assert run.stderr.strip() == ("small_curves.sh is running already "
                                "(runs/small_curves.lock)")


def test_gap_without_kept_decodes_is_reported_without_an_interval():
  def cell(bleu):
    return {"status": "ok", "stop_step": 3000, "decodes": {"test": None},
            "series": {"test/bleu": {3000: bleu}}}
  lines = curve_report.bootstrap_lines({
      ("random", "debian_l10n_ende", 0): cell(30.5),
      ("transformer", "debian_l10n_ende", 0): cell(32.0)})
  assert lines == ["| R - Transformer | test | 0 | -1.50 | "
                   "(decodes not kept) |"]
