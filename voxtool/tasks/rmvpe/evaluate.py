"""mir_eval melody metrics (RPA, RCA, OA, VR, VFA) of predicted vs reference f0 tracks."""

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


def evaluate_dataset(dataset, model, threshold: float | None = None, max_items: int = 0, max_seconds: float = 0.0,
                     **predict_kwargs) -> tuple[dict, list[dict]]:
    """Predict every item of a ``PitchDataset`` (full mixtures) -> (mean metrics, per-file rows with 'name')."""
    from voxtool.tasks.rmvpe.data import validation_audio
    from voxtool.tasks.rmvpe.infer import predict

    hop = model.mel_cfg.hop_length
    sr = model.mel_cfg.sample_rate
    rows = []
    count = len(dataset) if not max_items else min(max_items, len(dataset))
    for i in range(count):
        audio, ref = validation_audio(dataset[i], max_seconds, hop)
        track = predict(audio, sr, model, threshold=threshold, **predict_kwargs)
        rows.append({"name": dataset.name(i), **melody_metrics(ref, track.f0, hop / sr)})
    return mean_metrics(rows), rows
