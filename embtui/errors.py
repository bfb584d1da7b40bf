"""User-facing error types: a data or usage mistake, said in one line with a hint."""

from __future__ import annotations


class EmbtuiError(Exception):
    """A mistake the user can fix (bad input, unknown name, wrong option).

    The CLI prints ``str(error)`` on one line (plus the hint) and exits non-zero; it never shows
    a traceback for these.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class DataError(EmbtuiError):
    """Malformed input data. Names the file, the line (1-based) and the field where known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = str(file)
            if line is not None:
                where += f":{line}"
            where += ": "
        if field is not None:
            message = f"field '{field}': {message}"
        super().__init__(where + message, hint)
        self.file = file
        self.line = line
        self.field = field


class NotFound(EmbtuiError):
    """A project, model, run or job that does not exist."""


class Cancelled(Exception):
    """Raised inside engine steps when their cancel token is set."""
