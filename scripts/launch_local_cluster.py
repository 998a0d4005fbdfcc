"""Starts an N-task mtf_synth cluster on this machine (127.0.0.1).

Each task runs the same command with its own TF_CONFIG, as on N hosts:

    python scripts/launch_local_cluster.py --tasks=2 --log_dir=runs/logs -- \\
      mtf_synth --model_dir=runs/c --gin_file=demo.gin \\
      --gin_param="utils.run.mesh_shape='model:2,batch:2'"

Task 0 is the chief (its output comes here); the others write to
LOG_DIR/task-N.log. Exits with the first non-zero exit code of a task (else
0); Ctrl-C or --timeout_secs stops every task.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

_POLL_SECS = 0.2


def free_ports(count):
  """Ports free on 127.0.0.1 now (held open together, so all distinct)."""
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def tf_config(addresses, index):
  return json.dumps({"cluster": {"worker": addresses},
                     "task": {"type": "worker", "index": index}})


def start(command, num_tasks, log_dir, env=None, chief_stderr=None,
          addresses=None):
  """Starts the tasks (each in its own process group); returns the Popens.

  Args:
    command: the argv every task runs.
    num_tasks: how many tasks.
    log_dir: where task-N.log (stdout and stderr) of each task goes.
    env: the environment (default: this process's), plus TF_CONFIG.
    chief_stderr: where the chief's stderr goes (default: its log file).
    addresses: each task's host:port (default: free ports on 127.0.0.1).
  """
  os.makedirs(log_dir, exist_ok=True)
  addresses = addresses or ["127.0.0.1:%d" % port
                            for port in free_ports(num_tasks)]
  processes = []
  for index in range(num_tasks):
    log = open(os.path.join(log_dir, "task-%d.log" % index), "w")  # pylint: disable=consider-using-with
    stderr = chief_stderr if index == 0 and chief_stderr else log
    processes.append(subprocess.Popen(
        command, stdout=log, stderr=stderr, start_new_session=True,
        env=dict(env or os.environ, TF_CONFIG=tf_config(addresses, index))))
    log.close()
  return processes


def stop(processes):
  """SIGKILLs every task's process group that is still there."""
  for process in processes:
    if process.poll() is None:
      os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait(processes, timeout_secs):
  """Exit codes of all tasks; raises TimeoutError (tasks left running)."""
  deadline = time.time() + timeout_secs
  while any(p.poll() is None for p in processes):
    if time.time() > deadline:
      raise TimeoutError("the cluster did not finish within %d s" %
                         timeout_secs)
    time.sleep(_POLL_SECS)
  return [p.returncode for p in processes]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--tasks", type=int, default=2)
  parser.add_argument("--log_dir", default="cluster_logs")
  parser.add_argument("--timeout_secs", type=int, default=24 * 3600)
  parser.add_argument("command", nargs=argparse.REMAINDER,
                      help="-- then the command every task runs")
  args = parser.parse_args()
  command = args.command[1:] if args.command[:1] == ["--"] else args.command
  if not command or args.tasks < 1:
    parser.error("give --tasks >= 1 and the command after --")
  processes = start(command, args.tasks, args.log_dir,
                    chief_stderr=sys.stderr)
  try:
    codes = wait(processes, args.timeout_secs)
  except (KeyboardInterrupt, TimeoutError) as e:
    print("launch_local_cluster: %s: stopping every task" % (
        str(e) or "interrupted"), file=sys.stderr)
    return 1
  finally:
    stop(processes)
  print("launch_local_cluster: exit codes %s (logs in %s)" % (
      codes, args.log_dir), file=sys.stderr)
  return next((c for c in codes if c), 0)


if __name__ == "__main__":
  sys.exit(main())
