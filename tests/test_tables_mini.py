"""One mini row of a paper table, end to end through the reproduce script:
train, decode-and-score, report; a re-run skips the finished cell."""

import csv
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)


def reproduce(tmp_path, *extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             PATH=os.path.dirname(sys.executable) + os.pathsep +
             os.environ.get("PATH", ""))
  return subprocess.run(
      ["bash", os.path.join(REPO, "scripts", "reproduce_synth_mt_lm.sh"),
       "--scale=mini", "--rows=random_vanilla", "--columns=demo",
       "--model_dir_root=%s" % (tmp_path / "runs"),
       "--results_dir=%s" % (tmp_path / "results"),
       "--gin_param=utils.run.train_steps=100"] + list(extra),
      capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.mark.slow
def test_mini_row_end_to_end(tmp_path):
  first = reproduce(tmp_path)
  assert first.returncode == 0, first.stdout + first.stderr[-3000:]
  cell = tmp_path / "runs" / "mini" / "synth_mt_lm" / "random_vanilla" / "demo"
  result = json.loads((cell / "result.json").read_text())
  assert result["status"] == "ok", result
  assert 0.0 <= result["metrics"]["sequence_accuracy"] <= 100.0
  assert result["metrics"]["mean_edit"] >= 0.0
  assert result["metrics"]["loss"] > 0.0
  assert (cell / "model.ckpt-100.index").exists()
  assert len(result["commands"]) == 2  # train, then decode-and-score eval

  results = tmp_path / "results"
  table = (results / "synth_mt_lm.md").read_text()
  row = [l for l in table.splitlines() if l.startswith("| Synthesizer (R+V)")]
  # The LM column was not selected: "not run"; the paper's numbers beside.
  assert row and row[0].endswith("| not run | 28.47 | 41.85 | 40.05 |")
  assert row[0].split(" | ")[1:3] != ["", ""]  # sequence accuracy, edit
  with open(results / "synth_mt_lm.csv") as f:
    ours = [r for r in csv.DictReader(f) if r["source"] == "ours (mini)"
            and r["row"] == "random_vanilla" and r["column"] == "demo"]
  assert {r["metric"] for r in ours} == {
      "sequence_accuracy", "mean_edit", "exact_match:reverse",
      "exact_match:sort"}
  assert all(r["value"] != "" for r in ours)
  assert (results / "synth_mt_lm.png").stat().st_size > 1000
  assert "utils.run.train_steps=100" in (
      results / "synth_mt_lm.commands.sh").read_text()

  second = reproduce(tmp_path)
  assert second.returncode == 0
  assert "random_vanilla/demo: finished before, skipped" in second.stdout
