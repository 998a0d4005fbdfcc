"""Holding back what is written to file descriptor 2 for a while.

TF's C++ logging (gRPC errors, cuInit) writes to descriptor 2, past Python's
sys.stderr; a `Capture` sends descriptor 2 (Python's writes included) to a
file until it is stopped, then the caller writes back what it wants shown.
"""

import os
import sys
import tempfile


class Capture:
  """Descriptor 2 goes to a temporary file from `start` to `stop`."""

  def __init__(self, keep_file=False):
    """keep_file: the file stays on disk after `stop` (see `path`)."""
    self._keep_file = keep_file
    self._file = None
    self._saved = None

  @property
  def path(self):
    return self._file.name

  def start(self):
    sys.stderr.flush()
    self._file = tempfile.NamedTemporaryFile(  # pylint: disable=consider-using-with
        prefix="mtf_synth_stderr_", suffix=".log", delete=not self._keep_file)
    self._saved = os.dup(2)
    os.dup2(self._file.fileno(), 2)
    return self

  def stop(self):
    """Descriptor 2 back where it was; returns the lines written meanwhile."""
    sys.stderr.flush()
    os.dup2(self._saved, 2)
    os.close(self._saved)
    self._file.flush()
    self._file.seek(0)
    lines = self._file.readlines()
    self._file.close()
    return lines

  def write_back(self, lines):
    for line in lines:
      os.write(2, line)
