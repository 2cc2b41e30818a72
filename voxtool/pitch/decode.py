"""Pitch <-> bin mapping, training targets and salience decoding (torch and numpy).

Bin k is centred at ``CENTS_BIN0 + 20 k`` cents over 10 Hz (bin 0 = 31.70 Hz, bin 359 = 2005.5 Hz).
"""

from __future__ import annotations

import numpy as np
import torch

N_BINS = 360
CENTS_PER_BIN = 20.0
CENTS_BIN0 = 1997.3794084376191  # 1200 * log2(3.17): CREPE's offset, kept by every RMVPE release
REF_HZ = 10.0
DEFAULT_THRESHOLD = 0.03
LOCAL_RADIUS = 4  # 9-bin window around the argmax


def hz_to_cents(f0):
    """Cents over 10 Hz; works on numpy arrays and tensors (f0 > 0)."""
    if isinstance(f0, torch.Tensor):
        return 1200.0 * torch.log2(f0 / REF_HZ)
    return 1200.0 * np.log2(np.asarray(f0, dtype=np.float64) / REF_HZ)


def cents_to_hz(cents):
    if isinstance(cents, torch.Tensor):
        return REF_HZ * torch.pow(2.0, cents / 1200.0)
    return REF_HZ * np.power(2.0, np.asarray(cents, dtype=np.float64) / 1200.0)


def bin_cents() -> np.ndarray:
    """Centre of each bin in cents, ``[360]``."""
    return CENTS_BIN0 + CENTS_PER_BIN * np.arange(N_BINS)


def gaussian_targets(f0_hz: torch.Tensor, sigma_bins: float = 1.25) -> torch.Tensor:
    """Soft targets ``[..., 360]`` from f0 ``[...]`` in Hz (0 = unvoiced -> all-zero row).

    exp(-(k - k*)^2 / (2 sigma^2)) with continuous k* = (cents - CENTS_BIN0) / 20, as in yxlllc/Teco.
    """
    voiced = f0_hz > 0
    cents = hz_to_cents(torch.where(voiced, f0_hz, torch.full_like(f0_hz, REF_HZ)))
    k_star = (cents - CENTS_BIN0) / CENTS_PER_BIN
    k = torch.arange(N_BINS, device=f0_hz.device, dtype=f0_hz.dtype)
    target = torch.exp(-((k - k_star.unsqueeze(-1)) ** 2) / (2 * sigma_bins**2))
    return target * voiced.unsqueeze(-1).to(target.dtype)


def decode_torch(
    salience: torch.Tensor, threshold: float = DEFAULT_THRESHOLD, center: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local-average decoding. salience ``[..., 360]`` -> (f0 Hz ``[...]``, confidence ``[...]``).

    Weighted average of the cents of the 9 bins around the argmax (or around ``center`` ``[...]``, e.g. a Viterbi
    path; clipped at the edges); f0 = 0 where the peak salience is below ``threshold``. Uses only gather/arange
    ops so it exports to ONNX.
    """
    salience = salience.float()
    conf, argmax = salience.max(dim=-1)
    center = argmax if center is None else center.long()
    offsets = torch.arange(-LOCAL_RADIUS, LOCAL_RADIUS + 1, device=salience.device)
    idx = center.unsqueeze(-1) + offsets  # [..., 9]
    inside = (idx >= 0) & (idx < N_BINS)
    idx = idx.clamp(0, N_BINS - 1)
    weights = torch.gather(salience, -1, idx) * inside.to(salience.dtype)
    cents = CENTS_BIN0 + CENTS_PER_BIN * idx.to(salience.dtype)
    avg = (weights * cents).sum(-1) / weights.sum(-1).clamp_min(1e-9)
    f0 = REF_HZ * torch.pow(2.0, avg / 1200.0)
    f0 = torch.where(conf >= threshold, f0, torch.zeros_like(f0))
    return f0, conf


def decode(salience: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Numpy twin of ``decode_torch``: ``[..., 360]`` -> (f0 Hz float32, confidence float32)."""
    f0, conf = decode_torch(torch.from_numpy(np.ascontiguousarray(salience, dtype=np.float32)), threshold)
    return f0.numpy().astype(np.float32), conf.numpy().astype(np.float32)


def viterbi_transition(width: int = 30) -> np.ndarray:
    """yxlllc/DiffSinger transition matrix: max(width - |i - j|, 0), rows normalised. ``[360, 360]``"""
    i = np.arange(N_BINS)
    transition = np.maximum(width - np.abs(i[:, None] - i[None, :]), 0).astype(np.float64)
    return transition / transition.sum(axis=1, keepdims=True)


def decode_viterbi(salience: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi decoding (yxlllc/DiffSinger option): ``[T, 360]`` -> (f0 Hz ``[T]``, confidence ``[T]``).

    Columns normalised to sum 1 are the emission probabilities; the smoothest likely bin path (jumps of < 30
    bins = 600 cents per frame) replaces the per-frame argmax as the centre of the 9-bin local average; the
    voicing threshold is unchanged.
    """
    import librosa

    salience = np.asarray(salience, dtype=np.float32)
    if not len(salience):
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    prob = salience.T.astype(np.float64)
    prob = prob / np.maximum(prob.sum(axis=0, keepdims=True), 1e-12)
    path = librosa.sequence.viterbi(prob, viterbi_transition())
    f0, conf = decode_torch(torch.from_numpy(salience), threshold, torch.from_numpy(path.astype(np.int64)))
    return f0.numpy().astype(np.float32), conf.numpy().astype(np.float32)


def resample_f0(f0: np.ndarray, hop_s: float, new_hop_s: float, n_out: int | None = None) -> np.ndarray:
    """Resample an f0 track (0 = unvoiced) onto another frame grid.

    Interpolates log-f0 linearly between neighbouring *voiced* frames only; a new frame is voiced when the
    nearest source frame is voiced, so voicing boundaries move by at most half a source hop and no glide is
    invented across unvoiced gaps. ``[T] -> [n_out]`` (default: covers the same duration).
    """
    f0 = np.asarray(f0, dtype=np.float64)
    t_src = np.arange(len(f0)) * hop_s
    if n_out is None:
        n_out = int(np.floor((len(f0) - 1) * hop_s / new_hop_s + 1e-9)) + 1 if len(f0) else 0
    t_new = np.arange(n_out) * new_hop_s
    out = np.zeros(n_out, dtype=np.float64)
    if not len(f0) or not n_out:
        return out.astype(np.float32)
    voiced = f0 > 0
    nearest = np.clip(np.rint(t_new / hop_s).astype(np.int64), 0, len(f0) - 1)
    take = voiced[nearest]
    if not take.any():
        return out.astype(np.float32)
    # Segment id of each voiced run; interpolate only within the run the nearest frame belongs to.
    run_id = np.cumsum(np.concatenate([[1], np.diff(voiced.astype(np.int8)) != 0])) - 1
    log_f0 = np.log(np.where(voiced, f0, 1.0))
    for rid in np.unique(run_id[nearest[take]]):
        members = np.nonzero(run_id == rid)[0]
        sel = take & (run_id[nearest] == rid)
        out[sel] = np.exp(np.interp(t_new[sel], t_src[members], log_f0[members]))
    return out.astype(np.float32)
