"""The Estimator API surface that mesh TF and t5 call, rebuilt on TF 2.21.

TensorFlow 2.16 removed tf.estimator and TPUEstimator. mesh TF's
`transformer/utils.py` (and so `utils.run`, t5's `MtfModel` and the
`t5_mesh_transformer` command line) builds a `TPUEstimator` around its own
model_fn and calls `train`, `evaluate`, `predict` and `export_saved_model` on
it. This module provides those classes with the same constructor arguments,
running the model_fn in TF1 graph mode with MonitoredTrainingSession, Saver
and v1 summaries, so upstream code runs unchanged (see README, "Design").
"""

import collections
import contextlib
import os
import types

import tensorflow as tf2
import tensorflow.compat.v1 as tf

from mtf_synth import errors
from mtf_synth.runtime import checkpoints
from mtf_synth.runtime import cluster as cluster_lib
from mtf_synth.runtime import tpu
from mtf_synth.runtime import train_loop

SessionRunHook = tf.train.SessionRunHook
SessionRunArgs = tf.train.SessionRunArgs
CheckpointSaverListener = tf.train.CheckpointSaverListener


class ModeKeys:
  TRAIN = "train"
  EVAL = "eval"
  PREDICT = "infer"


_SPEC_FIELDS = ("mode", "predictions", "loss", "train_op", "eval_metric_ops",
                "eval_metrics", "host_call", "scaffold", "scaffold_fn",
                "training_hooks", "training_chief_hooks", "evaluation_hooks",
                "prediction_hooks", "export_outputs")


class EstimatorSpec(collections.namedtuple("EstimatorSpec", _SPEC_FIELDS)):
  """What a model_fn returns; one class for EstimatorSpec and TPUEstimatorSpec.

  `eval_metrics` is TPUEstimatorSpec's (metric_fn, tensors) pair,
  `eval_metric_ops` Estimator's dict of (value, update_op).
  """

  def __new__(cls, mode, predictions=None, loss=None, train_op=None,
              eval_metric_ops=None, eval_metrics=None, host_call=None,
              scaffold=None, scaffold_fn=None, training_hooks=None,
              training_chief_hooks=None, evaluation_hooks=None,
              prediction_hooks=None, export_outputs=None):
    return super().__new__(
        cls, mode, predictions, loss, train_op, eval_metric_ops, eval_metrics,
        host_call, scaffold, scaffold_fn, list(training_hooks or []),
        list(training_chief_hooks or []), list(evaluation_hooks or []),
        list(prediction_hooks or []), export_outputs)


TPUEstimatorSpec = EstimatorSpec


class InputPipelineConfig:
  PER_SHARD_V1 = 1
  PER_HOST_V1 = 2
  PER_HOST_V2 = 3
  BROADCAST = 4
  SLICED = 5


class TPUConfig:
  """TPU settings; only iterations_per_loop and tpu_job_name are read."""

  def __init__(self, iterations_per_loop=2, num_shards=None,
               num_cores_per_replica=None, per_host_input_for_training=True,
               tpu_job_name=None, **unused_kwargs):
    self.iterations_per_loop = iterations_per_loop
    self.num_shards = num_shards
    self.num_cores_per_replica = num_cores_per_replica
    self.per_host_input_for_training = per_host_input_for_training
    self.tpu_job_name = tpu_job_name


class RunConfig:
  """Run settings of tf.estimator.RunConfig / tpu_config.RunConfig."""

  def __init__(self, tpu_config=None, cluster=None, model_dir=None,
               session_config=None, save_checkpoints_steps=None,
               save_checkpoints_secs=None, keep_checkpoint_max=5,
               save_summary_steps=100, log_step_count_steps=100,
               tf_random_seed=None, **unused_kwargs):
    self.tpu_config = tpu_config or TPUConfig()
    self.cluster = cluster
    self.model_dir = model_dir
    # mesh TF passes no cluster off TPU: a cluster's chief runs its sessions
    # on its own server (runtime/cluster.py).
    self.session_config = session_config or cluster_lib.session_config()
    self.save_checkpoints_steps = save_checkpoints_steps
    self.save_checkpoints_secs = save_checkpoints_secs
    self.keep_checkpoint_max = keep_checkpoint_max
    self.save_summary_steps = save_summary_steps
    self.log_step_count_steps = log_step_count_steps
    self.tf_random_seed = tf_random_seed
    self.master = (cluster.master() if cluster is not None
                   else cluster_lib.session_target())


