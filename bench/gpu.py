"""On a machine with a GPU: issue 13's model on the GPU vs the CPU, float32 and
bfloat16 activations, and HF T5 on the same GPU when a CUDA torch is given.

bench/train_same.py (bench/peer_model.gin, mtf_synth's runtime) with
`run.mesh_devices` on cpu:0 or gpu:0, interleaved short and long runs as in
bench/peers.py (seconds per step from their difference). Before measuring,
a child checks that TF sees a GPU and places the model's ops on it.
Untested on a GPU so far (none was lent when it was written).

  python bench/gpu.py [--repeats 3] [--torch_dir DIR_WITH_CUDA_TORCH]
"""

import argparse
import os
import subprocess
import sys

import harness  # bench/harness.py
import peers  # bench/peers.py: run layout and figures

TRAIN_SAME = os.path.join(harness.BENCH_DIR, "train_same.py")
PLACEMENT_CHECK = """
import mtf_synth, tensorflow as tf
gpus = tf.config.list_physical_devices("GPU")
assert gpus, "TF sees no GPU"
with tf.device("/gpu:0"):
  x = tf.matmul(tf.ones([256, 256]), tf.ones([256, 256]))
assert "GPU" in x.device, x.device
print("GPUs:", [g.name for g in gpus], "matmul on", x.device)
"""


def variants(torch_dir):
  quiet = (("TF_CPP_MIN_LOG_LEVEL", "3"),)
  bf16 = "get_variable_dtype.activation_dtype = 'bfloat16'"
  found = {
      "cpu float32": ((sys.executable, TRAIN_SAME,
                       "run.mesh_devices = ['cpu:0']"), quiet),
      "gpu float32": ((sys.executable, TRAIN_SAME,
                       "run.mesh_devices = ['gpu:0']"), quiet),
      "gpu bfloat16": ((sys.executable, TRAIN_SAME,
                        "run.mesh_devices = ['gpu:0']", bf16), quiet),
  }
  if torch_dir:
    found["hf_t5 cuda"] = ((sys.executable, os.path.join(
        harness.BENCH_DIR, "hf_t5.py"), "train", "--device=cuda"),
                           (("PYTHONPATH", torch_dir),))
  return found


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--short", type=int, default=10)
  parser.add_argument("--long", type=int, default=110)
  parser.add_argument("--torch_dir", help="a torch built with CUDA")
  harness.add_common_flags(parser, "gpu", repeats=3)
  args = parser.parse_args()
  subprocess.run([sys.executable, "-c", PLACEMENT_CHECK], check=True)
  commands = variants(args.torch_dir)
  runs = peers.interleaved_runs(commands, args.short, args.long)
  records = harness.measure(runs, args.repeats, args.log)
  lines = ["### On a GPU", "", harness.provenance(records), "",
           "bench/peer_model.gin through mtf_synth's runtime; s/step from "
           "%d- and %d-step runs." % (args.short, args.long), ""]
  lines += harness.table(records, list(commands),
                         peers.figures(args.short, args.long),
                         ["cpu float32"])
  harness.write_markdown("\n".join(lines) + "\n", args.markdown)


if __name__ == "__main__":
  main()
