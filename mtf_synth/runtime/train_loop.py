"""Graph-mode training, evaluation, prediction and export (the Estimator's job).

Called by mtf_synth.runtime.estimator.TPUEstimator with a graph that already
holds the input pipeline and the model_fn's EstimatorSpec. Knows nothing about
specific layers or tasks.
"""

import collections
import math
import os
import signal
import threading
import time

import gin
import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from mtf_synth import errors
from mtf_synth.runtime import checkpoints
from mtf_synth.runtime import model_dir_lock

_DEFAULT_SEED = 0
_FEATURE_KEYS_COUNTED_AS_TOKENS = ("inputs", "targets")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Summaries too costly for every summary step, as (every_steps, summary
# tensor) pairs: training writes each every its every_steps steps,
# evaluation writes them once per checkpoint, from its first batch.
PERIODIC_SUMMARIES = "mtf_synth_periodic_summaries"


@gin.configurable(module="mtf_synth")
def train_loop_settings(log_every_steps=100, summary_every_steps=100,
                        random_seed=_DEFAULT_SEED):
  """gin knobs of the training loop.

  Args:
    log_every_steps: a log line (step, loss, steps/s, tokens/s, ETA) and
      those TensorBoard scalars at every multiple of this many steps (and
      the last step).
    summary_every_steps: graph summaries (e.g. learning_rate) at every
      multiple of this many steps (and the last step).
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

  A graph over several devices also runs without grappler's arithmetic
  optimizer (unless the base config sets it): it rewrites mesh TF's trees
  of cross-device adds, and on a cluster not the same way from run to run
  (a 3-task run differed from an identical one by 1e-8 after 2 steps);
  without it every cluster trains bit-identically to one process. So does a
  graph with ops marked for XLA (jit_scope): the ops that optimizer makes
  lack the mark and split the compiled cluster.
  """
  config = tf.ConfigProto()
  if base_config is not None:
    config.CopyFrom(base_config)
  devices = set()  # (task, type, index)
  marked_for_xla = False
  for op in graph.get_operations():
    marked_for_xla = marked_for_xla or "_XlaCompile" in op.node_def.attr
    if op.device:
      spec = tf.DeviceSpec.from_string(op.device)
      devices.add((spec.task or 0, (spec.device_type or "CPU").upper(),
                   spec.device_index or 0))
  highest = max([index for _, kind, index in devices if kind == "CPU"],
                default=0)
  if highest > 0 and config.device_count.get("CPU", 1) <= highest:
    config.device_count["CPU"] = highest + 1
  rewrites = config.graph_options.rewrite_options
  if (len(devices) > 1 or marked_for_xla) and (
      rewrites.arithmetic_optimization ==
      rewriter_config_pb2.RewriterConfig.DEFAULT):
    rewrites.arithmetic_optimization = rewriter_config_pb2.RewriterConfig.OFF
  config.allow_soft_placement = True
  return config


def _tokens_per_step(features):
  """Positions of inputs and targets per batch (padding included)."""
  total = 0
  for key in _FEATURE_KEYS_COUNTED_AS_TOKENS:
    if key in features and features[key].shape.is_fully_defined():
      total += features[key].shape.num_elements()
  return total


def _due(step, every_steps, max_steps):
  """The one step base of training logs and summaries: multiples of the
  interval, and the last step."""
  return step % every_steps == 0 or step == max_steps


class _ProgressHook(tf.train.SessionRunHook):
  """Stops on a non-finite loss; the one writer of training scalars.

  Every log interval: a log line and the loss, steps/s and tokens/s scalars;
  every summary interval: the graph's summaries (e.g. learning_rate). Both
  at the steps `_due` names, so each scalar has one series on one step base.

  Placed first among the hooks so that a NaN step raises before any
  checkpoint saver sees it: nothing from that step on is saved. (A checkpoint
  saved at the step just before holds the weights that gave the NaN loss;
  the message names the latest checkpoint so the user can pick an earlier.)
  """

  def __init__(self, loss, graph_summaries, model_dir, settings, max_steps,
               tokens_per_step):
    self._loss = loss
    self._graph_summaries = graph_summaries
    self._model_dir = model_dir
    self._log_every_steps = max(1, int(settings["log_every_steps"]))
    self._summary_every_steps = max(1, int(settings["summary_every_steps"]))
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
    fetches = {"loss": self._loss}
    if self._graph_summaries is not None and _due(
        self._step + 1, self._summary_every_steps, self._max_steps):
      fetches["summaries"] = self._graph_summaries
    return tf.train.SessionRunArgs(fetches)

  def after_run(self, run_context, run_values):
    # Counted here: reading global_step in the same run races its increment.
    self._step += 1
    step = self._step
    loss = float(run_values.results["loss"])
    if not math.isfinite(loss):
      raise errors.NonFiniteLossError(
          "loss is %s at step %d; training stopped before saving it (latest "
          "checkpoint: %s): lower the learning rate or check the data" %
          (loss, step, tf.train.latest_checkpoint(self._model_dir)))
    if "summaries" in run_values.results:
      self._writer.add_summary(run_values.results["summaries"], step)
    if _due(step, self._log_every_steps, self._max_steps):
      self._log(step, loss)

  def _log(self, step, loss):
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
  def step(self):
    return self._step

  @property
  def steps_run(self):
    return self._step - self.start_step


def _without_print(loss):
  """mesh TF wraps the loss in tf.Print off TPU, which logs it every step;
  fetching the Print's input leaves the log line once per log interval."""
  return loss.op.inputs[0] if loss.op.type == "Print" else loss


def already_trained(model_dir, train_steps):
  """True when model_dir's latest checkpoint is at train_steps already.

  Raises:
    UserError: the checkpoint is past train_steps (training on would run a
      learning-rate schedule past its end and delete older checkpoints).
  """
  step = checkpoints.latest_step(model_dir)
  if step is None or train_steps is None or step < train_steps:
    return False
  if step > train_steps:
    raise errors.UserError(
        "train_steps=%d is below the step of the latest checkpoint in %s "
        "(%d): train_steps counts from step 0, not from this run's start; "
        "pass train_steps >= %d, or another --model_dir to start afresh" %
        (train_steps, model_dir, step, step))
  return True


def _mismatch_hint(checkpoint_path):
  return ("the config builds another model than the one that wrote %s: "
          "compare your gin files with %s" % (
              checkpoint_path, os.path.join(os.path.dirname(checkpoint_path),
                                            "operative_config.gin")))


def check_checkpoint_fits(checkpoint_path, graph):
  """Fails loudly where restoring checkpoint_path into graph would not.

  Checkpoint variables the model does not use would be silently skipped, so
  they are listed as a warning; a model variable the checkpoint lacks, or has
  with another shape or dtype, is an error naming it.

  Raises:
    CheckpointMismatchError: a model variable cannot be restored.
  """
  reader = tf.train.load_checkpoint(checkpoint_path)
  checkpoint_path = checkpoints.unpinned(checkpoint_path)  # for the messages
  saved_shapes = reader.get_variable_to_shape_map()
  saved_dtypes = reader.get_variable_to_dtype_map()
  model = {v.op.name: v for v in
           graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)}
  unused = sorted(set(saved_shapes) - set(model))
  if unused:
    tf.logging.warning("%d variables of checkpoint %s are not in this model "
                       "and are not restored: %s", len(unused),
                       checkpoint_path, ", ".join(unused))
  missing = sorted(set(model) - set(saved_shapes))
  if missing:
    tf.logging.warning("variables of this model missing from checkpoint %s:"
                       " %s", checkpoint_path, ", ".join(missing))
    raise errors.CheckpointMismatchError(
        "model variable %s%s is not in checkpoint %s: %s" % (
            missing[0], " (and %d more, listed above)" % (len(missing) - 1)
            if len(missing) > 1 else "", checkpoint_path,
            _mismatch_hint(checkpoint_path)))
  for name in sorted(model):
    shape = model[name].shape.as_list()
    dtype = model[name].dtype.base_dtype
    saved_shape, saved_dtype = saved_shapes[name], saved_dtypes[name]
    if shape == saved_shape and dtype == saved_dtype:
      continue
    if shape == saved_shape and saved_dtype == tf.bfloat16:
      hint = ("to continue from a bfloat16 (upstream) checkpoint pass "
              "--gin_param=\"utils.get_variable_dtype.master_dtype="
              "'bfloat16'\"")
    else:
      hint = _mismatch_hint(checkpoint_path)
    raise errors.CheckpointMismatchError(
        "variable %s is %s %s in checkpoint %s but %s %s in the model: %s" % (
            name, saved_dtype.name, saved_shape, checkpoint_path, dtype.name,
            shape, hint))


