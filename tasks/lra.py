"""Long Range Arena tasks (Tay et al. 2021), as in the learned-kernel paper.

All inputs are byte (or token) sequences and all targets a class written as
text, scored with t5's `accuracy`:
- lra_listops: ListOps generated from a seed as in LRA (tasks.listops);
  lra_listops_files: LRA's own basic_{train,val,test}.tsv from a user folder.
- lra_text: byte-level IMDb (TFDS imdb_reviews), inputs cut to 4000 bytes.
- lra_retrieval: AAN document pairs from LRA's new_aan_pairs.*.tsv in a user
  folder; each document cut to 4000 bytes. LRA scores the two documents with
  a two-tower model; the T5 stack has one encoder, so they are concatenated.
- lra_image: CIFAR-10 (TFDS) in grayscale as a sequence of 1024 pixel bytes.
- lra_pathfinder: LRA's pathfinder32 images from a user folder;
  lra_pathfinder_generated: a simplified generator (see `pathfinder_example`).
- kernel_sparsity_{k}of1024: the rounded mean of k digits hidden among 1024
  letters, so the ideal attention's density is k/1024 (our definition: the
  paper's generator is not published with its code).
Pixel images become byte strings, so ByteVocabulary ids are pixel value + 3.
"""
import functools
import os
from typing import Dict

import numpy as np
import seqio
import tensorflow as tf
from t5.evaluation import metrics

from tasks import generated
from tasks import listops
from tasks import registry
from tasks.errors import TaskConfigError
from tasks.sources import PreparedTfdsSource
from tasks.sources import require_user_path
from tasks.sources import user_split_file

TEXT_MAX_BYTES = 4000
IMAGE_SIDE = 32
LRA_SPLITS = {"train": 96000, "validation": 2000, "test": 2000}
ACCURACY = [metrics.accuracy]
# One byte string per pixel value, to write an image as a string of bytes.
_PIXEL_BYTES = [bytes([value]) for value in range(256)]


def _truncate(text: tf.Tensor) -> tf.Tensor:
  return tf.strings.substr(text, 0, TEXT_MAX_BYTES)


def _label_text(label: tf.Tensor) -> tf.Tensor:
  return tf.strings.as_string(tf.cast(label, tf.int64))


def _pixels_to_bytes(image: tf.Tensor) -> tf.Tensor:
  """uint8 image -> string of its pixels in row-major order."""
  pixels = tf.reshape(tf.cast(image, tf.int32), [-1])
  return tf.strings.reduce_join(tf.gather(tf.constant(_PIXEL_BYTES), pixels))


# =================================== ListOps ==================================
registry.add_task(
    "lra_listops",
    generated.streamed_source(listops.listops_example, 0, LRA_SPLITS),
    output_features=listops.OUTPUT_FEATURES, metric_fns=ACCURACY)

LISTOPS_FILES = {"train": "basic_train.tsv", "validation": "basic_val.tsv",
                 "test": "basic_test.tsv"}


def lra_listops_dir() -> str:
  return require_user_path("lra_listops_dir", "LRA ListOps folder",
                           "lra_release/listops-1000 from the LRA release")


def _read_listops_tsv(split: str, shuffle_files: bool,
                      seed=None) -> tf.data.Dataset:
  del shuffle_files, seed  # Files are read in order; seqio shuffles.
  path = user_split_file(lra_listops_dir(), LISTOPS_FILES, split,
                         "the LRA release's ListOps TSV (Source<TAB>Target)")
  lines = tf.data.TextLineDataset(path).skip(1)  # Header: Source, Target.

  def parse(line):
    fields = tf.strings.split(line, "\t", maxsplit=1)
    source, target = fields[0], fields[1]
    # LRA's loaders drop the parentheses; one token per word remains.
    source = tf.strings.regex_replace(source, r"[()]", " ")
    source = tf.strings.strip(tf.strings.regex_replace(source, " +", " "))
    return {"inputs": source, "targets": tf.strings.strip(target)}

  return lines.map(parse)


registry.add_task(
    "lra_listops_files",
    seqio.FunctionDataSource(_read_listops_tsv, splits=LISTOPS_FILES),
    output_features=listops.OUTPUT_FEATURES, metric_fns=ACCURACY)

# ==================================== Text ====================================
@seqio.map_over_dataset
def _imdb_bytes(x):
  return {"inputs": _truncate(x["text"]), "targets": _label_text(x["label"])}


registry.add_task(
    "lra_text",
    PreparedTfdsSource("imdb_reviews/plain_text:1.0.0",
                       splits=("train", "test")),
    text_preprocessors=[_imdb_bytes], metric_fns=ACCURACY)

# ================================== Retrieval =================================
AAN_FILES = {"train": "new_aan_pairs.train.tsv",
             "validation": "new_aan_pairs.eval.tsv",
             "test": "new_aan_pairs.test.tsv"}
DOCUMENT_SEPARATOR = "\n\n"


def lra_aan_dir() -> str:
  return require_user_path("lra_aan_dir", "LRA AAN retrieval folder",
                           "lra_release/tsv_data from the LRA release")


