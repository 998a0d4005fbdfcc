"""Op-level profile of an Estimator's session runs: TF step stats by op type.

A `TraceHook` asks for a FULL_TRACE of chosen session runs (1 = the first);
both runtimes' Estimators (mtf_synth's and TF 2.12's) pass a hook's
RunOptions to the session and its RunMetadata back. `summary` reduces the
traced runs' step stats to what bench/profiles.py tabulates: per op type the
summed op seconds (all threads; a while loop's op counts once per iteration)
and executions, the run's wall seconds, and the busiest nodes (with their
op type and first output's shape).

Two ways in:
- bench/train_same.py adds the hook to training when BENCH_TRACE_RUNS is
  set ("3,4,5": trace those steps) and reports `summary` as `op_profile`;
- as `--module_import=step_stats` of the command line (with bench/ on
  PYTHONPATH) it traces the Estimator method named by BENCH_TRACE_METHOD
  (default predict: one run decodes one batch) and writes the summary as
  JSON to BENCH_TRACE_OUT when the process exits.
Tracing times every op, which adds overhead to each: compare profiles with
each other, not with untraced step times.

With BENCH_BATCH_TIMES_OUT set instead, `--module_import=step_stats` times
every session run of that method untraced (wall and process CPU seconds;
predict: one run decodes one batch) and writes {"wall_s": [...], "cpu_s":
[...]} there at exit (bench/decode.py).
"""

import atexit
import collections
import json
import os
import time

import tensorflow.compat.v1 as tf

TOP_NODES = 15


def trace_runs():
  """The session runs named by BENCH_TRACE_RUNS ("3,4"), as a set."""
  return {int(n) for n in os.environ.get("BENCH_TRACE_RUNS", "").split(",")
          if n.strip()}


class TraceHook(tf.train.SessionRunHook):
  """Traces the session runs numbered in `runs` (from 1) of its session."""

  def __init__(self, runs):
    self.runs = set(runs)
    self.count = 0
    self.step_stats = []

  def before_run(self, run_context):
    self.count += 1
    if self.count in self.runs:
      return tf.train.SessionRunArgs(None, options=tf.RunOptions(
          trace_level=tf.RunOptions.FULL_TRACE))
    return None

  def after_run(self, run_context, run_values):
    if self.count in self.runs and run_values.run_metadata is not None:
      self.step_stats.append(run_values.run_metadata.step_stats)


class RunTimer(tf.train.SessionRunHook):
  """Wall and process CPU seconds of each session run."""

  def __init__(self):
    self.times = {"wall_s": [], "cpu_s": []}
    self._start = None

  def before_run(self, run_context):
    self._start = (time.perf_counter(), time.process_time())

  def after_run(self, run_context, run_values):
    self.times["wall_s"].append(time.perf_counter() - self._start[0])
    self.times["cpu_s"].append(time.process_time() - self._start[1])


def _op_type(node):
  # timeline_label reads "name = OpType(inputs)"; _SOURCE and friends have
  # none.
  label = node.timeline_label
  if " = " in label:
    return label.split(" = ", 1)[1].split("(", 1)[0]
  return node.node_name.split(":")[-1]


def summary(step_stats_list):
  """Per traced run averaged: op type -> seconds, count; wall; top nodes."""
  by_type = collections.defaultdict(lambda: [0.0, 0])
  by_node = collections.Counter()
  shapes = {}
  walls, threads = [], set()
  for step_stats in step_stats_list:
    starts, ends = [], []
    for device in step_stats.dev_stats:
      for node in device.node_stats:
        seconds = node.all_end_rel_micros / 1e6
        entry = by_type[_op_type(node)]
        entry[0] += seconds
        entry[1] += 1
        by_node[node.node_name] += seconds
        if node.output and node.node_name not in shapes:
          shapes[node.node_name] = [
              [d.size for d in node.output[0].tensor_description.shape.dim],
              _op_type(node)]
        threads.add((device.device, node.thread_id))
        starts.append(node.all_start_micros)
        ends.append(node.all_start_micros + node.all_end_rel_micros)
    if starts:
      walls.append((max(ends) - min(starts)) / 1e6)
  runs = max(len(step_stats_list), 1)
  return {
      "runs": len(step_stats_list),
      "wall_s": sum(walls) / runs,
      "op_s": sum(s for s, _ in by_type.values()) / runs,
      "ops": sum(n for _, n in by_type.values()) / runs,
      "threads": len(threads),
      "by_type": {op: [s / runs, n / runs] for op, (s, n) in by_type.items()},
      # [name, seconds, [output shape, op type]]
      "top_nodes": [[name, s / runs, shapes.get(name)] for name, s in
                    by_node.most_common(TOP_NODES)],
  }


def add_hook(method, hook):
  """Adds `hook` to every call of the runtime's TPUEstimator.`method`."""
  from mesh_tensorflow.transformer import utils  # pylint: disable=g-import-not-at-top
  estimator = utils.tpu_estimator.TPUEstimator
  original = getattr(estimator, method)

  def with_hook(self, *args, **kwargs):
    kwargs["hooks"] = list(kwargs.get("hooks") or []) + [hook]
    return original(self, *args, **kwargs)

  setattr(estimator, method, with_hook)


def _trace_this_process():
  """--module_import use: trace (or time) runs, and write them at exit."""
  method = os.environ.get("BENCH_TRACE_METHOD", "predict")
  for variable, make_hook, result in (
      ("BENCH_TRACE_OUT", lambda: TraceHook(trace_runs() or {1}),
       lambda hook: summary(hook.step_stats)),
      ("BENCH_BATCH_TIMES_OUT", RunTimer, lambda hook: hook.times)):
    out = os.environ.get(variable)
    if out:
      hook = make_hook()
      add_hook(method, hook)
      atexit.register(_write_json, out, lambda hook=hook, result=result:
                      result(hook))


def _write_json(path, make_value):
  with open(path, "w") as f:
    json.dump(make_value(), f)


_trace_this_process()
