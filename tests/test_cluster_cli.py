"""The command line on a loopback cluster: 2 tasks x 2 virtual CPU devices.

The mesh `model:2,batch:2` over two tasks must train exactly as on one
process with 4 devices; every mode runs from the chief; a killed worker stops
the chief with one line and a restart resumes to the uninterrupted result.
Every process is bounded in time and killed in a finally.
"""

import glob
import os
import shutil
import sys
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import cli_runner
from cli_runner import T5_TINY_ON_DEMO, scalars

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir,
                                "scripts"))
import launch_local_cluster  # noqa: E402  pylint: disable=g-import-not-at-top

_BOUND_SECS = 600
_LOST_TIMEOUT_SECS = 5
_CLUSTER_FLAGS = ["--cluster_lost_timeout_secs=%d" % _LOST_TIMEOUT_SECS,
                  "--cluster_start_timeout_secs=300"]


def _start(model_dir, args, log_dir, tasks=2):
  """Starts the tasks; the chief's stderr goes to log_dir/chief.err."""
  command = cli_runner.command(model_dir, *args, *_CLUSTER_FLAGS)
  env = cli_runner.environment()
  os.makedirs(log_dir, exist_ok=True)
  with open(os.path.join(log_dir, "chief.err"), "w") as chief_stderr:
    return launch_local_cluster.start(command, tasks, log_dir, env=env,
                                      chief_stderr=chief_stderr)


def _chief_stderr(log_dir):
  with open(os.path.join(log_dir, "chief.err")) as f:
    return f.read()


def run_cluster(model_dir, args, log_dir, tasks=2):
  """Runs the command on `tasks` tasks; returns (exit codes, chief's
  stderr)."""
  processes = _start(model_dir, args, log_dir, tasks)
  try:
    codes = launch_local_cluster.wait(processes, _BOUND_SECS)
  finally:
    launch_local_cluster.stop(processes)
  return codes, _chief_stderr(log_dir)


def _read_lines(path):
  with open(path) as f:
    return f.read().splitlines()


def _variables(model_dir, step=None):
  """The latest checkpoint's variables, or step `step`'s."""
  reader = tf.train.load_checkpoint(
      tf.train.latest_checkpoint(model_dir) if step is None else
      os.path.join(model_dir, "model.ckpt-%d" % step))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def _assert_same_variables(model_dir, reference_dir):
  """Bit for bit (runtime/train_loop.session_config)."""
  ours, reference = _variables(model_dir), _variables(reference_dir)
  assert sorted(ours) == sorted(reference)
  for name, value in reference.items():
    np.testing.assert_array_equal(ours[name], value, err_msg=name)


TRAIN_10 = T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps=10"]


@pytest.fixture(scope="module")
def cluster_and_single(tmp_path_factory):
  """The same 10 steps on a 2-task cluster and on one process (together)."""
  root = tmp_path_factory.mktemp("cluster")
  cluster_dir, single_dir = str(root / "cluster"), str(root / "single")
  single = cli_runner.start_mtf_synth(single_dir, *TRAIN_10, capture=True)
  try:
    codes, stderr = run_cluster(cluster_dir, TRAIN_10, str(root / "logs"))
    _, single_stderr = single.communicate(timeout=_BOUND_SECS)
  finally:
    single.kill()
    single.wait()
  assert codes == [0, 0], stderr[-3000:]
  assert single.returncode == 0, single_stderr[-3000:]
  return cluster_dir, single_dir, stderr


def test_cluster_trains_as_one_process(cluster_and_single):
  cluster_dir, single_dir, stderr = cluster_and_single
  # The mesh really spans both tasks, the batch split across them.
  assert ("mesh devices over 2 tasks: /job:worker/replica:0/task:0/device:"
          "CPU:0, /job:worker/replica:0/task:1/device:CPU:0, "
          "/job:worker/replica:0/task:0/device:CPU:1, "
          "/job:worker/replica:0/task:1/device:CPU:1") in stderr
  assert tf.train.latest_checkpoint(cluster_dir).endswith("model.ckpt-10")
  cluster_loss, single_loss = (scalars(d, "loss")
                               for d in (cluster_dir, single_dir))
  for step in (5, 10):
    assert cluster_loss[step] == pytest.approx(single_loss[step], abs=1e-5)
  _assert_same_variables(cluster_dir, single_dir)


@pytest.mark.slow
def test_three_tasks_train_as_one_process_every_time(tmp_path):
  """model:2,batch:3 over 3 tasks, twice, and one process: the same bits at
  every checkpoint (grappler's arithmetic optimizer made 3-task runs differ
  from each other after 2 steps)."""
  args = [a if "mesh_shape" not in a else
          "--gin_param=utils.run.mesh_shape='model:2,batch:3'"
          for a in T5_TINY_ON_DEMO] + [
              "--gin_param=utils.run.batch_size=12",
              "--gin_param=utils.run.train_steps=4",
              "--gin_param=utils.run.save_checkpoints_steps=2"]
  single = str(tmp_path / "single")
  assert cli_runner.mtf_synth(single, *args).returncode == 0
  for run in ("first", "second"):
    model_dir = str(tmp_path / run)
    codes, stderr = run_cluster(model_dir, args, str(tmp_path / run / "logs"),
                                tasks=3)
    assert codes == [0, 0, 0], stderr[-3000:]
    for step in (2, 4):
      ours = _variables(model_dir, step)
      for name, value in _variables(single, step).items():
        np.testing.assert_array_equal(ours[name], value,
                                      err_msg="%s at %d" % (name, step))


