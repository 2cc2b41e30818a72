"""Average-voice targets for the DiffVC encoder: every frame of a phone (or unit) replaced by that phone's
corpus-wide "mode" spectrum (DiffVC/get_avg_mels.ipynb, `avg_type='mode'`).

1. segment each utterance: phone intervals from a TextGrid (`read_phone_intervals`, `interval_frames`), or runs of
   equal k-means units (`unit_runs`) over speaker-normalised MFCCs (`mfcc_features`, `fit_units`);
2. per segment, the per-bin median over its frames, rounded to 1 decimal (`segment_medians`);
3. per phone / unit, the per-bin statistical mode over all its segments in the corpus (`UnitStats`; ties go to the
   smallest value, as `scipy.stats.mode`);
4. the target (`average_voice`) is the utterance's mel with every segment overwritten by its phone's vector, in
   order (DiffVC's intervals overlap by one frame; the later one wins); frames outside any segment keep their values.

Modes are exact but kept as histograms of the rounded values (tenths in [-12.8, 12.7], far wider than a ln-mel
clamped at 1e-5 ever goes), so memory stays tiny whatever the corpus size.

Frame mapping (the notebook's): start = int(start_s * sr) // hop, end = int(end_s * sr) // hop + 1.
Labels: any inventory. A blank interval (silence in MFA 2 and in `voxtool transcribe pinyin` TextGrids) is `sil`,
as MFA 1 labels it; an utterance with an unknown-word phone (`spn`, `unk`, `<unk>`) is excluded, as DiffVC's
`exclude_spn` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxtool.errors import BadInput

UNKNOWN_PHONES = frozenset({"spn", "unk", "<unk>", "[unk]"})
SILENCE = "sil"
_LO, _HI = -128, 127  # histogram range of the rounded medians, in tenths
MFCC_COEFFS = 20

Segment = tuple[int, int, str]  # (first frame, end frame (exclusive), label)


def read_phone_intervals(path: str | Path, tier: str = "phones") -> list[tuple[float, float, str]]:
    """The (start s, end s, label) intervals of a TextGrid's phone tier (`tier`, or MFA 2's "<speaker> - phones").
    Blank labels become `sil`. BadInput when unreadable or without such a tier."""
    from praatio import textgrid

    path = Path(path)
    try:
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    except Exception as e:  # praatio raises assorted errors on malformed files
        raise BadInput(path, f"cannot read the TextGrid ({str(e).strip().splitlines()[0][:120] if str(e) else type(e).__name__})") from None
    names = list(tg.tierNames)
    match = [n for n in names if n.lower() == tier.lower()] or [n for n in names if n.lower().endswith(f" - {tier.lower()}")]
    if not match:
        raise BadInput(path, f"no {tier!r} tier (tiers: {', '.join(names) or 'none'})")
    tier_obj = tg.getTier(match[0])
    if not hasattr(tier_obj, "entries") or tier_obj.entries and len(tier_obj.entries[0]) != 3:
        raise BadInput(path, f"tier {match[0]!r} is not an interval tier")
    return [(float(s), float(e), (label.strip() or SILENCE)) for s, e, label in tier_obj.entries]


def unknown_phones(intervals: list[tuple[float, float, str]]) -> list[str]:
    """The unknown-word labels present (an utterance with any of them is excluded)."""
    return sorted({label for _, _, label in intervals if label.lower() in UNKNOWN_PHONES})


def interval_frames(intervals: list[tuple[float, float, str]], n_frames: int, sr: int, hop: int) -> list[Segment]:
    """Seconds -> mel frames as the notebook maps them, clipped to `n_frames`; empty ones dropped."""
    out = []
    for start, end, label in intervals:
        a = int(start * sr) // hop
        b = min(int(end * sr) // hop + 1, n_frames)
        if a < b:
            out.append((a, b, label))
    return out


def segment_medians(mel: np.ndarray, segments: list[Segment]) -> np.ndarray:
    """mel [n_mels, F], segments -> int16 [S, n_mels]: each segment's per-bin median in tenths (rounded)."""
    out = np.empty((len(segments), mel.shape[0]), dtype=np.int16)
    for k, (a, b, _) in enumerate(segments):
        med = np.median(mel[:, a:b], axis=1)
        out[k] = np.clip(np.round(med * 10), _LO, _HI).astype(np.int16)
    return out


