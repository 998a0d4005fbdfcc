"""Cluster resolution, device order and task lifecycle (runtime/cluster.py).

Lifecycle tests run tasks as small subprocesses (a server each, no model) on
127.0.0.1, every wait bounded and every process killed in a finally.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tensorflow.python.distribute.cluster_resolver import slurm_cluster_resolver  # pylint: disable=g-direct-tensorflow-import

from mtf_synth import errors
from mtf_synth.runtime import cluster as cluster_lib
from mtf_synth.runtime import devices

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir,
                                "scripts"))
import launch_local_cluster  # noqa: E402  pylint: disable=g-import-not-at-top

# A task of a cluster without a model: argv = addresses, index, role.
# The chief tells the workers to exit with code 3 and exits 0 (role
# "notify"), or waits to be killed (role "wait"); workers serve.
_TASK = """
import sys, time
import tensorflow.compat.v1 as tf
from mtf_synth.runtime import cluster as cluster_lib
tf.disable_v2_behavior()
tf.logging.set_verbosity(tf.logging.INFO)
addresses, index, role = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3]
cluster = cluster_lib.resolve(addresses, index, start_timeout_secs=60,
                              lost_timeout_secs=2)
cluster_lib.start_server(cluster, 2)
if not cluster.is_chief:
  cluster_lib.serve(cluster)
cluster_lib.wait_for_tasks(cluster, cluster.tasks)
print("all up", flush=True)
if role == "notify":
  cluster_lib.notify_done(cluster, 3)
  sys.exit(0)
