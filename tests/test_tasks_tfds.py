"""Every TFDS-backed task under tfds.testing.mock_data, through converters."""
import numpy as np
import pytest
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

import tasks  # pylint: disable=unused-import
from tasks import generated
from tasks import sentencepiece_training
from tasks import sources
from tasks.errors import TaskConfigError

LENGTHS = {"inputs": 64, "targets": 32}


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
  """A tiny T5-style SentencePiece model trained on generated sentences."""
  rng = np.random.RandomState(0)
  texts = [generated.lm_example(rng)["targets"] for _ in range(300)]
  return sentencepiece_training.train(
      texts, str(tmp_path_factory.mktemp("spm") / "tiny"), vocab_size=60)


def _tfds_task_names():
  return sorted(
      name for name in seqio.TaskRegistry.names()
      if isinstance(seqio.get_mixture_or_task(name).source,
                    sources.PreparedTfdsSource))


def converted_examples(task, split, lengths=LENGTHS, take=2):
  """Examples of `task` after the feature converter the model would use."""
  lengths = {k: v for k, v in lengths.items() if k in task.output_features}
  dataset = task.get_dataset(lengths, split=split, shuffle=False,
                             try_in_mem_cache=False)
  if "inputs" in task.output_features:
    converter = seqio.EncDecFeatureConverter(pack=False)
  else:
    converter = seqio.LMFeatureConverter(pack=False)
  return list(converter(dataset, lengths).take(take).as_numpy_iterator())


def check_converted(examples, task, lengths=LENGTHS):
  assert examples, f"{task.name}: no examples"
  for ex in examples:
    assert ex["decoder_target_tokens"].shape == (lengths["targets"],)
    assert ex["decoder_target_tokens"].dtype.name == "int32"
    assert ex["decoder_target_tokens"].any(), f"{task.name}: empty targets"
    if "inputs" in task.output_features:
      assert ex["encoder_input_tokens"].shape == (lengths["inputs"],)
      assert ex["encoder_input_tokens"].dtype.name == "int32"
      assert ex["encoder_input_tokens"].any(), f"{task.name}: empty inputs"
    vocab_size = task.output_features["targets"].vocabulary.vocab_size
    assert ex["decoder_target_tokens"].max() < vocab_size


def test_every_paper_task_is_registered():
  names = set(_tfds_task_names())
  expected = {"wmt14_ende", "wmt14_enfr", "lm1b", "cnn_dailymail",
              "c4_span_corruption", "ag_news", "imdb", "glue_cola",
              "glue_mnli", "glue_ax", "super_glue_boolq", "super_glue_record",
              "super_glue_multirc", "super_glue_axg", "dpr_simple",
              "super_glue_wsc_simple_train"}
  missing = {n for n in expected
             if n not in names or n + "_bytes" not in names}
  assert not missing
  assert {"lra_text", "lra_image"} <= names
  assert len(names) >= 60


def _wsc_examples(builder, split, decoders=None, read_config=None, **kwargs):
  """WSC examples whose spans point at their words (random ones do not)."""
  del builder, split, decoders, read_config, kwargs
  return tf.data.Dataset.from_tensor_slices({
      "text": ["Mark told Pete many lies about himself , which Pete included "
               "in his book . He should have been more truthful ."] * 2,
      "span1_index": tf.constant([0, 2], tf.int32),
      "span1_text": ["Mark", "Pete"],
      "span2_index": tf.constant([15, 15], tf.int32),
      "span2_text": ["He", "He"],
      "label": tf.constant([1, 0], tf.int64),
      "idx": tf.constant([0, 1], tf.int32),
  })


# Datasets whose preprocessors check consistency that random data lacks.
MOCK_DATASET_FNS = {"super_glue/wsc.fixed:1.0.2": _wsc_examples}


def mock_data_for(task):
  return tfds.testing.mock_data(
      num_examples=3,
      as_dataset_fn=MOCK_DATASET_FNS.get(task.source.tfds_dataset.name))


@pytest.mark.parametrize("name", [n for n in _tfds_task_names()
                                  if n.endswith("_bytes") or n.startswith(
                                      "lra_")])
def test_tfds_task_under_mock_data(name):
  task = seqio.get_mixture_or_task(name)
  split = task.splits[0] if "train" not in task.splits else "train"
  with mock_data_for(task):
    check_converted(converted_examples(task, split), task)


def test_byte_span_corruption_sentinels_lie_above_the_bytes():
  task = seqio.get_mixture_or_task("c4_span_corruption_bytes")
  with tfds.testing.mock_data(num_examples=3):
    examples = list(task.get_dataset(
        {"inputs": 256, "targets": 128}, split="train", shuffle=False,
        try_in_mem_cache=False).as_numpy_iterator())
  byte_ids_end = 3 + 256
  for ex in examples:
    sentinels = ex["targets"][ex["targets"] >= byte_ids_end]
    assert len(sentinels) >= 1
    assert (ex["inputs"] >= byte_ids_end).sum() == len(sentinels)


def test_sentencepiece_variants_with_a_user_model(spm_model, monkeypatch):
  monkeypatch.setenv("MTF_SYNTH_SPM_MODEL", spm_model)
  for name in ("wmt14_ende", "glue_mnli", "lm1b", "c4_span_corruption"):
    task = seqio.get_mixture_or_task(name)
    with tfds.testing.mock_data(num_examples=3):
      check_converted(converted_examples(task, "train"), task)


@pytest.mark.parametrize("name", ["glue_proportional_bytes",
                                  "super_glue_proportional_bytes"])
def test_proportional_mixtures_use_t5_weights(name):
  mixture = seqio.get_mixture_or_task(name)
  rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
  if name.startswith("glue"):
    assert rates["glue_mnli_bytes"] == 392_702
    assert rates["glue_cola_bytes"] == 8_551
  else:
    assert rates["super_glue_record_bytes"] == 138_854
    assert rates["dpr_simple_bytes"] == 1_322
  with tfds.testing.mock_data(num_examples=3):
    dataset = mixture.get_dataset(LENGTHS, split="train", shuffle=False,
                                  try_in_mem_cache=False)
    examples = list(seqio.EncDecFeatureConverter(pack=False)(
        dataset, LENGTHS).take(4).as_numpy_iterator())
  assert len(examples) == 4


def test_missing_tfds_dataset_is_one_line_naming_it(tmp_path):
  task = seqio.get_mixture_or_task("imdb_bytes")
  source = sources.PreparedTfdsSource("imdb_reviews/plain_text:1.0.0",
                                      splits=("train",),
                                      tfds_data_dir=str(tmp_path))
  with pytest.raises(TaskConfigError) as error:
    source.get_dataset("train")
  message = str(error.value)
  assert "\n" not in message
  assert "imdb_reviews/plain_text" in message and str(tmp_path) in message
  assert "tfds build" in message and "TFDS_DATA_DIR" in message
  del task
