"""Cluster faults: a peer port that accepts TCP but does not speak gRPC, a
signal while TF blocks, public addresses, and a worker restarted alone.

Every process is bounded in time and killed in a finally; every address is
on 127.0.0.1 (public ones are only classified, never contacted).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import cli_runner
from cli_runner import T5_TINY_ON_DEMO
from mtf_synth.runtime import checkpoints
from mtf_synth.runtime import cluster as cluster_lib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir,
                                "scripts"))
import launch_local_cluster  # noqa: E402  pylint: disable=g-import-not-at-top


class _TcpOnlyListener:
  """Accepts TCP connections on 127.0.0.1 and never answers (not gRPC)."""

  def __init__(self):
    self._socket = socket.socket()
    self._socket.bind(("127.0.0.1", 0))
    self._socket.listen(16)
    self.address = "127.0.0.1:%d" % self._socket.getsockname()[1]
    self._accepted = []
    self._thread = threading.Thread(target=self._accept, daemon=True)
    self._thread.start()

  def _accept(self):
    while True:
      try:
        self._accepted.append(self._socket.accept()[0])
      except OSError:
        return

  def close(self):
    self._socket.close()
    for connection in self._accepted:
      connection.close()


@pytest.fixture
def tcp_only():
  listener = _TcpOnlyListener()
  yield listener
  listener.close()


def _free_address():
  return "127.0.0.1:%d" % launch_local_cluster.free_ports(1)[0]


def test_a_tcp_listener_is_not_a_task(tcp_only):
  assert not cluster_lib._reachable(tcp_only.address)  # pylint: disable=protected-access
  server = tf.distribute.Server.create_local_server()
  assert cluster_lib._reachable(server.target[len("grpc://"):])  # pylint: disable=protected-access


def test_chief_with_a_tcp_only_peer_ends_within_the_start_timeout(tcp_only,
                                                                  tmp_path):
  timeout = 10
  started = time.time()
  result = cli_runner.mtf_synth(
      str(tmp_path / "model"), *T5_TINY_ON_DEMO,
      "--gin_param=utils.run.train_steps=2",
      "--cluster_tasks=%s,%s" % (_free_address(), tcp_only.address),
      "--task_index=0", "--cluster_start_timeout_secs=%d" % timeout,
      timeout=300)
  took = time.time() - started
  assert result.returncode == 2, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines()
           if line.startswith("mtf_synth: error:")]
  assert len(lines) == 1, result.stderr[-3000:]
  assert "task worker:1 (%s) did not come up within %d s" % (
      tcp_only.address, timeout) in lines[0]
  # Start-up (imports, gin) plus the timeout; the hang it replaces was
  # endless.
  assert took < timeout + 90, took


# A process whose main thread blocks in TF (a session on a peer that never
# answers), with the command line's SIGTERM handler and the signal watch.
_BLOCKED = """
import signal, sys
import tensorflow.compat.v1 as tf
from mtf_synth.runtime import cluster as cluster_lib
tf.disable_v2_behavior()
def stop(signum, frame):
  raise SystemExit(128 + signum)
signal.signal(signal.SIGTERM, stop)
cluster_lib.end_on_signals_while_blocked()
with tf.Session("grpc://" + sys.argv[1]) as session:
  print("blocking", flush=True)
  session.run(tf.constant(1))
"""


def test_sigterm_ends_a_process_blocked_in_tf(tcp_only):
  process = subprocess.Popen(
      [sys.executable, "-c", _BLOCKED, tcp_only.address],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  try:
    assert process.stdout.readline() == "blocking\n"
    time.sleep(2)
    assert process.poll() is None, "the session did not block"
    sent = time.time()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    took = time.time() - sent
  finally:
    process.kill()
  assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  assert took < 10, took
  lines = [line for line in stderr.splitlines()
           if line.startswith("mtf_synth: error:")]
  assert len(lines) == 1 and "stopped by SIGTERM" in lines[0], stderr


def test_public_cluster_addresses_are_warned_about(capsys):
  public = cluster_lib.Cluster(
      {"worker": ["127.0.0.1:2222", "10.1.2.3:2222", "8.8.8.8:2222",
                  "[2001:4860::8888]:2222"]}, "worker", 0)
  cluster_lib.warn_if_public(public)
  (line,) = capsys.readouterr().err.splitlines()
  assert line.startswith("mtf_synth: warning: cluster address 8.8.8.8:2222, "
                         "[2001:4860::8888]:2222 is neither loopback nor "
                         "private")
  assert "firewall" in line and "Security" in line
  private = cluster_lib.Cluster(
      {"worker": ["127.0.0.1:2222", "192.168.0.2:2222", "localhost:2223"]},
      "worker", 0)
  cluster_lib.warn_if_public(private)
  assert capsys.readouterr().err == ""


def _variables(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


@pytest.mark.slow
def test_worker_restarted_alone_stops_the_chief_then_a_restart_resumes(
    tmp_path):
  """The worker is killed mid-run and started again within the lost-task
  timeout: the chief's session is re-created and it stops with one line
  (TF would run on from the checkpoint on other data). Restarting both
  resumes to one process's result."""
  args = T5_TINY_ON_DEMO + ["--gin_param=utils.run.train_steps=30",
                            "--gin_param=utils.run.save_checkpoints_steps=10"]
  model_dir, single = str(tmp_path / "cluster"), str(tmp_path / "single")
  command = cli_runner.command(model_dir, *args,
                               "--cluster_lost_timeout_secs=300",
                               "--cluster_start_timeout_secs=300")
  env = cli_runner.environment()
  logs = str(tmp_path / "logs")
  addresses = ["127.0.0.1:%d" % port
               for port in launch_local_cluster.free_ports(2)]
  processes = launch_local_cluster.start(command, 2, logs, env=env,
                                         addresses=addresses)
  try:
    deadline = time.time() + 600
    while not os.path.exists(checkpoints.path(model_dir, 10) + ".index"):
      assert processes[0].poll() is None and time.time() < deadline
      time.sleep(0.2)
    launch_local_cluster.stop(processes[1:])  # kill -9 the worker only
    with open(os.path.join(logs, "task-1-again.log"), "w") as log:
      processes[1] = subprocess.Popen(
          command, stdout=log, stderr=log, start_new_session=True,
          env=dict(env, TF_CONFIG=launch_local_cluster.tf_config(addresses,
                                                                 1)))
    codes = launch_local_cluster.wait(processes, 600)
  finally:
    launch_local_cluster.stop(processes)
  with open(os.path.join(logs, "task-0.log")) as f:
    chief = f.read()
  lines = [line for line in chief.splitlines()
           if line.startswith("mtf_synth: error:")]
  assert codes[0] == 2, chief[-3000:]
  assert len(lines) == 1, chief[-3000:]
  assert "the session was lost and re-created" in lines[0]
  assert "restart every task with the same commands" in lines[0]
  assert not os.path.exists(checkpoints.path(model_dir, 30) + ".index")

  processes = launch_local_cluster.start(command, 2, str(tmp_path / "logs2"),
                                         env=env)
  try:
    codes = launch_local_cluster.wait(processes, 600)
  finally:
    launch_local_cluster.stop(processes)
  assert codes == [0, 0]
  result = cli_runner.mtf_synth(single, *args)
  assert result.returncode == 0, result.stderr[-3000:]
  ours = _variables(checkpoints.path(model_dir, 30))
  reference = _variables(checkpoints.path(single, 30))
  assert sorted(ours) == sorted(reference)
  for name, value in reference.items():
    np.testing.assert_allclose(ours[name], value, rtol=0, atol=1e-6,
                               err_msg=name)
