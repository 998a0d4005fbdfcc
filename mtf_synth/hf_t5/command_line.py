"""`python -m mtf_synth.hf_t5 {import,export} ...`: user errors exit 2."""

import argparse
import os
import sys

import tensorflow.compat.v1 as tf

from mtf_synth import cli
from mtf_synth import errors
# The converters are looked up on the package at call time, so that what
# `mtf_synth.hf_t5` exports is what the command line runs.
from mtf_synth import hf_t5


def _print_names(label, names):
  if names:
    print("%s (%d): %s" % (label, len(names), ", ".join(names)))


def main(argv=None):
  """`python -m mtf_synth.hf_t5 {import,export} ...`; user errors exit 2."""
  parser = argparse.ArgumentParser(
      prog="python -m mtf_synth.hf_t5",
      description="Hugging Face T5 <-> mtf_synth checkpoints.")
  commands = parser.add_subparsers(dest="command", required=True)
  to_mtf = commands.add_parser(
      "import", help="HF_DIR (config.json + weights) -> MODEL_DIR "
      "(model.gin + model.ckpt-0)")
  to_mtf.add_argument("hf_dir")
  to_mtf.add_argument("model_dir")
  to_mtf.add_argument("--seed", type=int, default=0,
                      help="initialises variables with no HF counterpart")
  to_hf = commands.add_parser(
      "export", help="CHECKPOINT (model_dir or file prefix) -> HF_DIR "
      "(config.json + model.safetensors)")
  to_hf.add_argument("checkpoint")
  to_hf.add_argument("hf_dir")
  for command in (to_mtf, to_hf):
    command.add_argument("--gin_file", action="append", default=None,
                         help="gin file changing (import) or describing "
                         "(export) the model; repeatable")
    command.add_argument("--gin_param", action="append", default=[],
                         help="gin binding; repeatable")
  args = parser.parse_args(argv)
  tf.logging.set_verbosity(tf.logging.ERROR)
  cli.drop_missing_gin_path_noise()
  try:
    if args.command == "import":
      report = hf_t5.import_hf_t5(args.hf_dir, args.model_dir,
                            args.gin_file or [], args.gin_param, args.seed)
      print("wrote %s and %s: %d variables from %s" % (
          report.gin_file, report.checkpoint, len(report.converted),
          args.hf_dir))
      _print_names("freshly initialised (no Hugging Face counterpart)",
                   report.fresh)
      _print_names("Hugging Face weights this model does not use",
                   report.unused)
    else:
      architecture = hf_t5.export_hf_t5(args.checkpoint, args.hf_dir,
                                        args.gin_file, args.gin_param)
      print("wrote %s/config.json and model.safetensors (%s)" % (
          args.hf_dir, architecture))
  except errors.UserError as e:  # anything else is a bug: its traceback
    if os.environ.get("MTF_SYNTH_TRACEBACK"):
      raise
    print("mtf_synth.hf_t5: error: %s" % " ".join(str(e).split()),
          file=sys.stderr)
    sys.exit(2)
