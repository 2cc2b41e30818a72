"""The RMVPE inference runtime: loaded models (torch or ONNX) and `load_model`.

`load_model(path)` accepts a voxtool `model.pt` or run folder of the rmvpe task, a published checkpoint (RVC
`rmvpe.pt`, yxlllc `model.pt`, DDP outputs) or an exported `.onnx`, and returns a `TorchPitchModel` or an
`OnnxPitchModel` for `voxtool.pitch.rmvpe.predict`. Loading changes nothing process-wide: long-running file->file
drivers call `voxtool.runtime.limit_mmap_threshold()` themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from voxtool.audio.mel import LogMel, MelConfig
from voxtool.errors import BadInput
from voxtool.pitch.checkpoint import load_state_dict_any
from voxtool.pitch.decode import DEFAULT_THRESHOLD, decode_torch
from voxtool.pitch.rmvpe_model import E2E0
from voxtool.pitch.settings import RmvpeArch, published_mel_config

# 20.48 s cores with 2.56 s of context per side: < 0.01 cents from whole-file inference on the test models,
# 25 % extra compute, and a peak memory set by the window (batch_size x 25.6 s), not by the file length.
DEFAULT_CHUNKING = {"chunk_frames": 2048, "context_frames": 256, "batch_size": 2}


@dataclass
class TorchPitchModel:
    """E2E0 + its front-end on a device. `salience_windows(waves (B, L)) -> (B, T, 360)` on pre-padded frames."""

    net: E2E0
    mel_cfg: MelConfig
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "32"
    threshold: float = DEFAULT_THRESHOLD
    description: str = ""
    chunking: dict = field(default_factory=lambda: dict(DEFAULT_CHUNKING))  # the model's own infer settings
    calibrated_threshold: float | None = None  # a voxtool model's validation-calibrated threshold (= `threshold`)
    backend: str = "torch"  # torch | onnx (`voxtool.inference_backends.OnnxNetwork`, CPU)
    threads: int = 0  # onnxruntime intra-op threads (0: one per core)

    def __post_init__(self):
        from voxtool.audio.framing import frame_config
        from voxtool.inference_backends import OnnxNetwork, resolve_runtime

        self.precision = resolve_runtime(self.backend, self.precision, self.device)
        self.net = self.net.to(self.device).eval()
        self.frontend = LogMel(frame_config(self.mel_cfg)).to(self.device)  # pre-padded samples -> (B, F, T)
        self._onnx = None
        if self.backend == "onnx":
            example = torch.zeros(1, self.net.arch.n_mels, 2 * self.frame_multiple)
            self._onnx = OnnxNetwork(self.net, [example], ["mel"], {"mel": {0: "batch", 2: "frames"}}, self.threads)
        elif self.precision == "bf16" and self.device.type == "cpu":
            # oneDNN's bf16 convolutions want NHWC: measured 0.58x of fp32 NCHW time with it, 0.74x without
            self.net = self.net.to(memory_format=torch.channels_last)

    @property
    def frame_multiple(self) -> int:
        return self.net.arch.frame_multiple

    @torch.inference_mode()
    def salience_windows(self, waves: np.ndarray) -> torch.Tensor:
        """Pre-padded windows (B, (W-1)*hop + n_fft) -> salience (B, W, 360) (fp32, on the device)."""
        from voxtool.devices import autocast

        wav = torch.from_numpy(np.ascontiguousarray(waves)).to(self.device)
        mel = self.frontend(wav)  # (B, n_mels, W), fp32 outside autocast
        if self._onnx is not None:
            return self._onnx(mel)
        with autocast(self.device, self.precision):
            salience = self.net(mel)
        return salience.float()

    def f0_windows(self, waves: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Pre-padded windows (B, (W-1)*hop + n_fft) -> (f0 (B, W), confidence (B, W))."""
        f0, conf = decode_torch(self.salience_windows(waves), threshold)
        return f0.cpu().numpy(), conf.cpu().numpy()


