"""Applies the compat patches before any test module imports mesh TF."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import mtf_synth  # noqa: E402,F401  pylint: disable=g-import-not-at-top

from absl import flags  # noqa: E402  pylint: disable=g-import-not-at-top

# mesh TF reads absl flags (e.g. gin_file) that pytest never parses.
flags.FLAGS.mark_as_parsed()
