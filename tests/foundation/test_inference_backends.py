"""voxtool.inference_backends: batch-norm folding, precision resolution, the in-memory ONNX backend, threads."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from torch import nn

from voxtool.errors import BadInput
from voxtool.inference_backends import (
    OnnxNetwork,
    cpu_has_native_bf16,
    fold_batchnorm,
    resolve_precision,
    set_threads,
)


def _randomise_norms(module: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, as a trained network has."""
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@torch.no_grad()
def test_fold_batchnorm_keeps_the_function_of_every_conv_kind():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv1d(4, 8, 3, padding=1, bias=False), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Conv1d(8, 6, 3, padding=1), nn.BatchNorm1d(6),
    ).eval()  # fmt: skip
    net2d = nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(),
        nn.Sequential(nn.ConvTranspose2d(5, 3, 3, stride=2, padding=1, output_padding=1, bias=False),
                      nn.BatchNorm2d(3)),
        nn.BatchNorm2d(3),  # a norm after no convolution stays
    ).eval()  # fmt: skip
    for model, x in ((net, torch.randn(2, 4, 17)), (net2d, torch.randn(2, 2, 8, 9))):
        _randomise_norms(model)
        before = model(x)
        folded = copy.deepcopy(model)
        count = fold_batchnorm(folded)
        assert count == 2
        torch.testing.assert_close(folded(x), before, rtol=1e-5, atol=1e-5)
        assert sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules()) == (
            sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) - 2
        )
    with pytest.raises(ValueError, match="eval-mode"):
        fold_batchnorm(nn.Sequential(nn.Conv1d(1, 1, 1), nn.BatchNorm1d(1)))


def test_precision_auto_follows_the_cpu_and_names_pass_through():
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_native_bf16() else "32")
    assert resolve_precision("auto", torch.device("meta")) == "32"  # not a CPU: auto is 32-bit
    assert resolve_precision("fp32", "cpu") == "32" and resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(BadInput, match="unknown precision"):
        resolve_precision("fp8", "cpu")


def test_onnx_network_computes_what_the_module_computes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv1d(8, 2, 1)).eval()
    runner = OnnxNetwork(net, [torch.zeros(1, 3, 10)], ["x"], {"x": {0: "batch", 2: "frames"}}, threads=1)
    x = torch.randn(4, 3, 37)  # another batch and length than the example: the axes are dynamic
    with torch.no_grad():
        torch.testing.assert_close(runner(x), net(x), rtol=1e-5, atol=1e-5)


def test_set_threads_never_exceeds_the_cores():
    before = torch.get_num_threads()
    try:
        assert set_threads(10_000) == (os.cpu_count() or 1)
        assert set_threads(1) == 1
        assert set_threads(0) == 1  # 0 leaves the setting alone
    finally:
        torch.set_num_threads(before)


def test_runtime_pairs_backend_and_precision():
    from voxtool.inference_backends import resolve_runtime

    assert resolve_runtime("torch", "auto", "cpu") == resolve_precision("auto", "cpu")
    assert resolve_runtime("onnx", "auto", "cpu") == "32"  # onnxruntime runs fp32: auto means 32 there
    for backend, precision, device in (("onnx", "bf16", "cpu"), ("onnx", "32", "meta"), ("tvm", "32", "cpu")):
        with pytest.raises(BadInput):
            resolve_runtime(backend, precision, device)
