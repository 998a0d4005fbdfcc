"""Steps/s of one mesh on 1 process x 4 devices vs 2 loopback tasks x 2,
and the bytes the two tasks exchange per step.

The same `model:2,batch:2` training run (tiny T5.1.1 on the demo task), the
two set-ups interleaved by bench/harness.py; steps/s is the median of the
log intervals after the first (start-up excluded). On the cluster, the bytes
sent both ways on the TCP connections between the two tasks (`ss` counters,
read at the chief's log lines) are counted between the first and the last
log line, per step:

    python bench/bench_cluster.py --repeats=5   # table in runs/bench/cluster.md
    python bench/bench_cluster.py --run=cluster  # one run, as the harness does
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, os.pardir, "tests"),
                os.path.join(HERE, os.pardir, "scripts")]

import cli_runner  # noqa: E402  pylint: disable=g-import-not-at-top
import harness  # noqa: E402  pylint: disable=g-import-not-at-top
import launch_local_cluster  # noqa: E402  pylint: disable=g-import-not-at-top

_TIMEOUT_SECS = 1200
_LOG_LINE = re.compile(r"\bstep (\d+), loss ")
_SS_CONNECTION = re.compile(
    r":(\d+)\s+\S+:(\d+)\s+users:\(\(\"[^\"]*\",pid=(\d+),.*?"
    r"bytes_sent:(\d+).*?bytes_received:(\d+)", re.DOTALL)
SETUPS = {"single": "1 process x 4 devices",
          "cluster": "2 tasks x 2 devices (loopback gRPC)"}


def _command(model_dir, steps, every):
  return cli_runner._command(model_dir, [  # pylint: disable=protected-access
      a for a in cli_runner.T5_TINY_ON_DEMO if "log_every_steps" not in a
  ] + ["--gin_param=utils.run.train_steps=%d" % steps,
       "--gin_param=mtf_synth.train_loop_settings.log_every_steps=%d" % every])


def _steady_steps_per_sec(model_dir, every):
  values = cli_runner.scalars(model_dir, "steps_per_sec")
  return statistics.median(v for step, v in values.items() if step > every)


def exchanged_bytes(owner_of_port):
  """{connection: bytes sent both ways} between different tasks, now.

  Args:
    owner_of_port: each task's server port -> the pid of its process.
  Returns:
    the client side of every TCP connection from one task to another's
    server (a task's session on its own server is left out), keyed by its
    local port, with bytes_sent + bytes_received.
  """
  ports = " or ".join("dport = :%d" % port for port in owner_of_port)
  listing = subprocess.run(
      ["ss", "-tinpH", "state", "established", "( %s )" % ports],
      capture_output=True, text=True, check=True, timeout=30).stdout
  exchanged = {}
  for entry in re.split(r"\n(?=\S)", listing):
    match = _SS_CONNECTION.search(entry)
    if not match:
      continue
    local_port, server_port, pid, sent, received = map(int, match.groups())
    if owner_of_port.get(server_port) not in (None, pid):
      exchanged[local_port] = sent + received
  return exchanged


def run_single(model_dir, steps, every):
  subprocess.run(_command(model_dir, steps, every), check=True,
                 env=cli_runner._environment(),  # pylint: disable=protected-access
                 capture_output=True, timeout=_TIMEOUT_SECS)
  return {"steps_per_sec": _steady_steps_per_sec(model_dir, every)}


def run_cluster(model_dir, steps, every):
  """Trains on 2 tasks; reads the wire counters at each chief log line."""
  ports = launch_local_cluster.free_ports(2)
  processes = launch_local_cluster.start(
      _command(model_dir, steps, every), 2, model_dir + "_logs",
      env=cli_runner._environment(),  # pylint: disable=protected-access
      chief_stderr=subprocess.PIPE,
      addresses=["127.0.0.1:%d" % port for port in ports])
  chief = processes[0]
  owner_of_port = {port: process.pid
                   for port, process in zip(ports, processes)}
  timer = threading.Timer(_TIMEOUT_SECS, launch_local_cluster.stop,
                          [processes])
  timer.start()
  at_step = {}
  try:
    for line in chief.stderr:
      logged = _LOG_LINE.search(line.decode(errors="replace"))
      if logged:
        at_step[int(logged.group(1))] = exchanged_bytes(owner_of_port)
    codes = launch_local_cluster.wait(processes, _TIMEOUT_SECS)
  finally:
    timer.cancel()
    launch_local_cluster.stop(processes)
  if codes != [0, 0]:
    raise RuntimeError("cluster run failed: %s, see %s_logs" % (codes,
                                                               model_dir))
  first, last = at_step[every], at_step[steps]
  exchanged = sum(last[c] - first.get(c, 0) for c in last)
  return {"steps_per_sec": _steady_steps_per_sec(model_dir, every),
          "wire_mb_per_step": exchanged / (steps - every) / 1e6,
          "connections": len(last)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--run", choices=sorted(SETUPS),
                      help="one run of this set-up (the harness's child)")
  parser.add_argument("--steps", type=int, default=80)
  parser.add_argument("--every", type=int, default=20)
  harness.add_common_flags(parser, "cluster")
  args = parser.parse_args()
  if args.run:
    model_dir = tempfile.mkdtemp(prefix="bench_cluster_")
    try:
      run = run_single if args.run == "single" else run_cluster
      harness.report(**run(os.path.join(model_dir, "model"), args.steps,
                           args.every))
    finally:
      shutil.rmtree(model_dir)
    return
  runs = [harness.Run(name, (
      sys.executable, os.path.abspath(__file__), "--run=" + setup,
      "--steps=%d" % args.steps, "--every=%d" % args.every),
                      timeout_s=_TIMEOUT_SECS + 60)
          for setup, name in SETUPS.items()]
  records = harness.measure(runs, args.repeats, args.log)
  names = list(SETUPS.values())
  figures = [
      harness.Figure("steps/s", harness.field("steps_per_sec"), "%.2f",
                     ratio=True),
      harness.Figure("MB between tasks per step",
                     harness.field("wire_mb_per_step"), "%.2f")]
  lines = [harness.provenance(records), ""] + harness.table(
      records, names, figures, baseline=names[0])
  harness.write_markdown("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
  main()
