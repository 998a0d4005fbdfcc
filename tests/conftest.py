"""Applies the compat patches before any test module imports mesh TF."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import mtf_synth  # noqa: E402,F401  pylint: disable=g-import-not-at-top
