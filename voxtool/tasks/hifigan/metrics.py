"""Vocoder quality.

- `mel_l1`: L1 between the full-band loss log-mels (`MelSettings.for_loss()`) of real and vocoded audio (training
  validation and `eval hifigan`).
- copy-synthesis scores of one (reference, vocoded) pair for `eval hifigan` (`quality_scores`): MCD with DTW (dB,
  lower is better), wideband PESQ at 16 kHz (`pesq`, 1.04-4.64), STOI (`pystoi`, 0-1), f0 RMSE in cents on the
  frames WORLD harvest finds voiced in both. `pesq` and `pystoi` come with the extra `quality` and are imported
  inside the functions.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def wav_mel_l1(fake: np.ndarray, real: np.ndarray, loss_mel: torch.nn.Module, device: torch.device) -> float:
    """Mean |loss_mel(fake) - loss_mel(real)| of two waveforms of equal length (N,)."""
    fake_t, real_t = (torch.as_tensor(np.asarray(w, dtype=np.float32)).to(device) for w in (fake, real))
    return float(torch.mean(torch.abs(loss_mel(fake_t) - loss_mel(real_t))))


@torch.no_grad()
def item_mel_l1(generator: torch.nn.Module, wav: np.ndarray, mel: np.ndarray, loss_mel: torch.nn.Module,
                device: torch.device) -> float:
    """Mean |loss_mel(generator(mel)) - loss_mel(wav)| of one item: mel (n_mels, T), wav (T * hop,)."""
    fake = generator(torch.from_numpy(mel)[None].to(device)).float()[0, 0]  # (T * hop,)
    real = torch.from_numpy(wav).to(device)
    return float(torch.mean(torch.abs(loss_mel(fake) - loss_mel(real))))


@torch.no_grad()
def mel_l1(generator: torch.nn.Module, dataset, loss_mel: torch.nn.Module, device: torch.device,
           max_items: int = 0, max_frames: int = 0) -> float:
    """Mean over items of `item_mel_l1` on a `VocoderDataset`; items whole or cut to `max_frames` frames."""
    scores = []
    for i in range(len(dataset) if not max_items else min(max_items, len(dataset))):
        wav, mel = dataset[i]
        if max_frames:
            mel, wav = mel[:, :max_frames], wav[: max_frames * dataset.hop]
        scores.append(item_mel_l1(generator, wav, mel, loss_mel, device))
    return float(np.mean(scores)) if scores else float("nan")


# ----------------------------------------------------------------------------------------------------------
# Copy-synthesis quality of one (reference, vocoded) pair: MCD with DTW, PESQ, STOI, f0 RMSE
# ----------------------------------------------------------------------------------------------------------

QUALITY_SR = 16000  # MCD and PESQ (wideband) run at 16 kHz; STOI and f0 at the vocoder's own rate
MCD_COEFFICIENTS = 24  # c1..c24 (c0, the frame energy, is left out)
MCD_N_FFT, MCD_HOP, MCD_N_MELS = 1024, 80, 80  # 64 ms window, 5 ms hop at 16 kHz
F0_FRAME_MS = 5.0
QUALITY_METRICS = ("mcd", "pesq", "stoi", "f0_rmse_cents")


def _to_16k(wav: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    wav = np.asarray(wav, dtype=np.float64)
    return wav if sr == QUALITY_SR else soxr.resample(wav, sr, QUALITY_SR, quality="HQ")


def mel_cepstrum(wav: np.ndarray, sr: int) -> np.ndarray:
    """(N,) -> (MCD_COEFFICIENTS, frames) mel-cepstra c1..c24 at 16 kHz: the DCT-II (orthonormal) of the natural
    log amplitude mel spectrum (80 Slaney mels 0-8 kHz, 1024-point Hann STFT, 5 ms hop), c0 dropped."""
    import librosa
    import scipy.fft

    power = librosa.feature.melspectrogram(y=_to_16k(wav, sr), sr=QUALITY_SR, n_fft=MCD_N_FFT, hop_length=MCD_HOP,
                                           n_mels=MCD_N_MELS, power=2.0)
    log_amplitude = 0.5 * np.log(power + 1e-10)
    return scipy.fft.dct(log_amplitude, type=2, norm="ortho", axis=0)[1:MCD_COEFFICIENTS + 1]


def mcd_dtw(reference: np.ndarray, degraded: np.ndarray, sr: int) -> float:
    """Mel-cepstral distortion in dB, frames aligned by DTW:
    MCD = mean over the DTW path of (10 / ln 10) * sqrt(2 * sum_{d=1..24} (c_d - c'_d)^2), the cepstra of
    `mel_cepstrum` (librosa.sequence.dtw, Euclidean cost, steps (1,1), (0,1), (1,0)). Identical signals give 0.
    An MFCC-style MCD: compare values with each other, not with SPTK mcep-based MCDs of papers."""
    import librosa

    a, b = mel_cepstrum(reference, sr), mel_cepstrum(degraded, sr)
    _, path = librosa.sequence.dtw(X=a, Y=b, metric="euclidean")
    diff = a[:, path[:, 0]] - b[:, path[:, 1]]
    return float(np.mean(10.0 / np.log(10.0) * np.sqrt(2.0 * np.sum(diff**2, axis=0))))


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sr: int) -> float:
    """Wideband PESQ (ITU-T P.862.2, MOS-LQO 1.04-4.64) at 16 kHz (both resampled when sr differs); NaN when the
    `pesq` package finds no utterance (silence, too short)."""
    from pesq import PesqError, pesq

    ref, deg = _to_16k(reference, sr), _to_16k(degraded, sr)
    n = min(len(ref), len(deg))
    try:
        return float(pesq(QUALITY_SR, ref[:n], deg[:n], "wb"))
    except PesqError:
        return float("nan")


def stoi(reference: np.ndarray, degraded: np.ndarray, sr: int) -> float:
    """Short-time objective intelligibility (pystoi, classic STOI, 0-1; resampled to 10 kHz inside)."""
    from pystoi import stoi as _stoi

    n = min(len(reference), len(degraded))
    return float(_stoi(np.asarray(reference[:n], np.float64), np.asarray(degraded[:n], np.float64), sr,
                       extended=False))


def f0_rmse_cents(reference: np.ndarray, degraded: np.ndarray, sr: int) -> float:
    """RMSE in cents, 1200 log2(f0' / f0), over the frames WORLD harvest (5 ms frames, 40-800 Hz) finds voiced in
    both signals; NaN when no frame is voiced in both."""
    import pyworld

    def track(wav):
        f0, _ = pyworld.harvest(np.ascontiguousarray(wav, dtype=np.float64), sr, f0_floor=40.0, f0_ceil=800.0,
                                frame_period=F0_FRAME_MS)
        return f0

    a, b = track(reference), track(degraded)
    n = min(len(a), len(b))
    both = (a[:n] > 0) & (b[:n] > 0)
    if not both.any():
        return float("nan")
    cents = 1200.0 * np.log2(b[:n][both] / a[:n][both])
    return float(np.sqrt(np.mean(cents**2)))


def quality_scores(reference: np.ndarray, degraded: np.ndarray, sr: int) -> dict[str, float]:
    """{"mcd", "pesq", "stoi", "f0_rmse_cents"} of one pair (equal lengths expected; the longer is cut)."""
    n = min(len(reference), len(degraded))
    reference, degraded = np.asarray(reference[:n], np.float64), np.asarray(degraded[:n], np.float64)
    return {"mcd": mcd_dtw(reference, degraded, sr), "pesq": pesq_wb(reference, degraded, sr),
            "stoi": stoi(reference, degraded, sr), "f0_rmse_cents": f0_rmse_cents(reference, degraded, sr)}
