"""Exceptions that the CLI turns into one line on stderr and an exit code.

`BadInput` and `UsageError` mean the user gave something wrong (exit 2); `VoxtoolError` is a runtime failure
(exit 1). Code below the CLI raises these and never prints or exits by itself.
"""

from __future__ import annotations

from os import PathLike


class VoxtoolError(Exception):
    """A runtime failure: exit code 1."""

    exit_code = 1


class UsageError(VoxtoolError):
    """Bad options or configuration: exit code 2."""

    exit_code = 2


class BadInput(UsageError):
    """A file (or other named input) is wrong: `error: <where>: <problem>`, exit code 2."""

    def __init__(self, where: str | PathLike | None, problem: str):
        self.where = None if where is None else str(where)
        self.problem = problem
        super().__init__(problem if self.where is None else f"{self.where}: {problem}")


class Interrupted(VoxtoolError):
    """The user stopped a job (SIGINT/SIGTERM); the message says what was finished. Exit code 130.

    The CLI prints it as `interrupted: <message>` (not as an error line).
    """

    exit_code = 130


class BatchFailed(VoxtoolError):
    """Some inputs of a batch failed. Each failure was already reported on its own line, so the CLI prints
    nothing more and exits with `exit_code` (2 when any input was bad, else 1)."""

    def __init__(self, failed: int, total: int, exit_code: int = 2):
        self.failed = failed
        self.total = total
        self.exit_code = exit_code
        super().__init__(f"{failed} of {total} inputs failed")
