"""ONNX export: raw 16 kHz waveform in, STFT (as a fixed-kernel conv1d) and decoding inside the graph.

Graph: ``waveform [B, N]`` float32, ``threshold []`` float32 -> ``f0 [B, T32]`` (Hz, 0 = unvoiced),
``confidence [B, T32]`` (peak salience) and ``voiced [B, T32]`` (bool) with ``T32`` = ``N // hop + 1`` rounded up to the U-Net's frame multiple
(callers crop to ``N // hop + 1``). The graph pads exactly like the torch path (reflect n_fft/2, then zeros on the audio); it
needs N > n_fft/2 samples (``infer`` zero-extends shorter clips first, as the torch path does).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from voxtool.audio.framing import frame_config
from voxtool.audio.onnx_mel import ConvLogMel
from voxtool.pitch.decode import decode_torch


class WaveformToF0(nn.Module):
    """The exported computation (usable in torch too). ``[B, N], [] -> (f0, confidence, voiced)``, each ``[B, T32]``."""

    def __init__(self, net: nn.Module, mel_cfg):
        super().__init__()
        self.net = net.eval()
        self.cfg = frame_config(mel_cfg)  # the graph pads the waveform itself (below), the front-end nothing
        self.frontend = ConvLogMel(self.cfg)
        self.multiple = net.arch.frame_multiple

    def forward(self, waveform: torch.Tensor, threshold: torch.Tensor):
        hop, half = self.cfg.hop_length, self.cfg.n_fft // 2
        n = waveform.shape[1]
        frames = n // hop + 1
        padded_frames = (frames + self.multiple - 1) // self.multiple * self.multiple
        x = nn.functional.pad(waveform.unsqueeze(1), (half, half), mode="reflect").squeeze(1)
        # Zeros after the reflect pad up to padded_frames + 1 frames (always a positive amount, no data-dependent
        # branch in the graph); the extra last frame is dropped with a static slice.
        extra = padded_frames * hop - n
        x = torch.cat([x, torch.zeros_like(x[:, :1]).expand(-1, extra)], dim=1)
        mel = self.frontend(x)[:, :, :-1]
        salience = self.net(mel)
        f0, confidence = decode_torch(salience, threshold)
        return f0, confidence, f0 > 0


def export_onnx(model, out: Path, opset: int = 17, threshold: float | None = None) -> Path:
    """Write `out` from a TorchPitchModel; stores the mel settings and threshold as metadata."""
    from voxtool import onnx_export

    wrapper = WaveformToF0(model.net.cpu(), model.mel_cfg).eval()
    example = torch.zeros(1, 16000)
    example[0] = torch.sin(torch.arange(16000) * 0.1)
    thr = torch.tensor(model.threshold if threshold is None else threshold, dtype=torch.float32)
    meta = {
        "mel": json.dumps(model.mel_cfg.model_dump(mode="json")),
        "frame_multiple": str(wrapper.multiple),
        "threshold": str(float(thr)),
        "producer": "voxtool rmvpe",
    }
    frames = {0: "batch", 1: "frames"}
    return onnx_export.export_onnx(
        wrapper, (example, thr), out, input_names=["waveform", "threshold"],
        output_names=["f0", "confidence", "voiced"],
        dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "f0": frames, "confidence": frames, "voiced": frames},
        metadata=meta, opset=opset,
    )  # fmt: skip


def parity_check(model, onnx_path: Path, seconds: float = 3.0, seed: int = 0) -> dict:
    """onnxruntime vs the torch model on a synthetic harmonic tone (whole file): worst cents on frames both
    call voiced, and the voicing agreement."""
    from voxtool.pitch.rmvpe import predict
    from voxtool.pitch.runtime import OnnxPitchModel

    rng = np.random.default_rng(seed)
    sr = model.mel_cfg.sample_rate
    t = np.arange(int(seconds * sr)) / sr
    f0 = 220 * 2 ** (np.sin(2 * np.pi * 0.5 * t) / 2)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    audio = (0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    a = predict(audio, sr, model, chunk_frames=0)
    b = predict(audio, sr, OnnxPitchModel(Path(onnx_path)), threshold=model.threshold, chunk_frames=0)
    both = (a.f0 > 0) & (b.f0 > 0)
    cents = np.abs(1200 * np.log2(b.f0[both] / a.f0[both])) if both.any() else np.zeros(1)
    return {"max_cents": float(cents.max()), "voicing_agreement": float(np.mean((a.f0 > 0) == (b.f0 > 0)))}
