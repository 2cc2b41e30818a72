"""Discrete training targets of `voxtool train hubert-soft`: one int label per 50 Hz unit frame of every item.

- "mfcc": 39-d MFCCs (13 + deltas + delta-deltas; HuBERT's first iteration) computed on exactly the 400-sample
  windows the unit frames see (the audio padded by 40 samples per side, hop 320), standardised, clustered with
  scikit-learn's MiniBatchKMeans (fairseq's HuBERT k-means: k-means++ init, batch 10000, no reassignment);
- "layer:N": the same k-means on transformer layer N outputs of an existing HuBERT (`--init`);
- "pitch" / "dynamics": the pitdyn bins of `voxtool.tasks.softvc.bins` from the item's f0 / rms.

Everything is deterministic given the seed (k-means fitted on a seeded sample of frames). `Targets` is saved as
one .npz (labels of every item concatenated, offsets, centroids, and a fingerprint of what produced them) so a
resumed run trains on exactly the labels it started with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxtool.errors import BadInput
from voxtool.fileio import atomic_path
from voxtool.tasks.softvc.bins import PitchDynStats, pitch_to_bins, rms_to_bins
from voxtool.tasks.softvc.hubert_config import parse_kind

SR, HOP, PAD = 16000, 320, 40
N_MFCC = 13


@dataclass
class Targets:
    """labels[i]: (N_i,) int64 for item i (in the order given); `n_labels` classes; centroids (K, D) or None."""

    labels: list[np.ndarray]
    n_labels: int
    fingerprint: str
    centroids: np.ndarray | None = None

    def save(self, path: Path) -> None:
        lengths = np.array([len(x) for x in self.labels], dtype=np.int64)
        flat = np.concatenate(self.labels) if self.labels else np.zeros(0, np.int64)
        extra = {} if self.centroids is None else {"centroids": self.centroids.astype(np.float32)}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, labels=flat.astype(np.int32), lengths=lengths, n_labels=np.int64(self.n_labels),
                     fingerprint=np.array(self.fingerprint), **extra)

    @classmethod
    def load(cls, path: Path) -> Targets:
        try:
            with np.load(path) as z:
                flat, lengths = z["labels"].astype(np.int64), z["lengths"]
                cents = z["centroids"] if "centroids" in z.files else None
                return cls(np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else [], int(z["n_labels"]),
                           str(z["fingerprint"]), cents)
        except (OSError, ValueError, KeyError) as e:
            raise BadInput(path, f"cannot read the saved targets ({str(e).splitlines()[0][:120]})") from None


def deltas(x: np.ndarray, width: int = 9) -> np.ndarray:
    """(N, D) -> (N, D) regression slope over +-(width // 2) frames, edges repeated (torchaudio compute_deltas)."""
    k = width // 2
    padded = np.pad(x, ((k, k), (0, 0)), mode="edge")
    n = len(x)
    num = sum(i * (padded[k + i:k + i + n] - padded[k - i:k - i + n]) for i in range(1, k + 1))
    return num / (2 * sum(i * i for i in range(1, k + 1)))


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    return np.where(f < 1000, f * 3 / 200, 15 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27))


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return np.where(m < 15, m * 200 / 3, 1000 * np.exp((m - 15) * np.log(6.4) / 27))


