"""The training loop's scalars: one writer, one step base; the event reader.

Trains w to 3 on loss (w - 3)^2 with plain gradient descent through
train_loop.train, so each logged loss is checked against the closed form.
"""

import gin
import pytest
import tensorflow.compat.v1 as tf

from mtf_synth.runtime import estimator
from mtf_synth.runtime import summaries
from mtf_synth.runtime import train_loop

LEARNING_RATE = 0.1


def _expected_losses(steps):
  """{step: loss computed in that step}: the weight before its update."""
  w, losses = 1.0, {}
  for step in range(1, steps + 1):
    losses[step] = (w - 3.0) ** 2
    w -= LEARNING_RATE * 2.0 * (w - 3.0)
  return losses


def _train(model_dir, steps, log_every_steps, summary_every_steps):
  gin.bind_parameter("mtf_synth.train_loop_settings.log_every_steps",
                     log_every_steps)
  gin.bind_parameter("mtf_synth.train_loop_settings.summary_every_steps",
                     summary_every_steps)
  try:
    with tf.Graph().as_default() as graph:
      global_step = tf.train.get_or_create_global_step()
      w = tf.get_variable("w", initializer=1.0, use_resource=True)
      # As mesh TF builds it off TPU: the loss printed on every run.
      loss = tf.Print(tf.square(w - 3.0), [w], "step, tf_loss")
      tf.summary.scalar("learning_rate", tf.constant(LEARNING_RATE))
      update = tf.train.GradientDescentOptimizer(LEARNING_RATE).minimize(loss)
      train_op = tf.group(update, tf.assign_add(global_step, 1))
      spec = estimator.EstimatorSpec("train", loss=loss, train_op=train_op)
      config = estimator.RunConfig(model_dir=model_dir,
                                   save_checkpoints_steps=1000)
      train_loop.train(graph, spec, {}, model_dir, config, max_steps=steps)
  finally:
    gin.clear_config()


def test_each_training_scalar_once_per_interval_on_one_step_base(tmp_path,
                                                                 capfd):
  """Log and summary intervals both 5, 10 steps: every training scalar at
  global steps 5 and 10 (the multiples of the interval), once each; the
  loss is the one computed in that step; the log says it once per log
  interval."""
  model_dir = str(tmp_path)
  _train(model_dir, steps=10, log_every_steps=5, summary_every_steps=5)
  expected = _expected_losses(10)
  loss = summaries.scalars(model_dir, "loss")
  assert sorted(loss) == [5, 10]
  for step in (5, 10):
    assert loss[step] == pytest.approx(expected[step], rel=1e-5)
  for tag in ("learning_rate", "steps_per_sec", "tokens_per_sec"):
    assert sorted(summaries.scalars(model_dir, tag)) == [5, 10], tag
  events = [event for path in tf.io.gfile.glob(model_dir + "/events.*")
            for event in tf.train.summary_iterator(path)]
  written = [event.step for event in events for value in event.summary.value
             if value.tag == "loss"]
  assert sorted(written) == [5, 10]  # not overwritten duplicates either
  assert "tf_loss" not in capfd.readouterr().err


def test_intervals_differ_last_step_is_always_written(tmp_path):
  model_dir = str(tmp_path)
  _train(model_dir, steps=7, log_every_steps=3, summary_every_steps=2)
  assert sorted(summaries.scalars(model_dir, "loss")) == [3, 6, 7]
  assert sorted(summaries.scalars(model_dir, "learning_rate")) == [2, 4, 6, 7]


def _write_events(log_dir, events):
  writer = tf.summary.FileWriter(log_dir)
  for step, values in events:
    writer.add_summary(tf.Summary(value=[
        tf.Summary.Value(tag=tag, simple_value=value)
        for tag, value in values.items()]), step)
  writer.close()


def test_reader_drops_the_second_loss_series_of_old_event_files(tmp_path):
  """Before the fix the summary hook wrote loss (beside learning_rate) at
  steps 1, 6 and the progress hook (beside steps_per_sec) at 5, 10; the
  reader keeps the latter, which is what the fixed writer writes. An eval
  folder's loss (no steps_per_sec there) is kept."""
  with tf.Graph().as_default():
    _write_events(str(tmp_path), [
        (1, {"loss": 9.0, "learning_rate": 0.1}),
        (5, {"loss": 5.0, "steps_per_sec": 2.0, "tokens_per_sec": 20.0}),
        (6, {"loss": 4.0, "learning_rate": 0.1}),
        (10, {"loss": 1.0, "steps_per_sec": 3.0, "tokens_per_sec": 30.0})])
    _write_events(str(tmp_path / "eval"), [(10, {"loss": 2.5})])
  scalars = summaries.read_scalars(str(tmp_path), recursive=True)
  assert scalars[(".", "loss")] == {5: 5.0, 10: 1.0}
  assert scalars[(".", "learning_rate")] == pytest.approx({1: 0.1, 6: 0.1})
  assert scalars[("eval", "loss")] == {10: 2.5}
  assert summaries.scalars(str(tmp_path), "steps_per_sec") == {5: 2.0,
                                                               10: 3.0}
  assert ("eval", "loss") not in summaries.read_scalars(str(tmp_path))


def test_reader_keeps_the_records_before_a_truncated_one(tmp_path):
  """A killed writer leaves a partial last record: the ones before count."""
  with tf.Graph().as_default():
    _write_events(str(tmp_path), [(5, {"loss": 5.0, "steps_per_sec": 2.0}),
                                  (10, {"loss": 1.0, "steps_per_sec": 3.0})])
  (path,) = tf.io.gfile.glob(str(tmp_path / "events.*"))
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:-10])
  assert summaries.scalars(str(tmp_path), "loss") == {5: 5.0}


def _graph_on(*devices):
  graph = tf.Graph()
  with graph.as_default():
    for device in devices:
      with tf.device(device):
        tf.constant(1.0)
  return graph


def test_a_graph_over_several_devices_runs_without_the_arithmetic_optimizer():
  from tensorflow.core.protobuf import rewriter_config_pb2  # pylint: disable=g-import-not-at-top
  rewriter = rewriter_config_pb2.RewriterConfig
  several = train_loop.session_config(_graph_on("", "/cpu:0", "/cpu:1"))
  assert several.device_count["CPU"] == 2
  assert several.graph_options.rewrite_options.arithmetic_optimization == (
      rewriter.OFF)
  tasks = train_loop.session_config(_graph_on(
      "/job:worker/replica:0/task:0/device:CPU:0",
      "/job:worker/replica:0/task:1/device:CPU:0"))
  assert tasks.graph_options.rewrite_options.arithmetic_optimization == (
      rewriter.OFF)
  # One device, however it is spelled: grappler as TF sets it.
  one = train_loop.session_config(_graph_on(
      "", "/cpu:0", "/device:CPU:0", "/job:localhost/replica:0/task:0/cpu:0"))
  assert one.graph_options.rewrite_options.arithmetic_optimization == (
      rewriter.DEFAULT)
  # A user's explicit setting stands.
  base = tf.ConfigProto()
  base.graph_options.rewrite_options.arithmetic_optimization = rewriter.ON
  kept = train_loop.session_config(_graph_on("/cpu:0", "/cpu:1"), base)
  assert kept.graph_options.rewrite_options.arithmetic_optimization == (
      rewriter.ON)
