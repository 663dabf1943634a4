"""What the ``sodl`` command reports as the user's mistake.

``cli`` prints a :class:`UserError`'s message and exits with status 2; any
other exception is an internal bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the person running ``sodl`` (a wrong name, a bad file,
    a malformed config); the message says what to fix."""
