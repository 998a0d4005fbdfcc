"""tasks.registry: the one token pipeline every registered task goes through."""
import pytest
import seqio
import tensorflow as tf

import tasks  # pylint: disable=unused-import
from mtf_synth.errors import UserError
from tasks import registry
from tasks import vocabularies
from tasks.errors import TaskConfigError
from tasks.sources import user_split_file


def _words_source(caching_permitted=True):
  def dataset_fn(split, shuffle_files, seed=None):
    del split, shuffle_files, seed
    return tf.data.Dataset.from_tensor_slices(
        {"question": ["two words", "three more words"],
         "answer": ["yes", "no"]})
  return seqio.FunctionDataSource(dataset_fn, splits=["train"],
                                  caching_permitted=caching_permitted)


@seqio.map_over_dataset
def _to_inputs_and_targets(x):
  return {"inputs": x["question"], "targets": x["answer"]}


@pytest.fixture
def registered():
  names = []

  def register(name, **kwargs):
    registry.add_text_task(name, **kwargs)
    names.extend(name + suffix for suffix, _ in registry.VARIANTS)
    return name

  yield register
  for name in names:
    seqio.TaskRegistry.remove(name)


@pytest.mark.parametrize("name", sorted(seqio.TaskRegistry.names()))
def test_every_task_ends_with_the_token_pipeline(name):
  task = seqio.get_mixture_or_task(name)
  steps = list(task.preprocessors)
  tokenize = steps.index(seqio.preprocessors.tokenize)
  assert steps[-1] is seqio.preprocessors.append_eos_after_trim
  cache_points = [i for i, step in enumerate(steps)
                  if isinstance(step, seqio.CacheDatasetPlaceholder)]
  assert cache_points == ([tokenize + 1] if task.source.caching_permitted
                          else [])


def test_text_task_examples_are_the_vocabulary_ids_then_eos(registered):
  name = registered("registry_test_words", source=_words_source(),
                    text_preprocessors=[_to_inputs_and_targets])
  task = seqio.get_mixture_or_task(name + registry.BYTES_SUFFIX)
  examples = list(task.get_dataset(None, split="train", shuffle=False,
                                   try_in_mem_cache=False).as_numpy_iterator())
  vocabulary = vocabularies.BYTE_VOCABULARY
  eos = [vocabulary.eos_id]
  assert [ex["inputs"].tolist() for ex in examples] == [
      vocabulary.encode("two words") + eos,
      vocabulary.encode("three more words") + eos]
  assert [ex["targets"].tolist() for ex in examples] == [
      vocabulary.encode("yes") + eos, vocabulary.encode("no") + eos]
  sentencepiece = seqio.get_mixture_or_task(name)
  assert sentencepiece.preprocessors[0] is _to_inputs_and_targets
  assert (sentencepiece.output_features["targets"].vocabulary ==
          vocabularies.SENTENCEPIECE_VOCABULARY)


def test_token_preprocessors_run_before_eos_and_without_a_cache_point(
    registered):
  @seqio.map_over_dataset
  def first_token_only(x):
    return {**x, "targets": x["targets"][:1]}

  name = registered("registry_test_uncached",
                    source=_words_source(caching_permitted=False),
                    text_preprocessors=[_to_inputs_and_targets],
                    token_preprocessors=[first_token_only])
  task = seqio.get_mixture_or_task(name + registry.BYTES_SUFFIX)
  assert not task.supports_caching
  targets = [ex["targets"].tolist() for ex in task.get_dataset(
      None, split="train", shuffle=False,
      try_in_mem_cache=False).as_numpy_iterator()]
  vocabulary = vocabularies.BYTE_VOCABULARY
  assert targets == [vocabulary.encode("y") + [vocabulary.eos_id],
                     vocabulary.encode("n") + [vocabulary.eos_id]]


def test_missing_split_file_is_a_one_line_user_error(tmp_path):
  (tmp_path / "present.txt").write_text("x\n")
  files = {"train": "present.txt", "test": "absent.txt"}
  assert user_split_file(str(tmp_path), files, "train", "lines") == str(
      tmp_path / "present.txt")
  with pytest.raises(TaskConfigError) as error:
    user_split_file(str(tmp_path), files, "test", "one example a line")
  assert isinstance(error.value, UserError)
  message = str(error.value)
  assert "\n" not in message
  assert str(tmp_path / "absent.txt") in message
  assert "one example a line" in message
