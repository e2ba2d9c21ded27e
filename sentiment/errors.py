"""The one exception type for mistakes a user can make.

The CLI turns a :class:`SentimentError` into one line on stderr and exit code 2;
any other exception is a bug in this package and keeps its traceback.
"""


class SentimentError(Exception):
    """A problem the user can fix: a bad path, column, config key, label or file."""
