"""Graph-mode training, evaluation, prediction and export (the Estimator's job).

Called by mtf_synth.runtime.estimator.TPUEstimator with a graph that already
holds the input pipeline and the model_fn's EstimatorSpec. Knows nothing about
specific layers or tasks.
"""

import math
import os
import re
import time

import gin
import numpy as np
import tensorflow.compat.v1 as tf

_DEFAULT_SEED = 0
_FEATURE_KEYS_COUNTED_AS_TOKENS = ("inputs", "targets")


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss; nothing after it was saved."""


class EmptyDatasetError(ValueError):
  """The training input ended before a single step could run."""


@gin.configurable(module="mtf_synth")
def train_loop_settings(log_every_steps=100, summary_every_steps=100,
                        random_seed=_DEFAULT_SEED):
  """gin knobs of the training loop.

  Args:
    log_every_steps: a log line (step, loss, steps/s, tokens/s, ETA) and
      TensorBoard scalars every this many steps.
    summary_every_steps: graph summaries (e.g. learning_rate) every this many.
    random_seed: graph-level seed, so two runs with the same config start from
      the same initial weights (None: a different seed each run).
  Returns:
    a dict of the settings.
  """
  return dict(log_every_steps=log_every_steps,
              summary_every_steps=summary_every_steps,
              random_seed=random_seed)


def set_graph_seed(config_seed):
  seed = config_seed
  if seed is None:
    seed = train_loop_settings()["random_seed"]
  if seed is not None:
    tf.set_random_seed(seed)


def session_config(graph, base_config=None):
  """A ConfigProto exposing as many CPU devices as the graph places ops on.

  PlacementMeshImpl over ["/cpu:0", ..., "/cpu:3"] needs 4 CPU devices in the
  session; TF creates one per process unless device_count asks for more.
  """
  config = tf.ConfigProto()
  if base_config is not None:
    config.CopyFrom(base_config)
  highest = 0
  pattern = re.compile(r"(?:device:)?cpu:(\d+)", re.IGNORECASE)
  for op in graph.get_operations():
    match = pattern.search(op.device or "")
    if match:
      highest = max(highest, int(match.group(1)))
  if highest > 0 and config.device_count.get("CPU", 1) <= highest:
    config.device_count["CPU"] = highest + 1
  config.allow_soft_placement = True
  return config


def _tokens_per_step(features):
  """Positions of inputs and targets per batch (padding included)."""
  total = 0
  for key in _FEATURE_KEYS_COUNTED_AS_TOKENS:
    if key in features and features[key].shape.is_fully_defined():
      total += features[key].shape.num_elements()
  return total


class _ProgressHook(tf.train.SessionRunHook):
  """Stops on a non-finite loss; logs and summarizes progress every K steps.

  Placed first among the hooks so that a NaN step raises before any
  checkpoint saver sees it: nothing from that step on is saved. (A checkpoint
  saved at the step just before holds the weights that gave the NaN loss;
  the message names the latest checkpoint so the user can pick an earlier.)
  """

  def __init__(self, loss, model_dir, every_steps, max_steps, tokens_per_step):
    self._loss = loss
    self._model_dir = model_dir
    self._every_steps = max(1, int(every_steps))
    self._max_steps = max_steps
    self._tokens_per_step = tokens_per_step
    self._last_time = None
    self._last_step = None

  def begin(self):
    self._global_step = tf.train.get_global_step()
    self._writer = tf.summary.FileWriterCache.get(self._model_dir)

  def after_create_session(self, session, coord):
    self.start_step = self._last_step = self._step = int(
        session.run(self._global_step))
    self._last_time = time.time()

  def before_run(self, run_context):
    return tf.train.SessionRunArgs(self._loss)

  def after_run(self, run_context, run_values):
    # Counted here: reading global_step in the same run races its increment.
    self._step += 1
    step = self._step
    loss = float(run_values.results)
    if not math.isfinite(loss):
      raise NonFiniteLossError(
          "loss is %s at step %d; training stopped before saving it (latest "
          "checkpoint: %s): lower the learning rate or check the data" %
          (loss, step, tf.train.latest_checkpoint(self._model_dir)))
    if step % self._every_steps and step != self._max_steps:
      return
    now = time.time()
    steps_per_sec = (step - self._last_step) / max(now - self._last_time, 1e-9)
    tokens_per_sec = steps_per_sec * self._tokens_per_step
    eta = ""
    if self._max_steps and steps_per_sec > 0:
      eta = ", ETA %s" % _format_seconds(
          (self._max_steps - step) / steps_per_sec)
    tf.logging.info("step %d, loss %.4f, %.3f steps/s, %.0f tokens/s%s",
                    step, loss, steps_per_sec, tokens_per_sec, eta)
    summary = tf.Summary()
    summary.value.add(tag="loss", simple_value=loss)
    summary.value.add(tag="steps_per_sec", simple_value=steps_per_sec)
    summary.value.add(tag="tokens_per_sec", simple_value=tokens_per_sec)
    self._writer.add_summary(summary, step)
    self._last_time, self._last_step = now, step

  def end(self, session):
    self._writer.flush()

  @property
  def steps_run(self):
    return self._step - self.start_step


def _format_seconds(seconds):
  seconds = int(seconds)
  return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def _scaffold(spec):
  if spec.scaffold_fn is not None:
    return spec.scaffold_fn()
  return spec.scaffold or tf.train.Scaffold()


def _leaf_control_inputs(op):
  """The ops a (possibly nested) tf.group waits for."""
  if op.type != "NoOp":
    return [op]
  return [leaf for dep in op.control_inputs
          for leaf in _leaf_control_inputs(dep)]


def increment_global_step_last(train_op):
  """Makes the global-step increment in train_op wait for every other update.

  mesh TF groups `assign_add(global_step, 1)` with the variable updates, and
  the optimizer and learning-rate schedule read global_step with no ordering
  against that increment; on TPU the increment ran on the host after the step,
  on CPU/GPU the race makes a step see step or step+1 at random. Ordering it
  last makes training deterministic (and so resume == uninterrupted).
  """
  global_step = tf.train.get_global_step()
  updates = _leaf_control_inputs(train_op)
  increments = [op for op in updates
                if op.type in ("AssignAddVariableOp", "AssignAdd")
                and op.inputs[0].op is global_step.op]
  others = [op for op in updates if op not in increments]
  for op in increments:
    op._add_control_inputs(others)  # pylint: disable=protected-access


def train(graph, spec, features, model_dir, config, max_steps=None,
          steps=None, hooks=(), saving_listeners=None):
  """Runs spec.train_op until global_step reaches max_steps.

  Resumes from the latest checkpoint in model_dir (same global step,
  optimizer slots; the data position is restored by the input_fn, see
  `utils.run.skip_seen_data` in gin/runtime/defaults.gin).
  """
  settings = train_loop_settings()
  increment_global_step_last(spec.train_op)
  scaffold = _scaffold(spec)
  all_hooks = list(spec.training_chief_hooks) + list(spec.training_hooks)
  has_saver = any(isinstance(h, tf.train.CheckpointSaverHook)
                  for h in all_hooks)
  if steps is not None:
    last = tf.train.latest_checkpoint(model_dir)
    start = int(tf.train.load_variable(last, "global_step")) if last else 0
    max_steps = start + steps
  progress = _ProgressHook(spec.loss, model_dir, settings["log_every_steps"],
                           max_steps, _tokens_per_step(features))
  # Summaries the model added to the graph (mesh TF: learning_rate).
  tf.summary.scalar("loss", spec.loss)
  summary_hook = tf.train.SummarySaverHook(
      save_steps=settings["summary_every_steps"], output_dir=model_dir,
      summary_op=tf.summary.merge_all())
  hooks = [progress, summary_hook] + all_hooks + list(hooks)
  if not has_saver:
    hooks.append(tf.train.CheckpointSaverHook(
        model_dir, save_steps=config.save_checkpoints_steps or 1000,
        scaffold=scaffold, listeners=saving_listeners))
  if max_steps is not None:
    hooks.append(tf.train.StopAtStepHook(last_step=max_steps))
  with tf.train.MonitoredTrainingSession(
      master=config.master, checkpoint_dir=model_dir, scaffold=scaffold,
      hooks=hooks,
      save_checkpoint_secs=None, save_checkpoint_steps=None,
      save_summaries_steps=None, save_summaries_secs=None,
      log_step_count_steps=None,
      config=session_config(graph, config.session_config)) as session:
    while not session.should_stop():
      session.run(spec.train_op)
  if progress.steps_run == 0 and (max_steps is None
                                  or progress.start_step < max_steps):
    raise EmptyDatasetError(
        "the training data yielded no batch (empty split, or every example "
        "dropped by preprocessing): check the task's data and split, or "
        "lower utils.run.batch_size")


def _restoring_session(graph, spec, checkpoint_path, hooks, config):
  creator = tf.train.ChiefSessionCreator(
      scaffold=_scaffold(spec), checkpoint_filename_with_path=checkpoint_path,
      config=session_config(graph, config.session_config))
  return tf.train.MonitoredSession(session_creator=creator, hooks=hooks)


def evaluate(graph, spec, checkpoint_path, eval_dir, steps, hooks, config):
  """Accumulates the spec's metrics over `steps` batches (or the dataset)."""
  if spec.eval_metrics is not None:
    metric_fn, tensors = spec.eval_metrics
    metrics = (metric_fn(**tensors) if isinstance(tensors, dict)
               else metric_fn(*tensors))
  else:
    metrics = dict(spec.eval_metric_ops or {})
  metrics["loss"] = tf.metrics.mean(spec.loss)
  values = {k: v for k, (v, _) in metrics.items()}
  updates = [u for _, u in metrics.values()]
  global_step = tf.train.get_global_step()
  hooks = list(spec.evaluation_hooks) + list(hooks)
  with _restoring_session(graph, spec, checkpoint_path, hooks,
                          config) as session:
    done = 0
    while steps is None or done < steps:
      try:
        session.run(updates)
      except tf.errors.OutOfRangeError:
        break
      done += 1
    results = session.run(values)
    results["global_step"] = int(session.run(global_step))
  writer = tf.summary.FileWriterCache.get(eval_dir)
  summary = tf.Summary()
  for name, value in results.items():
    if name != "global_step":
      summary.value.add(tag=name, simple_value=float(value))
      tf.logging.info("eval %s at step %d: %s", name, results["global_step"],
                      value)
  writer.add_summary(summary, results["global_step"])
  writer.flush()
  return results


