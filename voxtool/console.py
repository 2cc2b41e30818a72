"""Human output on stderr (rich), machine output on stdout.

Progress bars and log lines go to stderr, appear on rank 0 only and vanish when stderr is not a terminal
or `--quiet` is set. Results meant for scripts (`--json`) go to stdout via `emit_json`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_state = {"quiet": False, "debug": False}


def set_quiet(value: bool) -> None:
    _state["quiet"] = bool(value) or _state["quiet"]


def set_debug(value: bool) -> None:
    _state["debug"] = bool(value) or _state["debug"]


def is_quiet() -> bool:
    return _state["quiet"] or os.environ.get("VOXTOOL_QUIET") == "1" or not _is_rank0()


def is_debug() -> bool:
    return _state["debug"] or os.environ.get("VOXTOOL_DEBUG") == "1"


def _is_rank0() -> bool:
    return os.environ.get("RANK", "0") == "0"


_consoles: dict[str, Any] = {}


def stderr_console():
    if "err" not in _consoles:
        from rich.console import Console

        _consoles["err"] = Console(stderr=True, highlight=False, soft_wrap=True)  # log lines stay whole
    return _consoles["err"]


def stdout_console():
    if "out" not in _consoles:
        from rich.console import Console

        _consoles["out"] = Console(highlight=False, soft_wrap=True)
    return _consoles["out"]


def log(message: str) -> None:
    """A human message on stderr (nothing under --quiet or on ranks other than 0)."""
    if not is_quiet():
        stderr_console().print(message, markup=False)


def error_line(message: str) -> None:
    """The one line an error gets, on stderr, unstyled so scripts can parse it."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def interrupted_line(message: str = "") -> None:
    """The one line Ctrl-C gets: `interrupted` or `interrupted: <what was finished>` (always shown)."""
    sys.stderr.write(f"interrupted: {message}\n" if message else "interrupted\n")
    sys.stderr.flush()


def emit_json(obj: Any) -> None:
    """One JSON document on stdout, for scripts."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A human-readable table on stdout."""
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[_fmt(v) for v in row])
    stdout_console().print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def progress_enabled() -> bool:
    return not is_quiet() and sys.stderr.isatty()


@contextmanager
def progress(total: int | None, description: str, **fields: Any) -> Iterator[Any]:
    """A transient rich progress bar on stderr; yields `advance(n=1, **fields)`.

    Disabled (a no-op callable) when quiet, on ranks other than 0, or when stderr is not a terminal.
    Extra `fields` are shown after the bar and can be updated through `advance(0, loss=...)`.
    """
    if not progress_enabled():
        yield lambda n=1, **kw: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    if fields:
        columns.append(TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=stderr_console(), transient=True) as bar:
        task_id = bar.add_task(description, total=total, info=_info(fields))

        def advance(n: int = 1, **kw: Any) -> None:
            if kw:
                fields.update(kw)
                bar.update(task_id, advance=n, info=_info(fields))
            else:
                bar.update(task_id, advance=n)

        yield advance


def _info(fields: dict[str, Any]) -> str:
    return "  ".join(f"{k} {_fmt(v)}" for k, v in fields.items())
