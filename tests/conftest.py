"""Applies the compat patches before any test module imports mesh TF;
fixtures shared by the decoding tests."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import mtf_synth  # noqa: E402,F401  pylint: disable=g-import-not-at-top

from absl import flags  # noqa: E402  pylint: disable=g-import-not-at-top
import gin  # noqa: E402  pylint: disable=g-import-not-at-top
import pytest  # noqa: E402  pylint: disable=g-import-not-at-top

# mesh TF reads absl flags (e.g. gin_file) that pytest never parses.
flags.FLAGS.mark_as_parsed()


@pytest.fixture(params=[True, False], ids=["compiled", "op_by_op"])
def compiled(request):
  """The test with mtf_synth.decode_loop.compiled each way (True after)."""
  with gin.unlock_config():
    gin.bind_parameter("mtf_synth.decode_loop.compiled", request.param)
  yield request.param
  with gin.unlock_config():
    gin.bind_parameter("mtf_synth.decode_loop.compiled", True)
