"""Makes mesh-tensorflow 0.1.21, gin.tf and t5 0.9.4 import and run on TF 2.21.

Every fix for modern TensorFlow lives here and nowhere else. `apply()` is
called by `import mtf_synth` before anything imports mesh_tensorflow; it is
idempotent and edits no installed file: it only adds the modules and names
that TensorFlow removed, pointing them at `mtf_synth.runtime`, which rebuilds
the execution engine (the Estimator) that mesh TF and t5 run on.

It also keeps start-up small: what TensorFlow, tensorflow_text and t5 import
only for code a run may never call (Keras 3, t5's metric packages) is imported
on first use instead (`_DEFERRED_IMPORTS`), and the t5 patches are applied
when t5 is imported, so `import mtf_synth` does not import t5.
"""

import contextlib
import contextvars
import functools
import importlib.abc
import importlib.util
import inspect
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


class _DeferredModule(types.ModuleType):
  """Stands in for a module until one of its attributes is read.

  The first read imports the real module (the stand-in has left sys.modules
  by then, or leaves it first) and copies its namespace into the stand-in,
  so later reads are plain attribute reads.
  """

  def __getattr__(self, name):
    module = self.__dict__.get("_mtf_synth_real")
    if module is None:
      if sys.modules.get(self.__name__) is self:
        del sys.modules[self.__name__]
      module = importlib.import_module(self.__name__)
      self.__dict__.update(module.__dict__, _mtf_synth_real=module)
    try:
      return getattr(module, name)
    except AttributeError:
      # `import pkg.sub` bound the stand-in of pkg; sub may not be imported.
      if not hasattr(module, "__path__"):
        raise
      return importlib.import_module(self.__name__ + "." + name)


# Importer: modules it imports only for code a run may never call. While the
# importer runs, `import NAME` gives a _DeferredModule, which imports the real
# module on first use; afterwards sys.modules holds only real modules again.
_DEFERRED_IMPORTS = {
    # seqio uses tensorflow_text's ops; its __init__ also imports its Keras
    # layers, and with them all of Keras 3 (scipy, sklearn, matplotlib, pandas).
    "tensorflow_text": ("tensorflow_text.python.keras",),
    # t5's metric functions, called only by a decode-and-score eval.
    "t5.evaluation.metrics": ("rouge_score.rouge_scorer", "sklearn",
                              "sklearn.metrics", "scipy", "scipy.stats"),
    # seqio.dataset_providers reads pyglove in one function (hyper-values).
    "seqio.dataset_providers": ("pyglove",),
}
# Importer: modules it imports in try/except ImportError for features no run
# here uses; they are hidden (the import fails) while the importer runs, and
# _tensorflow_optional_imports_when_used gives those features back.
_HIDDEN_IMPORTS = {
    "tensorflow": (
        # TF 2.21's __init__ imports Keras 3 eagerly so that Keras optimizers
        # register for SavedModel loading; TF's loader imports Keras itself
        # when a SavedModel holds one, and tf.keras imports it on first use.
        "keras.src.optimizers",
        # TF's legacy Keras (under tf.compat.v1.layers) checks for scipy
        # sparse arrays in Model.fit.
        "scipy.sparse",
        # TF Lite's converter from JAX functions.
        "jax"),
}


@contextlib.contextmanager
def _imports_deferred(importer):
  """Meanwhile, `importer`'s deferred imports are stand-ins, hidden ones None."""
  installed = {}
  for name in _DEFERRED_IMPORTS.get(importer, ()):
    if name not in sys.modules:
      installed[name] = sys.modules[name] = _DeferredModule(name)
  for name in _HIDDEN_IMPORTS.get(importer, ()):
    if name not in sys.modules:
      installed[name] = sys.modules[name] = None
  try:
    yield
  finally:
    for name, stand_in in installed.items():
      if name in sys.modules and sys.modules[name] is stand_in:
        del sys.modules[name]