class UnitStats:
    """Per label and mel bin, a histogram of the segment medians (tenths): its argmax is the per-bin mode."""

    def __init__(self, n_mels: int):
        self.n_mels = n_mels
        self.hist: dict[str, np.ndarray] = {}  # label -> int64 [n_mels, _HI - _LO + 1]
        self.segments: dict[str, int] = {}
        self.frames: dict[str, int] = {}

    def add(self, segments: list[Segment], medians: np.ndarray) -> None:
        """One utterance's segments and their `segment_medians`."""
        rows = np.arange(self.n_mels)
        for (a, b, label), med in zip(segments, medians, strict=True):
            h = self.hist.get(label)
            if h is None:
                h = self.hist[label] = np.zeros((self.n_mels, _HI - _LO + 1), dtype=np.int64)
                self.segments[label] = self.frames[label] = 0
            np.add.at(h, (rows, med.astype(np.int64) - _LO), 1)
            self.segments[label] += 1
            self.frames[label] += b - a

    @property
    def labels(self) -> list[str]:
        return sorted(self.hist)

    def vectors(self) -> dict[str, np.ndarray]:
        """label -> float32 [n_mels] per-bin mode (the smallest value among equally frequent ones)."""
        return {label: ((np.argmax(h, axis=1) + _LO) / 10).astype(np.float32) for label, h in self.hist.items()}

    def summary(self) -> dict[str, dict]:
        """For dataset.json: per label its segment count, mean length in frames and mode vector."""
        vecs = self.vectors()
        return {label: {"segments": self.segments[label],
                        "mean_frames": round(self.frames[label] / max(1, self.segments[label]), 3),
                        "vector": [round(float(v), 1) for v in vecs[label]]} for label in self.labels}


def average_voice(mel: np.ndarray, segments: list[Segment], vectors: dict[str, np.ndarray]) -> np.ndarray:
    """mel [n_mels, F] -> float32 [n_mels, F] target: segments overwritten in order by their label's vector
    (labels without statistics, and frames outside every segment, keep the mel's values)."""
    out = np.array(mel, dtype=np.float32, copy=True)
    for a, b, label in segments:
        vec = vectors.get(label)
        if vec is not None:
            out[:, a:b] = vec[:, None]
    return out


# --------------------------------------------------------------------------------------- k-means units

def mfcc_features(mel: np.ndarray, n_coeffs: int = MFCC_COEFFS) -> np.ndarray:
    """ln-mel [n_mels, F] -> float32 [F, 2 * n_coeffs]: MFCCs (orthonormal DCT-II of the log-mel, c0 included)
    and their time deltas."""
    from scipy.fft import dct

    c = dct(np.asarray(mel, dtype=np.float64), type=2, norm="ortho", axis=0)[:n_coeffs].T
    delta = np.gradient(c, axis=0) if len(c) > 1 else np.zeros_like(c)
    return np.concatenate([c, delta], axis=1).astype(np.float32)


class SpeakerNorm:
    """Per-speaker mean and variance of features, accumulated utterance by utterance."""

    def __init__(self):
        self.sums: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

    def add(self, speaker: str, feats: np.ndarray) -> None:
        f = feats.astype(np.float64)
        self.add_moments(speaker, f.sum(0), np.square(f).sum(0), len(f))

    def add_moments(self, speaker: str, total: np.ndarray, squares: np.ndarray, n: int) -> None:
        """Sums of one utterance's features [D], of their squares [D], and its frame count."""
        s, q, m = self.sums.get(speaker, (0.0, 0.0, 0))
        self.sums[speaker] = (s + total, q + squares, m + n)

    def apply(self, speaker: str, feats: np.ndarray) -> np.ndarray:
        s, q, n = self.sums[speaker]
        mean = s / n
        std = np.sqrt(np.maximum(q / n - mean**2, 1e-8))
        return ((feats - mean) / std).astype(np.float32)


