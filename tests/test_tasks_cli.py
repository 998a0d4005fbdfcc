"""`python -m tasks` and scripts/train_sentencepiece.py."""
import importlib.util
import os
import subprocess
import sys

import pytest
import seqio

import tasks  # pylint: disable=unused-import
from tasks import vocabularies
from tasks.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_script():
  spec = importlib.util.spec_from_file_location(
      "train_sentencepiece",
      os.path.join(ROOT, "scripts", "train_sentencepiece.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_list_prints_tasks_and_mixtures(capsys):
  assert main(["list"]) == 0
  out = capsys.readouterr().out
  for name in ("mtf_synth_demo", "wmt14_ende_bytes", "lra_listops",
               "personachat", "glue_proportional", "super_glue_proportional"):
    assert f"  {name} " in out
  assert f"Tasks ({len(seqio.TaskRegistry.names())})" in out


def test_show_prints_preprocessed_examples(capsys):
  assert main(["show", "mtf_synth_demo", "-n", "2"]) == 0
  out = capsys.readouterr().out
  assert out.count("--- mtf_synth_demo [validation]") == 2
  assert "inputs_pretokenized: reverse: " in out or (
      "inputs_pretokenized: sort: " in out)
  assert "targets (" in out


@pytest.mark.parametrize("argv,expected", [
    (["show", "no_such_task"], "python -m tasks list"),
    (["show", "mtf_synth_demo", "--split", "test"], "no split 'test'"),
    (["show", "personachat_bytes"], "MTF_SYNTH_CONVAI2_DIR"),
])
def test_errors_are_one_line_with_exit_status_2(argv, expected, capsys,
                                                  monkeypatch):
  monkeypatch.delenv("MTF_SYNTH_CONVAI2_DIR", raising=False)
  assert main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and "\n" not in err and expected in err


def test_module_runs_as_a_program():
  result = subprocess.run([sys.executable, "-m", "tasks", "list"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180,
                          check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "mtf_synth_demo" in result.stdout


def test_train_sentencepiece_on_a_task_gives_a_t5_style_model(tmp_path,
                                                              monkeypatch):
  script = _load_script()
  prefix = str(tmp_path / "lm")
  assert script.main(["--task", "mtf_synth_lm", "--output", prefix,
                      "--vocab_size", "80", "--max_examples", "500"]) == 0
  monkeypatch.setenv("MTF_SYNTH_SPM_MODEL", prefix + ".model")
  vocabulary = vocabularies.UserSentencePieceVocabulary(extra_ids=0)
  assert (vocabulary.pad_id, vocabulary.eos_id, vocabulary.unk_id) == (0, 1, 2)
  ids = vocabulary.encode("the happy cat sees the dogs .")
  assert vocabulary.unk_id not in ids
  assert vocabulary.decode(ids) == "the happy cat sees the dogs ."


def test_train_sentencepiece_unknown_task(tmp_path, capsys):
  assert _load_script().main(["--task", "nope", "--output",
                              str(tmp_path / "x")]) == 2
  assert "python -m tasks list" in capsys.readouterr().err
