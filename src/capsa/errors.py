"""The exceptions capsa raises: one root `Error`, subclasses by phase, each with an exit code.

Exit codes are part of the CLI contract (spec/format.md §10, README "Exit codes").
"""

from __future__ import annotations

__all__ = [
    "Error",
    "ExistsError",
    "FormatError",
    "IntegrityError",
    "NotFoundError",
    "ReplayError",
    "RuntimeError_",
    "SignatureError",
    "UsageError",
]


class Error(Exception):
    """Root of every error capsa raises on purpose.

    ``what`` says what went wrong, ``where`` names the file/entry/path concerned and ``hint`` what
    the user can do about it. ``diagnostics()`` joins them into the single line the CLI prints.
    """

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.hint = hint

    def diagnostics(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f" ({self.hint})"
        return text

    def __str__(self) -> str:
        return self.diagnostics()


class UsageError(Error):
    """The command line or call arguments are wrong."""

    exit_code = 2


class FormatError(Error):
    """Input is not a well-formed capsa bundle (or SIF image, key file, ...)."""

    exit_code = 3


class IntegrityError(Error):
    """Content does not match what was recorded: digest, size or CRC mismatch."""

    exit_code = 4

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        hint: str | None = None,
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        super().__init__(what, where=where, hint=hint)
        self.expected = expected
        self.found = found


class SignatureError(Error):
    """A signature is missing, invalid or not trusted."""

    exit_code = 5


class RuntimeError_(Error):
    """A container runtime is missing or failed."""

    exit_code = 6


class ReplayError(Error):
    """Replay could not be carried out."""

    exit_code = 7


class ExistsError(Error):
    """A destination exists and ``force`` was not given."""

    exit_code = 8


class NotFoundError(Error):
    """A file, member or path the user named does not exist."""

    exit_code = 9
