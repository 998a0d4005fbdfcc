"""Makes mesh-tensorflow 0.1.21, gin.tf and t5 0.9.4 import and run on TF 2.21.

Every fix for modern TensorFlow lives here and nowhere else. `apply()` is
called by `import mtf_synth` before anything imports mesh_tensorflow; it is
idempotent and edits no installed file: it only adds the modules and names
that TensorFlow removed, pointing them at `mtf_synth.runtime`, which rebuilds
the execution engine (the Estimator) that mesh TF and t5 run on.
"""

import contextlib
import functools
import importlib.util
import os
import sys
import types
import warnings

import gin

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


def _patch_once(owner, name, make_replacement):
  """Replaces owner.name by make_replacement(original), once."""
  original = getattr(owner, name)
  if getattr(original, "_mtf_synth_patched", False):
    return
  replacement = make_replacement(original)
  replacement._mtf_synth_patched = True  # pylint: disable=protected-access
  setattr(owner, name, replacement)


def _decodes_written_as_text(write_lines):
  # Off TPU, mesh TF detokenizes in the graph (vocabulary.decode_tf), so the
  # decodes reaching utils.write_lines_to_file are bytes and were written as
  # "b'...'" under Python 3; the TPU path wrote text. Write text everywhere.
  def write_lines_to_file(lines, filename):
    write_lines([line.decode("utf-8") if isinstance(line, bytes) else line
                 for line in lines], filename)

  return write_lines_to_file


def _scoring_model_fn(make_model_fn):
  # Off TPU, mesh TF's model_fn detokenizes the scored targets in the graph
  # (vocabulary.decode_tf), but its scoring code reads them as ids, as they
  # are on TPU (score_with_estimator: .any(); save_scores: .tolist(), lengths,
  # negative ids of unscored prefixes), so score_eval, score_from_strings and
  # score_from_dataset crashed off TPU. The model_fn uses its vocabulary for
  # nothing but detokenizing, so a scoring model_fn gets none.
  # And an exported scorer answered batch_size rows whatever the request: the
  # serving input pads requests to the batch and says how many rows are real
  # (predict_batch_size), which only the predict branch used to cut.
  def tpu_estimator_model_fn(*args, vocabulary=None,
                             score_in_predict_mode=False, **kwargs):
    if not score_in_predict_mode:
      return make_model_fn(*args, vocabulary=vocabulary, **kwargs)
    model_fn = make_model_fn(*args, vocabulary=None,
                             score_in_predict_mode=True, **kwargs)

    def score_model_fn(features, labels, mode, params=None, config=None):
      rows = features.get("predict_batch_size")
      spec = model_fn(features, labels, mode, params=params, config=config)
      if rows is None or spec.predictions is None:
        return spec
      return spec._replace(predictions={
          key: value[:rows] for key, value in spec.predictions.items()})

    return score_model_fn

  return tpu_estimator_model_fn


def _mtf_model_eval_creates_summary_dir(evaluate):
  # t5's MtfModel.eval writes <model_dir>/<split>_eval/<task>_targets without
  # creating the folder: fine on GCS (no folders), an error on local disks.
  def eval_with_summary_dir(self, mixture_or_task_name, *args, **kwargs):
    import tensorflow as tf
    split = kwargs.get("split", "validation")
    tf.io.gfile.makedirs(kwargs.get("summary_dir") or os.path.join(
        self._model_dir, "{}_eval".format(split)))  # pylint: disable=protected-access
    return evaluate(self, mixture_or_task_name, *args, **kwargs)

  return eval_with_summary_dir


def _mtf_model_train_schedule_knows_total_steps(train):
  # t5 bug: MtfModel.train gives mesh TF its learning-rate schedule without
  # the `total_train_steps` that utils.run binds (the default
  # learning_rate_schedule_noam requires it); bound here as utils.run does.
  from mesh_tensorflow.transformer import learning_rate_schedules

  def train_with_total_steps(self, mixture_or_task_name, steps, *args,
                             **kwargs):
    schedule = self._learning_rate_schedule  # pylint: disable=protected-access
    bound = schedule
    if isinstance(bound, list):
      bound = functools.partial(
          learning_rate_schedules.product_learning_rate, factors=bound)
    if callable(bound):
      bound = functools.partial(bound, total_train_steps=steps)
    self._learning_rate_schedule = bound  # pylint: disable=protected-access
    try:
      return train(self, mixture_or_task_name, steps, *args, **kwargs)
    finally:
      self._learning_rate_schedule = schedule  # pylint: disable=protected-access

  return train_with_total_steps


