"""ONNX export and loading shared by the tasks: one way to write a graph with metadata, open it, and check it.

    meta = {"voxtool.task": "mouth", "voxtool.mel": json.dumps(cfg.model_dump())}     # str -> str, stored verbatim
    export_onnx(wrapper, (example,), out, input_names=["waveform"], output_names=["curve"],
                dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "curve": {0: "batch", 1: "frames"}},
                metadata=meta)
    session = onnx_session(out, threads=1)                  # BadInput (one line) when it cannot be loaded
    onnx_metadata(session)["voxtool.mel"]
    parity(session, {"waveform": x}, {"curve": torch_curve})  # {"curve": max |onnxruntime - torch|}

`export_onnx` traces with the TorchScript exporter (`dynamo=False`: the graphs use Python-side shape arithmetic),
writes through `voxtool.fileio.atomic_path` (no half-written file, even when killed), runs `onnx.checker` on the
file with its metadata, and turns any exporter failure into one `VoxtoolError` line instead of a traceback.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxtool.errors import BadInput, VoxtoolError

OPSET = 17
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:160]}" if text else type(e).__name__


def export_onnx(
    module: Any,
    args: tuple,
    out: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    metadata: Mapping[str, str] | None = None,
    opset: int = OPSET,
) -> Path:
    """Trace `module(*args)` (an eval-mode torch module) to `out` with `metadata` as metadata_props; returns `out`.

    Shapes are the module's own: `args` are example inputs whose `dynamic_axes` are left symbolic."""
    import onnx
    import torch

    from voxtool.fileio import atomic_path

    meta = dict(metadata or {})
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"ONNX metadata must map str to str, got {key!r}: {type(value).__name__}")
    out = Path(out)
    try:
        with atomic_path(out) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on RNNs, shape arithmetic and folding are not news
            with torch.no_grad():
                torch.onnx.export(
                    module, args, str(tmp), input_names=list(input_names), output_names=list(output_names),
                    dynamic_axes={k: dict(v) for k, v in (dynamic_axes or {}).items()},
                    opset_version=opset, dynamo=False,
                )  # fmt: skip
            proto = onnx.load(str(tmp))
            for key, value in meta.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
            onnx.checker.check_model(proto)
            onnx.save(proto, str(tmp))
    except VoxtoolError:
        raise
    except Exception as exc:  # exporter/checker errors come in many types; the user needs one line
        raise VoxtoolError(f"ONNX export failed: {_first_line(exc)}") from exc
    return out


def session_options(threads: int = 0, inter_threads: int = 0, optimization: str = "all") -> Any:
    """onnxruntime SessionOptions: intra-/inter-op threads (0 = one per core), graph optimisation level (one of
    GRAPH_OPTIMIZATIONS), warnings muted (log level 3 = errors only: the user cannot act on its notes about unused
    initialisers)."""
    import onnxruntime as ort

    if optimization not in GRAPH_OPTIMIZATIONS:
        raise ValueError(f"optimization must be one of {GRAPH_OPTIMIZATIONS}, not {optimization!r}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = int(inter_threads)
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    return options


def onnx_session(
    path: str | Path,
    *,
    threads: int = 0,
    inter_threads: int = 0,
    optimization: str = "all",
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> Any:
    """An onnxruntime InferenceSession on `path` (`session_options` for the settings); a missing or unloadable
    file is a one-line BadInput."""
    import onnxruntime as ort

    options = session_options(threads, inter_threads, optimization)
    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "ONNX model not found")
    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise BadInput(path, f"cannot load ONNX model ({_first_line(exc)})") from None


def onnx_metadata(session: Any) -> dict[str, str]:
    """The metadata_props of a loaded session's model (str -> str)."""
    return dict(session.get_modelmeta().custom_metadata_map)


def parity(
    session: Any, inputs: Mapping[str, np.ndarray], expected: Mapping[str, Any], where: str | Path | None = None
) -> dict[str, float]:
    """Run `session` on `inputs` -> {output name: max |onnx - expected|} for each output in `expected` (numpy arrays
    or torch tensors; booleans compare as 0/1). A shape mismatch is a BadInput naming `where`."""
    names = list(expected)
    feeds = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
    got = session.run(names, feeds)
    diffs = {}
    for name, value in zip(names, got):
        want = expected[name]
        want = want.detach().cpu().numpy() if hasattr(want, "detach") else np.asarray(want)
        if value.shape != want.shape:
            raise BadInput(where, f"ONNX output {name!r} has shape {value.shape}, torch {want.shape}")
        diff = np.abs(value.astype(np.float64) - want.astype(np.float64))
        diffs[name] = float(diff.max()) if diff.size else 0.0
    return diffs
