"""One mesh over several processes (tasks) on TensorFlow's distributed runtime.

Every task runs the same command. The cluster comes from `--cluster_tasks`
and `--task_index`, else TF_CONFIG (as TF's Estimator reads it), else SLURM
(`srun` with more than one task). Each task starts a `tf.distribute.Server`
exposing its devices; the chief (TF_CONFIG's `chief`, else task 0) builds the
graph and runs every session on its server's target, so a PlacementMeshImpl
over all tasks' devices runs the mesh across hosts. The other tasks serve
until the chief tells them it finished (a queue on each task that the chief
fills with its exit code) and exit with that code.

`server.join()` never returns and a session touching a dead task blocks
(TF waits for it forever), so every task watches the others: a task whose
gRPC server does not answer a handshake for `lost_timeout_secs` ends the
watcher's process with one line (a port that accepts TCP but does not speak
gRPC counts as down). SIGTERM and SIGINT end a task within
_SIGNAL_GRACE_SECS even while TF blocks its main thread.

TF's servers listen on every interface of their port (TF gives no way to
bind one address) and have no authentication: `start_server` warns when a
cluster address is not loopback or private (README, Security).
"""

import collections
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time

import grpc

import tensorflow.compat.v1 as tf
from tensorflow.python.distribute.cluster_resolver import slurm_cluster_resolver  # pylint: disable=g-direct-tensorflow-import

from mtf_synth import errors

_DONE_QUEUE = "mtf_synth_cluster_done"
_POLL_SECS = 1.0
# How long a gRPC handshake with a task may take.
_HANDSHAKE_SECS = 2.0
# After SIGTERM / SIGINT, how long the main thread has to stop by itself
# (training saves its step) before the process ends regardless.
_SIGNAL_GRACE_SECS = 8.0
# Reachable tasks answer within seconds; the bound covers one that dies just
# then (a session touching it would wait forever).
_NOTIFY_TIMEOUT_SECS = 60.0
_active = None  # the Cluster of this process once its server runs


Task = collections.namedtuple("Task", ("job", "index", "address"))


class Cluster:
  """The tasks of a cluster and which of them this process is."""

  def __init__(self, spec, job, index, start_timeout_secs=300,
               lost_timeout_secs=60):
    self.spec = tf.train.ClusterSpec(spec)
    self.job = job
    self.index = index
    self.start_timeout_secs = start_timeout_secs
    self.lost_timeout_secs = lost_timeout_secs
    jobs = self.spec.jobs
    if job not in jobs or index not in self.spec.task_indices(job):
      raise errors.ClusterError(
          "this process is task %s:%d, which is not in the cluster %s: fix "
          "the task index" % (job, index, self.spec.as_dict()))
    # The chief first: it holds the input pipeline and the mesh's first rows.
    order = sorted(jobs, key=lambda name: name != "chief")
    self.tasks = [Task(name, i, self.spec.task_address(name, i))
                  for name in order for i in self.spec.task_indices(name)]
    self.server = None

  @property
  def chief(self):
    return self.tasks[0]

  @property
  def this_task(self):
    return next(t for t in self.tasks
                if (t.job, t.index) == (self.job, self.index))

  @property
  def is_chief(self):
    return self.this_task == self.chief

  @property
  def num_tasks(self):
    return len(self.tasks)


def task_device(task, device=""):
  return "/job:%s/replica:0/task:%d%s" % (task.job, task.index, device)


def describe(task):
  return "%s:%d (%s)" % (task.job, task.index, task.address)