@dataclass(frozen=True)
class Units:
    """K-means units that several speakers share: `centers` [K', D] (normalised feature space) with their original
    cluster ids `ids` [K']; `dropped` maps each speaker-specific cluster id to its largest speaker share."""

    centers: np.ndarray
    ids: np.ndarray
    dropped: dict[int, float]

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """Normalised features [F, D] -> unit ids [F] (the nearest kept centre's id)."""
        d = np.square(feats[:, None, :].astype(np.float64) - self.centers[None]).sum(-1)
        return self.ids[d.argmin(axis=1)]


def balance_limit(n_speakers: int) -> float:
    """The largest share one speaker may hold of a unit: halfway between an even spread (1/n) and one speaker (1)."""
    return 0.5 * (1.0 + 1.0 / n_speakers)


def speaker_shares(units: np.ndarray, speakers: np.ndarray, clusters: int) -> np.ndarray:
    """[clusters, n_speakers] share of each speaker in each unit, every speaker's frames weighted by 1 / its frame
    count (a speaker with more audio does not look dominant); rows of unused units are 0."""
    names, spk = np.unique(speakers, return_inverse=True)
    counts = np.zeros((clusters, len(names)))
    np.add.at(counts, (units, spk), 1.0)
    rates = counts / counts.sum(axis=0, keepdims=True)
    total = rates.sum(axis=1, keepdims=True)
    return np.divide(rates, total, out=np.zeros_like(rates), where=total > 0)


def fit_units(frames: np.ndarray, clusters: int, seed: int, speakers: np.ndarray | None = None) -> Units:
    """K-means over normalised feature frames [N, D]; with the frames' `speakers` [N], units one speaker dominates
    (largest share > `balance_limit`) are dropped and their frames go to the nearest shared unit.

    Why: per-speaker normalisation does not undo a vocal-tract-length difference (a warp of the frequency axis), so
    k-means also finds units only one voice uses; their corpus "mode" is that voice, and an average-voice target
    built from them teaches the encoder to keep the speaker (measured in docs/diffvc.md). When no unit is shared, the
    most even one is kept."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(frames) < clusters:
        raise BadInput(None, f"--clusters {clusters} is more than the {len(frames)} frames of the corpus")
    if len(frames) <= 50_000:
        km = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit(frames)
    else:
        km = MiniBatchKMeans(n_clusters=clusters, n_init=3, batch_size=4096, random_state=seed).fit(frames)
    centers = km.cluster_centers_.astype(np.float64)
    keep = np.ones(clusters, bool)
    dropped: dict[int, float] = {}
    if speakers is not None and len(np.unique(speakers)) > 1:
        largest = speaker_shares(km.labels_, np.asarray(speakers), clusters).max(axis=1)
        used = np.bincount(km.labels_, minlength=clusters) > 0
        keep = used & (largest <= balance_limit(len(np.unique(speakers))))
        if not keep.any():
            keep[np.where(used, largest, np.inf).argmin()] = True
        dropped = {int(k): round(float(largest[k]), 3) for k in np.flatnonzero(~keep)}
    return Units(centers[keep], np.flatnonzero(keep), dropped)


def unit_runs(units: np.ndarray) -> list[Segment]:
    """Frame unit ids [F] -> runs of equal units as segments labelled "u<id>"."""
    if len(units) == 0:
        return []
    cuts = np.flatnonzero(np.diff(units)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(units)]])
    return [(int(a), int(b), f"u{int(units[a])}") for a, b in zip(starts, ends, strict=True)]
