"""ListOps: an independent evaluator checks labels, lengths, depth, arity."""
import math
import statistics

import numpy as np
import pytest
import seqio
import tensorflow as tf

import tasks  # pylint: disable=unused-import
from tasks import listops

OPERATIONS = {
    "[MIN": min,
    "[MAX": max,
    "[MED": lambda args: math.floor(statistics.median(args)),
    "[SM": lambda args: sum(args) % 10,
}


def evaluate(text):
  """(value, operator nesting depth, argument counts) of a ListOps string."""
  stack, result, depth, arities = [], None, 0, []
  for token in text.split():
    if token in OPERATIONS:
      stack.append((token, []))
      depth = max(depth, len(stack))
      continue
    if token == "]":
      operator, args = stack.pop()
      arities.append(len(args))
      value = OPERATIONS[operator](args)
    else:
      assert token.isdigit() and len(token) == 1, token
      value = int(token)
    if stack:
      stack[-1][1].append(value)
    else:
      assert result is None, "more than one root"
      result = value
  assert not stack, "unclosed operator"
  return result, depth, arities


def test_evaluator_on_hand_written_examples():
  assert evaluate("[MAX 2 9 [MIN 4 7 ] 0 ]") == (9, 2, [2, 4])
  assert evaluate("[MED 1 2 3 4 ]")[0] == 2
  assert evaluate("[SM 9 9 [MED 5 ] ]")[0] == 3
  with pytest.raises(AssertionError):
    evaluate("[MAX 2 9")


@pytest.mark.parametrize("config,count", [(listops.LRA_CONFIG, 30),
                                          (listops.SMALL_CONFIG, 500)])
def test_generated_examples_match_their_labels_and_bounds(config, count):
  rng = np.random.RandomState(1)
  labels = set()
  for _ in range(count):
    example = listops.listops_example(rng, config)
    value, depth, arities = evaluate(example["inputs"])
    assert str(value) == example["targets"]
    length = len(example["inputs"].split())
    assert config.min_length < length < config.max_length
    # Values sit at depth max_depth, so operators nest at most max_depth - 1.
    assert 1 <= depth < config.max_depth
    assert all(2 <= a <= config.max_args for a in arities)
    labels.add(value)
  assert len(labels) >= 5  # Ten classes, not a constant.


def test_lra_listops_task_round_trips_through_its_vocabulary():
  task = seqio.get_mixture_or_task("lra_listops")
  vocabulary = task.output_features["inputs"].vocabulary
  dataset = task.get_dataset(None, split="validation", shuffle=False,
                             try_in_mem_cache=False)
  for example in dataset.take(3).as_numpy_iterator():
    text = vocabulary.decode(example["inputs"].tolist())
    assert text == example["inputs_pretokenized"].decode()
    assert vocabulary.unk_id not in example["inputs"]
    assert example["inputs"][-1] == vocabulary.eos_id
    value, _, _ = evaluate(text)
    assert str(value) == vocabulary.decode(example["targets"].tolist())


def test_listops_is_deterministic_and_splits_differ():
  task = seqio.get_mixture_or_task("mtf_synth_listops")
  def first(split):
    return [ex["inputs_pretokenized"] for ex in task.get_dataset(
        None, split=split, shuffle=False,
        try_in_mem_cache=False).take(5).as_numpy_iterator()]
  assert first("validation") == first("validation")
  assert first("validation") != first("train")


def test_token_encoding_builds_no_lookup_table():
  """mesh TF's iterators cannot capture tables: training once failed on one."""
  graph = tf.Graph()
  with graph.as_default():
    listops.VOCABULARY.encode_tf(tf.constant("[MAX 2 9 ]"))
  op_types = {op.type for op in graph.get_operations()}
  assert not {t for t in op_types if "Table" in t}, op_types