def _read_aan_tsv(split: str, shuffle_files: bool,
                  seed=None) -> tf.data.Dataset:
  """label, id1, id2, text1, text2 per line (LRA's layout, no header)."""
  del shuffle_files, seed  # Files are read in order; seqio shuffles.
  path = user_split_file(lra_aan_dir(), AAN_FILES, split,
                         "LRA's AAN TSV (label, id1, id2, text1, text2)")

  def parse(line):
    fields = tf.strings.split(line, "\t", maxsplit=4)
    label = tf.strings.to_number(fields[0], tf.float32)
    return {"inputs": tf.strings.join([_truncate(fields[3]),
                                       _truncate(fields[4])],
                                      separator=DOCUMENT_SEPARATOR),
            "targets": _label_text(tf.cast(label, tf.int64))}

  return tf.data.TextLineDataset(path).map(parse)


registry.add_task(
    "lra_retrieval", seqio.FunctionDataSource(_read_aan_tsv, splits=AAN_FILES),
    metric_fns=ACCURACY)

# ==================================== Image ===================================
@seqio.map_over_dataset
def _grayscale_pixels(x):
  gray = tf.image.rgb_to_grayscale(x["image"])  # uint8 stays uint8.
  return {"inputs": _pixels_to_bytes(gray),
          "targets": _label_text(x["label"])}


registry.add_task(
    "lra_image", PreparedTfdsSource("cifar10:3.0.2", splits=("train", "test")),
    text_preprocessors=[_grayscale_pixels], metric_fns=ACCURACY)

# ================================== Pathfinder ================================
def lra_pathfinder_dir() -> str:
  return require_user_path("lra_pathfinder_dir", "LRA Pathfinder folder",
                           "e.g. lra_release/pathfinder32/curv_baseline")


def _pathfinder_split_files(split: str):
  """LRA-style metadata files, split 80/10/10 by file in sorted order."""
  metadata_dir = os.path.join(lra_pathfinder_dir(), "metadata")
  if not tf.io.gfile.isdir(metadata_dir):
    raise TaskConfigError(f"Pathfinder metadata folder not found: "
                          f"{metadata_dir}; point lra_pathfinder_dir at a "
                          "folder holding metadata/ and the image folders")
  files = sorted(tf.io.gfile.listdir(metadata_dir))
  bounds = {"train": (0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}
  low, high = (int(round(b * len(files))) for b in bounds[split])
  return [os.path.join(metadata_dir, f) for f in files[low:high]]


def _read_pathfinder(split: str, shuffle_files: bool,
                     seed=None) -> tf.data.Dataset:
  """Each metadata line: image_subdir image_name _ label ..."""
  del shuffle_files, seed  # Files are read in order; seqio shuffles.
  root = lra_pathfinder_dir()
  paths, labels = [], []
  for metadata in _pathfinder_split_files(split):
    with tf.io.gfile.GFile(metadata) as f:
      for line in f.read().splitlines():
        fields = line.split()
        if len(fields) >= 4:
          paths.append(os.path.join(root, fields[0], fields[1]))
          labels.append(int(fields[3]))
  if not paths:
    raise TaskConfigError(f"No Pathfinder examples for split {split!r} under "
                          f"{root}/metadata; expected lines "
                          "'imgs/0 sample_0.png 0 LABEL'")

  def load(path, label):
    image = tf.io.decode_png(tf.io.read_file(path), channels=1)
    return {"inputs": _pixels_to_bytes(image), "targets": _label_text(label)}

  return tf.data.Dataset.from_tensor_slices((paths, labels)).map(load)


registry.add_task(
    "lra_pathfinder",
    seqio.FunctionDataSource(_read_pathfinder,
                             splits=("train", "validation", "test")),
    metric_fns=ACCURACY)


def _snake(rng: np.random.RandomState, canvas: np.ndarray, value: int):
  """Draws a dashed, gently curving path; returns its two end points."""
  side = canvas.shape[0]
  position = rng.uniform(4, side - 4, size=2)
  angle = rng.uniform(0, 2 * np.pi)
  points = []
  for step in range(rng.randint(14, 28)):
    angle += rng.normal(0, 0.35)
    position = np.clip(position + [np.cos(angle), np.sin(angle)], 1, side - 2)
    points.append(position.astype(int))
    if step % 4 != 3:  # Dashes: three pixels on, one off.
      canvas[tuple(points[-1])] = value
  return points[0], points[-1]


def pathfinder_example(rng: np.random.RandomState,
                       distractors: int = 2) -> Dict[str, bytes]:
  """Are the two marked dots joined by one path? ("1") or not ("0").

  A simplified Pathfinder (LRA's uses Linsley et al.'s renderer): dashed
  random paths on a 32x32 canvas, dots (2x2, brightest) on the ends of one
  path, or on ends of two different paths.
  """
  canvas = np.zeros((IMAGE_SIDE, IMAGE_SIDE), np.uint8)
  ends = [_snake(rng, canvas, 160) for _ in range(distractors + 1)]
  connected = rng.rand() < 0.5
  dots = [ends[0][0], ends[0][1] if connected else ends[1][1]]
  for row, column in dots:
    canvas[row:row + 2, column:column + 2] = 255
  return {"inputs": canvas.tobytes(), "targets": str(int(connected))}


registry.add_task(
    "lra_pathfinder_generated",
    generated.streamed_source(
        pathfinder_example, 0,
        {"train": 160000, "validation": 20000, "test": 20000}),
    metric_fns=ACCURACY)

# ============================ Controllable sparsity ===========================
for _relevant in (8, 64, 512):
  registry.add_task(
      f"kernel_sparsity_{_relevant}of1024",
      generated.streamed_source(
          functools.partial(generated.sparsity_example, length=1024,
                            relevant=_relevant), _relevant, LRA_SPLITS),
      metric_fns=ACCURACY)

