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
import types

import tensorflow.compat.v1 as tf

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
    self.session_config = session_config
    self.save_checkpoints_steps = save_checkpoints_steps
    self.save_checkpoints_secs = save_checkpoints_secs
    self.keep_checkpoint_max = keep_checkpoint_max
    self.save_summary_steps = save_summary_steps
    self.log_step_count_steps = log_step_count_steps
    self.tf_random_seed = tf_random_seed


class ServingInputReceiver(collections.namedtuple(
    "ServingInputReceiver", ("features", "receiver_tensors"))):
  """What a serving_input_receiver_fn returns for export_saved_model."""


export = types.ModuleType(__name__ + ".export", "tf.estimator.export names.")
export.ServingInputReceiver = ServingInputReceiver
