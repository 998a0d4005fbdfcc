"""File-backed tasks on small files written here, and their one-line errors."""
import os

import gin
import numpy as np
import pytest
import seqio
import tensorflow as tf

import tasks  # pylint: disable=unused-import
from tasks import personachat
from tasks.errors import TaskConfigError

CONVAI2 = """\
1 your persona: i like to ski .
2 your persona: my dog is named max .
3 hi , how are you ?\ti am great , i just got back from skiing .\t\tno|i am great , i just got back from skiing .
4 do you have pets ?\tyes , a dog called max .\t\tno|yes , a dog called max .
1 your persona: i bake bread .
2 hello !\thi , i was baking bread .\t\tok|hi , i was baking bread .
"""


def _write(path, text, mode="w"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, mode) as f:
    f.write(text)


def _examples(name, split, lengths=None):
  task = seqio.get_mixture_or_task(name)
  dataset = task.get_dataset(lengths, split=split, shuffle=False,
                             try_in_mem_cache=False)
  return list(dataset.as_numpy_iterator())


def _converted(name, split, lengths):
  task = seqio.get_mixture_or_task(name)
  dataset = task.get_dataset(lengths, split=split, shuffle=False,
                             try_in_mem_cache=False)
  return list(seqio.EncDecFeatureConverter(pack=False)(
      dataset, lengths).as_numpy_iterator())


def _assert_one_line(error, *parts):
  message = str(error.value)
  assert "\n" not in message
  for part in parts:
    assert part in message, (part, message)


@pytest.fixture
def convai2_dir(tmp_path, monkeypatch):
  _write(str(tmp_path / "train_self_original.txt"), CONVAI2)
  _write(str(tmp_path / "valid_self_original.txt"), CONVAI2)
  monkeypatch.setenv("MTF_SYNTH_CONVAI2_DIR", str(tmp_path))
  return tmp_path


def test_convai2_parsing_keeps_persona_and_history():
  examples = personachat.parse_convai2(CONVAI2.splitlines())
  assert len(examples) == 3
  assert examples[1]["inputs"] == (
      "persona: i like to ski . my dog is named max . dialogue: hi , how are "
      "you ? i am great , i just got back from skiing . do you have pets ?")
  assert examples[1]["targets"] == "yes , a dog called max ."
  assert examples[2]["inputs"] == "persona: i bake bread . dialogue: hello !"


def test_personachat_task_from_user_files(convai2_dir):
  del convai2_dir
  lengths = {"inputs": 128, "targets": 32}
  examples = _converted("personachat_bytes", "validation", lengths)
  assert len(examples) == 3
  for ex in examples:
    assert ex["encoder_input_tokens"].shape == (128,)
    assert ex["decoder_target_tokens"].dtype == np.int32


def test_personachat_path_by_gin(tmp_path):
  _write(str(tmp_path / "train_self_original.txt"), CONVAI2)
  with gin.unlock_config():
    gin.parse_config(f"user_paths.convai2_dir = '{tmp_path}'")
  try:
    assert len(_examples("personachat_bytes", "train")) == 3
  finally:
    gin.clear_config()


def test_personachat_missing_folder_and_file(tmp_path, monkeypatch):
  monkeypatch.delenv("MTF_SYNTH_CONVAI2_DIR", raising=False)
  with pytest.raises(TaskConfigError) as error:
    _examples("personachat_bytes", "train")
  _assert_one_line(error, "MTF_SYNTH_CONVAI2_DIR", "user_paths.convai2_dir")
  monkeypatch.setenv("MTF_SYNTH_CONVAI2_DIR", str(tmp_path / "absent"))
  with pytest.raises(TaskConfigError) as error:
    _examples("personachat_bytes", "train")
  _assert_one_line(error, str(tmp_path / "absent"), "not found")
  monkeypatch.setenv("MTF_SYNTH_CONVAI2_DIR", str(tmp_path))
  with pytest.raises(TaskConfigError) as error:
    _examples("personachat_bytes", "train")
  _assert_one_line(error, "train_self_original.txt")