def resolve(cluster_tasks=None, task_index=None, **timeouts):
  """The cluster this process is part of, or None for a single process.

  Args:
    cluster_tasks: host:port of every task (--cluster_tasks), or None to
      read TF_CONFIG, then SLURM.
    task_index: this process's position in cluster_tasks.
    **timeouts: start_timeout_secs and lost_timeout_secs of Cluster.
  """
  if cluster_tasks:
    if task_index is None:
      raise errors.ClusterError(
          "--cluster_tasks needs --task_index: this process's position (0 "
          "for the chief) in that list")
    if not 0 <= task_index < len(cluster_tasks):
      raise errors.ClusterError(
          "--task_index=%d is not a position in --cluster_tasks (%d tasks): "
          "pass 0 to %d" % (task_index, len(cluster_tasks),
                            len(cluster_tasks) - 1))
    return Cluster({"worker": list(cluster_tasks)}, "worker", task_index,
                   **timeouts)
  if os.environ.get("TF_CONFIG"):
    return _from_tf_config(os.environ["TF_CONFIG"], **timeouts)
  num_slurm_tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", "1"))
  if num_slurm_tasks > 1:
    return _from_slurm(num_slurm_tasks, **timeouts)
  return None


def _from_slurm(num_tasks, **timeouts):
  """srun's tasks; on GPU nodes each task gets its share of the node's GPUs."""
  try:
    gpus = slurm_cluster_resolver.get_num_gpus()
  except (RuntimeError, OSError):  # no nvidia-smi: a CPU node
    gpus = 0
  if gpus:
    resolver = slurm_cluster_resolver.SlurmClusterResolver(gpus_per_node=gpus)
  else:
    # The resolver hands out GPU slots per task and fails with none; give it
    # one unused slot per task and leave CUDA_VISIBLE_DEVICES alone.
    resolver = slurm_cluster_resolver.SlurmClusterResolver(
        gpus_per_node=num_tasks, gpus_per_task=1, auto_set_gpu=False)
  spec = resolver.cluster_spec()
  task_type, task_id = resolver.get_task_info()
  return Cluster(spec, task_type, task_id, **timeouts)


def _from_tf_config(text, **timeouts):
  try:
    config = json.loads(text)
    spec, task = config["cluster"], config["task"]
    job, index = task["type"], int(task["index"])
  except (ValueError, KeyError, TypeError) as e:
    raise errors.ClusterError(
        "TF_CONFIG does not parse (%s: %s): set it like '{\"cluster\": "
        "{\"worker\": [\"host1:2222\", \"host2:2222\"]}, \"task\": {\"type\": "
        "\"worker\", \"index\": 0}}'" % (type(e).__name__, e)) from e
  unsupported = sorted(set(spec) - {"chief", "worker"})
  if unsupported:
    raise errors.ClusterError(
        "TF_CONFIG has job %s: a mesh runs on `chief` and `worker` tasks "
        "only; remove it" % unsupported[0])
  return Cluster(spec, job, index, **timeouts)


def server_config(cpus_per_task):
  """This task's devices: its GPUs and `cpus_per_task` (virtual) CPUs."""
  return tf.ConfigProto(device_count={"CPU": cpus_per_task})


def _public_hosts(cluster):
  """The hosts of the cluster's addresses that are neither loopback nor
  private (names are resolved; unresolvable ones are left out)."""
  public = []
  for task in cluster.tasks:
    host = task.address.rsplit(":", 1)[0].strip("[]")
    try:
      resolved = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
      continue
    if any(not (ip.is_loopback or ip.is_private) for ip in
           map(ipaddress.ip_address, resolved)):
      public.append(task.address)
  return public


def warn_if_public(cluster):
  """One warning line when a cluster address is not loopback or private."""
  public = _public_hosts(cluster)
  if public:
    print("mtf_synth: warning: cluster address %s is neither loopback nor "
          "private: TF's gRPC servers listen on every interface of their "
          "port and run any op whoever reaches it sends (no authentication);"
          " keep the ports behind a firewall or on a private network (README,"
          " Security)" % ", ".join(public), file=sys.stderr)


class _TaskErrorsToFile(logging.Filter):
  """MonitoredSession logs a failed task's gRPC errors at length (some 40
  lines) before the lost-task line: they go to a file instead, which that
  line names."""

  def __init__(self):
    super().__init__()
    self.path = None

  def filter(self, record):
    if record.filename != "monitored_session.py" or (
        "preemption" not in str(record.msg)):
      return True
    if self.path is None:
      handle, self.path = tempfile.mkstemp(prefix="mtf_synth_task_errors_",
                                           suffix=".log")
      os.close(handle)
    with open(self.path, "a") as f:
      f.write(record.getMessage() + "\n")
    return False

  def named(self):
    return " (TF's errors about it: %s)" % self.path if self.path else ""


