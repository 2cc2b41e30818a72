"""ONNX export (`voxtool export mouth --model M --out model.onnx [--sample-rate 44100] [--like-original]`) and ONNX
inference, of voxtool's graphs and of R^3-MOE's own exported ones.

The graph takes `waveform` (B, N) float32 mono at the baked-in sample rate (16 kHz by default; the original
exports 44.1 kHz with an internal resampler) and returns `curve` (B, T) in target units at 50 frames/s. Every
step is plain ONNX: a windowed-sinc polyphase resampler as a strided Conv, reflect padding, the STFT as a Conv with
cosine/sine kernels (`voxtool.audio.onnx_mel.ConvLogMel`), magnitude, mel matmul, log, then the model (GroupNorm,
LSTM, Linear). The ONNX file carries the settings inference needs as metadata (`voxtool.*` keys), so
`voxtool infer mouth --model model.onnx` runs it with the same options as a `.pt` model (`OnnxMouthModel`).

`--like-original` writes the original `export_onnx.py`'s signature for tools built around it: 44.1 kHz input
unless `--sample-rate` says otherwise, its resampler (torchaudio's Hann-windowed sinc, `lowpass_filter_width`
128, rolloff 0.99, which `sinc_resample_kernel` computes by the same formula) and its axis names (`batch_size`,
`time`, `frames`). An original's ONNX file (no voxtool metadata) is recognised by its input `waveform` and output
`curve`; its input rate is found by running it once on a probe of known length (the frame count depends on the
rate through the resampler inside), and its features and value range come from a `config.yaml` beside it
(else the original's defaults, 16 kHz and hop 320).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from voxtool.audio.onnx_mel import ConvLogMel
from voxtool.errors import BadInput


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


LIKE_ORIGINAL_RATE = 44100
ORIGINAL_LOWPASS_WIDTH = 128  # the original's torchaudio Resample(lowpass_filter_width=128)
PROBE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)


class SincResampler(nn.Module):
    """(B, N) at `orig` Hz -> (B, ceil(N * new / orig)) at `new` Hz; exports as Pad + Conv + Reshape."""

    def __init__(self, orig: int, new: int, lowpass_width: int = 16):
        super().__init__()
        kernel, self.width, self.orig, self.new = sinc_resample_kernel(orig, new, lowpass_width)
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        b, n = wav.shape
        x = nn.functional.pad(wav[:, None, :], (self.width, self.width + self.orig))
        y = nn.functional.conv1d(x, self.kernel, stride=self.orig)  # (B, new, blocks)
        y = y.transpose(1, 2).reshape(b, -1)
        target = (n * self.new + self.orig - 1) // self.orig
        return y[:, :target]


class WaveformToCurve(nn.Module):
    """waveform (B, N) at `sample_rate` -> curve (B, T) in target units."""

    def __init__(self, model, mel_cfg, sample_rate: int, lowpass_width: int = 16):
        super().__init__()
        self.model = model
        self.resample = (
            SincResampler(sample_rate, mel_cfg.sample_rate, lowpass_width) if sample_rate != mel_cfg.sample_rate else None
        )
        self.mel = ConvLogMel(mel_cfg)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = self.resample(waveform) if self.resample is not None else waveform
        return self.model.infer(self.mel(x))  # (B, n_mels, T), as the model takes it


def _torch_model(model_path: str | Path):
    """The MouthModel of a model.pt or run folder (an .onnx file is refused: it is exported already)."""
    from voxtool.tasks.mouth.infer import MouthModel, load_model

    model = load_model(model_path, "cpu")
    if not isinstance(model, MouthModel):
        raise BadInput(model_path, "is an ONNX model already; give the model.pt or run folder it was exported from")
    return model


def export_onnx(
    model_path: str | Path, out: Path, sample_rate: int | None = None, like_original: bool = False
) -> dict[str, Any]:
    """Export a mouth model (voxtool's or an original's state dict) to ONNX; returns the metadata written into
    the file. `like_original`: the original export's rate, resampler and axis names (module docstring)."""
    from voxtool.onnx_export import export_onnx as write_onnx

    model = _torch_model(model_path)
    sr = int(sample_rate or (LIKE_ORIGINAL_RATE if like_original else model.mel_cfg.sample_rate))
    if sr <= 0:
        raise BadInput(None, "--sample-rate must be positive")
    width = ORIGINAL_LOWPASS_WIDTH if like_original else 16
    wrapper = WaveformToCurve(model.model, model.mel_cfg, sr, width).eval()
    example = torch.zeros(1, sr * 3)
    example[0] = torch.from_numpy(np.random.default_rng(0).standard_normal(sr * 3).astype(np.float32) * 0.05)
    meta = {
        "voxtool.task": "mouth",
        "voxtool.sample_rate": str(sr),
        "voxtool.fps": str(model.fps),
        "voxtool.mel": json.dumps(model.mel_cfg.model_dump()),
        "voxtool.value_range": json.dumps([float(v) for v in model.model.value_range.tolist()]),
        "voxtool.target": str(model.meta.get("target", "")),
        "voxtool.resampler_width": str(width),
    }
    batch, samples = ("batch_size", "time") if like_original else ("batch", "samples")
    write_onnx(
        wrapper, (example,), out, input_names=["waveform"], output_names=["curve"],
        dynamic_axes={"waveform": {0: batch, 1: samples}, "curve": {0: batch, 1: "frames"}}, metadata=meta,
    )  # fmt: skip
    return meta


