"""bfloat16 vs float32 activations on CPU: step time and loss curve.

The notes' timing anchor (bench/cli_train.py: 2+2 layers, d_model 256,
d_ff 1024, 4 heads, batch 16 x 128/128, Adafactor) trained through the
`mtf_synth` command line on mtf_synth_demo, one CPU device, with
`utils.get_variable_dtype.activation_dtype` float32 or bfloat16 (master
weights stay float32), interleaved over `--repeats`. Steps/s is the median
of the logged rates after the first interval; the loss is the logged loss
at each interval (same data and seed, so the curves differ by the dtype).

  python bench/bf16.py [--steps 300 --log_every 50] [--repeats 3]
"""

import argparse

import cli_train  # bench/cli_train.py
import harness  # bench/harness.py

DTYPES = ["float32", "bfloat16"]


def loss_at(step):
  return lambda phases: phases[""]["losses"][str(step)]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--log_every", type=int, default=50)
  parser.add_argument("--mesh_shape", default="model:1,batch:1")
  harness.add_common_flags(parser, "bf16", repeats=3)
  args = parser.parse_args()
  runs = [harness.Run(dtype, cli_train.command(
      args.steps, args.log_every,
      "utils.get_variable_dtype.activation_dtype='%s'" % dtype,
      "utils.run.mesh_shape='%s'" % args.mesh_shape),
                      env=(("TF_CPP_MIN_LOG_LEVEL", "3"),))
          for dtype in DTYPES]
  records = harness.measure(runs, args.repeats, args.log)
  figures = [harness.Figure("steps/s", harness.field("steps_per_s"),
                            ratio=True),
             harness.Figure("peak RSS MiB", harness.field("peak_rss_mib"),
                            "%.0f")]
  figures += [harness.Figure("loss @%d" % step, loss_at(step))
              for step in range(args.log_every, args.steps + 1,
                                args.log_every)]
  lines = ["### bfloat16 activations on CPU", "", harness.provenance(records),
           "", "%d steps on mtf_synth_demo, mesh %s; loss: the logged "
           "training loss at that step." % (args.steps, args.mesh_shape), ""]
  lines += harness.table(records, DTYPES, figures, ["float32"])
  harness.write_markdown("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
  main()