def predict(graph, spec, predictions, checkpoint_path, hooks, config):
  """Yields batches of prediction arrays until the input is exhausted."""
  hooks = list(spec.prediction_hooks) + list(hooks)
  with _restoring_session(graph, spec, checkpoint_path, hooks,
                          config) as session:
    while not session.should_stop():
      try:
        batch = session.run(predictions)
      except tf.errors.OutOfRangeError:
        return
      yield {k: np.asarray(v) for k, v in batch.items()}


def export(graph, spec, receiver, checkpoint_path, export_dir_base, as_text,
           config):
  """Writes a SavedModel with a serving_default predict signature."""
  scaffold = _scaffold(spec)
  # Not scaffold.finalize(): it freezes the graph the builder still adds to.
  saver = scaffold.saver or tf.train.Saver(sharded=True)
  local_init_op = (scaffold.local_init_op or
                   tf.train.Scaffold.default_local_init_op())
  export_dir = os.path.join(export_dir_base, str(int(time.time())))
  builder = tf.saved_model.Builder(export_dir)
  signature = tf.saved_model.predict_signature_def(
      inputs=receiver.receiver_tensors, outputs=spec.predictions)
  with tf.Session(graph=graph,
                  config=session_config(graph, config.session_config)) as sess:
    saver.restore(sess, checkpoint_path)
    sess.run(local_init_op)
    builder.add_meta_graph_and_variables(
        sess, [tf.saved_model.tag_constants.SERVING],
        signature_def_map={"serving_default": signature},
        main_op=local_init_op, strip_default_attrs=True,
        clear_devices=True)  # servable without the mesh's virtual devices
  builder.save(as_text=as_text)
  return export_dir.encode("utf-8")
