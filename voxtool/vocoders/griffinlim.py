"""Griffin-Lim: a vocoder that needs no model (librosa), for a quick listen, a baseline and a fallback.

`GriffinLim(mel_settings)` inverts a vocoder log-mel (any `MelSettings`, e.g. `MEL_16K_BSHALL` of the
`hifigan-16k` preset): exp(log-mel) -> amplitude mel -> linear amplitude spectrogram by non-negative least squares
on the same Slaney/HTK filter bank (the problem of `librosa.feature.inverse.mel_to_stft`, power 1, solved by
multiplicative updates from the clipped pseudo-inverse: see `mel_to_linear`) -> phase by `n_iter`
iterations of fast Griffin-Lim (`librosa.griffinlim`, momentum 0.99). The STFT framing matches the mel's: an
uncentred STFT over the signal reflect-padded by `pad` samples per side, so T frames give T * hop samples. It
behaves like a `Generator` (`forward(mel (B, n_mels, T)) -> (B, 1, T * hop)`, `hop_length`), so the inference
and evaluation code take it in place of one; it has no parameters and runs on the CPU (numpy).
Quality is far below a trained HiFi-GAN (phasey, metallic), but f0 and the spectral envelope survive.
"""

from __future__ import annotations

import numpy as np
import torch

from voxtool.vocoders.mel import MelSettings

DEFAULT_ITERATIONS = 32
MOMENTUM = 0.99
NNLS_ITERATIONS = 30


class GriffinLim(torch.nn.Module):
    """Log-mel (B, n_mels, T) or (n_mels, T) -> waveform (B, 1, T * hop) by Griffin-Lim (see the module doc)."""

    def __init__(self, settings: MelSettings, n_iter: int = DEFAULT_ITERATIONS, momentum: float = MOMENTUM,
                 seed: int = 0):
        from voxtool.audio.mel import mel_filters

        super().__init__()
        self.settings = settings
        self.n_iter, self.momentum, self.seed = n_iter, momentum, seed
        self.basis = mel_filters(settings.to_mel_config()).astype(np.float64)  # (n_mels, n_fft // 2 + 1)
        self.pinv = np.linalg.pinv(self.basis)

    @property
    def hop_length(self) -> int:
        return self.settings.hop_length

    def mel_to_linear(self, mel: np.ndarray) -> np.ndarray:
        """Amplitude mel (n_mels, T) -> non-negative linear amplitude (n_fft // 2 + 1, T) minimising
        ||basis @ x - mel||: the clipped pseudo-inverse refined by multiplicative NNLS updates (the same problem
        `librosa.feature.inverse.mel_to_stft` solves with L-BFGS-B, 100x faster here at about the same error)."""
        basis = self.basis.astype(np.float64)
        x = np.maximum(self.pinv @ mel, 0.0) + 1e-3 * (float(mel.mean()) if mel.size else 0.0) + 1e-12
        gram, target = basis.T @ basis, basis.T @ mel
        for _ in range(NNLS_ITERATIONS):
            x *= target / np.maximum(gram @ x, 1e-12)
        return x

    def invert(self, log_mel: np.ndarray) -> np.ndarray:
        """One log-mel (n_mels, T) -> float32 (T * hop,)."""
        import librosa

        s = self.settings
        mel = np.exp(np.asarray(log_mel, dtype=np.float64))
        mel[log_mel <= np.log(s.log_floor) + 1e-6] = 0.0  # the floor is silence, not a quiet tone
        amplitude = self.mel_to_linear(mel)  # (n_fft // 2 + 1, T)
        frames = log_mel.shape[1]
        # librosa's STFT is centred with n_fft // 2 of padding; the mel's frames sit `pad` samples before the
        # signal, so the centred output is shifted by n_fft // 2 - pad and cut to T * hop
        wav = librosa.griffinlim(amplitude, n_iter=self.n_iter, hop_length=s.hop_length, win_length=s.win_length,
                                 n_fft=s.n_fft, window="hann", center=True, momentum=self.momentum,
                                 init="random", random_state=self.seed)
        shift = s.n_fft // 2 - (s.pad + (s.n_fft // 2 if s.center else 0))
        wav = np.pad(wav, (max(0, -shift), frames * s.hop_length))[max(0, shift):][: frames * s.hop_length]
        return wav.astype(np.float32)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        single = mel.dim() == 2
        batch = (mel[None] if single else mel).detach().float().cpu().numpy()
        wav = torch.from_numpy(np.stack([self.invert(m) for m in batch]))[:, None]
        return wav.to(mel.device)
