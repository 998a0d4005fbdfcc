"""Exports are atomic: a SavedModel appears under its version number only
once complete; `kill -9` mid-export leaves no final-looking folder."""

import os
import re
import signal
import time

from cli_runner import T5_TINY_ON_DEMO, start_mtf_synth
from test_faults_checkpoints import trained  # noqa: F401  pylint: disable=unused-import


def test_kill_during_export_infer_leaves_no_version_folder(trained,  # noqa: F811  pylint: disable=redefined-outer-name
                                                           tmp_path):
  exports = tmp_path / "exports"
  process = start_mtf_synth(
      trained, *T5_TINY_ON_DEMO,
      "--gin_param=Bitransformer.decode.max_decode_length=8",
      "--gin_param=utils.run.mode='export_infer'",
      "--gin_param=utils.run.export_path='%s'" % exports)
  try:
    deadline = time.time() + 300
    # Until the export's folder appears: a version number would be a
    # partial export in a server's eyes.
    while not (exports.exists() and os.listdir(exports)):
      assert process.poll() is None, "the export ended before writing"
      assert time.time() < deadline, "no export folder after 300 s"
      time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    names = os.listdir(exports)
    assert names and all(re.fullmatch(r"temp-\d+", n) for n in names), names
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