class ServingInputReceiver(collections.namedtuple(
    "ServingInputReceiver", ("features", "receiver_tensors"))):
  """What a serving_input_receiver_fn returns for export_saved_model."""


export = types.ModuleType(__name__ + ".export", "tf.estimator.export names.")
export.ServingInputReceiver = ServingInputReceiver


@contextlib.contextmanager
def _graph_on_chief():
  """A new graph whose ops without a device run on a cluster's chief.

  Else "/cpu:0" (the input pipeline) would match every task's CPU:0. Mesh
  slices name their task in full, so they stay where the mesh puts them.
  """
  with tf.Graph().as_default() as graph, tf.device(
      cluster_lib.chief_device()):
    yield graph


def _until_padding(dataset):
  """`dataset` up to its first batch of zeroed-out examples only.

  Mesh TF pads eval datasets with such examples to a fixed number of steps
  (utils.run.perplexity_eval_steps, 100 batches whatever the split's size);
  they weigh nothing in any metric, so the metrics are the same without them.
  """
  def has_real_example(*element):
    ids = [t for t in tf.nest.flatten(element) if t.dtype.is_integer]
    if not ids:
      return tf.constant(True)
    return tf.reduce_any([tf.reduce_any(tf.not_equal(t, 0)) for t in ids])
  return dataset.take_while(has_real_example)