class _StopOnSignals(tf.train.SessionRunHook):
  """SIGINT / SIGTERM stop training after the running step.

  The checkpoint savers' end() then save that step, so a resumed run
  continues bit-exact. A second signal gets the previous handler (abort
  without saving).
  """

  def __init__(self):
    self.signum = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      return self  # Python lets only the main thread handle signals
    for signum in _STOP_SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *unused_exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}

  def _handle(self, signum, unused_frame):
    self.signum = signum
    tf.logging.warning("%s: saving a checkpoint at the current step, then "
                       "stopping (send it again to stop without saving)",
                       signal.Signals(signum).name)
    self.__exit__()

  def after_run(self, run_context, run_values):
    if self.signum is not None:
      run_context.request_stop()


class _NoSessionRecovery(tf.train.SessionRunHook):
  """A second session (MonitoredSession's recovery) stops the run.

  MonitoredSession re-creates a session lost to a restarted cluster task
  (AbortedError, UnavailableError) and runs on from the checkpoint, but
  the input pipeline starts again from its beginning, not the checkpoint's
  data position (and evaluation's metrics start again): the run would go
  on on other data. `then` says what to do instead.
  """

  def __init__(self, then):
    self._then = then
    self._created = False

  def after_create_session(self, session, coord):
    if self._created:
      raise errors.ClusterError(
          "the session was lost and re-created (a cluster task restarted); "
          "going on would not resume exactly (the input position is not "
          "restored): restart every task with the same commands%s" %
          self._then())
    self._created = True


