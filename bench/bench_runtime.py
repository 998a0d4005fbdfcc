"""Training steps/s of a small encoder-decoder: 1 CPU device vs a 2x2 mesh.

The model is the notes' timing anchor (2+2 layers, d_model 256, d_ff 1024,
4 heads, batch 16 x 128/128 tokens, Adafactor), trained through the
`mtf_synth` command line on the generated mtf_synth_demo task
(bench/cli_train.py: the median of the logged steps_per_sec after the first
interval, start-up excluded). The meshes are interleaved over `--repeats`
(bench/harness.py).

  python bench/bench_runtime.py            # print the table
  python bench/bench_runtime.py --write    # and update BENCHMARKS.md
"""

import argparse
import cli_train  # bench/cli_train.py
import harness  # bench/harness.py
from report import write_section  # bench/report.py

HEADING = "## Runtime: 1 CPU device vs a 2x2 CPU mesh (issue 2)"
MESHES = {
    "1 CPU device (model:1,batch:1)": "model:1,batch:1",
    "2x2 virtual CPU mesh (model:2,batch:2)": "model:2,batch:2",
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--log_every", type=int, default=10)
  parser.add_argument("--write", action="store_true")
  harness.add_common_flags(parser, "runtime", repeats=3)
  args = parser.parse_args()
  runs = [harness.Run(name, cli_train.command(
      args.steps, args.log_every, "utils.run.mesh_shape='%s'" % mesh),
                      env=(("TF_CPP_MIN_LOG_LEVEL", "3"),))
          for name, mesh in MESHES.items()]
  records = harness.measure(runs, args.repeats, args.log)
  steps_per_s = harness.Figure("steps/s", harness.field("steps_per_s"),
                               ratio=True)
  seconds = harness.Figure("s/step", lambda p: 1 / p[""]["steps_per_s"])
  lines = [HEADING, "", harness.provenance(records), "",
           "%d steps, logged every %d; steps/s: the median of the logged "
           "rates after the first interval." % (args.steps, args.log_every),
           ""]
  lines += harness.table(records, list(MESHES), [steps_per_s, seconds],
                         [list(MESHES)[0]])
  lines += ["", "Both run on the same 2 cores: the 2x2 mesh splits heads, "
            "d_ff and vocab over 2 model slices and the batch over 2, so it "
            "adds communication (copies between virtual devices) without "
            "adding compute; it exists to exercise layouts, not for speed.",
            "", "Upstream mesh TF and HF T5 at the same model: see the "
            "side-by-side table (bench/peers.py).", ""]
  section = "\n".join(lines)
  harness.write_markdown(section, args.markdown)
  if args.write:
    write_section(HEADING, section)


if __name__ == "__main__":
  main()
