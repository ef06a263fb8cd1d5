"""The one exception a user can cause: the CLI prints its message on one line and exits 2."""


class UserError(Exception):
    """A problem with the user's input or settings, with the fix in the message."""
