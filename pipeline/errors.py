"""Errors caused by the user's input, reported as one clear line instead of a traceback."""

from __future__ import annotations

import sys
from typing import Callable


class UserInputError(ValueError):
    """Bad input the user can fix: a file, a column, a vocabulary, an option.

    The message always names what is wrong and where (file, line or row), so jobs print it as is.
    """

    MARKER = "metacurate-input-error: "

    def __str__(self) -> str:
        # The marker lets the driver recognise this error when Spark wraps it in a worker traceback.
        return self.MARKER + super().__str__()

    @property
    def user_message(self) -> str:
        return super().__str__()


def user_error_message(error: BaseException) -> str | None:
    """The user-facing message of a UserInputError, also when Spark wrapped it in a worker traceback."""
    if isinstance(error, UserInputError):
        return error.user_message
    text = str(error)
    if UserInputError.MARKER in text:
        return text.split(UserInputError.MARKER, 1)[1].splitlines()[0]
    if isinstance(error, FileNotFoundError):
        return text
    return None


def run_job(main: Callable[[], int | None]) -> None:
    """Run a job's main; a user's mistake prints one line and exits with status 2."""
    try:
        status = main()
    except Exception as error:  # noqa: BLE001 - anything else is a bug and keeps its traceback
        message = user_error_message(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status or 0)
