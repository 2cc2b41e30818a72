"""bshall's Soft-VC acoustic model (am:acoustic/model.py) and the one function that builds its input.

Module layout and state-dict keys as published, so `{"acoustic-model": ...}` files load strictly:
    encoder.prenet.net.{0,3}     Linear in_dim -> P -> P (ReLU, Dropout after each; P = 256 bshall, 384 pitdyn)
    encoder.convs.{0,3,4,7}      Conv1d(P, E, 5) ReLU IN | ConvTranspose1d(E, E, 4, 2, 1) (50 -> 100 Hz) |
                                 Conv1d(E, E, 5) ReLU IN | Conv1d(E, E, 5) ReLU IN   (IN: affine=False, no weights)
    encoder.side                 explicit conditioning only (no published file): Linear(3 + 64-bin pitch code -> E),
                                 added to the encoder output so the pitch reaches the decoder past the instance norms
    decoder.prenet.net.{0,3}     Linear n_mels -> D -> D on the previous mel frame
    decoder.lstm{1,2,3}          LSTM(E + D -> H), LSTM(H -> H) + residual, LSTM(H -> H) + residual
    decoder.proj                 Linear(H -> n_mels, no bias)
Published sizes: E 512, D 256, H 768, 128 mels (18,830,336 parameters units-only; 19,469,568 pitdyn).

Shapes: input x (B, N, in_dim) at 50 Hz -> mels (B, 2N, n_mels) at 100 Hz (hop 160 at 16 kHz).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from voxtool.tasks.softvc.config import EXPLICIT_FEATURES, PITCH_CODE_BINS, AcousticSection


class PreNet(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_size, hidden_size), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden_size, output_size), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def pitch_code(log_f0: torch.Tensor, voiced: torch.Tensor, bins: int = PITCH_CODE_BINS) -> torch.Tensor:
    """Normalised log-f0 (..., ) (0 = f0_min, 1 = f0_max, as `explicit_features` makes it) and the voiced flag (..., )
    -> (..., bins): a Gaussian bump (sigma one bin, peak 1) over `bins` log-spaced pitch centres, all zeros when
    unvoiced; pitches outside the range are clipped to its ends (so-vits-svc's coarse f0, smoothed). A key shift
    moves the bump, so each bin can map to its own harmonic pattern."""
    pos = log_f0.clamp(0, 1).unsqueeze(-1) * (bins - 1)
    centres = torch.arange(bins, dtype=log_f0.dtype, device=log_f0.device)
    return torch.exp(-0.5 * (centres - pos) ** 2) * (voiced.unsqueeze(-1) > 0.5)


class Encoder(nn.Module):
    """(B, N, in_dim) -> (B, 2N, E). With `explicit` (its last 3 input features: normalised log-f0, voiced flag,
    loudness) a linear map of those features and of their pitch code (`side`, absent in bshall's layout) is added to
    the output, after the convs: a scalar pitch among the units is nearly invisible behind the prenet's dropout, and
    the instance norms remove each channel's mean over the utterance, so a key shift (the same offset on every frame)
    seen only through them barely moves the output."""

    def __init__(self, in_dim: int, prenet_width: int, width: int, dropout: float, explicit: bool = False):
        super().__init__()
        self.explicit = explicit
        self.prenet = PreNet(in_dim, prenet_width, prenet_width, dropout)
        self.convs = nn.Sequential(
            nn.Conv1d(prenet_width, width, 5, 1, 2), nn.ReLU(), nn.InstanceNorm1d(width),
            nn.ConvTranspose1d(width, width, 4, 2, 1),
            nn.Conv1d(width, width, 5, 1, 2), nn.ReLU(), nn.InstanceNorm1d(width),
            nn.Conv1d(width, width, 5, 1, 2), nn.ReLU(), nn.InstanceNorm1d(width))
        if explicit:
            self.side = nn.Linear(EXPLICIT_FEATURES + PITCH_CODE_BINS, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs(self.prenet(x).transpose(1, 2)).transpose(1, 2)
        if self.explicit:
            feats = x[..., -EXPLICIT_FEATURES:]
            side = torch.cat((feats, pitch_code(feats[..., 0], feats[..., 1])), dim=-1)
            out = out + self.side(side).repeat_interleave(2, dim=1)  # 50 Hz -> 100 Hz frames by repetition
        return out


class Decoder(nn.Module):
    """Autoregressive: each mel frame from the encoder frame and the previous mel frame."""

    def __init__(self, enc_width: int, prenet_width: int, hidden: int, n_mels: int, dropout: float):
        super().__init__()
        self.n_mels, self.hidden = n_mels, hidden
        self.prenet = PreNet(n_mels, prenet_width, prenet_width, dropout)
        self.lstm1 = nn.LSTM(enc_width + prenet_width, hidden, batch_first=True)
        self.lstm2 = nn.LSTM(hidden, hidden, batch_first=True)
        self.lstm3 = nn.LSTM(hidden, hidden, batch_first=True)
        self.proj = nn.Linear(hidden, n_mels, bias=False)

    def forward(self, x: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: x (B, F, E), mels (B, F, n_mels) = the target shifted right by one (go frame first)."""
        x, _ = self.lstm1(torch.cat((x, self.prenet(mels)), dim=-1))
        x = x + self.lstm2(x)[0]
        x = x + self.lstm3(x)[0]
        return self.proj(x)

    def generate(self, xs: torch.Tensor) -> torch.Tensor:
        """Free running from a zero go frame and zero states: xs (B, F, E) -> (B, F, n_mels)."""
        b = xs.size(0)
        m = xs.new_zeros(b, self.n_mels)
        state1 = state2 = state3 = None
        out = []
        for x in torch.unbind(xs, dim=1):
            x = torch.cat((x, self.prenet(m)), dim=1).unsqueeze(1)
            x1, state1 = self.lstm1(x, state1)
            x2, state2 = self.lstm2(x1, state2)
            x = x1 + x2
            x3, state3 = self.lstm3(x, state3)
            x = x + x3
            m = self.proj(x).squeeze(1)
            out.append(m)
        return torch.stack(out, dim=1)


class AcousticModel(nn.Module):
    """Units (plus the conditioning streams) at 50 Hz -> log-mels at 100 Hz; see the module docstring."""

    def __init__(self, section: AcousticSection, n_mels: int = 128):
        super().__init__()
        self.section = section
        self.in_dim, self.n_mels = section.in_dim, n_mels
        self.encoder = Encoder(section.in_dim, section.encoder_prenet_width, section.encoder_width, section.dropout,
                               section.conditioning == "explicit")
        self.decoder = Decoder(section.encoder_width, section.decoder_prenet_width, section.lstm_width, n_mels,
                               section.dropout)

    def forward(self, x: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """x (B, N, in_dim), mels (B, 2N, n_mels) = the previous frame of each target -> predictions (B, 2N, n_mels)."""
        return self.decoder(self.encoder(x), mels)

    @torch.inference_mode()
    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, in_dim) -> log-mels (B, 2N, n_mels), frame by frame."""
        return self.decoder.generate(self.encoder(x))


# ------------------------------------------------------------------------------------------------ model input

LOUDNESS_RANGE_DB = 60.0  # loudness is normalised over [loudest - 60 dB, loudest] -> [0, 1]


def _stat(stats: Any, name: str) -> float:
    value = stats.get(name) if isinstance(stats, Mapping) else getattr(stats, name, None)
    if value is None:
        raise ValueError(f"dataset statistics lack '{name}' (re-run `voxtool prep softvc`)")
    return float(value)


def explicit_features(f0_hz: np.ndarray, rms: np.ndarray, stats: Any, key_shift: float = 0.0) -> np.ndarray:
    """(N,) f0 in Hz (0 = unvoiced) and linear RMS at 50 Hz -> (N, 3) float32:
    log-f0 scaled so f0_min -> 0 and f0_max -> 1 (shifted by `key_shift` semitones; 0 on unvoiced frames), the voiced
    flag, and loudness in dB scaled so rms_max -> 1 and 60 dB below it -> 0 (clipped at 0). `stats`: the dataset's
    `PitchDynStats` or its dict from dataset.json."""
    f0_lo, f0_hi = _stat(stats, "f0_min_hz"), _stat(stats, "f0_max_hz")
    rms_hi = max(_stat(stats, "rms_max"), 1e-5)
    f0 = np.asarray(f0_hz, dtype=np.float64)
    voiced = f0 > 0
    log_f0 = np.zeros_like(f0)
    span = max(math.log(f0_hi / f0_lo), 1e-3)
    log_f0[voiced] = (np.log(f0[voiced] / f0_lo) + key_shift * math.log(2) / 12) / span
    db = 20 * np.log10(np.maximum(np.asarray(rms, dtype=np.float64), 1e-5) / rms_hi)
    loud = np.clip(db / LOUDNESS_RANGE_DB + 1.0, 0.0, None)
    return np.stack([log_f0, voiced.astype(np.float64), loud], axis=1).astype(np.float32)


def conditioning_features(items: Mapping[str, np.ndarray], conditioning: str, stats: Any = None,
                          key_shift: float = 0.0) -> np.ndarray:
    """The acoustic model's input (N, in_dim) float32 from one item's arrays (a prepared .npz or what conversion
    computed): `units` (N, U) always; `pitch_units` and `dynamics_units` (N, 256) for "pitdyn"; `f0` (N,) Hz and
    `rms` (N,) for "explicit" (with `stats`). The one place training and conversion build inputs.

    `key_shift` (semitones) moves the log-f0 of voiced frames ("explicit" only): "none" has no pitch input, and the
    pitdyn streams are continuous HuBERT outputs of the audio, so their shift belongs upstream (shift the audio the
    pitch HuBERT hears). ValueError names what is missing or refused.
    """
    if "units" not in items:
        raise ValueError("no content units (prepare the dataset with --content HUBERT)")
    units = np.asarray(items["units"], dtype=np.float32)
    if units.ndim != 2:
        raise ValueError(f"units must be (frames, dim), got shape {units.shape}")
    n = units.shape[0]
    if key_shift and conditioning != "explicit":
        raise ValueError(f"a key shift needs explicit pitch conditioning; this model's conditioning is '{conditioning}'")
    if conditioning == "none":
        return units
    if conditioning == "pitdyn":
        parts = [units]
        for name in ("pitch_units", "dynamics_units"):
            if name not in items:
                raise ValueError(f"no {name} (pitdyn needs prep --pitch-units and --dynamics-units)")
            stream = np.asarray(items[name], dtype=np.float32)
            if stream.ndim != 2 or stream.shape[0] != n:
                raise ValueError(f"{name} has shape {stream.shape}; expected ({n}, dim) like the units")
            parts.append(stream)
        return np.concatenate(parts, axis=1)
    if conditioning == "explicit":
        if stats is None:
            raise ValueError("explicit conditioning needs the dataset statistics (f0 and loudness ranges)")
        for name in ("f0", "rms"):
            if name not in items:
                raise ValueError(f"no {name} for explicit conditioning")
            if np.shape(items[name]) != (n,):
                raise ValueError(f"{name} has shape {np.shape(items[name])}; expected ({n},) like the units")
        return np.concatenate([units, explicit_features(items["f0"], items["rms"], stats, key_shift)], axis=1)
    raise ValueError(f"unknown conditioning {conditioning!r} (none | pitdyn | explicit)")
