"""Training steps/s of a small encoder-decoder: 1 CPU device vs a 2x2 mesh.

The model is the notes' timing anchor (2+2 layers, d_model 256, d_ff 1024,
4 heads, batch 16 x 128/128 tokens, Adafactor), trained through the
`mtf_synth` command line on the generated mtf_synth_demo task. Steps/s is the
mean of the logged steps_per_sec after the first interval (start-up excluded);
the two meshes are run interleaved, `--repeats` times each.

  python bench/bench_runtime.py            # print the table
  python bench/bench_runtime.py --write    # and update BENCHMARKS.md
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "tests"))
from cli_runner import mtf_synth, scalars  # noqa: E402  pylint: disable=g-import-not-at-top
from report import write_section  # noqa: E402  pylint: disable=g-import-not-at-top

HEADING = "## Runtime: 1 CPU device vs a 2x2 CPU mesh (issue 2)"
MODEL = [
    "--gin_file=dataset.gin", "--gin_file=models/bi_v1.gin",
    "--gin_param=MIXTURE_NAME='mtf_synth_demo'",
    "--gin_param=num_layers=2", "--gin_param=d_model=256",
    "--gin_param=d_ff=1024", "--gin_param=num_heads=4",
    "--gin_param=d_kv=64", "--gin_param=dropout_rate=0.0",
    "--gin_param=utils.run.batch_size=16",
    "--gin_param=utils.run.sequence_length={'inputs': 128, 'targets': 128}",
    "--gin_param=utils.run.save_checkpoints_steps=100000",
]
MESHES = {
    "1 CPU device (model:1,batch:1)": "model:1,batch:1",
    "2x2 virtual CPU mesh (model:2,batch:2)": "model:2,batch:2",
}


def steps_per_sec(mesh_shape, steps, log_every):
  with tempfile.TemporaryDirectory() as model_dir:
    result = mtf_synth(
        model_dir, *MODEL,
        "--gin_param=utils.run.mesh_shape='%s'" % mesh_shape,
        "--gin_param=utils.run.train_steps=%d" % steps,
        "--gin_param=mtf_synth.train_loop_settings.log_every_steps=%d"
        % log_every, timeout=3600)
    if result.returncode:
      raise RuntimeError(result.stderr[-2000:])
    rates = scalars(model_dir, "steps_per_sec")
  return statistics.mean(v for step, v in sorted(rates.items())[1:])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--log_every", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--write", action="store_true")
  args = parser.parse_args()
  runs = {name: [] for name in MESHES}
  for _ in range(args.repeats):
    for name, mesh_shape in MESHES.items():
      runs[name].append(steps_per_sec(mesh_shape, args.steps, args.log_every))
  load = os.getloadavg()[0]
  lines = [HEADING, "",
           "Command: `python bench/bench_runtime.py --write` (%d steps, %d "
           "interleaved runs each; load average %.1f on 2 cores at the end)."
           % (args.steps, args.repeats, load), "",
           "| mesh | steps/s (mean) | runs | s/step |", "|---|---:|---|---:|"]
  for name, rates in runs.items():
    mean = statistics.mean(rates)
    lines.append("| %s | %.3f | %s | %.3f |" % (
        name, mean, ", ".join("%.3f" % r for r in rates), 1 / mean))
  lines += ["", "Both run on the same 2 cores: the 2x2 mesh splits heads, "
            "d_ff and vocab over 2 model slices and the batch over 2, so it "
            "adds communication (copies between virtual devices) without "
            "adding compute; it exists to exercise layouts, not for speed.",
            "", "Reference (`shared/notes/modern-tf.md`, same model and "
            "machine kind): upstream mesh TF 0.1.21 with the Estimator on "
            "TF 2.12.1 took 0.53 to 0.68 s per step on one CPU device.", ""]
  section = "\n".join(lines)
  print(section)
  if args.write:
    write_section(HEADING, section)


if __name__ == "__main__":
  main()
