"""ONNX export of a generator: `mel` (B, n_mels, T) float32 in (batch and frames dynamic), `waveform`
(B, T * hop) float32 in [-1, 1] out. Weight norm is removed before export. The file's metadata holds the mel
settings (`mel`, JSON of `MelSettings`), the generator config and the sample rate, so a runtime can check its
features. Writing, checking and loading go through the shared `voxtool.onnx_export`; `parity_check` compares
onnxruntime with torch (RMS of the difference)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from voxtool.errors import VoxtoolError
from voxtool.tasks.hifigan.infer import Vocoder

PARITY_RMS = 1e-4


class MelToWaveform(nn.Module):
    """(B, n_mels, T) -> (B, T * hop), clamped to [-1, 1] as `infer` writes it."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator.eval()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator(mel)[:, 0].clamp(-1.0, 1.0)


def example_mel(vocoder: Vocoder, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A realistic input (1, n_mels, T): the vocoder's log-mel of a harmonic tone with vibrato and a little noise."""
    from voxtool.vocoders.mel import VocoderLogMel

    sr = vocoder.sample_rate
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(180 * 2 ** (0.2 * np.sin(2 * np.pi * 5 * t))) / sr
    wav = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6)) + 0.01 * rng.standard_normal(len(t))
    with torch.inference_mode():
        return VocoderLogMel(vocoder.mel)(torch.from_numpy(wav.astype(np.float32)))[None].numpy()


def export_onnx(vocoder: Vocoder, out: Path, opset: int = 17) -> Path:
    """Write `out` atomically through `voxtool.onnx_export.export_onnx` (checked, metadata attached);
    VoxtoolError (exit 1) when the exporter fails."""
    from voxtool import onnx_export

    wrapper = MelToWaveform(vocoder.generator.cpu()).eval()
    example = torch.from_numpy(example_mel(vocoder, 0.5))
    meta = {"mel": json.dumps(vocoder.mel.model_dump(mode="json")), "sample_rate": str(vocoder.sample_rate),
            "hop_length": str(vocoder.hop_length), "producer": "voxtool hifigan", "voxtool.task": "hifigan"}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return onnx_export.export_onnx(
        wrapper, (example,), out, input_names=["mel"], output_names=["waveform"],
        dynamic_axes={"mel": {0: "batch", 2: "frames"}, "waveform": {0: "batch", 1: "samples"}},
        metadata=meta, opset=opset,
    )  # fmt: skip


def parity_check(vocoder: Vocoder, onnx_path: Path, seconds: float = 1.3) -> float:
    """RMS of (onnxruntime - torch) on a batch of two realistic mels of another length than the export example;
    VoxtoolError when above PARITY_RMS."""
    from voxtool.onnx_export import onnx_session
    from voxtool.tasks.hifigan.infer import predict

    mel = np.concatenate([example_mel(vocoder, seconds, 1), example_mel(vocoder, seconds, 2) - 1.0])
    session = onnx_session(onnx_path)  # the shared loader: a missing or unloadable file is one BadInput line
    # one run, RMS rather than `voxtool.onnx_export.parity`'s max |diff|: a vocoder's sample-level error is judged
    # over the whole waveform
    got = session.run(["waveform"], {"mel": mel})[0]
    want = predict(mel, vocoder)
    if got.shape != want.shape:
        raise VoxtoolError(f"ONNX parity: output shape {got.shape}, torch gives {want.shape}")
    rms = float(np.sqrt(np.mean((got.astype(np.float64) - want) ** 2)))
    if rms > PARITY_RMS:
        raise VoxtoolError(f"ONNX parity: RMS difference {rms:.3g} to torch exceeds {PARITY_RMS:g}")
    return rms