time.sleep(600)
"""
_BOUND_SECS = 120


def _addresses(count):
  return ["127.0.0.1:%d" % p for p in launch_local_cluster.free_ports(count)]


def _start_tasks(addresses, chief_role):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("TF_CONFIG", None)
  return [subprocess.Popen(
      [sys.executable, "-c", _TASK, ",".join(addresses), str(i), chief_role],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
      start_new_session=True) for i in range(len(addresses))]


def test_flags_make_a_cluster_of_workers_chief_first():
  cluster = cluster_lib.resolve(["h0:1", "h1:2", "h2:3"], 1)
  assert [t.address for t in cluster.tasks] == ["h0:1", "h1:2", "h2:3"]
  assert cluster.this_task == cluster_lib.Task("worker", 1, "h1:2")
  assert not cluster.is_chief and cluster.num_tasks == 3
  with pytest.raises(errors.ClusterError, match="--task_index"):
    cluster_lib.resolve(["h0:1"], None)
  with pytest.raises(errors.ClusterError, match="pass 0 to 1"):
    cluster_lib.resolve(["h0:1", "h1:2"], 2)


def test_tf_config_chief_comes_first(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", json.dumps({
      "cluster": {"worker": ["w0:1", "w1:1"], "chief": ["c:1"]},
      "task": {"type": "worker", "index": 0}}))
  cluster = cluster_lib.resolve()
  assert [(t.job, t.index) for t in cluster.tasks] == [
      ("chief", 0), ("worker", 0), ("worker", 1)]
  assert cluster.chief.address == "c:1" and not cluster.is_chief
  monkeypatch.setenv("TF_CONFIG", json.dumps({
      "cluster": {"worker": ["w0:1"], "ps": ["p:1"]},
      "task": {"type": "worker", "index": 0}}))
  with pytest.raises(errors.ClusterError, match="job ps"):
    cluster_lib.resolve()
  monkeypatch.setenv("TF_CONFIG", "{not json")
  with pytest.raises(errors.ClusterError, match="does not parse"):
    cluster_lib.resolve()


def test_no_cluster_without_flags_tf_config_or_srun(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  monkeypatch.delenv("SLURM_STEP_NUM_TASKS", raising=False)
  assert cluster_lib.resolve() is None


def test_slurm_srun_tasks_make_a_cluster(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  for name, value in {"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1",
                      "SLURM_STEP_NODELIST": "n1",
                      "SLURM_STEP_TASKS_PER_NODE": "2"}.items():
    monkeypatch.setenv(name, value)
  # No scontrol here: SLURM's host list expansion is given.
  monkeypatch.setattr(slurm_cluster_resolver, "expand_hostlist",
                      lambda hostlist: [hostlist])
  cluster = cluster_lib.resolve()
  assert [t.address for t in cluster.tasks] == ["n1:8888", "n1:8889"]
  assert cluster.this_task.index == 1


def test_batch_splits_across_tasks_model_stays_within():
  tasks = [["a0", "a1"], ["b0", "b1"]]
  # pnum = model * 2 + batch: both model halves of a batch row on one task.
  assert devices.order_over_tasks("model:2,batch:2", "batch:batch",
                                  tasks) == ["a0", "b0", "a1", "b1"]
  assert devices.order_over_tasks("batch:2,model:2", "batch:batch",
                                  tasks) == ["a0", "a1", "b0", "b1"]
  # No batch axis: in mesh order.
  assert devices.order_over_tasks("model:4", "", tasks) == [
      "a0", "a1", "b0", "b1"]


def test_mesh_must_split_evenly_over_tasks():
  assert devices.cpus_per_task("model:2,batch:2", None, 2) == 2
  assert devices.cpus_per_task(
      "model:2,batch:2", ["/job:worker/task:0/device:CPU:%d" % i
                          for i in (0, 5, 1, 2)], 2) == 6
  with pytest.raises(errors.MeshDevicesError,
                     match="6 slices, which do not split evenly over the 4 "
                     "tasks"):
    devices.cpus_per_task("model:2,batch:3", None, 4)


def _listing(cluster, device_types):
  """{task: device names} as list_devices gives them, 2 of each type."""
  return {task: ["%s/device:%s:%d" % (cluster_lib.task_device(task), kind, i)
                 for kind in device_types for i in range(2)]
          for task in cluster.tasks}


def test_cluster_mesh_uses_gpus_else_cpus_and_too_few_gpus_is_an_error(
    monkeypatch):
  cluster = cluster_lib.resolve(["h0:1", "h1:2"], 0)
  listing = {}
  monkeypatch.setattr(cluster_lib, "list_devices", lambda _: listing)
  for kinds, expected in ((["CPU"], "CPU"), (["CPU", "GPU"], "GPU")):
    listing.update(_listing(cluster, kinds))
    assert devices.cluster_mesh_devices(
        cluster, "model:2,batch:2", "batch:batch") == [
            "/job:worker/replica:0/task:%d/device:%s:%d" % (task, expected, i)
            for i in range(2) for task in range(2)]
  # 4 slices per task, 2 GPUs each: not silently on the CPUs.
  with pytest.raises(errors.MeshDevicesError,
                     match=r"needs 4 devices on each of the 2 tasks but task "
                     r"worker:0 \(h0:1\) has 2 GPUs: use a mesh of at most 4 "
                     "slices"):
    devices.cluster_mesh_devices(cluster, "model:2,batch:4", "batch:batch")


def test_port_in_use_is_one_line():
  with socket.socket() as taken:
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    address = "127.0.0.1:%d" % taken.getsockname()[1]
    cluster = cluster_lib.resolve([address, _addresses(1)[0]], 0)
    with pytest.raises(errors.ClusterError,
                       match="cannot listen on its address.*pick a free port"):
      cluster_lib.start_server(cluster, 1)
  assert cluster_lib.active() is None


def test_a_task_that_never_comes_up_is_one_line():
  cluster = cluster_lib.resolve(_addresses(2), 0, start_timeout_secs=1)
  started = time.time()
  with pytest.raises(errors.ClusterError,
                     match=r"worker:1 \(127.0.0.1:\d+\) did not come up "
                     "within 1 s"):
    cluster_lib.wait_for_tasks(cluster, cluster.tasks[1:])
  assert time.time() - started < 10


def _wait_for(process, text, deadline, stream="stdout"):
  while time.time() < deadline:
    if process.poll() is not None:
      pytest.fail("task exited: %s" % process.communicate()[1][-2000:])
    line = getattr(process, stream).readline()
    if text in line:
      return
  pytest.fail("no %r within the bound" % text)


def test_workers_exit_with_the_chiefs_code():
  processes = _start_tasks(_addresses(3), "notify")
  try:
    codes = launch_local_cluster.wait(processes, _BOUND_SECS)
  finally:
    launch_local_cluster.stop(processes)
  assert codes == [0, 3, 3], [p.stderr.read()[-2000:] for p in processes]


def test_killing_the_chief_stops_the_workers():
  processes = _start_tasks(_addresses(2), "wait")
  chief, worker = processes
  try:
    _wait_for(chief, "all up", time.time() + _BOUND_SECS)
    # Until the worker has seen the chief, a missing chief is one that has
    # not started yet (start_timeout_secs), not one that went away.
    _wait_for(worker, "are up: watching them", time.time() + _BOUND_SECS,
              stream="stderr")
    chief.kill()
    killed = time.time()
    assert launch_local_cluster.wait([worker], 30) == [1]
    assert time.time() - killed < 30  # lost_timeout_secs=2, polled each 1 s
    errors = [line for line in worker.stderr.read().splitlines()
              if line.startswith("mtf_synth: error:")]
    assert len(errors) == 1, errors
    assert "task worker:0 (127.0.0.1:" in errors[0] and "went away" in errors[0]
  finally:
    launch_local_cluster.stop(processes)