class OnnxPitchModel:
    """An exported graph: raw waveform (B, N) + threshold -> (f0, confidence) (B, ceil32(N//hop+1))."""

    def __init__(self, path: Path):
        from voxtool.onnx_export import onnx_metadata, onnx_session

        self.session = onnx_session(path)
        meta = onnx_metadata(self.session)
        try:
            self.mel_cfg = MelConfig(**json.loads(meta["mel"])) if "mel" in meta else published_mel_config()
            self.frame_multiple = int(meta.get("frame_multiple", 32))
            self.threshold = float(meta.get("threshold", DEFAULT_THRESHOLD))
        except Exception as exc:  # JSONDecodeError, ValidationError, ValueError
            raise BadInput(path, f"garbled metadata in the ONNX model ({first_line(exc)})") from None
        if self.frame_multiple < 1:
            raise BadInput(path, f"garbled metadata in the ONNX model (frame_multiple {self.frame_multiple})")
        self.description = f"ONNX graph {path.name}"
        self.chunking = dict(DEFAULT_CHUNKING)

    def f0_raw(self, wave: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Raw waveform (N,) -> (f0, confidence), each (ceil(N//hop + 1 to the frame multiple),)."""
        f0, conf = self.session.run(
            ["f0", "confidence"],
            {"waveform": wave.astype(np.float32)[None], "threshold": np.array(threshold, dtype=np.float32)},
        )
        return f0[0], conf[0]


PitchModel = TorchPitchModel | OnnxPitchModel


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:120]}" if text else type(exc).__name__


def load_model(
    path: str | Path,
    device: str = "cpu",
    precision: str = "32",
    backend: str = "torch",
    threads: int = 0,
    fold_norms: bool = True,
) -> PitchModel:
    """Load any supported model file (see the module docstring) once, ready for `predict`.

    `precision` 32 | bf16 | 16 | auto (`voxtool.inference_backends.resolve_precision`: bf16 on a CPU with native
    bf16); `backend` torch | onnx (the network exported in memory and run by onnxruntime with `threads`).
    `fold_norms`: fold the batch norms into the convolutions (inference only; False keeps the file's layout)."""
    from voxtool.devices import resolve_device
    from voxtool.fileio import load_torch
    from voxtool.inference_backends import fold_batchnorm

    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return OnnxPitchModel(path)
    if path.is_dir():
        path = path / "model.pt"
    obj = load_torch(path)
    dev = resolve_device(device).torch
    mel_cfg = published_mel_config()
    threshold = DEFAULT_THRESHOLD
    calibrated = None
    chunking = dict(DEFAULT_CHUNKING)
    arch = None
    if isinstance(obj, dict) and obj.get("format") == "voxtool-model":
        from voxtool.training.modelfile import check_layout

        check_layout(path, obj)
        if obj.get("task") != "rmvpe":
            raise BadInput(path, f"model file is for task '{obj.get('task')}', not rmvpe")
        cfg = obj.get("config") or {}
        try:  # the rmvpe task's config sections: [model], [mel], [decode], [infer]
            arch = RmvpeArch.from_dict(cfg.get("model", {}))
            mel_cfg = MelConfig(**cfg["mel"]) if "mel" in cfg else mel_cfg
            threshold = float(cfg.get("decode", {}).get("threshold", threshold))
            calibrated = (obj.get("meta") or {}).get("voicing_threshold")
            if calibrated is not None:  # calibrated on validation (the rmvpe task's decode.calibrate)
                calibrated = float(calibrated)
                if not 0.0 <= calibrated <= 1.0:
                    raise ValueError(f"voicing_threshold {calibrated} outside [0, 1]")
                threshold = calibrated
            chunking.update({k: int(v) for k, v in cfg.get("infer", {}).items() if k in chunking})
        except Exception as exc:  # ValidationError, TypeError, ValueError, AttributeError of a garbled config
            raise BadInput(path, f"model file lacks valid rmvpe settings ({first_line(exc)})") from None
    try:
        net, layout = load_state_dict_any(obj, arch)
    except ValueError as exc:
        raise BadInput(path, str(exc)) from None
    except Exception as exc:  # odd objects inside a readable file
        raise BadInput(path, f"not an RMVPE checkpoint ({first_line(exc)})") from None
    if net.arch.n_mels != mel_cfg.n_mels:
        raise BadInput(path, f"network expects {net.arch.n_mels} mel bins, front-end gives {mel_cfg.n_mels}")
    if fold_norms:
        fold_batchnorm(net.eval())
    try:
        return TorchPitchModel(net, mel_cfg, dev, precision, threshold, description=layout, chunking=chunking,
                               calibrated_threshold=calibrated, backend=backend, threads=threads)
    except BadInput as exc:
        raise BadInput(path if exc.where is None else exc.where, exc.problem) from None
