"""The errors a user can fix, known by their type wherever they arise.

    raise MissingInput(f"nothing at {location} (serve.model)")   # one line, exit 2
    isinstance(error, UserError)                                 # how the CLI tells them from faults

Each stage's own kinds (ConfigError, TaskDataError, TrainingDataError, ...) derive from UserError
beside the builtin they always were (ValueError, RuntimeError, FileNotFoundError), so code that
catches those keeps working. Anything that is not a UserError is a fault of rt-ray or of what it
runs on: the command exits 1 with the traceback at the end of its log. An error is never judged by
its text.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user named or configured is wrong or missing; the message says what, and how to fix it."""


class MissingInput(UserError, FileNotFoundError):
    """A file, folder or URI the user named (in the config or on the command line) is not there."""
