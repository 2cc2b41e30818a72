"""ONNX export (`voxtool export mouth --model M --out model.onnx [--sample-rate 44100]`) and ONNX inference.

The graph takes `waveform` (B, N) float32 mono at the baked-in sample rate (16 kHz by default; the original
exports 44.1 kHz with an internal resampler) and returns `curve` (B, T) in target units at 50 frames/s. Every
step is plain ONNX: a windowed-sinc polyphase resampler as a strided Conv, reflect padding, the STFT as a Conv with
cosine/sine kernels, magnitude, mel matmul, log, then the model (GroupNorm, LSTM, Linear). The ONNX file carries
the settings inference needs as metadata (`voxtool.*` keys), so `voxtool infer mouth --model model.onnx` runs it
with the same options as a `.pt` model.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from voxtool.errors import BadInput

OPSET = 17


def sinc_resample_kernel(orig: int, new: int, lowpass_width: int = 16, rolloff: float = 0.99):
    """Polyphase windowed-sinc kernels (new/g, 1, K) and the padding K needs, for orig -> new (g = gcd)."""
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_width * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, :] / orig
    t = (-torch.arange(new, dtype=torch.float64)[:, None] / new + idx) * base
    t = t.clamp(-lowpass_width, lowpass_width)
    window = torch.cos(t * math.pi / lowpass_width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t))
    kernels = sinc * window * (base / orig)
    return kernels.float()[:, None, :], width, orig, new


class SincResampler(nn.Module):
    """(B, N) at `orig` Hz -> (B, ceil(N * new / orig)) at `new` Hz; exports as Pad + Conv + Reshape."""

    def __init__(self, orig: int, new: int):
        super().__init__()
        kernel, self.width, self.orig, self.new = sinc_resample_kernel(orig, new)
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        b, n = wav.shape
        x = nn.functional.pad(wav[:, None, :], (self.width, self.width + self.orig))
        y = nn.functional.conv1d(x, self.kernel, stride=self.orig)  # (B, new, blocks)
        y = y.transpose(1, 2).reshape(b, -1)
        target = (n * self.new + self.orig - 1) // self.orig
        return y[:, :target]


class ConvLogMel(nn.Module):
    """The mouth log-mel (reflect pad, centred STFT magnitude, Slaney mels, log) with the STFT as a Conv1d."""

    def __init__(self, mel_cfg):
        super().__init__()
        from voxtool.audio.mel import mel_filters

        self.cfg = mel_cfg
        n_fft, win = mel_cfg.n_fft, mel_cfg.win
        window = torch.zeros(n_fft, dtype=torch.float64)
        left = (n_fft - win) // 2
        window[left : left + win] = torch.hann_window(win, dtype=torch.float64)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        n = torch.arange(n_fft, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * k * n / n_fft
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])  # (2F, n_fft)
        self.register_buffer("basis", basis.float()[:, None, :], persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(mel_filters(mel_cfg)), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, T, n_mels)."""
        cfg = self.cfg
        x = wav[:, None, :]
        if cfg.pad:
            x = nn.functional.pad(x, (cfg.pad, cfg.pad), mode="reflect")
        if cfg.center:
            half = cfg.n_fft // 2
            x = nn.functional.pad(x, (half, half), mode="reflect" if cfg.pad_mode == "reflect" else "constant")
        spec = nn.functional.conv1d(x, self.basis, stride=cfg.hop_length)  # (B, 2F, T)
        real, imag = spec.chunk(2, dim=1)
        mag = torch.sqrt(real * real + imag * imag)
        if cfg.power != 1:
            mag = mag.pow(cfg.power)
        mel = torch.matmul(self.mel_basis, mag)
        return torch.log(torch.clamp(mel, min=cfg.log_floor)).transpose(1, 2)


class WaveformToCurve(nn.Module):
    """waveform (B, N) at `sample_rate` -> curve (B, T) in target units."""

    def __init__(self, model, mel_cfg, sample_rate: int):
        super().__init__()
        self.model = model
        self.resample = SincResampler(sample_rate, mel_cfg.sample_rate) if sample_rate != mel_cfg.sample_rate else None
        self.mel = ConvLogMel(mel_cfg)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = self.resample(waveform) if self.resample is not None else waveform
        return self.model.infer(self.mel(x))