@pytest.mark.slow
def test_cluster_evaluates_infers_and_exports(cluster_and_single, tmp_path):
  cluster_dir, _, _ = cluster_and_single
  codes, stderr = run_cluster(
      cluster_dir, T5_TINY_ON_DEMO + [
          "--gin_file=perplexity_eval.gin",
          "--gin_param=eval_checkpoint_step=-1",
          "--gin_param=utils.run.perplexity_eval_steps=2"],
      str(tmp_path / "eval_logs"))
  assert codes == [0, 0], stderr[-3000:]
  (eval_dir,) = glob.glob(os.path.join(cluster_dir, "eval_*"))
  assert 0.0 < scalars(eval_dir, "token_accuracy")[10] <= 1.0

  inputs, outputs = tmp_path / "in.txt", tmp_path / "out.txt"
  inputs.write_text("reverse: a b c\nsort: c b a\n")
  codes, stderr = run_cluster(
      cluster_dir, T5_TINY_ON_DEMO + [
          "--gin_file=infer.gin", "--gin_param=infer_checkpoint_step=-1",
          "--gin_param=Bitransformer.decode.max_decode_length=16",
          "--gin_param=input_filename='%s'" % inputs,
          "--gin_param=output_filename='%s'" % outputs],
      str(tmp_path / "infer_logs"))
  assert codes == [0, 0], stderr[-3000:]
  assert len(open(str(outputs) + "-10").read().splitlines()) == 2

  export_base = tmp_path / "export"
  codes, stderr = run_cluster(
      cluster_dir, T5_TINY_ON_DEMO + [
          "--gin_param=utils.run.mode='export_infer'",
          "--gin_param=utils.run.export_path='%s'" % export_base,
          "--gin_param=Bitransformer.decode.max_decode_length=16"],
      str(tmp_path / "export_logs"))
  assert codes == [0, 0], stderr[-3000:]
  (export_dir,) = glob.glob(str(export_base / "*"))
  with tf.Graph().as_default(), tf.Session() as session:
    signature = tf.saved_model.loader.load(
        session, ["serve"], export_dir).signature_def["serving_default"]
    decoded = session.run(signature.outputs["outputs"].name,
                          {signature.inputs["inputs"].name: ["sort: b a"]})
  assert decoded.shape == (1,)


def _run_on_cluster_and_one_process(model_dir, args_for, tmp_path):
  """Runs a reading mode on the cluster in model_dir and, at the same time,
  on one process in a copy of model_dir's checkpoints.

  Args:
    model_dir: the cluster's trained model_dir.
    args_for: model_dir -> the command's arguments for that run.
    tmp_path: where the copy and the cluster's logs go.
  Returns:
    the copy's model_dir.
  """
  single_dir = str(tmp_path / "single")
  shutil.copytree(model_dir, single_dir, ignore=shutil.ignore_patterns(
      "*eval*", "events.out.tfevents*"))
  single = cli_runner.start_mtf_synth(single_dir, *args_for(single_dir),
                                      capture=True)
  try:
    codes, stderr = run_cluster(model_dir, args_for(model_dir),
                                str(tmp_path / "logs"))
    _, single_stderr = single.communicate(timeout=_BOUND_SECS)
  finally:
    single.kill()
    single.wait()
  assert codes == [0, 0], stderr[-3000:]
  assert "mesh devices over 2 tasks" in stderr
  assert single.returncode == 0, single_stderr[-3000:]
  return single_dir


@pytest.mark.slow
def test_cluster_decode_eval_equals_one_process(cluster_and_single, tmp_path):
  cluster_dir, _, _ = cluster_and_single
  args = T5_TINY_ON_DEMO + [
      "--gin_file=eval.gin", "--gin_param=eval_checkpoint_step=-1",
      "--gin_param=utils.run.dataset_split='validation'",
      "--gin_param=mesh_eval_dataset_fn.num_eval_examples=16",
      "--gin_param=Bitransformer.decode.max_decode_length=32"]
  single_dir = _run_on_cluster_and_one_process(cluster_dir, lambda _: args,
                                               tmp_path)
  eval_dirs = [os.path.join(d, "validation_eval")
               for d in (cluster_dir, single_dir)]
  cluster_decodes, single_decodes = (
      _read_lines(os.path.join(d, "mtf_synth_demo_10_predictions"))
      for d in eval_dirs)
  assert len(single_decodes) == 16
  assert cluster_decodes == single_decodes
  tag = "eval/mtf_synth_demo/sequence_accuracy"
  cluster_accuracy, single_accuracy = (scalars(d, tag) for d in eval_dirs)
  assert list(single_accuracy) == [10]
  assert cluster_accuracy == single_accuracy