class TPUEstimator:
  """Runs a mesh TF model_fn for training, evaluation, prediction and export.

  Same constructor and methods as tf.estimator.tpu.TPUEstimator, so mesh TF's
  `utils.get_estimator` and t5's `MtfModel` use it unchanged. The training
  loop, checkpointing, logging and summaries are mtf_synth.runtime.train_loop.
  """

  def __init__(self, model_fn, model_dir=None, config=None, params=None,
               use_tpu=True, train_batch_size=None, eval_batch_size=None,
               predict_batch_size=None, export_to_tpu=True, **unused_kwargs):
    del export_to_tpu
    self._model_fn = model_fn
    self._config = config or RunConfig()
    self._model_dir = model_dir or self._config.model_dir
    self._params = dict(params or {})
    self._use_tpu = bool(use_tpu)
    # TPU: one replica per core of the slice (num_cores_per_replica is 1).
    self._num_replicas = self._config.tpu_config.num_shards
    self._device_assignment = None  # set by tests to skip TPU initialization
    self._batch_sizes = {ModeKeys.TRAIN: train_batch_size,
                         ModeKeys.EVAL: eval_batch_size,
                         ModeKeys.PREDICT: predict_batch_size}

  @property
  def model_dir(self):
    return self._model_dir

  @property
  def config(self):
    return self._config

  def latest_checkpoint(self):
    """The newest intact checkpoint (the trainer resumes from it)."""
    return checkpoints.newest_intact(self._model_dir)

  def get_variable_value(self, name):
    return tf.train.load_variable(self.latest_checkpoint(), name)

  def _build(self, input_fn, mode):
    """Builds input pipeline and model in the current graph; returns spec."""
    tf.train.get_or_create_global_step()
    params = dict(self._params, batch_size=self._batch_sizes[mode],
                  use_tpu=self._use_tpu)
    with tf.device("/cpu:0"):
      data = input_fn(params)
      if mode == ModeKeys.EVAL and isinstance(data, tf2.data.Dataset):
        data = _until_padding(data)
      if isinstance(data, tf2.data.Dataset):  # V1 datasets subclass it too
        data = tf.data.make_one_shot_iterator(data).get_next()
      features, labels = data if isinstance(data, tuple) else (data, None)
    if self._use_tpu and mode == ModeKeys.TRAIN:
      assignment = self._device_assignment or tpu.initialize_system(
          self._config.master, self._num_replicas)
      params["context"] = tpu.TPUContext(
          assignment, self._config.tpu_config.tpu_job_name)
      spec = tpu.replicated_spec(self._call_model_fn, features, mode, params,
                                 assignment)
    else:
      spec = self._call_model_fn(features, labels, mode, params)
    return spec, features

  def _call_model_fn(self, features, labels, mode, params):
    # Resource variables: with TF1 ref variables a step's backward pass can
    # read weights its own update already changed (reads alias the buffer
    # that Assign writes in place), so CPU/GPU training was not repeatable.
    # On TPU, XLA gave these semantics; names and checkpoints are unchanged.
    with tf.variable_scope(tf.get_variable_scope(), use_resource=True):
      return self._model_fn(features=features, labels=labels, mode=mode,
                            params=params, config=self._config)

  def _checkpoint_or_latest(self, checkpoint_path):
    path = checkpoint_path or checkpoints.pinned(self._model_dir)
    if not path:
      raise errors.NoCheckpointError(
          "no checkpoint in model_dir %s: train first, or pass a checkpoint "
          "with --checkpoint_mode=specific --checkpoint_steps=N" %
          self._model_dir)
    return path

  def train(self, input_fn, max_steps=None, steps=None, hooks=None,
            saving_listeners=None):
    """Trains until global_step == max_steps (or for `steps` more steps)."""
    with _graph_on_chief() as graph:
      train_loop.set_graph_seed(self._config.tf_random_seed)
      spec, features = self._build(input_fn, ModeKeys.TRAIN)
      train_loop.train(
          graph, spec, features, model_dir=self._model_dir,
          config=self._config, max_steps=max_steps, steps=steps,
          hooks=list(hooks or []), saving_listeners=saving_listeners)
    return self

  def evaluate(self, input_fn, steps=None, hooks=None, checkpoint_path=None,
               name=None):
    """Runs the eval metrics over `steps` batches; writes them to TensorBoard."""
    checkpoint_path = self._checkpoint_or_latest(checkpoint_path)
    with _graph_on_chief() as graph:
      spec, _ = self._build(input_fn, ModeKeys.EVAL)
      eval_dir = os.path.join(self._model_dir,
                              "eval" if not name else "eval_" + name)
      return train_loop.evaluate(graph, spec, checkpoint_path, eval_dir,
                                 steps=steps, hooks=list(hooks or []),
                                 config=self._config)

  def predict(self, input_fn, predict_keys=None, hooks=None,
              checkpoint_path=None, yield_single_examples=True):
    """Yields predictions (one dict per example, or per batch)."""
    checkpoint_path = self._checkpoint_or_latest(checkpoint_path)
    with _graph_on_chief() as graph:
      spec, _ = self._build(input_fn, ModeKeys.PREDICT)
      predictions = spec.predictions
      if predict_keys:
        predictions = {k: predictions[k] for k in predict_keys}
      for batch in train_loop.predict(graph, spec, predictions,
                                      checkpoint_path, list(hooks or []),
                                      config=self._config):
        if not yield_single_examples:
          yield batch
          continue
        batch_size = len(next(iter(batch.values())))
        for i in range(batch_size):
          yield {k: v[i] for k, v in batch.items()}

  def export_saved_model(self, export_dir_base, serving_input_receiver_fn,
                         assets_extra=None, as_text=False,
                         checkpoint_path=None):
    """Writes a SavedModel (tag 'serve') under export_dir_base/<timestamp>."""
    del assets_extra
    checkpoint_path = self._checkpoint_or_latest(checkpoint_path)
    with _graph_on_chief() as graph:
      tf.train.get_or_create_global_step()
      receiver = serving_input_receiver_fn()
      spec = self._call_model_fn(receiver.features, None, ModeKeys.PREDICT,
                                 dict(self._params, use_tpu=False))
      return train_loop.export(graph, spec, receiver, checkpoint_path,
                               export_dir_base, as_text=as_text,
                               config=self._config)

  export_savedmodel = export_saved_model


Estimator = TPUEstimator
