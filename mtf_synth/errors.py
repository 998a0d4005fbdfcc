"""The errors the command line reports as one line instead of a traceback.

`UserError` is an input or environment the user can fix: a bad gin value, a
missing checkpoint, a model_dir another trainer holds, a full disk. Its
message is one line naming the problem and the fix; the command line prints
it and exits 2. Every other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
  """Something the user passed (or their machine) is wrong; message: the fix."""


class CheckpointMismatchError(UserError):
  """The checkpoint's variables do not fit the model the config builds."""


class CheckpointWriteError(UserError):
  """A checkpoint could not be written (disk full, no permission, ...)."""


class ModelDirLockedError(UserError):
  """Another trainer holds the model_dir's lock."""


class Interrupted(Exception):
  """SIGINT / SIGTERM stopped the run (training saves its step first)."""

  def __init__(self, signum, message):
    super().__init__(message)
    self.signum = signum

  @property
  def exit_code(self):
    """The shell's convention: 128 + the signal number (130, 143)."""
    return 128 + self.signum