_task_errors = _TaskErrorsToFile()


def start_server(cluster, cpus_per_task):
  """Starts this task's server; the cluster becomes this process's."""
  global _active
  warn_if_public(cluster)
  logging.getLogger("tensorflow").addFilter(_task_errors)
  task = cluster.this_task
  try:
    cluster.server = tf.distribute.Server(
        cluster.spec, job_name=cluster.job, task_index=cluster.index,
        config=server_config(cpus_per_task))
  except tf.errors.OpError as e:
    raise errors.ClusterError(
        "task %s cannot listen on its address (%s): the port is in use or the"
        " host is not this machine; pick a free port" % (
            describe(task), " ".join(e.message.split()))) from e
  _active = cluster
  return cluster.server


def active():
  """The cluster whose server this process runs, or None."""
  return _active


def session_target():
  return _active.server.target if _active else ""


def session_config():
  """The chief's session config on a cluster (None: a single process).

  No device_filters (a RunConfig built from TF_CONFIG sets them, hiding the
  other tasks' devices from the mesh).
  """
  return tf.ConfigProto() if _active else None


def chief_device():
  """Where ops without a device go: the chief's task ("" off a cluster)."""
  return task_device(_active.chief) if _active else ""


def _reachable(address):
  """Whether a gRPC server answers at address (an HTTP/2 handshake within
  _HANDSHAKE_SECS; a bare TCP listener does not)."""
  with grpc.insecure_channel(address) as channel:
    try:
      grpc.channel_ready_future(channel).result(timeout=_HANDSHAKE_SECS)
      return True
    except grpc.FutureTimeoutError:
      return False


def wait_for_tasks(cluster, tasks):
  """Waits until every task listens; raises ClusterError after the timeout."""
  deadline = time.time() + cluster.start_timeout_secs
  waiting = list(tasks)
  while waiting:
    waiting = [t for t in waiting if not _reachable(t.address)]
    if waiting and time.time() > deadline:
      raise errors.ClusterError(
          "task %s did not come up within %d s: start the same command there "
          "(with its task index), or raise --cluster_start_timeout_secs" % (
              describe(waiting[0]), cluster.start_timeout_secs))
    if waiting:
      time.sleep(_POLL_SECS)


def list_devices(cluster):
  """{task: [device names]} of every task, from a session on the chief."""
  wait_for_tasks(cluster, cluster.tasks)
  with tf.Graph().as_default(), tf.Session(session_target()) as session:
    names = [d.name for d in session.list_devices()]
  return {task: [n for n in names if n.startswith(task_device(task) + "/")]
          for task in cluster.tasks}


def _exit_with_one_line(message, code):
  sys.stdout.flush()
  print("mtf_synth: error: %s" % message, file=sys.stderr, flush=True)
  # Not sys.exit: sessions touching a dead task never close, and the gRPC
  # server has no clean shutdown.
  os._exit(code)  # pylint: disable=protected-access


def watch(cluster, tasks, lost, code):
  """Ends this process with one line when a task stays unreachable.

  Waits for the tasks to come up first (start_timeout_secs).

  Args:
    cluster: the Cluster (its lost_timeout_secs is the bound).
    tasks: the tasks to watch.
    lost: task -> the rest of the message (e.g. where to resume from).
    code: the exit code.
  """
  def run():
    try:
      wait_for_tasks(cluster, tasks)
    except errors.ClusterError as e:
      _exit_with_one_line(str(e), code)
    tf.logging.info("tasks %s are up: watching them",
                    ", ".join(map(describe, tasks)))
    last_seen = {task: time.time() for task in tasks}
    while True:
      now = time.time()
      for task in tasks:
        if _reachable(task.address):
          last_seen[task] = now
        elif now - last_seen[task] > cluster.lost_timeout_secs:
          _exit_with_one_line(
              "task %s went away (unreachable for %d s): %s%s" % (
                  describe(task), cluster.lost_timeout_secs, lost(task),
                  _task_errors.named()), code)
      time.sleep(_POLL_SECS)

  threading.Thread(target=run, name="mtf_synth_cluster_watch",
                   daemon=True).start()


