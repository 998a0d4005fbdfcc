"""Generated tasks: determinism, sizes, bounds, correctness of targets."""
import numpy as np
import pytest
import seqio

import tasks
from tasks import generated


def _examples(name, split, limit=None):
  ds = seqio.get_mixture_or_task(name).get_dataset(
      None, split=split, shuffle=False, try_in_mem_cache=False)
  if limit:
    ds = ds.take(limit)
  return [{k: v.numpy() for k, v in ex.items()} for ex in ds]


def _text(ex, key):
  return ex[key + "_pretokenized"].decode()


def test_demo_task_is_registered_with_byte_vocabulary():
  task = seqio.get_mixture_or_task(tasks.DEMO_TASK)
  assert tasks.DEMO_TASK == "mtf_synth_demo"
  assert set(task.output_features) == {"inputs", "targets"}
  for feature in task.output_features.values():
    assert isinstance(feature.vocabulary, seqio.ByteVocabulary)
    assert feature.add_eos
  assert set(task.splits) == {"train", "validation"}


def test_demo_targets_are_reversed_or_sorted_inputs_within_48_bytes():
  train = _examples(tasks.DEMO_TASK, "train")
  validation = _examples(tasks.DEMO_TASK, "validation")
  assert (len(train), len(validation)) == (20000, 500)
  ops = set()
  for ex in train + validation:
    op, _, payload = _text(ex, "inputs").partition(": ")
    letters = payload.split(" ")
    expected = {"reverse": letters[::-1], "sort": sorted(letters)}[op]
    assert _text(ex, "targets") == " ".join(expected)
    ops.add(op)
    # Byte ids plus EOS: at most 48 bytes each.
    assert len(ex["inputs"]) <= 49 and len(ex["targets"]) <= 49
    assert ex["inputs"][-1] == 1 and ex["targets"][-1] == 1
  assert ops == {"reverse", "sort"}
  train_inputs = {_text(ex, "inputs") for ex in train}
  assert not train_inputs & {_text(ex, "inputs") for ex in validation}


def test_demo_is_deterministic_across_regeneration():
  first = _examples(tasks.DEMO_TASK, "validation", limit=20)
  generated._generate_splits.cache_clear()
  again = _examples(tasks.DEMO_TASK, "validation", limit=20)
  assert [_text(e, "inputs") for e in first] == [
      _text(e, "inputs") for e in again]


def test_demo_through_encoder_decoder_feature_converter():
  task = seqio.get_mixture_or_task(tasks.DEMO_TASK)
  lengths = {"inputs": 64, "targets": 64}
  ds = task.get_dataset(lengths, split="validation", shuffle=False,
                        try_in_mem_cache=False)
  converted = seqio.EncDecFeatureConverter(pack=False)(ds, lengths)
  ex = next(iter(converted))
  assert ex["encoder_input_tokens"].shape == (64,)
  assert ex["decoder_target_tokens"].shape == (64,)
  assert ex["decoder_input_tokens"].dtype.name == "int32"


def test_demo_metrics_perfect_and_known_imperfect():
  metric_fns = seqio.get_mixture_or_task(tasks.DEMO_TASK).metric_fns
  targets = ["a b c", "c b a", "d e", "x y z"]
  results = {}
  for fn in metric_fns:
    results.update(fn(targets, list(targets)))
  assert results["sequence_accuracy"] == 100.0
  assert results["mean_edit"] == 0
  results = {}
  for fn in metric_fns:
    results.update(fn(targets, ["a b c", "c a a", "d e", "x y"]))
  assert results["sequence_accuracy"] == 50.0
  assert results["sum_edit"] == 2


@pytest.mark.parametrize("name,operation", [
    ("mtf_synth_copy", list), ("mtf_synth_reverse", lambda x: x[::-1]),
    ("mtf_synth_sort", sorted)])
def test_transform_tasks(name, operation):
  for ex in _examples(name, "validation", limit=50):
    letters = _text(ex, "inputs").partition(": ")[2].split(" ")
    assert 3 <= len(letters) <= 20
    assert _text(ex, "targets") == " ".join(operation(letters))


def test_recall_targets_are_the_queried_values():
  for ex in _examples("mtf_synth_recall", "validation", limit=50):
    pairs, query = _text(ex, "inputs").split(" ? ")
    table = {pair[0]: pair[1:] for pair in pairs.split(" ")}
    assert len(table) == len(pairs.split(" "))  # Keys are distinct.
    assert _text(ex, "targets") == table[query]


def test_lm_task_is_targets_only_through_the_lm_converter():
  task = seqio.get_mixture_or_task("mtf_synth_lm")
  assert set(task.output_features) == {"targets"}
  ds = task.get_dataset({"targets": 256}, split="validation", shuffle=False,
                        try_in_mem_cache=False)
  ex = next(iter(seqio.LMFeatureConverter(pack=True)(
      ds, {"targets": 256}).as_numpy_iterator()))
  assert ex["decoder_target_tokens"].shape == (256,)
  assert ex["decoder_segment_ids"].max() > 1  # Several sentences packed.
  text = _text(_examples("mtf_synth_lm", "train", limit=1)[0], "targets")
  assert text.startswith("the ") and text.endswith(" .")


@pytest.mark.parametrize("name,length,relevant", [
    ("mtf_synth_sparsity_2of64", 64, 2), ("mtf_synth_sparsity_32of64", 64, 32),
    ("kernel_sparsity_8of1024", 1024, 8)])
def test_sparsity_targets_are_the_rounded_mean_of_hidden_digits(
    name, length, relevant):
  answers = []
  for ex in _examples(name, "validation", limit=200):
    text = _text(ex, "inputs")
    digits = [int(c) for c in text if c.isdigit()]
    assert len(text) == length and len(digits) == relevant
    mean = sum(digits) / relevant
    answer = int(_text(ex, "targets"))
    assert abs(answer - mean) <= 0.5 and (answer - mean != -0.5)  # half up
    answers.append(answer)
  # No answer dominates: a constant guess scores little at every density.
  assert max(answers.count(a) for a in set(answers)) <= 0.25 * len(answers)


def test_streamed_tasks_are_deterministic_per_split():
  def first(split):
    return [ex["inputs_pretokenized"]
            for ex in _examples("lra_pathfinder_generated", split, limit=3)]
  assert first("validation") == first("validation")
  assert first("validation") != first("test")


def test_generated_pathfinder_images_have_two_dots_and_balanced_labels():
  labels = []
  for ex in _examples("lra_pathfinder_generated", "train", limit=100):
    image = np.frombuffer(ex["inputs_pretokenized"], np.uint8)
    assert image.shape == (1024,)
    assert 4 <= (image == 255).sum() <= 8  # Two 2x2 dots, maybe overlapping.
    labels.append(_text(ex, "targets"))
  assert 30 <= labels.count("1") <= 70


@pytest.mark.parametrize("name", ["mtf_synth_demo",
                                  "kernel_sparsity_8of1024"])
def test_seeded_shuffled_training_dataset(name):
  """The trainer asks for shuffle=True with a seed: sources must accept it."""
  task = seqio.get_mixture_or_task(name)
  def first(seed):
    ds = task.get_dataset({"inputs": 2048, "targets": 8}, split="train",
                          shuffle=True, seed=seed, try_in_mem_cache=False)
    return [ex["inputs_pretokenized"] for ex in ds.take(3).as_numpy_iterator()]
  assert first(1) == first(1)
