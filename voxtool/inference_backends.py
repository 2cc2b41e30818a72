"""How an inference network runs: precision, folded batch norms and an onnxruntime backend (issue 15).

Tasks keep their chunking and decoding in Python and hand the network call to one of these:

- `resolve_precision("auto", device)`: "bf16" on a CPU that computes bf16 natively (AVX512-BF16 or AMX: oneDNN
  then runs convolutions, matmuls and LSTMs in bf16 at about twice the fp32 speed), "32" everywhere else. Each
  task keeps "auto" only where its parity test holds (rmvpe within 1 cent on voiced frames, mouth within 0.005).
- `fold_batchnorm(module)`: every `Conv*` / `ConvTranspose*` directly followed by a `BatchNorm*` inside an
  `nn.Sequential` becomes one convolution (the eval-mode affine folded into its weights), the norm an Identity.
  Same function up to float rounding (~1e-7), one pass over the activations less. Inference copies only: the
  running statistics are gone afterwards.
- `OnnxNetwork(module, example_inputs, ...)`: the module exported to ONNX in memory once and run by onnxruntime,
  called like the module with tensors (`--backend onnx`).

Shapes are the wrapped module's own; nothing here knows a task.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from voxtool.errors import BadInput

PRECISIONS = ("auto", "32", "bf16", "16")
BACKENDS = ("torch", "onnx")


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 arithmetic (AVX512-BF16 or AMX tiles) and oneDNN may use it."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()) and bool(
            torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):  # an older or a stripped torch build
        return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"auto" -> "bf16" on a CPU with native bf16, else "32"; "32" / "bf16" / "16" pass through (also "fp32"...)."""
    from voxtool.devices import normalise_precision

    if precision != "auto":
        try:
            return normalise_precision(precision)
        except BadInput:
            raise BadInput(None, f"unknown precision '{precision}' (choose auto, 32, bf16 or 16)") from None
    device = torch.device(device)
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "32"


def resolve_runtime(backend: str, precision: str, device: torch.device | str) -> str:
    """Check a (backend, precision) pair for `device` and return the precision to run. onnxruntime runs fp32 on the
    CPU: there `auto` (the CLI default) means 32, and an explicit bf16/16 or another device is refused (BadInput)."""
    if backend not in BACKENDS:
        raise BadInput(None, f"unknown backend '{backend}' (choose {', '.join(BACKENDS)})")
    if backend == "torch":
        return resolve_precision(precision, device)
    precision = "32" if precision == "auto" else resolve_precision(precision, device)
    if torch.device(device).type != "cpu" or precision != "32":
        raise BadInput(None, "--backend onnx runs in 32-bit on the CPU (use --device cpu --precision 32)")
    return precision


def set_threads(threads: int) -> int:
    """Torch's intra-op threads for this process: `threads` capped at the core count (more only adds contention);
    0 leaves torch's default. Returns the count in effect."""
    import os

    if threads > 0:
        torch.set_num_threads(min(int(threads), os.cpu_count() or 1))
    return torch.get_num_threads()


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@torch.no_grad()
def fold_batchnorm(module: nn.Module) -> int:
    """Fold every (conv, batch norm) pair of consecutive children of an nn.Sequential, in place (module must be in
    eval mode). Returns the number of norms folded."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if module.training:
        raise ValueError("fold_batchnorm needs an eval-mode module (training would update the folded statistics)")
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = seq._modules[first], seq._modules[second]
            if isinstance(conv, _CONVS) and isinstance(norm, _NORMS) and norm.track_running_stats:
                transpose = isinstance(conv, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d)
                seq._modules[first] = fuse_conv_bn_eval(conv, norm, transpose=transpose)
                seq._modules[second] = nn.Identity()
                folded += 1
    return folded


class OnnxNetwork:
    """`module` exported to ONNX (in memory, opset 17) and run by onnxruntime on the CPU.

    `example_inputs`: tensors of the call's shapes; `dynamic`: per input name, the axes that vary
    ({"mel": {0: "batch", 2: "frames"}}); `threads`: onnxruntime intra-op threads (0: one per core).
    Calling it with tensors returns the first output as a float32 CPU tensor."""

    def __init__(
        self,
        module: nn.Module,
        example_inputs: Sequence[torch.Tensor],
        input_names: Sequence[str],
        dynamic: dict[str, dict[int, str]],
        threads: int = 0,
        optimization: str = "all",
    ):
        import warnings

        try:
            import onnxruntime as ort
        except ImportError:
            raise BadInput(None, "--backend onnx needs onnxruntime: pip install 'voxtool[export]'") from None

        from voxtool.onnx_export import session_options

        options = session_options(threads, 1, optimization)
        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes about Python control flow on shapes
            torch.onnx.export(module.eval(), tuple(example_inputs), buf, input_names=list(input_names),
                              output_names=["output"], dynamic_axes=dynamic, opset_version=17, dynamo=False)  # fmt: skip
        self.session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
        self.input_names = list(input_names)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed: dict[str, Any] = {
            name: x.detach().float().cpu().numpy() for name, x in zip(self.input_names, inputs, strict=True)
        }
        return torch.from_numpy(self.session.run(None, feed)[0])
