"""Steps/s of one mesh on 1 process x 4 devices vs 2 loopback tasks x 2,
and the bytes the two tasks exchange per step.

The same `model:2,batch:2` training run (T5.1.1 on the demo task,
tests/cli_runner.py; `--sizes`: the tiny model, d_model 32, and a
compute-bound one, d_model 512), the set-ups interleaved over `--repeats`
(bench/harness.py): one process, and 2 tasks with the gradients' all-reduce
grouped (mtf_synth.gradient_allreduce, the default) or per tensor as mesh
TF does it (`when='never'`). Steps/s is bench/cli_train.py's (the median
of the logged rates after the first interval). On the cluster, the bytes
sent both ways on the TCP connections between the two tasks (`ss`
counters, read at the chief's log lines) are counted from the first log
line to the last, per step.

    python bench/bench_cluster.py --repeats=5    # table in runs/bench/cluster.md
    python bench/bench_cluster.py --cluster_run  # one cluster run, as the harness does
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, os.pardir, "tests"),
                os.path.join(HERE, os.pardir, "scripts")]

import cli_runner  # noqa: E402  pylint: disable=g-import-not-at-top
import cli_train  # noqa: E402  pylint: disable=g-import-not-at-top
import harness  # noqa: E402  pylint: disable=g-import-not-at-top
import launch_local_cluster  # noqa: E402  pylint: disable=g-import-not-at-top

_TIMEOUT_SECS = 1200
_LOG_LINE = re.compile(r"\bstep (\d+), loss ")
# One `ss -tinpH` entry: local port, peer port, owning pid, byte counters.
_SS_CONNECTION = re.compile(
    r":(\d+)\s+\S+:(\d+)\s+users:\(\(\"[^\"]*\",pid=(\d+),.*?"
    r"bytes_sent:(\d+).*?bytes_received:(\d+)", re.DOTALL)
SINGLE, GROUPED, PER_TENSOR = (
    "1 process x 4 virtual CPU devices",
    "2 tasks x 2 devices (loopback gRPC), grouped all-reduce",
    "2 tasks x 2 devices (loopback gRPC), per-tensor all-reduce (mesh TF)")
# --sizes: gin bindings over tiny T5.1.1, and (steps, log interval).
SIZES = {"demo": ((), (80, 20)),
         "512": (("d_model = 512", "d_ff = 2048", "num_heads = 8"), (24, 6))}


def mtf_synth_flags(size, when="across_tasks"):
  bindings, (steps, every) = SIZES[size]
  return [a for a in cli_runner.T5_TINY_ON_DEMO if "log_every_steps" not in a
          ] + ["--gin_param=" + b for b in bindings + (
              "utils.run.train_steps=%d" % steps,
              "mtf_synth.train_loop_settings.log_every_steps=%d" % every,
              "mtf_synth.group_gradient_allreduce.when = %r" % when)]


def exchanged_bytes(owner_of_port):
  """{connection: bytes sent both ways so far} between different tasks.

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
    if owner_of_port[server_port] != pid:
      exchanged[local_port] = sent + received
  return exchanged


def cluster_run(size, when):
  """Trains on 2 loopback tasks; reports as cli_train, plus the wire bytes."""
  steps, every = SIZES[size][1]
  ports = launch_local_cluster.free_ports(2)
  with tempfile.TemporaryDirectory(prefix="bench_cluster_") as root:
    model_dir = os.path.join(root, "model")
    processes = launch_local_cluster.start(
        [sys.executable, "-m", "mtf_synth", "--model_dir=" + model_dir]
        + mtf_synth_flags(size, when), 2, os.path.join(root, "logs"),
        chief_stderr=subprocess.PIPE,
        addresses=["127.0.0.1:%d" % port for port in ports])
    owner_of_port = {port: p.pid for port, p in zip(ports, processes)}
    # Ends the read loop below if the run hangs: its pipe closes.
    deadline = threading.Timer(_TIMEOUT_SECS, launch_local_cluster.stop,
                               [processes])
    deadline.start()
    at_step, chief_tail = {}, collections.deque(maxlen=20)
    try:
      for line in processes[0].stderr:
        chief_tail.append(line.decode(errors="replace"))
        logged = _LOG_LINE.search(chief_tail[-1])
        if logged:
          at_step[int(logged.group(1))] = exchanged_bytes(owner_of_port)
      codes = launch_local_cluster.wait(processes, _TIMEOUT_SECS)
    finally:
      deadline.cancel()
      launch_local_cluster.stop(processes)
    if codes != [0, 0]:
      sys.exit("%scluster run failed with exit codes %s" % (
          "".join(chief_tail), codes))
    first, last = at_step[every], at_step[steps]
    exchanged = sum(last[c] - first.get(c, 0) for c in last)
    cli_train.report_run(model_dir,
                         wire_mb_per_step=exchanged / (steps - every) / 1e6,
                         connections=len(last))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cluster_run", choices=sorted(SIZES),
                      help="one cluster run of this size (the harness's "
                      "child)")
  parser.add_argument("--when", default="across_tasks",
                      help="mtf_synth.group_gradient_allreduce.when")
  parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES),
                      default=["demo", "512"])
  harness.add_common_flags(parser, "cluster", repeats=5)
  args = parser.parse_args()
  if args.cluster_run:
    cluster_run(args.cluster_run, args.when)
    return
  runs = []
  for size in args.sizes:
    runs += [
        harness.Run("%s: %s" % (size, SINGLE), (
            sys.executable, cli_train.__file__, *mtf_synth_flags(size)),
                    timeout_s=_TIMEOUT_SECS),
        *(harness.Run("%s: %s" % (size, name), (
            sys.executable, os.path.abspath(__file__), "--cluster_run", size,
            "--when", when), timeout_s=_TIMEOUT_SECS + 60)
          for name, when in ((GROUPED, "across_tasks"),
                             (PER_TENSOR, "never")))]
  records = harness.measure(runs, args.repeats, args.log)
  figures = [
      harness.Figure("steps/s", harness.field("steps_per_s"), "%.2f",
                     ratio=True),
      harness.Figure("MB between the tasks per step",
                     harness.field("wire_mb_per_step"), "%.2f")]
  lines = ["## One mesh over two processes (issues 12, 21)", "",
           harness.provenance(records), "",
           "T5.1.1 on mtf_synth_demo, mesh model:2,batch:2, batch 8, length "
           "64/64; steps/s: the median of the logged rates after the first "
           "interval. demo: the tiny model (d_model 32, d_ff 64, 2 heads), "
           "%d steps logged every %d; 512: d_model 512, d_ff 2048, 8 heads, "
           "%d steps logged every %d." % (SIZES["demo"][1] + SIZES["512"][1])]
  for size in args.sizes:
    names = ["%s: %s" % (size, n) for n in (SINGLE, GROUPED, PER_TENSOR)]
    lines += [""] + harness.table(records, names, figures, names[:1])
  harness.write_markdown("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
  main()