def _mtf_model_finetune_takes_main_arguments(finetune):
  # t5 bug: mesh_transformer_main calls MtfModel.finetune(steps=...,
  # checkpoint_steps=...), whose parameters are finetune_steps and
  # pretrained_checkpoint_step.
  def finetune_with_main_arguments(self, mixture_or_task_name,
                                   finetune_steps=None,
                                   pretrained_model_dir=None,
                                   pretrained_checkpoint_step=-1,
                                   split="train", steps=None,
                                   checkpoint_steps=None):
    if not pretrained_model_dir:
      from mtf_synth import errors
      raise errors.UserError("finetuning needs a pretrained model: pass "
                             "--pretrained_model_dir (pretrained_model_dir=)")
    return finetune(
        self, mixture_or_task_name,
        finetune_steps if steps is None else steps, pretrained_model_dir,
        (pretrained_checkpoint_step if checkpoint_steps is None
         else checkpoint_steps), split=split)

  return finetune_with_main_arguments


@gin.configurable("off_tpu_variable_dtype", module="mtf_synth")
def off_tpu_variable_dtype(slice_dtype="float32", activation_dtype="float32"):
  """The slice and activation dtypes of a run without --tpu (a gin knob).

  Off TPU, t5's main and MtfModel.estimator bind utils.get_variable_dtype's
  slice and activation dtypes to float32 after the user's gin is parsed
  (over t5's decode gin files' bfloat16, meant for TPUs). These values are
  used instead: float32 by default, as in t5; bfloat16 activations pay on
  CPUs with AVX512-BF16 and on GPUs (BENCHMARKS.md).

  Returns:
    {"slice_dtype": ..., "activation_dtype": ...}
  """
  return {"slice_dtype": slice_dtype, "activation_dtype": activation_dtype}


@contextlib.contextmanager
def variable_dtypes(dtypes):
  """mesh TF runs with `dtypes` (get_variable_dtype's arguments) meanwhile.

  mesh TF reads the dtypes through utils.get_variable_dtype(), whose
  arguments outrank the float32 that t5 binds off TPU.

  Args:
    dtypes: {"slice_dtype" / "activation_dtype": value}; empty: gin's.
  """
  from mesh_tensorflow.transformer import utils
  original = utils.get_variable_dtype
  if dtypes:
    utils.get_variable_dtype = functools.partial(original, **dtypes)
  try:
    yield
  finally:
    utils.get_variable_dtype = original


def _quiet_start():
  # mesh TF's `import pkg_resources` warns on every start; not actionable.
  # (TF's C++ start-up lines are printed before absl logging is initialised
  # and ignore TF_CPP_MIN_LOG_LEVEL, so they stay.)
  warnings.filterwarnings("ignore", message="pkg_resources is deprecated",
                          category=UserWarning)


def apply():
  """Applies every patch once; later calls do nothing."""
  global _applied
  if _applied:
    return
  _quiet_start()
  _import_ortools_first()
  _estimator_modules()  # mesh TF's TPUEstimator is now runtime/estimator.py
  _tensor_conversion_registry()
  _t5_without_torch()
  _contrib_image()
  _applied = True
  from mesh_tensorflow.transformer import utils
  from t5.models import mtf_model
  _patch_once(utils, "write_lines_to_file", _decodes_written_as_text)
  _patch_once(utils, "tpu_estimator_model_fn", _scoring_model_fn)
  model = mtf_model.MtfModel
  _patch_once(model, "eval", _mtf_model_eval_creates_summary_dir)
  _patch_once(model, "train", _mtf_model_train_schedule_knows_total_steps)
  _patch_once(model, "finetune", _mtf_model_finetune_takes_main_arguments)