@pytest.mark.slow
def test_cluster_scores_files_as_one_process(cluster_and_single, tmp_path):
  cluster_dir, _, _ = cluster_and_single
  inputs, targets = tmp_path / "inputs.txt", tmp_path / "targets.txt"
  inputs.write_text("reverse: a b c\nsort: c b a\n")
  # Two targets per input: t5 scores each input against both.
  targets.write_text("c b a\na b c\na b c\nc a b\n")
  args = T5_TINY_ON_DEMO + [
      "--gin_file=score_from_file.gin",
      "--gin_param=utils.run.eval_checkpoint_step=-1",
      "--gin_param=inputs_filename='%s'" % inputs,
      "--gin_param=targets_filename='%s'" % targets]
  single_dir = _run_on_cluster_and_one_process(
      cluster_dir, lambda model_dir: args + [
          "--gin_param=scores_filename='%s/scores'" % model_dir], tmp_path)
  cluster_scores, single_scores = (
      os.path.join(d, "scores") for d in (cluster_dir, single_dir))
  for suffix in (".targets", ".lengths"):
    assert (_read_lines(cluster_scores + suffix)
            == _read_lines(single_scores + suffix))
  assert _read_lines(single_scores + ".targets") == targets.read_text(
      ).splitlines()
  single_values = [float(s) for s in _read_lines(single_scores + ".scores")]
  assert len(single_values) == 4 and all(v < 0 for v in single_values)
  np.testing.assert_allclose(
      [float(s) for s in _read_lines(cluster_scores + ".scores")],
      single_values, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_killed_worker_stops_the_chief_and_a_restart_resumes(tmp_path):
  args = T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps=30",
                            "--gin_param=utils.run.save_checkpoints_steps=10"]
  interrupted, straight = str(tmp_path / "a"), str(tmp_path / "b")
  processes = _start(interrupted, args, str(tmp_path / "logs_a"))
  chief, worker = processes
  try:
    deadline = time.time() + _BOUND_SECS
    while not os.path.exists(os.path.join(interrupted,
                                          "model.ckpt-10.index")):
      assert chief.poll() is None and time.time() < deadline
      time.sleep(0.2)
    launch_local_cluster.stop([worker])  # kill -9
    killed = time.time()
    (code,) = launch_local_cluster.wait([chief], 60)
    took = time.time() - killed
  finally:
    launch_local_cluster.stop(processes)
  assert code not in (0, None)
  assert took < _LOST_TIMEOUT_SECS + 30
  errors = [line for line in _chief_stderr(str(tmp_path / "logs_a"))
            .splitlines() if line.startswith("mtf_synth: error:")]
  assert len(errors) == 1, errors
  assert "task worker:1 (127.0.0.1:" in errors[0]
  assert "went away" in errors[0] and "model.ckpt-" in errors[0]
  # TF's gRPC errors about the task go to the file the line names.
  noise = errors[0].split("(TF's errors about it: ")[1].rstrip(")")
  with open(noise) as f:
    assert "GRPC error information" in f.read()
  os.remove(noise)
  assert "GRPC" not in _chief_stderr(str(tmp_path / "logs_a"))
  assert not os.path.exists(os.path.join(interrupted, "model.ckpt-30.index"))

  codes, stderr = run_cluster(interrupted, args, str(tmp_path / "logs_b"))
  assert codes == [0, 0], stderr[-3000:]
  assert "Skipping" in stderr  # the data position is restored
  codes, stderr = run_cluster(straight, args, str(tmp_path / "logs_c"))
  assert codes == [0, 0], stderr[-3000:]
  assert tf.train.latest_checkpoint(interrupted).endswith("model.ckpt-30")
  _assert_same_variables(interrupted, straight)


def _one_line_error(result):
  assert result.returncode == 2, result.stderr[-3000:]
  return [line for line in result.stderr.splitlines()
          if line.startswith("mtf_synth: error:")]


def test_mesh_that_does_not_split_over_the_tasks_is_one_line(tmp_path):
  addresses = ["127.0.0.1:%d" % p
               for p in launch_local_cluster.free_ports(3)]
  result = cli_runner.mtf_synth(
      str(tmp_path), *TRAIN_10, "--cluster_tasks=%s" % ",".join(addresses),
      "--task_index=0", timeout=_BOUND_SECS)
  assert _one_line_error(result) == [
      "mtf_synth: error: mesh_shape 'model:2,batch:2' has 4 slices, which do "
      "not split evenly over the 3 tasks of the cluster: use a mesh whose "
      "size is a multiple of 3, or another number of tasks"]


def test_model_api_is_refused_on_a_cluster(tmp_path):
  result = cli_runner.mtf_synth(
      str(tmp_path), "--use_model_api", "--mode=train",
      "--mixture_or_task=mtf_synth_demo", "--cluster_tasks=127.0.0.1:1",
      "--task_index=0", timeout=_BOUND_SECS)
  (line,) = _one_line_error(result)
  assert "--use_model_api cannot run on a cluster" in line
