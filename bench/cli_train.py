"""One `mtf_synth` command-line training run, reported to bench/harness.py.

Runs `python -m mtf_synth` (what a user runs) with the given flags into a
temporary model_dir, then reads its event files: steps/s is the median of
the logged steps_per_sec after the first log interval (start-up and the
first steps excluded); the loss at every logged step is reported as well.

  python bench/cli_train.py [mtf_synth flags, no --model_dir]

`command` gives the run of the notes' timing anchor (2+2 layers, d_model
256, d_ff 1024, 4 heads, batch 16 x 128/128, Adafactor) on the generated
mtf_synth_demo task, for bench_runtime.py.
"""

import os
import statistics
import subprocess
import sys
import tempfile

import harness  # bench/harness.py

ANCHOR_MODEL = (
    "--gin_file=dataset.gin", "--gin_file=models/bi_v1.gin",
    "--gin_param=MIXTURE_NAME='mtf_synth_demo'",
    "--gin_param=num_layers=2", "--gin_param=d_model=256",
    "--gin_param=d_ff=1024", "--gin_param=num_heads=4",
    "--gin_param=d_kv=64", "--gin_param=dropout_rate=0.0",
    "--gin_param=utils.run.batch_size=16",
    "--gin_param=utils.run.sequence_length={'inputs': 128, 'targets': 128}",
    "--gin_param=utils.run.save_checkpoints_steps=100000",
)


def command(steps, log_every, *gin_params):
  """This script's command line: ANCHOR_MODEL with `gin_params` added."""
  return (sys.executable, os.path.abspath(__file__), *ANCHOR_MODEL,
          "--gin_param=utils.run.train_steps=%d" % steps,
          "--gin_param=mtf_synth.train_loop_settings.log_every_steps=%d"
          % log_every, *("--gin_param=" + p for p in gin_params))


def report_run(model_dir, **figures):
  """Reports the finished run in model_dir (steps/s, losses) and `figures`."""
  # The reader imports TF: only after the command line has exited, so its
  # memory does not count into the run's peak RSS.
  from mtf_synth.runtime.summaries import scalars  # pylint: disable=g-import-not-at-top
  rates = [v for _, v in sorted(scalars(model_dir, "steps_per_sec").items())]
  losses = scalars(model_dir, "loss")
  harness.report(steps_per_s=statistics.median(rates[1:] or rates),
                 losses={str(step): loss for step, loss in losses.items()},
                 **figures)


def main(flags):
  with tempfile.TemporaryDirectory(prefix="bench_cli_train_") as model_dir:
    subprocess.run([sys.executable, "-m", "mtf_synth",
                    "--model_dir=" + model_dir] + flags, check=True)
    report_run(model_dir)


if __name__ == "__main__":
  main(sys.argv[1:])
