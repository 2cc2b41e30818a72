"""mir_eval melody metrics (RPA, RCA, OA, VR, VFA) of predicted vs reference f0 tracks (`infer.evaluate_dataset`
scores a prepared split with them), and the voicing-threshold sweep that calibrates a model's threshold
(`VoicingSweep`: every threshold scored from one decoding of each track)."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

METRICS = ("rpa", "rca", "oa", "vr", "vfa")
VOICING_METRICS = ("oa", "vr", "vfa")
# 0.01 .. 0.9: fine steps at the low end, where the published default (0.03) and undertrained models live
THRESHOLD_GRID = tuple(round(float(x), 3) for x in (*np.arange(0.01, 0.1, 0.01), *np.arange(0.1, 0.3, 0.02),
                                                    *np.arange(0.3, 0.901, 0.05)))


def _cent_voicing(ref_f0: np.ndarray, est_f0: np.ndarray, hop_s: float):
    """mir_eval's (ref_voicing, ref_cent, est_voicing, est_cent) of two tracks on the same grid (cut to the
    shorter one)."""
    import mir_eval

    n = min(len(ref_f0), len(est_f0))
    times = np.arange(n) * hop_s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns on all-unvoiced references
        return mir_eval.melody.to_cent_voicing(
            times, np.asarray(ref_f0[:n], dtype=np.float64), times, np.asarray(est_f0[:n], dtype=np.float64)
        )


def _scores(ref_v, ref_c, est_v, est_c, cent_tolerance: float) -> dict:
    import mir_eval

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "rpa": float(mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance)),
            "rca": float(mir_eval.melody.raw_chroma_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance)),
            "oa": float(mir_eval.melody.overall_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance)),
            "vr": float(mir_eval.melody.voicing_recall(ref_v, est_v)),
            "vfa": float(mir_eval.melody.voicing_false_alarm(ref_v, est_v)),
        }


def melody_metrics(ref_f0: np.ndarray, est_f0: np.ndarray, hop_s: float, cent_tolerance: float = 50.0) -> dict:
    """Both tracks on the same grid (frame i at i*hop_s, 0 = unvoiced) -> the five mir_eval scores."""
    return _scores(*_cent_voicing(ref_f0, est_f0, hop_s), cent_tolerance)


def mean_metrics(rows: list[dict]) -> dict:
    """Mean over files (as the original evaluate.py)."""
    if not rows:
        return {k: float("nan") for k in METRICS}
    return {k: float(np.mean([r[k] for r in rows])) for k in METRICS}


class ScoredTrack(NamedTuple):
    """One file's reference and its decoding before the voicing decision: `f0` (T,) is the pitch of every frame
    (decoded at threshold 0), `confidence` (T,) the peak salience that the threshold is compared with."""

    name: str
    ref_f0: np.ndarray
    f0: np.ndarray
    confidence: np.ndarray


class VoicingSweep:
    """The melody metrics of a set of tracks at any voicing threshold, from one decoding of each track.

    A frame is voiced at threshold t when its confidence is >= t (as `voxtool.pitch.decode.decode_torch`), so
    the scores at t equal `melody_metrics(ref, where(confidence >= t, f0, 0))` (tested), without the model."""

    def __init__(self, tracks: list[ScoredTrack], hop_s: float, cent_tolerance: float = 50.0):
        self.names = [t.name for t in tracks]
        self.tracks = list(tracks)
        self.cent_tolerance = cent_tolerance
        self._tracks = []
        for t in tracks:
            ref_v, ref_c, est_v, est_c = _cent_voicing(t.ref_f0, t.f0, hop_s)
            conf = np.zeros(len(est_v), dtype=np.float32)
            n = min(len(conf), len(t.confidence))
            conf[:n] = t.confidence[:n]  # frames mir_eval padded on (an estimate shorter than the reference) stay unvoiced
            self._tracks.append((ref_v, ref_c, est_v, est_c, conf))

    def rows(self, threshold: float) -> list[dict]:
        """Per-file scores at `threshold`: one dict per track with 'name' and the five metrics."""
        out = []
        for name, (ref_v, ref_c, est_v, est_c, conf) in zip(self.names, self._tracks):
            voiced = conf >= np.float32(threshold)  # compared in float32, as decode_torch does
            scores = _scores(ref_v, ref_c, est_v * voiced, np.where(voiced, est_c, 0.0), self.cent_tolerance)
            out.append({"name": name, **scores})
        return out

    def means(self, threshold: float) -> dict:
        return mean_metrics(self.rows(threshold))

    def best(self, grid=THRESHOLD_GRID, metric: str = "oa") -> tuple[float, dict]:
        """(threshold of `grid` with the highest mean `metric`, its mean scores). Ties (flat stretches on small
        sets) go to the middle tied threshold, away from the edges of the plateau."""
        scored = [(float(t), self.means(float(t))) for t in sorted(grid)]
        top = max(m[metric] for _, m in scored)
        tied = [(t, m) for t, m in scored if m[metric] >= top - 1e-12]
        return tied[(len(tied) - 1) // 2]
