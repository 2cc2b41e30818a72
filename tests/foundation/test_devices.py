"""Device resolution, vendor backends (with a fake torch_sdaa / torch_npu injected), autocast."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from voxtool.devices import autocast, resolve_device
from voxtool.errors import BadInput


def test_cpu_and_auto():
    assert str(resolve_device("cpu")) == "cpu"
    dev = resolve_device("auto")
    assert dev.type in {"cuda", "xpu", "mps", "npu", "sdaa", "cpu"}  # a concrete device, never "auto"
    assert resolve_device("cpu").ddp_backend == "gloo"


@pytest.mark.parametrize("spec, package", [("sdaa", "torch_sdaa"), ("npu", "torch_npu"), ("sdaa:1", "torch_sdaa")])
def test_missing_vendor_backend_names_package(spec, package, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # import fails even if installed
    with pytest.raises(BadInput, match=package):
        resolve_device(spec)


def test_unknown_and_cuda_without_devices():
    with pytest.raises(BadInput, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BadInput, match="cuda"):
            resolve_device("cuda")


def fake_backend(monkeypatch, kind, package, count):
    module = types.ModuleType(package)
    backend = types.SimpleNamespace(is_available=lambda: count > 0, device_count=lambda: count,
                                    set_device=lambda i: None)

    def on_import():
        monkeypatch.setattr(torch, kind, backend, raising=False)

    on_import()  # a real vendor package registers torch.<kind> when imported
    monkeypatch.setitem(sys.modules, package, module)
    import importlib.machinery

    module.__spec__ = importlib.machinery.ModuleSpec(package, None)


@pytest.mark.parametrize("kind, package, backend", [("sdaa", "torch_sdaa", "tccl"), ("npu", "torch_npu", "hccl")])
def test_fake_vendor_backend(monkeypatch, kind, package, backend):
    fake_backend(monkeypatch, kind, package, count=2)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object() if name == package else None)
    dev = resolve_device(kind)
    assert (dev.type, dev.index, dev.ddp_backend) == (kind, 0, backend)
    assert resolve_device(f"{kind}:1").index == 1
    assert resolve_device(kind, local_rank=1).index == 1  # DDP rank r -> device r
    with pytest.raises(BadInput, match="only 2"):
        resolve_device(f"{kind}:2")


def test_fake_vendor_backend_without_devices(monkeypatch):
    fake_backend(monkeypatch, "sdaa", "torch_sdaa", count=0)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object() if name == "torch_sdaa" else None)
    with pytest.raises(BadInput, match="no usable device"):
        resolve_device("sdaa")


def test_autocast_on_cpu():
    dev = resolve_device("cpu")
    with autocast(dev, "bf16"):
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16
    with autocast(dev, "32"):
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32
    with pytest.raises(BadInput):
        autocast(dev, "8")