def export_onnx(model_path: str | Path, out: Path, sample_rate: int | None = None) -> dict[str, Any]:
    """Export a mouth model.pt to ONNX; returns the metadata written into the file."""
    import onnx

    from voxtool.fileio import atomic_path
    from voxtool.tasks.mouth.infer import load_predictor

    pred = load_predictor(model_path, "cpu")
    sr = int(sample_rate or pred.mel_cfg.sample_rate)
    if sr <= 0:
        raise BadInput(None, "--sample-rate must be positive")
    wrapper = WaveformToCurve(pred.model, pred.mel_cfg, sr).eval()
    example = torch.zeros(1, sr * 3)
    example[0] = torch.from_numpy(np.random.default_rng(0).standard_normal(sr * 3).astype(np.float32) * 0.05)
    meta = {
        "voxtool.task": "mouth",
        "voxtool.sample_rate": str(sr),
        "voxtool.fps": str(pred.fps),
        "voxtool.mel": json.dumps(pred.mel_cfg.model_dump()),
        "voxtool.value_range": json.dumps([float(v) for v in pred.model.value_range.tolist()]),
        "voxtool.target": str(pred.meta.get("target", "")),
    }
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes on RNNs and shape inference are not news
        with torch.no_grad():
            torch.onnx.export(
                wrapper, (example,), str(tmp), input_names=["waveform"], output_names=["curve"],
                dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "curve": {0: "batch", 1: "frames"}},
                opset_version=OPSET, dynamo=False,
            )  # fmt: skip
        proto = onnx.load(str(tmp))
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return meta


def verify_onnx(model_path: str | Path, onnx_path: Path, seconds: float = 4.0) -> float:
    """Max |onnxruntime - torch| of the same graph on a synthetic sung take at the ONNX file's rate."""
    from voxtool.audio.io import resample
    from voxtool.tasks.mouth.infer import load_predictor
    from voxtool.tasks.mouth.synth import TRAIN_SINGERS, synth_take

    onnx_pred = OnnxPredictor(onnx_path)
    pred = load_predictor(model_path, "cpu")
    audio = resample(synth_take(TRAIN_SINGERS[2], seconds, seed=0).audio, 16000, onnx_pred.sample_rate)
    with torch.no_grad():
        wrapper = WaveformToCurve(pred.model, pred.mel_cfg, onnx_pred.sample_rate).eval()
        expected = wrapper(torch.from_numpy(audio)[None])[0].numpy()
    got = onnx_pred.run(audio)
    if got.shape != expected.shape:
        raise BadInput(onnx_path, f"ONNX output has {got.shape} frames, torch {expected.shape}")
    return float(np.abs(got - expected).max())


class OnnxPredictor:
    """An exported model run through onnxruntime: `run(waveform)` at its baked-in rate -> curve frames."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        from voxtool.audio.mel import MelConfig

        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:
            raise BadInput(path, f"cannot load ONNX model ({(str(e).strip().splitlines() or [type(e).__name__])[0][:160]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("voxtool.task") != "mouth":
            raise BadInput(path, "not a voxtool mouth ONNX model (no voxtool.task=mouth metadata)")
        try:
            self.sample_rate = int(meta["voxtool.sample_rate"])
            self.mel_cfg = MelConfig.model_validate(json.loads(meta["voxtool.mel"]))
            self.fps = float(meta["voxtool.fps"])
            self.value_range = [float(v) for v in json.loads(meta["voxtool.value_range"])]
        except Exception as e:  # KeyError, JSONDecodeError, ValidationError, ValueError
            from voxtool.tasks.mouth.infer import first_line

            raise BadInput(path, f"garbled voxtool metadata in the ONNX model ({first_line(e)})") from None
        if self.sample_rate <= 0 or len(self.value_range) != 2:
            raise BadInput(path, "garbled voxtool metadata in the ONNX model (sample rate or value range)")

    def run(self, waveform: np.ndarray) -> np.ndarray:
        """(N,) float32 at self.sample_rate -> (T,) curve."""
        x = np.ascontiguousarray(waveform, dtype=np.float32)[None]
        return self.session.run(["curve"], {"waveform": x})[0][0]


def predict_onnx(audio: np.ndarray, pred: OnnxPredictor, with_mel: bool = False):
    """Mono audio (N,) at pred.sample_rate -> infer.Prediction (whole file: the graph is not chunked)."""
    from voxtool.audio.io import resample
    from voxtool.tasks.mouth.infer import Prediction, compute_mel

    need = int(np.ceil((pred.mel_cfg.pad + pred.mel_cfg.n_fft // 2 + 1) * pred.sample_rate / pred.mel_cfg.sample_rate))
    if len(audio) < need:
        raise BadInput(None, f"audio too short ({len(audio)} samples; at least {need} needed)")
    curve = pred.run(audio)
    if with_mel:
        mel = compute_mel(
            resample(np.asarray(audio, np.float32), pred.sample_rate, pred.mel_cfg.sample_rate), pred.mel_cfg
        )
        mel = mel[: len(curve)]
    else:
        mel = np.zeros((len(curve), pred.mel_cfg.n_mels), np.float32)
    return Prediction(pred.mel_cfg.frame_times(len(curve)), curve, mel, len(audio) / pred.sample_rate)
