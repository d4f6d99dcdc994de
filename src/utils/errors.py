"""The error type for problems a user can fix (bad input, bad config): shown as one line, no traceback."""


class UserError(Exception):
    """A problem with the user's input or config; its message says what, where, and how to fix it."""


class NonFiniteLossError(UserError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the step. Checkpoints written so far stay."""
