"""rmvpe inference ladder and evaluation: the pitch layer's model and chunked predict, plus the task's files.

    load_model(path, device="cpu")            voxtool.pitch.runtime (model.pt / run folder, rmvpe.pt, .onnx)
    predict(audio, sr, model, ...)            voxtool.pitch.rmvpe: (N,) -> PitchTrack (f0, confidence (T,))
    predict_from_file(path, model, ...)       reads the file in blocks (flat memory)
    predict_from_files_to_files(jobs, model, fmt=..., out=..., advance=...)   CSV / NPY / JSON per input
    evaluate_dataset(model, data, split="valid", ...) -> EvalResult: mir_eval melody metrics per file and mean
    score_split(model, data, split="valid", ...) -> VoicingSweep: the same scores at any voicing threshold

File formats: CSV `time,f0[,confidence]` (%.3f, %.3f, %.4f); NPY float32 (T, 2|3) (time, f0[, confidence]);
JSON {"hop_s", "time", "f0"[, "confidence"]} rounded to 6 / 3 / 4 decimals.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from voxtool.evaluation import EvalResult
from voxtool.outputs import OutputFormats, write_csv, write_json, write_npy
from voxtool.pitch.rmvpe import PitchTrack, predict, predict_from_file
from voxtool.pitch.runtime import PitchModel, load_model
from voxtool.runtime import limit_mmap_threshold
from voxtool.tasks.rmvpe.metrics import VoicingSweep, mean_metrics

__all__ = ["FORMATS", "load_model", "predict", "predict_from_file", "predict_from_files_to_files", "write_track",
           "evaluate_dataset", "score_split"]  # fmt: skip

FORMATS = OutputFormats(("csv", "npy", "json"))


def write_track(path: Path, track: PitchTrack, fmt: str = "csv", with_confidence: bool = False) -> None:
    """CSV `time,f0[,confidence]`; NPY (T, 2|3) (time, f0[, confidence]); JSON with arrays (atomic writes)."""
    fmt = FORMATS.check(fmt)
    columns = [track.times, track.f0] + ([track.confidence] if with_confidence else [])
    if fmt == "csv":
        header = ["time", "f0"] + (["confidence"] if with_confidence else [])
        write_csv(path, header, zip(*columns), ["{:.3f}", "{:.3f}"] + (["{:.4f}"] if with_confidence else []))
    elif fmt == "npy":
        write_npy(path, np.stack(columns, axis=1))
    else:
        doc = {"hop_s": track.hop_s, "time": np.round(track.times, 6).tolist(), "f0": np.round(track.f0, 3).tolist()}
        if with_confidence:
            doc["confidence"] = np.round(track.confidence, 4).tolist()
        write_json(path, doc)


def predict_from_files_to_files(
    jobs: list,
    model: PitchModel,
    fmt: str = "csv",
    hop_ms: float | None = None,
    with_confidence: bool = False,
    advance: Callable[..., None] | None = None,
    fail_fast: bool = True,
    out: Path | None = None,
    **kwargs,
) -> list[dict]:
    """Run every `Job(src, dst)` with one loaded model; returns one summary dict per file.

    `fail_fast=False` goes on past a failing input (reported on stderr, an entry with "error" in the returned
    `voxtool.batch.BatchResults`); `out` only names the destination when the batch is interrupted; `advance(1)`
    after each file. Fixes the process's mmap threshold first (`voxtool.runtime.limit_mmap_threshold`: flat
    memory over many long files)."""
    from voxtool.batch import run_jobs

    limit_mmap_threshold()

    def work(job) -> dict:
        track = predict_from_file(job.src, model, **kwargs)
        if hop_ms:
            track = track.resampled(hop_ms / 1000.0)
        write_track(job.dst, track, fmt, with_confidence)
        voiced = track.f0 > 0
        return {
            "input": str(job.src),
            "output": str(job.dst),
            "frames": int(len(track.f0)),
            "voiced": round(float(voiced.mean()) if len(voiced) else 0.0, 4),
            "median_f0": round(float(np.median(track.f0[voiced])) if voiced.any() else 0.0, 2),
        }

    return run_jobs(jobs, work, fail_fast=fail_fast, advance=advance, out=out)


def score_split(
    model: PitchModel,
    data: Path,
    split: str = "valid",
    *,
    limit: int = 0,
    advance: Callable[..., None] | None = None,
    max_seconds: float = 0.0,
    **predict_kwargs,
) -> VoicingSweep:
    """Decode every item of a prepared split (full mixtures) once, before the voicing decision -> a
    `VoicingSweep` that scores the split at any threshold. `limit` items (0 = all); `max_seconds` cuts each item
    (0 = whole files); `predict_kwargs` go to `predict` (chunking, decoder; not the threshold)."""
    from voxtool.tasks.rmvpe.data import PitchDataset, validation_audio
    from voxtool.tasks.rmvpe.metrics import ScoredTrack, VoicingSweep

    hop = model.mel_cfg.hop_length
    sr = model.mel_cfg.sample_rate
    dataset = PitchDataset(data, split, hop)
    tracks = []
    count = len(dataset) if not limit else min(limit, len(dataset))
    for i in range(count):
        audio, ref = validation_audio(dataset[i], max_seconds, hop)
        track = predict(audio, sr, model, threshold=0.0, **predict_kwargs)  # every frame's pitch and confidence
        tracks.append(ScoredTrack(dataset.name(i), ref, track.f0, track.confidence))
        if advance:
            advance(1)
    return VoicingSweep(tracks, hop / sr)


def evaluate_dataset(
    model: str | Path | PitchModel,
    data: Path,
    split: str = "valid",
    *,
    device: str = "cpu",
    limit: int = 0,
    advance: Callable[..., None] | None = None,
    threshold: float | None = None,
    max_seconds: float = 0.0,
    **predict_kwargs,
) -> EvalResult:
    """Predict every item of a prepared split (full mixtures) -> EvalResult(mean metrics, per-file rows with
    'name' and the five mir_eval scores) at `threshold` (None = the model's default). `model`: a path (loaded on
    `device`) or a loaded model; `limit` items (0 = all); `max_seconds` cuts each item (0 = whole files);
    `predict_kwargs` go to `predict`. `score_split` scores several thresholds from one pass."""
    if isinstance(model, (str, Path)):
        model = load_model(model, device=device)
    sweep = score_split(model, data, split, limit=limit, advance=advance, max_seconds=max_seconds, **predict_kwargs)
    rows = sweep.rows(model.threshold if threshold is None else threshold)
    return EvalResult(mean_metrics(rows), rows)
