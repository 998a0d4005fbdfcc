"""Data sources that fail with one line: prepared TFDS data and user paths."""
import os
from typing import Dict, Mapping, Optional

import gin
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from tasks.errors import TaskConfigError


@gin.configurable
def user_paths(spm_model: Optional[str] = None,
               convai2_dir: Optional[str] = None,
               lra_listops_dir: Optional[str] = None,
               lra_aan_dir: Optional[str] = None,
               lra_pathfinder_dir: Optional[str] = None) -> Dict[str, str]:
  """Every file or folder the user provides, in one gin-configurable place.

  Each can also be given by the environment variable MTF_SYNTH_<KEY>, e.g.
  MTF_SYNTH_SPM_MODEL; gin wins over the environment.
  """
  return dict(spm_model=spm_model, convai2_dir=convai2_dir,
              lra_listops_dir=lra_listops_dir, lra_aan_dir=lra_aan_dir,
              lra_pathfinder_dir=lra_pathfinder_dir)


def env_var(key: str) -> str:
  return "MTF_SYNTH_" + key.upper()


def require_user_path(key: str, what: str, hint: str = "") -> str:
  """The user's path `key` if it exists; else a one-line TaskConfigError."""
  path = user_paths()[key] or os.environ.get(env_var(key))
  how = (f"set {env_var(key)}=PATH or "
         f"--gin_param=\"user_paths.{key}='PATH'\"" +
         (f" ({hint})" if hint else ""))
  if not path:
    raise TaskConfigError(f"No {what} given: {how}")
  if not tf.io.gfile.exists(path):
    raise TaskConfigError(f"{what} not found: {path}; {how}")
  return path


def user_split_file(directory: str, file_names: Mapping[str, str], split: str,
                    expected: str) -> str:
  """`split`'s file (named in `file_names`) in the user's `directory`, or a
  one-line TaskConfigError naming it and the `expected` contents."""
  path = os.path.join(directory, file_names[split])
  if not tf.io.gfile.exists(path):
    raise TaskConfigError(f"File not found: {path}; expected {expected}")
  return path


class PreparedTfdsSource(seqio.TfdsDataSource):
  """A TFDS source that reads prepared data only and never downloads.

  Nothing can be downloaded on an offline machine, and a half-finished
  download hides the real problem; a missing dataset is one line naming the
  dataset, the directory searched and the command that prepares it.
  """

  def __init__(self, tfds_name: str, splits, **kwargs):
    super().__init__(tfds_name=tfds_name, splits=splits, read_only=True,
                     **kwargs)

  def get_dataset(self, split=None, *args, **kwargs) -> tf.data.Dataset:
    try:
      return super().get_dataset(split, *args, **kwargs)
    except (AssertionError, tfds.core.DatasetNotFoundError, FileNotFoundError,
            tf.errors.NotFoundError) as e:
      name = self.tfds_dataset.name
      data_dir = self.tfds_dataset.data_dir or tfds.core.constants.DATA_DIR
      raise TaskConfigError(
          f"TFDS dataset {name} is not prepared under {data_dir}: run "
          f"`tfds build {name.split(':')[0]} --data_dir=DIR` on a machine "
          f"with network access, then copy DIR here and set TFDS_DATA_DIR=DIR"
          f" ({type(e).__name__})") from None
