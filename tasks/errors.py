"""One-line configuration errors raised by the task registry.

A UserError, so the command line prints it as one line and exits 2.
"""
from mtf_synth.errors import UserError


class TaskConfigError(UserError):
  """A dataset, vocabulary file or user path is missing or malformed.

  The message is one line: what is missing and how to provide it.
  """
