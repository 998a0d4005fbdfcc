"""scripts/check_paper_models.py: paper cells are grouped into the distinct
models they train, the stand-in task has the paper task's features, and a
paper model is built and trained 2 steps (slow)."""

import os
import sys

import numpy as np
import pytest
import seqio

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir,
                                "scripts"))
import check_paper_models  # noqa: E402  pylint: disable=g-import-not-at-top


@pytest.fixture(scope="module")
def synth_models():
  models = check_paper_models.paper_models(["synth_mt_lm", "synth_ablations",
                                            "synth_summ_dialog"])
  return {cell: model for model in models for cell in model.cells}


def test_cells_sharing_a_model_are_built_once(synth_models):
  # En-De and En-Fr: same model, lengths and vocabulary size.
  assert (synth_models[("synth_mt_lm", "random", "wmt14_ende")] is
          synth_models[("synth_mt_lm", "random", "wmt14_enfr")])
  # The ablation table's "random" row is the MT table's.
  assert (synth_models[("synth_ablations", "random", "wmt14_ende")] is
          synth_models[("synth_mt_lm", "random", "wmt14_ende")])


def test_cells_with_other_shapes_or_layers_are_not_merged(synth_models):
  mt = synth_models[("synth_mt_lm", "random", "wmt14_ende")]
  assert synth_models[("synth_mt_lm", "random", "lm1b")] is not mt
  assert synth_models[("synth_mt_lm", "dense", "wmt14_ende")] is not mt
  assert synth_models[("synth_ablations", "random_heads_2",
                       "wmt14_ende")] is not mt
  # Same model file, other target length.
  assert (synth_models[("synth_summ_dialog", "random", "cnn_dailymail")] is
          not synth_models[("synth_summ_dialog", "random", "personachat")])


def test_every_paper_cell_is_covered():
  from mtf_synth.tables import specs  # pylint: disable=g-import-not-at-top
  models = check_paper_models.paper_models(list(specs.TABLES))
  covered = {cell for model in models for cell in model.cells}
  expected = {(t.name, row, column.name) for t in specs.TABLES.values()
              for row, _ in t.rows for column in t.paper}
  expected |= {(t.name, row, "pretrain") for t in specs.TABLES.values()
               for row, _ in t.rows for column in t.paper if column.pretrain}
  assert covered == expected
  assert len(models) < len(covered)


@pytest.mark.parametrize("mixture, vocab_size, keys", [
    ("wmt14_ende", 32100, ("inputs", "targets")),  # SentencePiece + sentinels
    ("lm1b", 32100, ("targets",)),
    ("kernel_sparsity_8of1024", 259, ("inputs", "targets")),  # bytes
])
def test_stand_in_task_has_the_tasks_features(mixture, vocab_size, keys):
  check_paper_models.register_stand_in(mixture)
  name = check_paper_models.STAND_IN_PREFIX + mixture
  task = seqio.get_mixture_or_task(name)
  try:
    assert tuple(task.output_features) == keys
    lengths = {key: 40 + 7 * i for i, key in enumerate(keys)}
    examples = list(task.get_dataset(lengths, split="train", shuffle=False)
                    .take(3).as_numpy_iterator())
  finally:
    seqio.TaskRegistry.remove(name)
  for key in keys:
    assert task.output_features[key].vocabulary.vocab_size == vocab_size
    for example in examples:
      tokens = example[key]
      assert len(tokens) == lengths[key] and tokens[-1] == 1  # EOS
      assert 3 <= tokens[:-1].min() and tokens[:-1].max() < vocab_size
  assert not np.array_equal(examples[0][keys[0]], examples[1][keys[0]])


def transformer_parameters(d_model, d_ff, heads_d_kv, encoder_layers,
                           decoder_layers, vocab_size, max_length):
  """Mesh TF's encoder + cross-attention decoder (T5 layer norms, shared
  input embedding and positions, vocabulary padded to 128)."""
  attention = 4 * d_model * heads_d_kv
  feed_forward = 2 * d_model * d_ff
  encoder = encoder_layers * (attention + feed_forward + 2 * d_model)
  decoder = decoder_layers * (attention + feed_forward + 2 * d_model)
  padded_vocab = -(-vocab_size // 128) * 128
  return (encoder + decoder + 2 * d_model + padded_vocab * d_model +
          max_length * d_model)


@pytest.mark.slow
def test_a_paper_model_is_built_and_trained(tmp_path):
  """The sparsity table's softmax model at paper size (about a minute)."""
  (model,) = [m for m in check_paper_models.paper_models(["kernel_sparsity"])
              if m.cells[0][1] == "transformer"]
  result = check_paper_models.check_model(model, str(tmp_path), timeout=900)
  assert result["status"] == "ok", result.get("error")
  assert sorted(result["losses"]) == [1, 2]
  assert all(np.isfinite(v) for v in result["losses"].values())
  # gin/tables/kernel_sparsity/tasks/*.gin: d_model 256, d_ff 1024, 4 heads
  # of d_kv 64, 4 encoder layers + the classifier's 1, bytes, length 1032.
  assert result["params"] == transformer_parameters(
      256, 1024, 4 * 64, 4, 1, 259, 1032)
  report = check_paper_models.markdown([model], {model.key: result})
  assert "| transformer | kernel_sparsity: sparsity_8of1024, " in report
  assert "| 4.3M |  | ok |" in report


def test_a_selection_runs_its_models_and_the_report_keeps_every_model(
    tmp_path, monkeypatch):
  ran = []

  def fake_check(model, work_dir, timeout):
    del work_dir, timeout
    ran.append(model.cells)
    return {"status": "ok", "seconds": 1.0, "params": 1000}
  monkeypatch.setattr(check_paper_models, "check_model", fake_check)
  results = tmp_path / "models.md"
  assert check_paper_models.main([
      "--tables=kernel_sparsity", "--models=-transformer-",
      "--work_dir=%s" % tmp_path, "--results=%s" % results]) == 0
  assert ran and all(
      {t for t, _, _ in cells} == {"kernel_sparsity"} and
      {r for _, r, _ in cells} == {"transformer"} for cells in ran)
  report = results.read_text()
  from mtf_synth.tables import specs  # pylint: disable=g-import-not-at-top
  every_model = check_paper_models.paper_models(list(specs.TABLES))
  rows = [l for l in report.splitlines() if l.startswith("| ") and
          not l.startswith("| row ")]
  assert len(rows) == len(every_model)
  assert sum("| ok |" in l for l in rows) == len(ran)
  assert any("synth_mt_lm: wmt14_ende" in l and "| not run |" in l
             for l in rows)
