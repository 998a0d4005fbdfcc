"""Steps/s of one mesh on 1 process x 4 devices vs 2 loopback tasks x 2.

The same `model:2,batch:2` training run (tiny T5.1.1 on the demo task), the
two set-ups interleaved REPEATS times; the steps/s each run logs after its
first log interval (start-up excluded), median per set-up:

    python bench/bench_cluster.py --repeats=3
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, os.pardir, "tests"),
                os.path.join(HERE, os.pardir, "scripts")]

import cli_runner  # noqa: E402  pylint: disable=g-import-not-at-top
import launch_local_cluster  # noqa: E402  pylint: disable=g-import-not-at-top

_TIMEOUT_SECS = 1200


def _args(steps, every):
  return [a for a in cli_runner.T5_TINY_ON_DEMO if "log_every_steps" not in a
          ] + ["--gin_param=utils.run.train_steps=%d" % steps,
               "--gin_param=mtf_synth.train_loop_settings.log_every_steps=%d"
               % every]


def _steady_steps_per_sec(model_dir, every):
  values = cli_runner.scalars(model_dir, "steps_per_sec")
  return statistics.median(v for step, v in values.items() if step > every)


def run_single(model_dir, steps, every):
  command = cli_runner._command(model_dir, _args(steps, every))  # pylint: disable=protected-access
  subprocess.run(command, env=cli_runner._environment(), check=True,  # pylint: disable=protected-access
                 capture_output=True, timeout=_TIMEOUT_SECS)
  return _steady_steps_per_sec(model_dir, every)


def run_cluster(model_dir, steps, every):
  command = cli_runner._command(model_dir, _args(steps, every))  # pylint: disable=protected-access
  processes = launch_local_cluster.start(
      command, 2, model_dir + "_logs", env=cli_runner._environment())  # pylint: disable=protected-access
  try:
    codes = launch_local_cluster.wait(processes, _TIMEOUT_SECS)
  finally:
    launch_local_cluster.stop(processes)
  if codes != [0, 0]:
    raise RuntimeError("cluster run failed: %s, see %s_logs" % (codes,
                                                               model_dir))
  return _steady_steps_per_sec(model_dir, every)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--steps", type=int, default=80)
  parser.add_argument("--every", type=int, default=20)
  args = parser.parse_args()
  root = tempfile.mkdtemp(prefix="bench_cluster_")
  results = {"1 process x 4 devices": [], "2 tasks x 2 devices": []}
  for repeat in range(args.repeats):
    for name, run in zip(results, (run_single, run_cluster)):
      value = run(os.path.join(root, "%s_%d" % (name.split()[0], repeat)),
                  args.steps, args.every)
      results[name].append(value)
      print("repeat %d, %s: %.2f steps/s" % (repeat, name, value), flush=True)
  print("\n| set-up | steps/s (median of %d) | runs |\n|---|---:|---|" %
        args.repeats)
  for name, values in results.items():
    print("| %s | %.2f | %s |" % (name, statistics.median(values),
                                  ", ".join("%.2f" % v for v in values)))


if __name__ == "__main__":
  main()
