"""One-line configuration errors raised by the task registry."""
from mtf_synth.errors import UserError


class TaskConfigError(UserError):
  """A dataset, vocabulary file or user path is missing or malformed.

  The message is one line: what is missing and how to provide it.
  """
