"""bshall's Soft-VC acoustic model (am:acoustic/model.py) and the one function that builds its input.

Module layout and state-dict keys as published, so `{"acoustic-model": ...}` files load strictly:
    encoder.prenet.net.{0,3}     Linear in_dim -> P -> P (ReLU, Dropout after each; P = 256 bshall, 384 pitdyn)
    encoder.convs.{0,3,4,7}      Conv1d(P, E, 5) ReLU IN | ConvTranspose1d(E, E, 4, 2, 1) (50 -> 100 Hz) |
                                 Conv1d(E, E, 5) ReLU IN | Conv1d(E, E, 5) ReLU IN   (IN: affine=False, no weights)
    encoder.side                 voxtool-trained models only (no published file has it): explicit Linear(3 + 64-bin
                                 pitch code -> E), pitdyn (`side_path`) Linear(2 x pitdyn_dim -> E) of its streams,
                                 added to the encoder output so the pitch reaches the decoder past the instance norms
    decoder.harmonic             explicit `harmonic_prior` only: Linear(n_mels -> n_mels) of the f0's harmonic comb
                                 seen through the mel filter bank, added to every output frame
    decoder.prenet.net.{0,3}     Linear n_mels -> D -> D on the previous mel frame
    decoder.lstm{1,2,3}          LSTM(E + D -> H), LSTM(H -> H) + residual, LSTM(H -> H) + residual
    decoder.proj                 Linear(H -> n_mels, no bias)
Published sizes: E 512, D 256, H 768, 128 mels (18,830,336 parameters units-only; 19,469,568 pitdyn).

Shapes: input x (B, N, in_dim) at 50 Hz -> mels (B, 2N, n_mels) at 100 Hz (hop 160 at 16 kHz).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from voxtool.tasks.softvc.config import EXPLICIT_FEATURES, PITCH_CODE_BINS, AcousticSection
from voxtool.tasks.softvc.features import (  # re-exported: model.conditioning_features is the documented name
    conditioning_features,
    explicit_features,
    harmonic_template,
    pitch_code,
)
from voxtool.vocoders.settings import MEL_16K_BSHALL, MelSettings


class PreNet(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_size, hidden_size), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden_size, output_size), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Encoder(nn.Module):
    """(B, N, in_dim) -> (B, 2N, E). With `explicit` (its last 3 input features: normalised log-f0, voiced flag,
    loudness) a linear map of those features and of their pitch code (`side`, absent in bshall's layout) is added to
    the output, after the convs: a scalar pitch among the units is nearly invisible behind the prenet's dropout, and
    the instance norms remove each channel's mean over the utterance, so a key shift (the same offset on every frame)
    seen only through them barely moves the output."""

    def __init__(self, in_dim: int, prenet_width: int, width: int, dropout: float, explicit: bool = False,
                 side_streams: int = 0):
        super().__init__()
        self.explicit, self.side_streams = explicit, side_streams
        self.prenet = PreNet(in_dim, prenet_width, prenet_width, dropout)
        self.convs = nn.Sequential(
            nn.Conv1d(prenet_width, width, 5, 1, 2), nn.ReLU(), nn.InstanceNorm1d(width),
            nn.ConvTranspose1d(width, width, 4, 2, 1),
            nn.Conv1d(width, width, 5, 1, 2), nn.ReLU(), nn.InstanceNorm1d(width),
            nn.Conv1d(width, width, 5, 1, 2), nn.ReLU(), nn.InstanceNorm1d(width))
        if explicit:
            self.side = nn.Linear(EXPLICIT_FEATURES + PITCH_CODE_BINS, width)
        elif side_streams:
            self.side = nn.Linear(side_streams, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs(self.prenet(x).transpose(1, 2)).transpose(1, 2)
        if self.explicit:
            feats = x[..., -EXPLICIT_FEATURES:]
            side = torch.cat((feats, pitch_code(feats[..., 0], feats[..., 1])), dim=-1)
        elif self.side_streams:
            side = x[..., -self.side_streams:]  # pitdyn: the pitch and dynamics streams (the last 2 x pitdyn_dim)
        else:
            return out
        return out + self.side(side).repeat_interleave(2, dim=1)  # 50 Hz -> 100 Hz frames by repetition


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

    def forward(self, x: torch.Tensor, mels: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher forcing: x (B, F, E), mels (B, F, n_mels) = the target shifted right by one (go frame first);
        `offset` (B, F, n_mels) is added to the output (the harmonic prior)."""
        x, _ = self.lstm1(torch.cat((x, self.prenet(mels)), dim=-1))
        x = x + self.lstm2(x)[0]
        x = x + self.lstm3(x)[0]
        return self.proj(x) if offset is None else self.proj(x) + offset

    def generate(self, xs: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """Free running from a zero go frame and zero states: xs (B, F, E) -> (B, F, n_mels); `offset` as in
        `forward`, added before each frame is fed back."""
        b = xs.size(0)
        m = xs.new_zeros(b, self.n_mels)
        state1 = state2 = state3 = None
        out = []
        for t, x in enumerate(torch.unbind(xs, dim=1)):
            x = torch.cat((x, self.prenet(m)), dim=1).unsqueeze(1)
            x1, state1 = self.lstm1(x, state1)
            x2, state2 = self.lstm2(x1, state2)
            x = x1 + x2
            x3, state3 = self.lstm3(x, state3)
            x = x + x3
            m = self.proj(x).squeeze(1)
            if offset is not None:
                m = m + offset[:, t]
            out.append(m)
        return torch.stack(out, dim=1)


class AcousticModel(nn.Module):
    """Units (plus the conditioning streams) at 50 Hz -> log-mels at 100 Hz; see the module docstring."""

    def __init__(self, section: AcousticSection, n_mels: int = 128, mel_settings: MelSettings | None = None):
        super().__init__()
        self.section = section
        self.in_dim, self.n_mels = section.in_dim, n_mels
        pitdyn_side = 2 * section.pitdyn_dim if section.conditioning == "pitdyn" and section.side_path else 0
        self.encoder = Encoder(section.in_dim, section.encoder_prenet_width, section.encoder_width, section.dropout,
                               section.conditioning == "explicit", pitdyn_side)
        self.decoder = Decoder(section.encoder_width, section.decoder_prenet_width, section.lstm_width, n_mels,
                               section.dropout)
        self.harmonic_prior = section.conditioning == "explicit" and section.harmonic_prior
        if self.harmonic_prior:
            if section.f0_range_hz is None:
                raise ValueError("model.harmonic_prior needs model.f0_range_hz (the dataset's f0 range)")
            from voxtool.audio.mel import mel_filters

            mel = mel_settings or MEL_16K_BSHALL
            self.sample_rate, self.n_fft = mel.sample_rate, mel.n_fft
            basis = torch.from_numpy(mel_filters(mel.to_mel_config())).float()
            self.register_buffer("basis", basis, persistent=False)  # fixed: not in the state dict
            self.decoder.harmonic = nn.Linear(n_mels, n_mels)

    def offset(self, x: torch.Tensor) -> torch.Tensor | None:
        """x (B, N, in_dim) -> the harmonic prior's output offset (B, 2N, n_mels), or None without it."""
        if not self.harmonic_prior:
            return None
        lo, hi = self.section.f0_range_hz
        log_f0, voiced = x[..., -EXPLICIT_FEATURES], x[..., -EXPLICIT_FEATURES + 1]
        f0 = torch.where(voiced > 0.5, lo * torch.exp(log_f0 * math.log(hi / lo)), torch.zeros_like(log_f0))
        template = harmonic_template(f0.repeat_interleave(2, dim=1), self.basis, self.sample_rate, self.n_fft)
        return self.decoder.harmonic(template)

    def forward(self, x: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """x (B, N, in_dim), mels (B, 2N, n_mels) = the previous frame of each target -> predictions (B, 2N, n_mels)."""
        return self.decoder(self.encoder(x), mels, self.offset(x))

    @torch.inference_mode()
    def generate(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, in_dim) -> log-mels (B, 2N, n_mels), frame by frame."""
        return self.decoder.generate(self.encoder(x), self.offset(x))


__all__ = ["AcousticModel", "Decoder", "Encoder", "PreNet", "conditioning_features", "explicit_features",
           "harmonic_template", "pitch_code"]