@functools.lru_cache(maxsize=1)
def _mfcc_basis() -> tuple[np.ndarray, np.ndarray]:
    """(40, 201) slaney-normalised mel filters of a 400-point FFT at 16 kHz (as librosa.filters.mel) and the
    (13, 40) orthonormal DCT-II."""
    n_mels, n_fft = 40, 400
    mel_f = _mel_to_hz(np.linspace(0.0, _hz_to_mel(SR / 2), n_mels + 2))
    ramps = mel_f[:, None] - np.linspace(0, SR / 2, 1 + n_fft // 2)[None, :]
    fdiff = np.diff(mel_f)
    weights = np.maximum(0, np.minimum(-ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    n = np.arange(n_mels)
    dct = np.cos(np.pi / n_mels * (n[None, :] + 0.5) * np.arange(N_MFCC)[:, None]) * np.sqrt(2 / n_mels)
    dct[0] /= np.sqrt(2)
    return weights, dct


def mfcc_features(audio: np.ndarray) -> np.ndarray:
    """(T,) 16 kHz -> (T // 320, 39) float32: 13 MFCCs (40 mels, log power) + deltas + delta-deltas (kaldi style:
    the delta of the delta), on exactly the 400-sample Hann windows the unit frames see (40-sample pads, hop 320).

    numpy only (librosa's MFCC compiles with numba on first use: seconds per process); it equals
    librosa.feature.mfcc(n_fft=400, n_mels=40, center=False, top_db=None) on the padded audio.
    """
    frames = len(audio) // HOP
    if frames == 0:
        return np.zeros((0, 3 * N_MFCC), np.float32)
    y = np.pad(np.asarray(audio, np.float64)[: frames * HOP], (PAD, PAD))
    windows = np.lib.stride_tricks.sliding_window_view(y, 400)[::HOP][:frames]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    power = np.abs(np.fft.rfft(windows * hann)) ** 2
    mel, dct = _mfcc_basis()
    mfcc = 10 * np.log10(np.maximum(power @ mel.T, 1e-10)) @ dct.T  # (N, 13)
    d1 = deltas(mfcc)
    return np.concatenate([mfcc, d1, deltas(d1)], axis=1).astype(np.float32)


def fit_kmeans(sample: np.ndarray, clusters: int, seed: int):
    """MiniBatchKMeans (fairseq's HuBERT settings) on (M, D) standardised features."""
    from sklearn.cluster import MiniBatchKMeans

    if len(sample) < clusters:
        raise BadInput(None, f"only {len(sample)} frames in the training set, fewer than --clusters {clusters}")
    km = MiniBatchKMeans(n_clusters=clusters, init="k-means++", max_iter=100, batch_size=10000, tol=0.0,
                         max_no_improvement=100, n_init=3, reassignment_ratio=0.0, random_state=seed)
    return km.fit(sample)


def kmeans_targets(features: Callable[[int], np.ndarray], frame_counts: Sequence[int], fit_items: int,
                   clusters: int, fit_frames: int, seed: int, fingerprint: str,
                   progress: Callable[[str], None] | None = None) -> Targets:
    """k-means labels for every item whose (N_i, D) features `features(i)` gives; fitted on a seeded sample of at
    most ~`fit_frames` frames of the first `fit_items` items (the training split), then applied to all.

    Memory stays at the sample's size: features are computed again for labelling unless the sample holds them all.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6B6D]))
    total = int(sum(frame_counts[:fit_items]))
    if total == 0:
        raise BadInput(None, "the training set has no frame to cluster")
    keep = min(1.0, fit_frames / total)
    kept: dict[int, np.ndarray] = {}
    parts = []
    for i in range(fit_items):
        f = features(i)
        if keep >= 1:
            kept[i] = f
            parts.append(f)
        else:
            parts.append(f[rng.random(len(f)) < keep])
    sample = np.concatenate(parts)
    mean, std = sample.mean(0), sample.std(0) + 1e-5
    if progress:
        progress(f"k-means: {clusters} clusters on {len(sample)} of {total} training frames")
    km = fit_kmeans((sample - mean) / std, clusters, seed)
    labels = []
    for i in range(len(frame_counts)):
        f = kept.pop(i) if i in kept else features(i)
        labels.append(km.predict((f - mean) / std).astype(np.int64) if len(f) else np.zeros(0, np.int64))
    centroids = km.cluster_centers_ * std + mean
    return Targets(labels, clusters, fingerprint, centroids.astype(np.float32))


def bin_targets(kind: str, arrays: Sequence[dict[str, np.ndarray]], stats: PitchDynStats, fingerprint: str) -> Targets:
    """Pitch or dynamics bins per item (from its `f0` / `rms`, N frames each)."""
    if kind == "pitch":
        return Targets([pitch_to_bins(a["f0"], stats) for a in arrays], stats.pitch_bins, fingerprint)
    return Targets([rms_to_bins(a["rms"], stats) for a in arrays], stats.dynamics_bins, fingerprint)


def compute_targets(kind: str, clusters: int, fit_frames: int, seed: int, audio: Callable[[int], np.ndarray],
                    arrays: Callable[[int], dict[str, np.ndarray]], frame_counts: Sequence[int], fit_items: int,
                    stats: PitchDynStats | None, layer_features: Callable[[np.ndarray, int], np.ndarray] | None,
                    fingerprint: str, progress: Callable[[str], None] | None = None) -> Targets:
    """Targets of `kind` ("mfcc", "layer:N", "pitch", "dynamics") for items 0..len(frame_counts)-1, k-means
    fitted on the first `fit_items` (the training split).

    audio(i) -> (T,) 16 kHz; arrays(i) -> the item's npz arrays (f0, rms); layer_features(audio, N) -> (T // 320, D)
    (layer:N only); stats: the dataset's pitch/dynamics statistics (pitch and dynamics only).
    """
    base, layer = parse_kind(kind)
    n_items = len(frame_counts)
    if base in ("pitch", "dynamics"):
        if stats is None:
            raise BadInput(None, f"--targets {kind} needs the dataset's pitch/dynamics stats (dataset.json 'stats')")
        return bin_targets(base, [arrays(i) for i in range(n_items)], stats, fingerprint)
    if base == "mfcc":
        feats = lambda i: mfcc_features(audio(i))  # noqa: E731
    elif layer_features is None:
        raise BadInput(None, f"--targets {kind} clusters layer {layer} of an existing model: pass --init MODEL")
    else:
        feats = lambda i: layer_features(audio(i), layer)  # noqa: E731
    return kmeans_targets(feats, frame_counts, fit_items, clusters, fit_frames, seed, fingerprint, progress)


def majority_accuracy(train: Targets, valid: Targets) -> float:
    """Accuracy of always answering the most frequent training label, on the validation labels (the trivial
    baseline the model must beat)."""
    flat = np.concatenate(train.labels) if train.labels else np.zeros(0, np.int64)
    vflat = np.concatenate(valid.labels) if valid.labels else np.zeros(0, np.int64)
    if not len(flat) or not len(vflat):
        return float("nan")
    top = np.bincount(flat, minlength=train.n_labels).argmax()
    return float(np.mean(vflat == top))
