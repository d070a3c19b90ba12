"""Errors caused by the user's input, reported as one clear line instead of a traceback."""


class UserInputError(ValueError):
    """Bad input the user can fix: a file, a column, a vocabulary, an option.

    The message always names what is wrong and where (file, line or row), so jobs print it as is.
    """

    MARKER = "metacurate-input-error: "

    def __str__(self) -> str:
        # The marker lets the driver recognise this error when Spark wraps it in a worker traceback.
        return self.MARKER + super().__str__()

    @property
    def message(self) -> str:
        return super().__str__()
