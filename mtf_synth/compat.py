"""Makes mesh-tensorflow 0.1.21, gin.tf and t5 0.9.4 import and run on TF 2.21.

Every fix for modern TensorFlow lives here and nowhere else. `apply()` is
called by `import mtf_synth` before anything imports mesh_tensorflow; it is
idempotent and edits no installed file: it only adds the modules and names
that TensorFlow removed, pointing them at `mtf_synth.runtime`, which rebuilds
the execution engine (the Estimator) that mesh TF and t5 run on.
"""

import importlib.util
import os
import sys
import types

_applied = False


def _install_module(name, module):
  """Registers `module` as importable under `name` (and as its parent's attr)."""
  sys.modules[name] = module
  parent_name, _, child = name.rpartition(".")
  parent = sys.modules.get(parent_name)
  if parent is not None:
    setattr(parent, child, module)


def _import_ortools_first():
  # ortools' bundled protobuf segfaults when imported after TensorFlow; mesh
  # TF's auto_mtf imports it, so load it first when it is installed.
  if "tensorflow" not in sys.modules and importlib.util.find_spec("ortools"):
    importlib.import_module("ortools.sat.python.cp_model")


def _estimator_modules():
  """TF 2.16 removed tf.estimator and tensorflow/python/tpu/tpu_estimator.py.

  mesh TF imports `tensorflow.compat.v1.estimator` (ops.py, transformer.py,
  utils.py, ...) and `tensorflow.python.tpu.{tpu_config,tpu_estimator}`
  (transformer/utils.py); gin.tf subclasses `tf.estimator.SessionRunHook`.
  All of them now resolve to mtf_synth.runtime.estimator.
  """
  import tensorflow as tf
  import tensorflow.compat.v1  # pylint: disable=unused-import
  from mtf_synth.runtime import estimator

  _install_module("tensorflow.compat.v1.estimator", estimator)
  _install_module("tensorflow.compat.v1.estimator.export", estimator.export)
  _install_module("tensorflow.python.tpu.tpu_config", estimator)
  _install_module("tensorflow.python.tpu.tpu_estimator", estimator)
  if not hasattr(tf, "estimator"):
    tf.estimator = estimator


def _tensor_conversion_registry():
  # TF 2.13 moved register_tensor_conversion_function out of framework.ops;
  # mesh_tensorflow/tpu_variables.py still calls it there.
  from tensorflow.python.framework import ops
  from tensorflow.python.framework import tensor_conversion_registry
  if not hasattr(ops, "register_tensor_conversion_function"):
    ops.register_tensor_conversion_function = (
        tensor_conversion_registry.register_tensor_conversion_function)


def _t5_without_torch():
  # t5/models/__init__.py imports hf_model, which needs torch (not a t5
  # requirement; on Linux PyPI a plain torch is a multi-GB CUDA build).
  # Without torch, t5.models imports and only HfPyTorchModel is unavailable.
  if importlib.util.find_spec("torch") is not None:
    return
  name = "t5.models.hf_model"
  if name in sys.modules:
    return

  class HfPyTorchModel:  # pylint: disable=too-few-public-methods
    def __init__(self, *args, **kwargs):
      del args, kwargs
      raise ImportError("t5's HfPyTorchModel needs PyTorch: "
                        "pip install torch==2.13.0 (CPU build).")

  module = types.ModuleType(name, "Placeholder: torch is not installed.")
  module.HfPyTorchModel = HfPyTorchModel
  sys.modules[name] = module


def _contrib_image():
  # tf.contrib (removed in TF 2.0) is imported by
  # mesh_tensorflow/experimental/data_aug_lib.py for contrib.image.transform;
  # ImageProjectiveTransformV3 is the op that function wrapped.
  if "tensorflow.contrib" in sys.modules:
    return
  import tensorflow as tf

  def transform(images, transforms, interpolation="NEAREST", name=None):
    """tf.contrib.image.transform on HWC / NHWC images."""
    with tf.name_scope(name or "transform"):
      images = tf.convert_to_tensor(images)
      batched = images.shape.rank == 4
      if not batched:
        images = images[None]
      transforms = tf.reshape(tf.cast(transforms, tf.float32), [-1, 8])
      output = tf.raw_ops.ImageProjectiveTransformV3(
          images=images, transforms=transforms,
          output_shape=tf.shape(images)[1:3], fill_value=0.0,
          interpolation=interpolation.upper(), fill_mode="CONSTANT")
      return output if batched else output[0]

  contrib = types.ModuleType("tensorflow.contrib", "TF 1 contrib, removed.")
  contrib.image = types.ModuleType("tensorflow.contrib.image")
  contrib.image.transform = transform
  sys.modules["tensorflow.contrib"] = contrib
  sys.modules["tensorflow.contrib.image"] = contrib.image


def _decodes_written_as_text():
  # Off TPU, mesh TF detokenizes in the graph (vocabulary.decode_tf), so the
  # decodes reaching utils.write_lines_to_file are bytes and were written as
  # "b'...'" under Python 3; the TPU path wrote text. Write text everywhere.
  from mesh_tensorflow.transformer import utils
  write_lines = utils.write_lines_to_file
  if getattr(write_lines, "_mtf_synth_text", False):
    return

  def write_lines_to_file(lines, filename):
    write_lines([line.decode("utf-8") if isinstance(line, bytes) else line
                 for line in lines], filename)

  write_lines_to_file._mtf_synth_text = True  # pylint: disable=protected-access
  utils.write_lines_to_file = write_lines_to_file


def _mtf_model_eval_creates_summary_dir():
  # t5's MtfModel.eval writes <model_dir>/<split>_eval/<task>_targets without
  # creating the folder: fine on GCS (no folders), an error on local disks.
  from t5.models import mtf_model
  evaluate = mtf_model.MtfModel.eval
  if getattr(evaluate, "_mtf_synth_makedirs", False):
    return

  def eval_with_summary_dir(self, mixture_or_task_name, *args, **kwargs):
    import tensorflow as tf
    split = kwargs.get("split", "validation")
    tf.io.gfile.makedirs(kwargs.get("summary_dir") or os.path.join(
        self._model_dir, "{}_eval".format(split)))  # pylint: disable=protected-access
    return evaluate(self, mixture_or_task_name, *args, **kwargs)

  eval_with_summary_dir._mtf_synth_makedirs = True  # pylint: disable=protected-access
  mtf_model.MtfModel.eval = eval_with_summary_dir


def apply():
  """Applies every patch once; later calls do nothing."""
  global _applied
  if _applied:
    return
  _import_ortools_first()
  _estimator_modules()
  _tensor_conversion_registry()
  _t5_without_torch()
  _contrib_image()
  _applied = True
  _decodes_written_as_text()
  _mtf_model_eval_creates_summary_dir()
