"""mir_eval melody metrics (RPA, RCA, OA, VR, VFA) of predicted vs reference f0 tracks (`infer.evaluate_dataset`
scores a prepared split with them)."""

from __future__ import annotations

import warnings

import numpy as np

METRICS = ("rpa", "rca", "oa", "vr", "vfa")


def melody_metrics(ref_f0: np.ndarray, est_f0: np.ndarray, hop_s: float, cent_tolerance: float = 50.0) -> dict:
    """Both tracks on the same grid (frame i at i*hop_s, 0 = unvoiced) -> the five mir_eval scores."""
    import mir_eval

    n = min(len(ref_f0), len(est_f0))
    times = np.arange(n) * hop_s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns on all-unvoiced references
        ref_v, ref_c, est_v, est_c = mir_eval.melody.to_cent_voicing(
            times, np.asarray(ref_f0[:n], dtype=np.float64), times, np.asarray(est_f0[:n], dtype=np.float64)
        )
        return {
            "rpa": float(mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance)),
            "rca": float(mir_eval.melody.raw_chroma_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance)),
            "oa": float(mir_eval.melody.overall_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance)),
            "vr": float(mir_eval.melody.voicing_recall(ref_v, est_v)),
            "vfa": float(mir_eval.melody.voicing_false_alarm(ref_v, est_v)),
        }


def mean_metrics(rows: list[dict]) -> dict:
    """Mean over files (as the original evaluate.py)."""
    if not rows:
        return {k: float("nan") for k in METRICS}
    return {k: float(np.mean([r[k] for r in rows])) for k in METRICS}
