"""Which checkpoints a model_dir holds: the latest step, and the steps on disk.

The latest checkpoint's path is tf.train.latest_checkpoint's (the
`checkpoint` file); nothing else parses checkpoint names.
"""

import os
import re

import tensorflow.compat.v1 as tf

_STEP_OF_INDEX = re.compile(r"model\.ckpt-(\d+)\.index$")


def latest_step(model_dir):
  """The global step of model_dir's latest checkpoint, or None."""
  last = tf.train.latest_checkpoint(model_dir)
  return int(tf.train.load_variable(last, "global_step")) if last else None


def steps(model_dir):
  """The steps of every checkpoint on disk in model_dir, ascending.

  Globbed rather than read from the `checkpoint` file, which drops the old
  checkpoints that keep_checkpoint_every_n_hours keeps on disk.
  """
  pattern = os.path.join(model_dir, "model.ckpt-*.index")
  return sorted(int(_STEP_OF_INDEX.search(path).group(1))
                for path in tf.io.gfile.glob(pattern)
                if _STEP_OF_INDEX.search(path))
