"""Run one piece of work per input file: every file is tried, each failure is one line, Ctrl-C says what is done.

Used by every multi-input command (infer mouth, infer rmvpe, transcribe pinyin):

    results = run_jobs(jobs, work, fail_fast=False, out=out)   # work(job) -> dict describing what was written
    emit_json(results) / print what succeeded (results.ok)
    results.raise_if_failed()                                   # exit 2 (bad input) or 1, no extra line

- A failing input (a `VoxtoolError`, e.g. an unreadable wav, or an `OSError` while writing) is reported at once as
  `error: <file>: <problem>` on stderr, recorded as `{"input", "output": None, "error"}` in the results, and the
  batch goes on. `fail_fast=True` (the library default, and `--fail-fast`) re-raises the first failure instead.
- Ctrl-C (KeyboardInterrupt) becomes `Interrupted("12 of 40 files written to OUT")` (exit 130). Outputs are
  written atomically (voxtool.fileio), so the file being worked on is simply absent.

`prep_progress` does the same for prep commands: a progress bar whose Ctrl-C says how many items were prepared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from voxtool import console
from voxtool.errors import BadInput, BatchFailed, Interrupted, VoxtoolError


class BatchResults(list):
    """One dict per job, in job order; failed jobs have an "error" key (and "output": None)."""

    def __init__(self, items: Iterable[dict] = (), exit_codes: list[int] | None = None):
        super().__init__(items)
        self.exit_codes = list(exit_codes or [])

    @property
    def ok(self) -> list[dict]:
        return [r for r in self if not r.get("error")]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self if r.get("error")]

    @property
    def exit_code(self) -> int:
        """0 when every job succeeded; 2 when any input was bad; 1 for runtime failures only."""
        if not self.exit_codes:
            return 0
        return 2 if 2 in self.exit_codes else max(self.exit_codes)

    def report(self, title: str, columns: tuple[str, ...] = ("output", "seconds"), json_out: bool = False) -> None:
        """Show the results (JSON on stdout with `json_out`, else a table of the done jobs' `columns` on stderr), then
        `raise_if_failed`: the end of every file -> file command."""
        if json_out:
            console.emit_json(self)
        elif self.ok:
            console.print_table(title, list(columns), [[r[c] for c in columns] for r in self.ok])
        self.raise_if_failed()

    def raise_if_failed(self) -> None:
        """After the results were shown: exit with the batch's code (the failures have their lines already)."""
        if self.exit_codes:
            if len(self) > 1:
                console.log(f"{len(self.ok)} of {len(self)} inputs done, {len(self.failed)} failed")
            raise BatchFailed(len(self.failed), len(self), self.exit_code)


def describe_failure(exc: BaseException, src: Path) -> tuple[str, str, int]:
    """(where, problem, exit code) of a failed job; a BadInput without a file is about the job's input."""
    if isinstance(exc, BadInput):
        return (exc.where or str(src)), exc.problem, exc.exit_code
    if isinstance(exc, VoxtoolError):
        return str(src), str(exc), exc.exit_code
    if isinstance(exc, OSError):
        where = exc.filename if getattr(exc, "filename", None) else src
        return os.fspath(where), exc.strerror or str(exc), 1
    return str(src), f"{type(exc).__name__}: {exc}", 1


def destination(out: str | os.PathLike | None) -> str:
    return f" to {os.fspath(out)}" if out is not None else " (next to their inputs)"


def run_jobs(
    jobs: list,
    work: Callable[[Any], dict],
    *,
    fail_fast: bool = True,
    advance: Callable[..., None] | None = None,
    out: str | os.PathLike | None = None,
) -> BatchResults:
    """`work(job)` for every job (objects with `.src`); see the module docstring."""
    results: list[dict] = []
    codes: list[int] = []
    try:
        for job in jobs:
            try:
                results.append(work(job))
            except (VoxtoolError, OSError) as exc:
                if isinstance(exc, (Interrupted, BatchFailed)):
                    raise
                where, problem, code = describe_failure(exc, Path(job.src))
                if fail_fast:
                    if isinstance(exc, BadInput) and exc.where is None:
                        raise BadInput(job.src, exc.problem) from None
                    raise
                console.error_line(f"{where}: {problem}")
                error = problem if where == str(job.src) else f"{where}: {problem}"
                results.append({"input": str(job.src), "output": None, "error": error})
                codes.append(code)
            if advance:
                advance(1)
    except KeyboardInterrupt:
        written = len(results) - len(codes)
        failed = f", {len(codes)} failed" if codes else ""
        raise Interrupted(f"{written} of {len(jobs)} files written{destination(out)}{failed}") from None
    return BatchResults(results, codes)


@contextmanager
def prep_progress(
    total: int | None, description: str, *, out: str | os.PathLike, unit: str = "items", then: str = ""
) -> Iterator[Callable[..., None]]:
    """`console.progress` that counts what was advanced; Ctrl-C inside becomes
    `Interrupted("12 of 40 items prepared in OUT; <then>")` (every item file is written atomically)."""
    done = [0]
    with console.progress(total, description) as advance:

        def step(n: int = 1, **fields: Any) -> None:
            done[0] += n
            advance(n, **fields)

        try:
            yield step
        except KeyboardInterrupt:
            of = f" of {total}" if total else ""
            rest = f"; {then}" if then else ""
            raise Interrupted(f"{done[0]}{of} {unit} prepared in {os.fspath(out)}{rest}") from None