def _partial_checkpoint_files(model_dir, step, keep):
  """What a failed save of `step` left behind: temporary files (the sharded
  saver's PREFIX_temp folder, TF's atomic writes' FILE.tmpHEX, the
  `checkpoint` state file's) and, unless `keep` is that step (the state
  file names it: its variables were written), the step's own files."""
  prefix = os.path.join(model_dir, "model.ckpt-%d" % step)
  paths = tf.io.gfile.glob(prefix + "_temp*")
  paths += tf.io.gfile.glob(prefix + ".*.tmp*")
  paths += tf.io.gfile.glob(os.path.join(model_dir, "checkpoint.tmp*"))
  if keep != prefix:
    paths += tf.io.gfile.glob(prefix + ".*")
  return sorted(set(paths))


def _write_error_reason(error, model_dir):
  """The line of a failed write's error naming the file and the OS's reason
  (a failed save op's message also holds the op's Python stack)."""
  lines = [line.strip() for line in
           str(getattr(error, "message", error)).splitlines() if line.strip()]
  named = [line for line in lines
           if model_dir in line and not line.startswith("File ")]
  return " ".join((named or lines or [type(error).__name__])[0].split())


def _explain_save_errors(saver_hook, model_dir):
  """A failed save names its path and the checkpoint kept; no debris left."""
  save = saver_hook._save  # pylint: disable=protected-access

  def save_or_explain(session, step):
    try:
      return save(session, step)
    except (tf.errors.OpError, OSError) as e:
      path = os.path.join(model_dir, "model.ckpt-%d" % step)
      latest = tf.train.latest_checkpoint(model_dir)
      for partial in _partial_checkpoint_files(model_dir, step, keep=latest):
        if tf.io.gfile.isdir(partial):
          tf.io.gfile.rmtree(partial)
        else:
          tf.io.gfile.remove(partial)
      reason = _write_error_reason(e, model_dir)
      if latest == path:
        # The Saver writes the variables and the `checkpoint` state file,
        # then the meta graph, which a restore does not need.
        kept = ("its variables were written, so a re-run resumes from it "
                "(its .meta graph file is missing)")
      else:
        kept = "the previous checkpoint %s is kept" % (latest or "(none)")
      raise errors.CheckpointWriteError(
          "could not write checkpoint %s (%s); %s: free space or fix "
          "permissions, then re-run to resume" % (path, reason, kept)) from e

  saver_hook._save = save_or_explain  # pylint: disable=protected-access
  create = saver_hook.after_create_session

  def create_or_explain(session, coord):
    # Writes graph.pbtxt (atomically, through a temporary), then saves.
    try:
      return create(session, coord)
    except (tf.errors.OpError, OSError) as e:
      graph = os.path.join(model_dir, "graph.pbtxt")
      for partial in tf.io.gfile.glob(graph + ".tmp*"):
        tf.io.gfile.remove(partial)
      raise errors.CheckpointWriteError(
          "could not write %s (%s) before the first checkpoint: free space or"
          " fix permissions, then re-run" % (
              graph, _write_error_reason(e, model_dir))) from e

  saver_hook.after_create_session = create_or_explain


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


