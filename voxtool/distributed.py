"""torch.distributed with or without it: rank/world helpers and the `--nproc-per-node` launcher.

voxtool follows torchrun's environment contract (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
`--nproc-per-node N` re-runs the same command line in N worker processes through torch's elastic launcher;
a process that already has that environment (our own workers, or an outer multi-node `torchrun`) does not
launch again.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from typing import Any


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_rank0() -> bool:
    return rank() == 0


def under_launcher() -> bool:
    """True inside a worker started by torchrun / elastic launch (the env contract is present)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def init(backend: str) -> None:
    """Join the process group described by the environment (no-op for a single process)."""
    import torch.distributed as dist

    if world_size() > 1 and not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")


def shutdown() -> None:
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()  # drop unreachable DDP wrappers first: they keep the process group alive past its destruction
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        import torch.distributed as dist

        dist.barrier()


def all_reduce_mean(values: dict[str, float], device: Any = "cpu") -> dict[str, float]:
    """Average scalar metrics over ranks (identity without torch.distributed)."""
    if not values or not is_initialized():
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= world_size()
    return dict(zip(keys, t.tolist()))


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not is_initialized():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def relaunch(nproc: int, argv: list[str] | None = None) -> None:
    """Run `python -m voxtool <argv>` in `nproc` local workers through torch elastic and wait for them.

    Raises VoxtoolError if any worker fails (its own error line was already printed by the worker).
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from voxtool.errors import VoxtoolError

    argv = list(sys.argv[1:] if argv is None else argv)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"voxtool-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{free_port()}",
        max_restarts=0,
        monitor_interval=0.2,
    )
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "voxtool", *argv)
    except Exception as e:  # ChildFailedError carries per-rank details
        failures = getattr(e, "failures", None)
        codes = sorted({f.exitcode for f in failures.values()}) if failures else []
        if codes and all(c == 2 for c in codes):
            from voxtool.errors import UsageError

            raise UsageError("a worker rejected its input (see its error above)") from None
        raise VoxtoolError(f"distributed run failed ({type(e).__name__}; worker exit codes {codes or '?'})") from None
