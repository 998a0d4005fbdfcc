"""Generated tasks: determinism, sizes, bounds, correctness of targets."""
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