def _periodic_summary_hooks(model_dir):
  summaries = collections.defaultdict(list)
  for every_steps, summary in tf.get_collection(PERIODIC_SUMMARIES):
    summaries[every_steps].append(summary)
  return [tf.train.SummarySaverHook(save_steps=every_steps,
                                    output_dir=model_dir, summary_op=ops)
          for every_steps, ops in sorted(summaries.items())]


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

  Holds model_dir's lock (one trainer per model_dir). Resumes from the latest
  checkpoint in model_dir (same global step, optimizer slots; the data
  position is restored by the input_fn, see `utils.run.skip_seen_data` in
  gin/runtime/defaults.gin); does nothing when it is at max_steps already.
  SIGINT / SIGTERM save the current step and raise errors.Interrupted.
  """
  model_dir_lock.acquire(model_dir)
  settings = train_loop_settings()
  if steps is not None:
    max_steps = (checkpoints.latest_step(model_dir) or 0) + steps
  if already_trained(model_dir, max_steps):
    tf.logging.info("%s is at step %d = train_steps already: nothing to "
                    "train", model_dir, max_steps)
    return
  last = checkpoints.for_resume(model_dir)
  if last:
    check_checkpoint_fits(last, graph)
  increment_global_step_last(spec.train_op)
  scaffold = _scaffold(spec)
  all_hooks = list(spec.training_chief_hooks) + list(spec.training_hooks)
  # Summaries the model added to the graph (mesh TF: learning_rate).
  progress = _ProgressHook(_without_print(spec.loss), tf.summary.merge_all(),
                           model_dir, settings, max_steps,
                           _tokens_per_step(features))
  stop_on_signals = _StopOnSignals()
  no_recovery = _NoSessionRecovery(lambda: " to resume from %s" %
                                   tf.train.latest_checkpoint(model_dir))
  hooks = ([no_recovery, progress, stop_on_signals] +
           _periodic_summary_hooks(model_dir) + all_hooks + list(hooks))
  if not any(isinstance(h, tf.train.CheckpointSaverHook) for h in all_hooks):
    hooks.append(tf.train.CheckpointSaverHook(
        model_dir, save_steps=config.save_checkpoints_steps or 1000,
        scaffold=scaffold, listeners=saving_listeners))
  for hook in hooks:
    if isinstance(hook, tf.train.CheckpointSaverHook):
      _explain_save_errors(hook, model_dir)
  if max_steps is not None:
    hooks.append(tf.train.StopAtStepHook(last_step=max_steps))
  with stop_on_signals, tf.train.MonitoredTrainingSession(
      master=config.master, checkpoint_dir=model_dir, scaffold=scaffold,
      hooks=hooks,
      save_checkpoint_secs=None, save_checkpoint_steps=None,
      save_summaries_steps=None, save_summaries_secs=None,
      log_step_count_steps=None,
      config=session_config(graph, config.session_config)) as session:
    while not session.should_stop():
      session.run(spec.train_op)
  if stop_on_signals.signum is not None:
    raise errors.Interrupted(
        stop_on_signals.signum,
        "stopped by %s at step %d, saved in %s: run the same command to "
        "resume" % (signal.Signals(stop_on_signals.signum).name,
                    progress.step, tf.train.latest_checkpoint(model_dir)))
  if progress.steps_run == 0 and (max_steps is None
                                  or progress.start_step < max_steps):
    raise errors.EmptyDatasetError(
        "the training data yielded no batch (empty split, or every example "
        "dropped by preprocessing): check the task's data and split, or "
        "lower utils.run.batch_size")


def _restoring_session(graph, spec, checkpoint_path, hooks, config):
  check_checkpoint_fits(checkpoint_path, graph)
  creator = tf.train.ChiefSessionCreator(
      scaffold=_scaffold(spec), master=config.master,
      checkpoint_filename_with_path=checkpoint_path,
      config=session_config(graph, config.session_config))
  return tf.train.MonitoredSession(
      session_creator=creator,
      hooks=[_NoSessionRecovery(lambda: "")] + list(hooks))


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
  periodic_summaries = [s for _, s in tf.get_collection(PERIODIC_SUMMARIES)]
  first_batch_summaries = []
  hooks = list(spec.evaluation_hooks) + list(hooks)
  with _restoring_session(graph, spec, checkpoint_path, hooks,
                          config) as session:
    done = 0
    while steps is None or done < steps:
      try:
        if done:
          session.run(updates)
        else:
          _, first_batch_summaries = session.run((updates,
                                                  periodic_summaries))
      except tf.errors.OutOfRangeError:
        break
      done += 1
    if steps is not None and done < steps:
      tf.logging.info("eval: the data ended after %d of %d batches (the rest "
                      "would have been padding)", done, steps)
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
  for serialized in first_batch_summaries:
    writer.add_summary(serialized, results["global_step"])
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
  """Writes a SavedModel with a serving_default predict signature.

  Into export_dir_base/temp-<timestamp>, renamed to <timestamp> once
  complete (as tf.estimator did): a server loading the highest numbered
  version never sees a partial export, and a killed export leaves only a
  temp- folder.
  """
  scaffold = _scaffold(spec)
  # Not scaffold.finalize(): it freezes the graph the builder still adds to.
  saver = scaffold.saver or tf.train.Saver(sharded=True)
  local_init_op = (scaffold.local_init_op or
                   tf.train.Scaffold.default_local_init_op())
  version = str(int(time.time()))
  export_dir = os.path.join(export_dir_base, version)
  temp_dir = os.path.join(export_dir_base, "temp-" + version)
  signature = tf.saved_model.predict_signature_def(
      inputs=receiver.receiver_tensors, outputs=spec.predictions)
  check_checkpoint_fits(checkpoint_path, graph)
  builder = tf.saved_model.Builder(temp_dir)  # makes the folder
  try:
    with tf.Session(config.master, graph=graph, config=session_config(
        graph, config.session_config)) as sess:
      saver.restore(sess, checkpoint_path)
      sess.run(local_init_op)
      builder.add_meta_graph_and_variables(
          sess, [tf.saved_model.tag_constants.SERVING],
          signature_def_map={"serving_default": signature},
          main_op=local_init_op, strip_default_attrs=True,
          clear_devices=True)  # servable without the mesh's virtual devices
    builder.save(as_text=as_text)
    tf.io.gfile.rename(temp_dir, export_dir)
  except BaseException:
    tf.io.gfile.rmtree(temp_dir)
    raise
  return export_dir.encode("utf-8")
