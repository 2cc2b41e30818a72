"""Device selection: auto|cpu|cuda[:N]|mps|xpu[:N]|npu[:N]|sdaa[:N].

Vendor backends are out-of-tree packages that register a `torch.<type>` module when imported
(`torch_npu` for Ascend NPUs, `torch_sdaa` for Tecorigin SDAA cards). A backend that is missing or has no
device is a `BadInput` naming the package to install: voxtool never falls back to the CPU silently.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from voxtool.errors import BadInput

# type -> (package to import or None, DDP backend, human hint)
BACKENDS: dict[str, tuple[str | None, str, str]] = {
    "cuda": (None, "nccl", "a CUDA (or ROCm) build of torch, see https://pytorch.org/get-started/locally/"),
    "xpu": (None, "xccl", "a torch build with Intel XPU support (torch>=2.5 xpu wheels)"),
    "mps": (None, "gloo", "torch on Apple silicon (macOS 12.3+)"),
    "npu": ("torch_npu", "hccl", "the torch_npu package (Ascend CANN)"),
    "sdaa": ("torch_sdaa", "tccl", "the torch_sdaa package (Tecorigin SDAA)"),
    "cpu": (None, "gloo", "nothing"),
}
AUTO_ORDER = ("cuda", "xpu", "mps", "npu", "sdaa", "cpu")
PRECISIONS = {"32": "32", "fp32": "32", "16": "16", "fp16": "16", "bf16": "bf16", "bfloat16": "bf16"}


@dataclass(frozen=True)
class Device:
    """A resolved device: `type` ('cuda', 'sdaa', ...), `index` (None for cpu/mps) and its DDP backend."""

    type: str
    index: int | None = None

    @property
    def ddp_backend(self) -> str:
        return BACKENDS[self.type][1]

    @property
    def torch(self) -> Any:
        import torch

        return torch.device(self.type if self.index is None else f"{self.type}:{self.index}")

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def _import_backend(kind: str) -> Any:
    """Import the vendor package of `kind` (if any) and return the `torch.<kind>` module."""
    import torch

    package = BACKENDS[kind][0]
    if package is not None:
        try:
            importlib.import_module(package)
        except ImportError as e:
            raise BadInput(None, f"device '{kind}' needs {BACKENDS[kind][2]}: cannot import {package} ({e})") from None
    if kind == "mps":
        return torch.backends.mps
    module = getattr(torch, kind, None)
    if module is None:
        raise BadInput(None, f"device '{kind}' needs {BACKENDS[kind][2]}: torch.{kind} is missing")
    return module


def device_count(kind: str) -> int:
    """Number of devices of `kind`; 0 when the backend is absent (no exception)."""
    if kind == "cpu":
        return 1
    package = BACKENDS[kind][0]
    if package is not None and importlib.util.find_spec(package) is None:
        return 0
    try:
        module = _import_backend(kind)
    except BadInput:
        return 0
    try:
        if kind == "mps":
            return 1 if module.is_available() else 0
        if not module.is_available():
            return 0
        return int(module.device_count())
    except Exception:  # a broken vendor runtime counts as no device
        return 0


def resolve_device(spec: str = "auto", local_rank: int | None = None) -> Device:
    """Turn a `--device` string into a concrete `Device`.

    With `local_rank` (a DDP worker) and no explicit index, rank r uses device r of that type.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        for kind in AUTO_ORDER:
            if device_count(kind) > 0:
                spec = kind
                break
    kind, _, index_text = spec.partition(":")
    if kind not in BACKENDS:
        raise BadInput(None, f"unknown device '{spec}' (choose auto, {', '.join(BACKENDS)})")
    if index_text and not index_text.isdigit():
        raise BadInput(None, f"device '{spec}': index must be a number")
    if kind == "cpu":
        return Device("cpu")
    _import_backend(kind)
    count = device_count(kind)
    if count == 0:
        raise BadInput(None, f"device '{kind}' has no usable device (needs {BACKENDS[kind][2]})")
    if kind == "mps":
        return Device("mps")
    index = int(index_text) if index_text else (local_rank or 0) % count
    if index >= count:
        raise BadInput(None, f"device '{spec}': only {count} {kind} device(s) visible")
    return Device(kind, index)


def normalise_precision(precision: str) -> str:
    key = str(precision).lower()
    if key not in PRECISIONS:
        raise BadInput(None, f"unknown precision '{precision}' (choose 32, 16 or bf16)")
    return PRECISIONS[key]


def autocast(device: Device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context for any device type (a no-op for 32-bit)."""
    import torch

    precision = normalise_precision(precision)
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: Device, precision: str) -> Any:
    """The loss scaler `--precision 16` needs on `device` (a disabled one for 32 and bf16).

    fp16 gradients underflow without loss scaling, so a device with no scaler of its own is refused
    (BadInput) rather than trained silently without one. The device's own `torch.<type>.amp.GradScaler`
    wins where the backend ships one (torch_npu, torch_sdaa); otherwise torch's generic scaler, which
    knows cuda, xpu, mps and cpu.
    """
    import torch

    precision = normalise_precision(precision)
    if precision != "16":
        return torch.amp.GradScaler("cpu", enabled=False)
    if device.type in ("cuda", "xpu", "mps", "cpu"):
        return torch.amp.GradScaler(device.type)
    own = getattr(getattr(_import_backend(device.type), "amp", None), "GradScaler", None)
    if own is not None:
        return own()
    raise BadInput(None, f"--precision 16 on {device.type}: this backend has no gradient scaler "
                         "(fp16 would train without loss scaling); use --precision bf16 or 32")


def set_current(device: Device) -> None:
    """Make `device` the current one of its backend (needed before NCCL/HCCL/TCCL process groups)."""
    if device.index is None:
        return
    module = _import_backend(device.type)
    if hasattr(module, "set_device"):
        module.set_device(device.index)


def probe_backends() -> list[dict[str, Any]]:
    """For `voxtool doctor`: every backend, whether its package is importable and how many devices it sees."""
    rows = []
    for kind in AUTO_ORDER:
        package = BACKENDS[kind][0]
        installed = package is None or importlib.util.find_spec(package) is not None
        rows.append(
            {
                "device": kind,
                "package": package or "torch",
                "installed": installed,
                "count": device_count(kind) if installed else 0,
                "ddp_backend": BACKENDS[kind][1],
            }
        )
    return rows


def visible_env() -> dict[str, str]:
    keys = ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "SDAA_VISIBLE_DEVICES")
    return {k: os.environ[k] for k in keys if k in os.environ}
