"""Scoring a prepared softvc split: `evaluate_dataset(model, data, split)` -> `voxtool.evaluation.EvalResult` with
the acoustic model's held-out mel L1 (free-running generation, as conversion runs it) and the f0 correlation of the
vocoded output with the item's f0 (what `voxtool eval softvc` prints).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from voxtool.errors import BadInput
from voxtool.tasks.softvc.infer import Converter
from voxtool.tasks.softvc.prep import SAMPLE_RATE, UNIT_HOP, frame_f0


def evaluate_dataset(model, data: str | Path, split: str = "valid", *, device: str = "cpu", limit: int = 0,
                     advance=None, vocoder: str | Path = "griffinlim", max_units: int = 500,
                     f0_correlation: bool = True):
    """Score the acoustic model on a prepared split (`prep softvc --content`) -> `EvalResult`:
    `mel_l1`: mean |generated - real| log-mel over the item (free-running generation, as conversion runs it);
    `f0_corr`: Pearson correlation of the vocoded output's log-f0 (WORLD harvest) with the item's f0 on frames
    voiced in both (NaN when fewer than 10 such frames; left out of the mean). `model`: a path / run folder or
    a loaded `Converter` (its vocoder is used); `max_units` crops each item (0 = whole)."""
    from voxtool.datasets import PreparedDataset
    from voxtool.evaluation import EvalResult
    from voxtool.tasks.softvc.model import conditioning_features
    from voxtool.tasks.softvc.prep import FORMAT, FORMAT_VERSION

    ds = PreparedDataset(data, format=FORMAT, task="softvc", prep="voxtool prep softvc", version_key="format_version",
                         max_version=FORMAT_VERSION)
    if isinstance(model, Converter):
        acoustic, meta, voc, dev = model.acoustic, model.meta, model.vocoder, model.device
    else:
        from voxtool.devices import resolve_device
        from voxtool.tasks.softvc.checkpoint import load_acoustic
        from voxtool.vocoders.loading import load_vocoder

        dev = resolve_device(device).torch
        acoustic, meta = load_acoustic(model, dev)
        voc = load_vocoder(vocoder, mel=meta.mel, device=str(dev)) if f0_correlation else None
    stats = meta.stats or ds.meta.get("stats")
    rows = []
    paths = ds.paths(split, required=True)
    for path in paths[:limit] if limit else paths:
        with np.load(path) as z:
            item = {k: z[k] for k in z.files}
        if "units" not in item:
            raise BadInput(ds.meta_path, "the dataset has no units (prepare it with --content HUBERT)")
        n = len(item["units"]) if not max_units else min(max_units, len(item["units"]))
        item = {k: (v[: 2 * n] if k == "mel" else v[: n * UNIT_HOP] if k == "audio" else v[:n])
                for k, v in item.items()}
        try:
            x = conditioning_features(item, meta.conditioning, stats)
        except ValueError as exc:
            raise BadInput(path, str(exc)) from None
        mel = acoustic.generate(torch.from_numpy(x).to(dev)[None])[0].float().cpu()  # (2N, 128)
        row = {"name": path.relative_to(ds.root).as_posix(),
               "mel_l1": float((mel - torch.from_numpy(item["mel"])).abs().mean())}
        if f0_correlation:
            wav = voc.synthesize(mel.T[None])[0]
            row["f0_corr"] = f0_correlation_of(frame_f0(np.clip(wav, -1, 1).astype(np.float32)), item["f0"])
        row["seconds"] = n * UNIT_HOP / SAMPLE_RATE
        rows.append(row)
        if advance:
            advance(1)
    names = ("mel_l1", "f0_corr") if f0_correlation else ("mel_l1",)
    metrics = {}
    for name in names:
        values = [r[name] for r in rows if np.isfinite(r[name])]
        metrics[name] = float(np.mean(values)) if values else float("nan")
    return EvalResult(metrics, rows)


def f0_correlation_of(f0_out: np.ndarray, f0_ref: np.ndarray, min_frames: int = 10) -> float:
    """Pearson correlation of log-f0 on frames voiced in both (N,) tracks; NaN with fewer than `min_frames`."""
    n = min(len(f0_out), len(f0_ref))
    a, b = np.asarray(f0_out[:n], np.float64), np.asarray(f0_ref[:n], np.float64)
    both = (a > 0) & (b > 0)
    if both.sum() < min_frames or np.std(np.log(a[both])) == 0 or np.std(np.log(b[both])) == 0:
        return float("nan")
    return float(np.corrcoef(np.log(a[both]), np.log(b[both]))[0, 1])