def verify_onnx(model_path: str | Path, onnx_path: Path, seconds: float = 4.0) -> float:
    """Max |onnxruntime - torch| of the same graph on a synthetic sung take at the ONNX file's rate."""
    from voxtool.audio.io import resample
    from voxtool.onnx_export import parity
    from voxtool.tasks.mouth.synth import TRAIN_SINGERS, synth_take

    onnx_model = OnnxMouthModel(onnx_path)
    model = _torch_model(model_path)
    audio = resample(synth_take(TRAIN_SINGERS[2], seconds, seed=0).audio, 16000, onnx_model.sample_rate)
    with torch.no_grad():
        wrapper = WaveformToCurve(model.model, model.mel_cfg, onnx_model.sample_rate, onnx_model.resampler_width).eval()
        expected = wrapper(torch.from_numpy(audio)[None])
    return parity(onnx_model.session, {"waveform": audio[None]}, {"curve": expected}, where=onnx_path)["curve"]


class OnnxMouthModel:
    """An ONNX mouth model run through onnxruntime (what `infer.load_model` returns for an `.onnx`): `run(waveform)`
    at its `sample_rate` -> curve frames at `fps`. `kind` is "voxtool" (settings from its metadata) or "original"
    (R^3-MOE's export: recognised by its input/output names, settings from `config.yaml` and a probe run)."""

    def __init__(self, path: Path):
        from voxtool.onnx_export import onnx_metadata, onnx_session

        self.path = Path(path)
        self.session = onnx_session(path)
        meta = onnx_metadata(self.session)
        self.meta: dict[str, Any] = {}
        self.resampler_width = 16
        if meta.get("voxtool.task") == "mouth":
            self.kind = "voxtool"
            self._read_metadata(meta)
        elif [i.name for i in self.session.get_inputs()] == ["waveform"] and \
                [o.name for o in self.session.get_outputs()] == ["curve"]:
            self.kind = "original"
            self._settings_of_original()
        else:
            raise BadInput(path, "neither a voxtool mouth ONNX model (no voxtool.task=mouth metadata) nor an R^3-MOE "
                                 "one (input 'waveform', output 'curve')")  # fmt: skip
        if self.sample_rate <= 0 or len(self.value_range) != 2:
            raise BadInput(path, "garbled voxtool metadata in the ONNX model (sample rate or value range)")
        self.meta["target"] = self.target

    def _read_metadata(self, meta: dict[str, str]) -> None:
        from voxtool.audio.mel_config import MelConfig
        from voxtool.tasks.mouth.infer import first_line

        try:
            self.sample_rate = int(meta["voxtool.sample_rate"])
            self.mel_cfg = MelConfig.model_validate(json.loads(meta["voxtool.mel"]))
            self.fps = float(meta["voxtool.fps"])
            self.value_range = [float(v) for v in json.loads(meta["voxtool.value_range"])]
            self.resampler_width = int(meta.get("voxtool.resampler_width", "16"))
        except Exception as e:  # KeyError, JSONDecodeError, ValidationError, ValueError
            raise BadInput(self.path, f"garbled voxtool metadata in the ONNX model ({first_line(e)})") from None
        self.target = meta.get("voxtool.target") or None

    def _settings_of_original(self) -> None:
        from voxtool.tasks.mouth.config import default_mel
        from voxtool.tasks.mouth.original import CONFIG_NAME, read_original_config

        config = self.path.with_name(CONFIG_NAME)
        if config.is_file():
            cfg = read_original_config(config)
            self.mel_cfg, self.value_range = cfg.mel, [cfg.vmin, cfg.vmax]
        else:
            self.mel_cfg, self.value_range = default_mel(), [-0.15, 1.0]  # HEAD's 44.1 kHz export's range
        self.fps = self.mel_cfg.sample_rate / self.mel_cfg.hop_length
        self.target = "jaw-minus-close"
        self.resampler_width = ORIGINAL_LOWPASS_WIDTH
        self.sample_rate = self._probe_rate()

    def _probe_rate(self) -> int:
        """The input rate of an original graph: its frame count for a probe of N samples is
        1 + (ceil(N sr / rate) + win - hop) // hop, which differs between the common rates."""
        cfg = self.mel_cfg
        n = 4 * 44100
        probe = (np.random.default_rng(0).standard_normal(n) * 0.01).astype(np.float32)
        try:
            frames = int(self.run(probe).shape[-1])
        except Exception as e:  # onnxruntime's own errors: a graph that is not the original's after all
            raise BadInput(self.path, f"an ONNX graph with input 'waveform' and output 'curve' that does not run "
                                      f"on a waveform ({str(e).strip().splitlines()[0][:80]})") from None  # fmt: skip
        expected = {rate: 1 + (-(-n * cfg.sample_rate // rate) + cfg.win - cfg.hop_length) // cfg.hop_length
                    for rate in PROBE_RATES}  # fmt: skip
        matches = [rate for rate, f in expected.items() if f == frames]
        if len(matches) != 1:
            raise BadInput(self.path, f"cannot tell the input sample rate of this ONNX graph ({frames} frames for "
                                      f"{n} samples; config: {cfg.sample_rate} Hz, hop {cfg.hop_length})")  # fmt: skip
        return matches[0]

    def run(self, waveform: np.ndarray) -> np.ndarray:
        """(N,) float32 at self.sample_rate -> (T,) curve."""
        x = np.ascontiguousarray(waveform, dtype=np.float32)[None]
        return self.session.run(["curve"], {"waveform": x})[0][0]


def predict_onnx(audio: np.ndarray, model: OnnxMouthModel, keep_mel: bool = False):
    """Mono audio (N,) at model.sample_rate -> infer.Prediction (whole file: the graph is not chunked); the
    (n_mels, T) log-mel too with `keep_mel`."""
    from voxtool.audio.framing import log_mel, pad_width
    from voxtool.audio.io import resample
    from voxtool.tasks.mouth.infer import Prediction

    cfg = model.mel_cfg
    need = int(np.ceil((pad_width(cfg) + 1) * model.sample_rate / cfg.sample_rate))
    if len(audio) < need:
        raise BadInput(None, f"audio too short ({len(audio)} samples; at least {need} needed)")
    curve = model.run(audio)
    mel = None
    if keep_mel:
        mel = log_mel(resample(np.asarray(audio, np.float32), model.sample_rate, cfg.sample_rate), cfg)
        mel = mel[:, : len(curve)]
    return Prediction(cfg.frame_times(len(curve)), curve, mel, len(audio) / model.sample_rate)