class _HookedLoader(importlib.abc.Loader):
  """Executes a module with its deferred imports, then its after-import patch."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    name = module.__name__
    with _imports_deferred(name):
      self._loader.exec_module(module)
    module.__loader__ = module.__spec__.loader = self._loader
    if name in _AFTER_IMPORT:
      _AFTER_IMPORT[name](module)

  def __getattr__(self, name):  # get_source, get_resource_reader, ...
    return getattr(self._loader, name)


class _ImportHooks(importlib.abc.MetaPathFinder):
  """Finds the modules named in the tables above and hooks their loading."""

  def find_spec(self, fullname, path, target=None):
    if fullname not in _HOOKED_MODULES:
      return None
    for finder in sys.meta_path:
      if finder is self or not hasattr(finder, "find_spec"):
        continue
      spec = finder.find_spec(fullname, path, target)
      if spec is not None:
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
          spec.loader = _HookedLoader(spec.loader)
        return spec
    return None


def _install_import_hooks():
  """Hooks the modules not imported yet; patches those that already are."""
  if not any(isinstance(f, _ImportHooks) for f in sys.meta_path):
    sys.meta_path.insert(0, _ImportHooks())
  for name, patch in _AFTER_IMPORT.items():
    if name in sys.modules:
      patch(sys.modules[name])


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


# Whether the model_fn being built runs on TPU (None: not known).
_BUILDING_FOR_TPU = contextvars.ContextVar("mtf_synth_building_for_tpu",
                                           default=None)


def _model_fn_knows_tpu(make_model_fn):
  # Lets graph-building patches (_beam_search_per_example_off_tpu) see the
  # use_tpu that utils.run gave the model_fn.
  signature = inspect.signature(make_model_fn)

  def tpu_estimator_model_fn(*args, **kwargs):
    use_tpu = bool(signature.bind(*args, **kwargs).arguments["use_tpu"])
    model_fn = make_model_fn(*args, **kwargs)

    @functools.wraps(model_fn)
    def model_fn_knowing_tpu(*model_args, **model_kwargs):
      token = _BUILDING_FOR_TPU.set(use_tpu)
      try:
        return model_fn(*model_args, **model_kwargs)
      finally:
        _BUILDING_FOR_TPU.reset(token)

    return model_fn_knowing_tpu

  return tpu_estimator_model_fn


def _beam_search_per_example_off_tpu(beam_search):
  # Unitransformer.beam_search always passes use_tpu=True, so with a layout
  # and mesh shape (utils.run always gives them) beam search took TPU's
  # shortcuts off TPU too: it gathered every decoder state (the attention
  # caches) through one [batch x beam]^2 selector matmul instead of a
  # [beam]^2 one per example, batch times the work (6.2 of a beam-4 demo
  # decode's 6.4 s at batch 32, BENCHMARKS.md). Off TPU it gets no layout or
  # mesh shape, which only those shortcuts read: it then gathers per example
  # and takes the top 2 x beam over all of the vocabulary at once.
  signature = inspect.signature(beam_search)

  def beam_search_per_example(*args, **kwargs):
    if _BUILDING_FOR_TPU.get() is False:
      bound = signature.bind(*args, **kwargs)
      bound.arguments["layout"] = bound.arguments["mesh_shape"] = None
      args, kwargs = bound.args, bound.kwargs
    return beam_search(*args, **kwargs)

  return beam_search_per_example


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


def _tensorflow_optional_imports_when_used(tensorflow):
  # With the imports of _HIDDEN_IMPORTS hidden, TF's modules set the names
  # below to None; these stand-ins import the real function at first call.
  del tensorflow
  from tensorflow.lite.python import util as lite_util
  from tensorflow.python.keras.engine import training_arrays_v1
  from tensorflow.python.keras.engine import training_v1

  def issparse(value):
    try:
      from scipy.sparse import issparse as scipy_issparse  # pylint: disable=g-import-not-at-top
    except ImportError:
      return False
    return scipy_issparse(value)

  def jit(*args, **kwargs):
    from jax import jit as jax_jit  # pylint: disable=g-import-not-at-top
    return jax_jit(*args, **kwargs)

  for module in (training_arrays_v1, training_v1):
    if module.issparse is None:
      module.issparse = issparse
  if lite_util._jit is None and importlib.util.find_spec("jax"):  # pylint: disable=protected-access
    lite_util._jit = jit  # pylint: disable=protected-access
    lite = sys.modules.get("tensorflow.lite.python.lite")
    if lite is not None:
      lite._jit = jit  # pylint: disable=protected-access


def _sklearn_metric_checked_when_called(sklearn_metrics_wrapper):
  # t5.data.glue_utils builds CoLA's metric at import through this wrapper,
  # whose name check read sklearn.metrics, so every start imported
  # scikit-learn (and pandas, scipy); the check now runs at the first call.
  def wrapper_checked_when_called(metric_str, *args, **kwargs):
    def metric_fn(targets, predictions):
      return sklearn_metrics_wrapper(metric_str, *args, **kwargs)(
          targets, predictions)

    return metric_fn

  return wrapper_checked_when_called


def _patch_t5_metrics(metrics):
  _patch_once(metrics, "sklearn_metrics_wrapper",
              _sklearn_metric_checked_when_called)


def _import_t5_models(t5):
  # t5/__init__ does not import t5.models; mtf_synth used to, and users
  # reach t5.models.MtfModel and bind its gin configurables
  # (mesh_eval_dataset_fn, ...) after `import t5`: keep that working.
  del t5
  importlib.import_module("t5.models")


def _patch_mesh_tf_utils(utils):
  from mtf_synth.runtime import checkpoints  # pylint: disable=g-import-not-at-top
  _patch_once(utils, "write_lines_to_file", _decodes_written_as_text)
  _patch_once(utils, "get_checkpoint_iterator",
              checkpoints.held_checkpoint_iterator)
  _patch_once(utils, "tpu_estimator_model_fn",
              lambda make: _scoring_model_fn(_model_fn_knows_tpu(make)))


class _BeamSearchGathersByIndex:
  """mesh_tensorflow for beam_search.py, whose state reorder is
  einsum([state, one-hot selector]) reducing `old_beam`, one product over
  every cache per step; mtf_synth.attention.decoding.gather_beams does it as
  an index gather (a one-hot product again on TPU)."""

  def __init__(self, mtf):
    self._mtf = mtf

  def __getattr__(self, name):
    return getattr(self._mtf, name)

  def einsum(self, xs, output_shape=None, reduced_dims=None, name=None):
    if (len(xs) == 2 and reduced_dims and len(reduced_dims) == 1 and
        reduced_dims[0].name == "old_beam"):
      from mtf_synth.attention import decoding  # pylint: disable=g-import-not-at-top
      return decoding.gather_beams(xs[0], xs[1], reduced_dims[0],
                                   output_shape or xs[0].shape)
    return self._mtf.einsum(xs, output_shape, reduced_dims, name)


def _patch_transformer(transformer):
  # Ids mesh TF pads the vocabulary with are masked out of the logits and
  # the loss (mtf_synth.padded_vocabulary).
  from mtf_synth import padded_vocabulary  # pylint: disable=g-import-not-at-top
  _patch_once(transformer.Unitransformer, "_call_internal",
              padded_vocabulary.logits_without_padded_ids)
  _patch_once(transformer.Unitransformer, "_compute_loss",
              padded_vocabulary.loss_without_padded_ids)


def _patch_beam_search(beam_search_module):
  _patch_once(beam_search_module, "beam_search",
              _beam_search_per_example_off_tpu)
  if not isinstance(beam_search_module.mtf, _BeamSearchGathersByIndex):
    beam_search_module.mtf = _BeamSearchGathersByIndex(beam_search_module.mtf)


def _self_attention_decodes_by_index(call):
  # Mesh TF's incremental step rewrites each whole key/value cache with
  # one-hot arithmetic and attends over every cache position (BENCHMARKS.md,
  # decode profile); mtf_synth.layers.decoding writes by index and attends
  # over the filled prefix, for the layers it reproduces exactly.
  def call_decoding_by_index(self, context, x, losses=None):
    from mtf_synth.layers import decoding  # pylint: disable=g-import-not-at-top
    if context.mode == "incremental" and decoding.decodes_by_index(self):
      return decoding.self_attention_step(self, context, x, losses)
    if context.mode == "first_part" and decoding.decodes_by_index(self):
      return decoding.self_attention_first_part(self, context, x, losses,
                                                call)
    return call(self, context, x, losses)

  return call_decoding_by_index


def _patch_transformer_layers(transformer_layers):
  _patch_once(transformer_layers.SelfAttention, "call",
              _self_attention_decodes_by_index)


def _gradients_reduced_together(apply_grads):
  # One message per shard, not per variable, for a cluster's gradient sums
  # (mtf_synth.gradient_allreduce, imported at the call: mesh_tensorflow is
  # still importing when its optimize module is patched).
  def apply_grads_grouped(self, grads, variables):
    from mtf_synth import gradient_allreduce  # pylint: disable=g-import-not-at-top
    return apply_grads(self, gradient_allreduce.grouped_gradients(grads),
                       variables)

  return apply_grads_grouped


def _patch_optimize(optimize):
  _patch_once(optimize.Optimizer, "apply_grads", _gradients_reduced_together)


def _patch_mesh_tf(mesh_tensorflow):
  # Decoding's while loop compiled with XLA off TPU (mtf_synth.decode_loop):
  # its body is hundreds of small ops per step, each costing TF's executor
  # more than its math.
  # (beam_search.py reads it from ops_with_redefined_builtins.)
  from mtf_synth import decode_loop  # pylint: disable=g-import-not-at-top
  for namespace in (mesh_tensorflow,
                    mesh_tensorflow.ops_with_redefined_builtins):
    _patch_once(namespace, "while_loop", decode_loop.marking_decode_loops)
  _patch_once(mesh_tensorflow.ops.WhileLoopOperation, "lower",
              decode_loop.lowering_marked_loops_compiled)
  _patch_once(mesh_tensorflow.ops, "_einsum_helper",
              decode_loop.reducing_einsums_as_dots_when_compiled)


def _patch_mtf_model(mtf_model):
  model = mtf_model.MtfModel
  _patch_once(model, "eval", _mtf_model_eval_creates_summary_dir)
  _patch_once(model, "train", _mtf_model_train_schedule_knows_total_steps)
  _patch_once(model, "finetune", _mtf_model_finetune_takes_main_arguments)


# Module: its patch, applied as soon as the module is imported (or at once,
# when it already is), so importing mtf_synth does not import t5.
_AFTER_IMPORT = {
    "tensorflow": _tensorflow_optional_imports_when_used,
    "mesh_tensorflow": _patch_mesh_tf,
    "mesh_tensorflow.beam_search": _patch_beam_search,
    "mesh_tensorflow.transformer.transformer": _patch_transformer,
    "mesh_tensorflow.transformer.transformer_layers": _patch_transformer_layers,
    "mesh_tensorflow.optimize": _patch_optimize,
    "t5": _import_t5_models,
    "t5.evaluation.metrics": _patch_t5_metrics,
    "mesh_tensorflow.transformer.utils": _patch_mesh_tf_utils,
    "t5.models.mtf_model": _patch_mtf_model,
}
_HOOKED_MODULES = frozenset(_DEFERRED_IMPORTS) | frozenset(
    _HIDDEN_IMPORTS) | frozenset(_AFTER_IMPORT)


def apply():
  """Applies every patch once; later calls do nothing."""
  global _applied
  if _applied:
    return
  _quiet_start()
  _import_ortools_first()
  _install_import_hooks()  # before anything below imports TensorFlow
  _estimator_modules()  # mesh TF's TPUEstimator is now runtime/estimator.py
  _tensor_conversion_registry()
  _t5_without_torch()
  _contrib_image()
  _applied = True
