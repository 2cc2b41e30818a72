"""Overlapping windows for chunked inference of sequence models (rmvpe, mouth).

A track of `total` frames is cut into cores of `chunk` frames; each core runs inside a window that adds `context`
frames on both sides, shifted inwards at the file edges so every window has the same length and a batch of windows
is one tensor. Only each window's core is kept, so the result differs from a whole-file pass only by what the
network would have seen beyond the context.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Window:
    start: int  # first frame of the window
    core_start: int  # first frame kept
    core_stop: int  # one past the last frame kept

    def core(self, values):
        """The core frames of this window's row (..., W) -> (..., core)."""
        return values[..., self.core_start - self.start : self.core_stop - self.start]


def plan_windows(
    total: int, chunk: int, context: int, multiple: int = 1, balance: bool = False
) -> tuple[int, list[Window]]:
    """Cut `total` frames into windows. Returns (window length in frames, windows).

    `chunk` 0 (or a file shorter than one window) means one window over the whole file, padded to a
    multiple of `multiple` frames; chunk and context are rounded up to multiples of it too. `balance`: as many
    windows as cores of `chunk` frames need, but with equal cores of at most `chunk` (a 3003-frame file in cores of
    1000 runs 4 windows of 751 + context instead of 4 of 1000 + context, the last holding 3 frames).
    """
    if balance and chunk and total > chunk:
        chunk = -(-total // -(-total // chunk))
    whole = -(-total // multiple) * multiple
    chunk = -(-chunk // multiple) * multiple if chunk else 0
    context = -(-context // multiple) * multiple if chunk else 0
    length = chunk + 2 * context
    if not chunk or whole <= length:
        return whole, [Window(0, 0, total)]
    windows = []
    for a in range(0, total, chunk):
        start = max(0, min(a - context, whole - length))
        windows.append(Window(start, a, min(a + chunk, total)))
    return length, windows