def test_lra_listops_from_user_tsv(tmp_path, monkeypatch):
  tsv = "Source\tTarget\n( ( [MAX 2 9 ) ] )\t9\n( ( ( [SM 5 ) 8 ) ] )\t3\n"
  for name in ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv"):
    _write(str(tmp_path / name), tsv)
  monkeypatch.setenv("MTF_SYNTH_LRA_LISTOPS_DIR", str(tmp_path))
  examples = _examples("lra_listops_files", "validation")
  assert [ex["inputs_pretokenized"] for ex in examples] == [
      b"[MAX 2 9 ]", b"[SM 5 8 ]"]
  vocabulary = seqio.get_mixture_or_task(
      "lra_listops_files").output_features["inputs"].vocabulary
  assert vocabulary.decode(examples[1]["targets"].tolist()) == "3"
  assert vocabulary.unk_id not in examples[0]["inputs"]


def test_lra_retrieval_from_user_tsv(tmp_path, monkeypatch):
  long_text = "x" * 5000
  rows = [f"1.0\tid1\tid2\tfirst paper\tsecond paper",
          f"0.0\tid3\tid4\t{long_text}\tshort"]
  for name in ("train", "eval", "test"):
    _write(str(tmp_path / f"new_aan_pairs.{name}.tsv"), "\n".join(rows) + "\n")
  monkeypatch.setenv("MTF_SYNTH_LRA_AAN_DIR", str(tmp_path))
  examples = _examples("lra_retrieval", "test")
  assert examples[0]["inputs_pretokenized"] == b"first paper\n\nsecond paper"
  assert examples[0]["targets_pretokenized"] == b"1"
  # Each document is cut to 4000 bytes before joining.
  assert len(examples[1]["inputs_pretokenized"]) == 4000 + 2 + 5
  assert examples[1]["targets_pretokenized"] == b"0"
  lengths = {"inputs": 8192, "targets": 4}
  assert _converted("lra_retrieval", "train", lengths)[1][
      "encoder_input_tokens"].shape == (8192,)


def test_lra_pathfinder_from_user_images(tmp_path, monkeypatch):
  rng = np.random.RandomState(0)
  images = []
  for i in range(10):
    image = rng.randint(0, 256, size=(32, 32, 1)).astype(np.uint8)
    images.append(image)
    tf.io.write_file(str(tmp_path / "imgs" / "0" / f"sample_{i}.png"),
                     tf.io.encode_png(image))
    _write(str(tmp_path / "metadata" / f"{i}.npy"),
           f"imgs/0 sample_{i}.png 0 {i % 2} 1\n")
  monkeypatch.setenv("MTF_SYNTH_LRA_PATHFINDER_DIR", str(tmp_path))
  train = _examples("lra_pathfinder", "train")
  test = _examples("lra_pathfinder", "test")
  assert (len(train), len(test)) == (8, 1)
  # Byte ids are pixel values + 3, in row-major order, then EOS.
  np.testing.assert_array_equal(train[0]["inputs"][:-1],
                                images[0].ravel().astype(np.int32) + 3)
  assert train[0]["inputs"][-1] == 1
  assert train[1]["targets_pretokenized"] == b"1"


def test_lra_user_path_errors_are_one_line(tmp_path, monkeypatch):
  for variable, name, missing in (
      ("MTF_SYNTH_LRA_AAN_DIR", "lra_retrieval", "new_aan_pairs.train.tsv"),
      ("MTF_SYNTH_LRA_LISTOPS_DIR", "lra_listops_files", "basic_train.tsv"),
      ("MTF_SYNTH_LRA_PATHFINDER_DIR", "lra_pathfinder", "metadata")):
    monkeypatch.setenv(variable, str(tmp_path))
    with pytest.raises(TaskConfigError) as error:
      _examples(name, "train")
    _assert_one_line(error, missing, str(tmp_path))
    monkeypatch.delenv(variable)
    with pytest.raises(TaskConfigError) as error:
      _examples(name, "train")
    _assert_one_line(error, variable)


def test_missing_sentencepiece_model_is_one_line(tmp_path, monkeypatch):
  vocabulary = seqio.get_mixture_or_task(
      "wmt14_ende").output_features["inputs"].vocabulary
  monkeypatch.delenv("MTF_SYNTH_SPM_MODEL", raising=False)
  with pytest.raises(TaskConfigError) as error:
    vocabulary.encode("hello")
  _assert_one_line(error, "MTF_SYNTH_SPM_MODEL", "user_paths.spm_model",
                   "train_sentencepiece.py")
  monkeypatch.setenv("MTF_SYNTH_SPM_MODEL", str(tmp_path / "none.model"))
  with pytest.raises(TaskConfigError) as error:
    vocabulary.encode("hello")
  _assert_one_line(error, str(tmp_path / "none.model"), "not found")
