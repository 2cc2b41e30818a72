"""Output formats of the file -> file commands: choosing the format, planning the jobs, atomic CSV/NPY/JSON writers.

    FORMATS = OutputFormats(("csv", "npy", "json"))                      # mouth, rmvpe
    fmt, jobs = plan_outputs(inputs, out, FORMATS, fmt_option, skip_existing=..., protect=protected_paths(model))
    def work(job):                                                        # then voxtool.batch.run_jobs(jobs, work)
        write_csv(job.dst, ["time", "f0"], zip(times, f0), ["{:.3f}", "{:.3f}"])

The format is `--format` when given (case-insensitive), else the suffix of `--out` when it names a known one
(`x.npy`), else the default. Writers are atomic (`voxtool.fileio`): a killed run leaves no half file. CSV lines
end in "\\n" on every platform; a text field holding a comma, quote or line break is quoted (RFC 4180), numbers
never are, so numeric tables are byte-identical to a plain `",".join`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxtool.errors import BadInput


class OutputFormats:
    """A command's format names, their file extensions and the default (see the module docstring)."""

    def __init__(self, names: Sequence[str], default: str | None = None, extensions: Mapping[str, str] | None = None):
        """`extensions` overrides ".<name>" for some formats, e.g. {"textgrid": ".TextGrid"}."""
        self.names = tuple(n.lower() for n in names)
        self.default = (default or self.names[0]).lower()
        if self.default not in self.names:
            raise ValueError(f"default format {default!r} is not one of {self.names}")
        self._ext = {n: f".{n}" for n in self.names} | {k.lower(): v for k, v in (extensions or {}).items()}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self.names

    def __iter__(self):
        return iter(self.names)

    def check(self, fmt: str, option: str = "--format") -> str:
        """`fmt` lower-cased, or a BadInput listing the choices."""
        if fmt.lower() not in self.names:
            raise BadInput(None, f"{option} {fmt!r}: choose from {', '.join(self.names)}")
        return fmt.lower()

    def resolve(self, out: str | Path | None, fmt: str | None) -> str:
        """The format for an `--out` (file or folder, or None) and a `--format` option (or None)."""
        if fmt:
            return self.check(fmt)
        if out is not None:
            suffix = Path(out).suffix.lower()
            for name, ext in self._ext.items():
                if ext.lower() == suffix:
                    return name
        return self.default

    def extension(self, fmt: str) -> str:
        """The suffix outputs of `fmt` get, with its dot (".csv", ".TextGrid")."""
        return self._ext[self.check(fmt)]


def plan_outputs(
    inputs: list[str],
    out: Path | None,
    formats: OutputFormats,
    fmt: str | None = None,
    *,
    skip_existing: bool = False,
    protect: Iterable[Path] = (),
) -> tuple[str, list]:
    """(format, `voxtool.inputs.Job`s): the format resolved, then every input expanded to its output path with
    that format's extension; every refusal (missing input, output over an input or a protected file) comes
    before any work."""
    from voxtool.inputs import expand_inputs

    name = formats.resolve(out, fmt)
    jobs = expand_inputs(inputs, out, formats.extension(name), skip_existing=skip_existing, protect=list(protect))
    return name, jobs


def _csv_field(value: Any, spec: str) -> str:
    text = spec.format(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]], formats: Sequence[str] | None = None) -> str:
    """Header line plus one line per row; `formats` are `str.format` specs per column ("{:.3f}"; default "{}")."""
    specs = list(formats) if formats is not None else ["{}"] * len(header)
    if len(specs) != len(header):
        raise ValueError(f"{len(specs)} formats for {len(header)} columns")
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join(_csv_field(v, s) for v, s in zip(row, specs, strict=True)))
    return "\n".join(lines) + "\n"


def write_csv(
    path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]], formats: Sequence[str] | None = None
) -> None:
    """Atomically write `csv_text(header, rows, formats)` (UTF-8, "\\n" line ends)."""
    from voxtool.fileio import atomic_write

    text = csv_text(header, rows, formats)
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def write_npy(path: str | Path, array: np.ndarray, dtype: Any = np.float32) -> None:
    """Atomically write `array` as `dtype` (float32 by default) in .npy format."""
    from voxtool.fileio import atomic_write

    with atomic_write(path, "wb") as f:
        np.save(f, np.asarray(array).astype(dtype, copy=False))


def write_json(
    path: str | Path, doc: Any, *, indent: int | None = None, ensure_ascii: bool = True, trailing_newline: bool = False
) -> None:
    """Atomically write one JSON document (UTF-8). The keyword defaults are json.dumps's, for byte-identical files
    with the writers this replaces (mouth/rmvpe: defaults; pinyin: indent=1, ensure_ascii=False, newline)."""
    from voxtool.fileio import atomic_write

    text = json.dumps(doc, indent=indent, ensure_ascii=ensure_ascii) + ("\n" if trailing_newline else "")
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
