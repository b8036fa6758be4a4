"""The exceptions capsa raises: one root `Error`, subclasses by phase, each with an exit code.

Exit codes are part of the CLI contract (README "Exit codes"); `ExitCode` is their one list, used
by the errors, the CLI and its help text.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "Error",
    "ExistsError",
    "ExitCode",
    "FormatError",
    "IntegrityError",
    "NotFoundError",
    "ReplayError",
    "RuntimeError_",
    "SignatureError",
    "UsageError",
]


class ExitCode(IntEnum):
    """Every exit code of the ``capsa`` command, with what it means (README "Exit codes")."""

    OK = 0
    DIFFERENT = 1
    USAGE = 2
    FORMAT = 3
    INTEGRITY = 4
    SIGNATURE = 5
    RUNTIME = 6
    REPLAY = 7
    EXISTS = 8
    NOT_FOUND = 9
    IO = 10
    INTERNAL = 70
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.DIFFERENT: "replay or diff found differences (or a step failed); `capsa run`: the "
    "recorded command's own non-zero exit code is passed through",
    ExitCode.USAGE: "usage error (bad arguments; a cluster option or worker job the batch "
    "system refuses)",
    ExitCode.FORMAT: "format error: not a capsa bundle, or malformed",
    ExitCode.INTEGRITY: "integrity error: a digest, size or checksum does not match",
    ExitCode.SIGNATURE: "signature error",
    ExitCode.RUNTIME: "container runtime error (recording, replay)",
    ExitCode.REPLAY: "replay error (also: no Dask scheduler answers, no worker joins or every "
    "worker is gone; the verdicts so far stay in the replay journal)",
    ExitCode.EXISTS: "destination exists (use --force)",
    ExitCode.NOT_FOUND: "not found: no such file, bundle or member",
    ExitCode.IO: "other I/O error (disk full, permission denied)",
    ExitCode.INTERNAL: "internal error: a bug in capsa (run again with -v and report it)",
    ExitCode.INTERRUPTED: "interrupted",
}


class Error(Exception):
    """Root of every error capsa raises on purpose.

    ``what`` says what went wrong, ``where`` names the file/entry/path concerned and ``hint`` what
    the user can do about it. ``diagnostics()`` joins them into the single line the CLI prints.
    """

    exit_code: ExitCode = ExitCode.DIFFERENT

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

    exit_code = ExitCode.USAGE


class FormatError(Error):
    """Input is not a well-formed capsa bundle (or SIF image, key file, ...)."""

    exit_code = ExitCode.FORMAT


class IntegrityError(Error):
    """Content does not match what was recorded: digest, size or CRC mismatch."""

    exit_code = ExitCode.INTEGRITY

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

    exit_code = ExitCode.SIGNATURE


class RuntimeError_(Error):
    """A container runtime is missing or failed."""

    exit_code = ExitCode.RUNTIME


class ReplayError(Error):
    """Replay could not be carried out."""

    exit_code = ExitCode.REPLAY


class ExistsError(Error):
    """A destination exists and ``force`` was not given."""

    exit_code = ExitCode.EXISTS


class NotFoundError(Error):
    """A file, member or path the user named does not exist."""

    exit_code = ExitCode.NOT_FOUND
