"""The torch side of a vocoder's log-mel: `VocoderLogMel` computes it, `check_mel_tensor` checks a mel array.

The settings themselves (`MelSettings`, the published `MEL_16K_BSHALL` / `MEL_22K_JIK876`, `PUBLISHED_MELS`,
`as_mel_settings`, `check_mel_settings`) live in the torch-free `voxtool.vocoders.settings` (see there for what
each published mel is) and are re-exported here.
"""

from __future__ import annotations

from typing import Any

import torch

from voxtool.errors import BadInput
from voxtool.vocoders.settings import (
    MEL_16K_BSHALL,
    MEL_22K_JIK876,
    PUBLISHED_MELS,
    MelSettings,
    as_mel_settings,
    check_mel_settings,
)

__all__ = ["MEL_16K_BSHALL", "MEL_22K_JIK876", "PUBLISHED_MELS", "MelSettings", "VocoderLogMel", "as_mel_settings",
           "check_mel_settings", "check_mel_tensor"]


def check_mel_tensor(mel: torch.Tensor, vocoder_mel: MelSettings, where: Any = None) -> None:
    """Refuse a mel array whose shape cannot be a (B, n_mels, T) or (n_mels, T) input of this vocoder."""
    shape = tuple(mel.shape)
    if mel.dim() not in (2, 3) or shape[-2] != vocoder_mel.n_mels or shape[-1] == 0:
        raise BadInput(where, f"mel of shape {shape} does not fit the vocoder: it expects (n_mels={vocoder_mel.n_mels}, "
                              f"frames) [{vocoder_mel.describe()}]")


class VocoderLogMel(torch.nn.Module):
    """Waveform (B, N) or (N,) -> log-mel (B, n_mels, T) [or (n_mels, T)], T = settings.n_frames(N).

    Filters come from `voxtool.audio.mel.mel_filters` (librosa); unlike `LogMel` this also applies jik876's
    magnitude epsilon, which moves near-silent bins by up to sqrt(1e-9) in amplitude.
    """

    def __init__(self, settings: MelSettings):
        from voxtool.audio.mel import mel_filters

        super().__init__()
        self.settings = settings
        basis = mel_filters(settings.to_mel_config())
        self.register_buffer("mel_basis", torch.from_numpy(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(settings.win_length), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        s = self.settings
        squeeze = wav.dim() == 1
        wav = (wav.unsqueeze(0) if squeeze else wav).float()
        if s.pad:
            wav = torch.nn.functional.pad(wav.unsqueeze(1), (s.pad, s.pad), mode="reflect").squeeze(1)
        spec = torch.stft(wav, n_fft=s.n_fft, hop_length=s.hop_length, win_length=s.win_length,
                          window=self.window, center=s.center, pad_mode="reflect", return_complex=True)
        amplitude = torch.sqrt(spec.real.square() + spec.imag.square() + s.magnitude_eps) if s.magnitude_eps \
            else spec.abs()
        out = torch.log(torch.clamp(torch.matmul(self.mel_basis, amplitude), min=s.log_floor))
        return out.squeeze(0) if squeeze else out
