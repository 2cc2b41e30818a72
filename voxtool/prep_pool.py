"""One worker pool for prep commands: serial, threads or forked processes, with progress and a clean Ctrl-C.

    with prep_progress(len(items), "prep", out=out) as advance:          # voxtool.batch
        for result in map_items(process_one, items, workers, kind="thread", ordered=False, advance=advance):
            collect(result)

- `workers` <= 1 (or one item) runs in this thread: no pool, tracebacks and debuggers stay simple.
- kind="thread": the heavy parts of audio prep (decoding, resampling, STFT) release the GIL, and a thread pool
  starts instantly where each spawned worker pays seconds of imports.
- kind="process": pure-Python work that holds the GIL (text normalisation, tokenising). Workers are forked on
  POSIX (they inherit the imported modules), spawned elsewhere; `fn` and the items must be picklable (`fn` at
  module level). Items go out in chunks of `chunksize` to save round trips. Workers ignore SIGINT: Ctrl-C is
  the parent's alone, so it is one `KeyboardInterrupt` here instead of a traceback per worker.
- `torch_threads`: torch intra-op threads while the pool runs (in the workers too; restored after): 1 when many
  small items run in parallel, where intra-op threads only compete with each other.
- Results come in input order (`ordered=True`) or as they complete. `advance(1)` is called once per item after
  the consumer took its result (the progress callback of `voxtool.console.progress` / `prep_progress`).
- An exception in `fn`, or Ctrl-C, or the consumer leaving the loop, cancels every item not started; the ones
  running finish (their outputs are written atomically) and the exception goes on to the caller.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

T = TypeVar("T")
R = TypeVar("R")
KINDS = ("thread", "process")


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _worker_init(torch_threads: int | None) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)


def _run_chunk(fn: Callable[[Any], Any], chunk: list) -> list:
    return [fn(item) for item in chunk]


def map_items(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = 1,
    *,
    kind: Literal["thread", "process"] = "thread",
    ordered: bool = True,
    advance: Callable[..., None] | None = None,
    chunksize: int = 1,
    torch_threads: int | None = None,
) -> Iterator[R]:
    """Yield `fn(item)` for every item (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if chunksize < 1:
        raise ValueError(f"chunksize must be >= 1, not {chunksize}")
    items = list(items)
    with _torch_threads(torch_threads):
        if workers <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                if advance:
                    advance(1)
            return
        if kind == "thread":
            pool: Executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="voxtool-prep")
            chunksize = 1  # no round trips to save
        else:
            import multiprocessing as mp

            ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
            pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(torch_threads,))
        chunks = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]
        futures: list[Future] = []
        try:
            futures = [pool.submit(_run_chunk, fn, chunk) for chunk in chunks]
            for results in _in_order(futures) if ordered else _as_completed(futures):
                for result in results:
                    yield result
                    if advance:
                        advance(1)
        finally:  # also on GeneratorExit (the consumer stopped) and KeyboardInterrupt
            for f in futures:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def _in_order(futures: list[Future]) -> Iterator[list]:
    for f in futures:
        yield f.result()


def _as_completed(futures: list[Future]) -> Iterator[list]:
    # concurrent.futures.as_completed without its timeout machinery; wait() wakes on every completion
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            yield f.result()
