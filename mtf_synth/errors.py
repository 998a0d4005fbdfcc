"""The errors the command line reports as one line instead of a traceback.

`UserError` is an input or environment the user can fix: a bad gin value, a
missing checkpoint, a model_dir another trainer holds, a full disk. Its
message is one line naming the problem and the fix; the command line prints
it and exits 2. Every other exception is a bug and keeps its traceback.

The command line catches UserError and nothing else, so every user error of
mtf_synth is one of the types below (raised where it is detected); an
upstream error that is the user's is turned into one where it is raised
(gin's parse errors where the command line parses gin). The task registry's
TaskConfigError subclasses UserError in tasks/, which the runtime does not
import.
"""


class UserError(Exception):
  """Something the user passed (or their machine) is wrong; message: the fix."""


class CheckpointMismatchError(UserError):
  """The checkpoint's variables do not fit the model the config builds."""


class CheckpointWriteError(UserError):
  """A checkpoint could not be written (disk full, no permission, ...)."""


class ModelDirLockedError(UserError):
  """Another trainer holds the model_dir's lock."""


class NoCheckpointError(UserError):
  """Evaluation, prediction or export was asked of a model_dir with no
  checkpoint."""


class DamagedCheckpointError(UserError):
  """A checkpoint asked for (or every checkpoint) cannot be restored: a
  truncated or missing file."""


class NonFiniteLossError(UserError):
  """Training produced a NaN or infinite loss; nothing after it was saved."""


class EmptyDatasetError(UserError):
  """The training input ended before a single step could run."""


class MeshDevicesError(UserError):
  """The mesh shape and the devices given for it do not fit together."""


class ClusterError(UserError):
  """The cluster cannot be set up or lost a task."""


class ConversionError(UserError):
  """A Hugging Face T5 checkpoint or configuration that mtf_synth.hf_t5
  cannot convert faithfully (or a model it cannot export)."""


class Interrupted(Exception):
  """SIGINT / SIGTERM stopped the run (training saves its step first)."""

  def __init__(self, signum, message):
    super().__init__(message)
    self.signum = signum

  @property
  def exit_code(self):
    """The shell's convention: 128 + the signal number (130, 143)."""
    return 128 + self.signum