def end_on_signals_while_blocked():
  """SIGTERM / SIGINT end this process within _SIGNAL_GRACE_SECS.

  Python runs signal handlers on the main thread between bytecodes; a main
  thread blocked in TF (a session waiting for a task) never gets there. The
  signal's number also goes to a pipe (signal.set_wakeup_fd, written by the
  C-level handler); a thread reading it gives the main thread the grace
  period to stop by itself (training saves its step), then ends the process
  with one line. A checkpoint cut short is skipped on resume (its files are
  verified). Main thread only.
  """
  read_fd, write_fd = os.pipe()
  os.set_blocking(write_fd, False)
  signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

  def run():
    signum = None
    while signum not in (signal.SIGTERM, signal.SIGINT):
      signum = os.read(read_fd, 1)[0]  # every signal Python handles
    time.sleep(_SIGNAL_GRACE_SECS)
    _exit_with_one_line(
        "stopped by %s; the main thread did not stop within %d s (blocked in"
        " TF, e.g. waiting for a cluster task): restart every task with the "
        "same commands to resume from the latest intact checkpoint" % (
            signal.Signals(signum).name, _SIGNAL_GRACE_SECS), 128 + signum)

  threading.Thread(target=run, name="mtf_synth_signal_watch",
                   daemon=True).start()


def _done_queue(task):
  with tf.device(task_device(task, "/device:CPU:0")):
    return tf.FIFOQueue(1, tf.int32, shapes=[],
                        shared_name=_DONE_QUEUE)


def serve(cluster):
  """A non-chief task: serves the mesh until the chief is done; never returns.

  Exits with the chief's exit code, or 1 when the chief goes away first.
  """
  watch(cluster, [cluster.chief], lambda task: "stopping this task as well; restart "
        "every task with the same commands to resume", 1)
  own = cluster.this_task
  with tf.Graph().as_default():
    queue = _done_queue(own)
    size, dequeue = queue.size(), queue.dequeue()
    # Only this task: a session on a cluster otherwise waits for them all.
    config = tf.ConfigProto(device_filters=[task_device(own)])
    with tf.Session(session_target(), config=config) as session:
      # Polled, then dequeued once there: a dequeue cut by a timeout can
      # take the chief's code with it (the exit code was lost that way).
      while not session.run(size):
        time.sleep(_POLL_SECS)
      code = int(session.run(dequeue))
  tf.logging.info("the chief finished with exit code %d: task %s stops",
                  code, describe(own))
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)  # pylint: disable=protected-access


def notify_done(cluster, code):
  """Tells every reachable non-chief task to exit with `code` (bounded)."""
  tasks = [t for t in cluster.tasks[1:] if _reachable(t.address)]
  if not tasks:
    return

  def run():
    with tf.Graph().as_default():
      enqueues = [_done_queue(task).enqueue(code) for task in tasks]
      config = tf.ConfigProto(device_filters=[
          task_device(t) for t in [cluster.chief] + tasks])
      with tf.Session(session_target(), config=config) as session:
        session.run(enqueues)

  started = time.time()
  thread = threading.Thread(target=run, name="mtf_synth_cluster_notify",
                            daemon=True)
  thread.start()
  thread.join(_NOTIFY_TIMEOUT_SECS)
  if thread.is_alive():
    tf.logging.warning("could not tell tasks %s that the chief is done "
                       "within %d s: they stop when they see it gone",
                       ", ".join(map(describe, tasks)), _NOTIFY_TIMEOUT_SECS)
  else:
    tf.logging.info("told tasks %s to exit with code %d (%.1f s)",
                    ", ".join(map(describe, tasks)), code,
                    time.time() - started)
