"""Mel -> waveform with a HiFi-GAN generator.

Layers (torchcrepe style): `load_model(path)` -> `predict(mel, vocoder)` -> `predict_from_file(npy, vocoder)` ->
`predict_from_files_to_files(jobs, vocoder)`. `load_model` accepts a voxtool `model.pt` or run folder of
`train hifigan`, or a published generator checkpoint (bshall hub files, jik876 `generator_v1`, DiffVC's vocoder,
training checkpoints): its config then comes from `preset` (`hifigan-16k`, `hifigan-22k`, ...) or, without one,
from the checkpoint's layout and n_mels (a published mel that fits). Weight norm is removed; inference runs under
`torch.inference_mode`; the output is clamped to [-1, 1]. `evaluate_dataset(model, data, split)` scores a vocoder
on a prepared split -> `voxtool.evaluation.EvalResult`: mel L1 and, with `quality=True`, copy-synthesis MCD (DTW),
PESQ (wideband, 16 kHz), STOI and f0 RMSE in cents (`metrics.py`).

`model="griffinlim"` (with a `preset` for the mel settings, default `hifigan-16k`) is Griffin-Lim
(`voxtool.vocoders.griffinlim`): no weights, the same interface. Long mels are synthesised in overlapping chunks
(`chunk_frames`, default 500; 0 = whole input) cross-faded as `voxtool.vocoders.streaming` describes, so memory
stays flat in the duration; `precision` "16"/"bf16" runs the generator under autocast (accelerators).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from voxtool.errors import BadInput
from voxtool.vocoders.loading import Vocoder, is_griffinlim
from voxtool.vocoders.mel import check_mel_tensor
from voxtool.vocoders.streaming import DEFAULT_CHUNK_FRAMES

SUBTYPES = {"pcm16": "PCM_16", "float": "FLOAT"}


def load_model(path: str | Path, preset: str | None = None, device: str = "cpu",
               chunk_frames: int = DEFAULT_CHUNK_FRAMES, precision: str = "32") -> Vocoder:
    """A voxtool model.pt / run folder, a published generator checkpoint, or "griffinlim" (see the module doc);
    `preset` names the generator layout and mel of a published checkpoint (and Griffin-Lim's mel)."""
    from voxtool.vocoders.loading import load_vocoder

    mel = generator = None
    if preset is not None or is_griffinlim(path):
        from voxtool.presets import load_config
        from voxtool.tasks.hifigan.config import HifiganConfig

        config = load_config(HifiganConfig, preset or "hifigan-16k", task="hifigan")
        mel, generator = config.mel, config.generator
    return load_vocoder(path, mel=mel, generator=generator, device=device, chunk_frames=chunk_frames,
                        precision=precision)


def predict(mel: np.ndarray | torch.Tensor, vocoder: Vocoder, where=None) -> np.ndarray:
    """Log-mel (n_mels, T) or (B, n_mels, T) -> waveform float32 (T * hop,) or (B, T * hop) in [-1, 1]."""
    x = torch.as_tensor(np.asarray(mel, dtype=np.float32) if not torch.is_tensor(mel) else mel).float()
    check_mel_tensor(x, vocoder.mel, where)
    single = x.dim() == 2
    wav = np.clip(vocoder.synthesize(x[None] if single else x), -1.0, 1.0)  # (B, T * hop)
    return wav[0] if single else wav


def read_mel(path: str | Path, n_mels: int | None = None) -> np.ndarray:
    """A `.npy` mel (n_mels, T) (a leading batch axis of 1 is dropped) -> float32; BadInput when unusable."""
    try:
        mel = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise BadInput(path, "file not found") from None
    except Exception as exc:  # ValueError (pickled/object arrays, bad header), OSError, EOFError
        raise BadInput(path, f"not a readable .npy array ({type(exc).__name__})") from None
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if not (np.issubdtype(mel.dtype, np.floating) or np.issubdtype(mel.dtype, np.integer)):
        raise BadInput(path, f"mel has dtype {mel.dtype}; a numeric (n_mels, frames) array is expected")
    mel = mel.astype(np.float32)
    if mel.ndim == 2 and not np.all(np.isfinite(mel)):
        raise BadInput(path, "mel holds NaN or infinite values")
    return mel


def predict_from_file(path: str | Path, vocoder: Vocoder) -> np.ndarray:
    """`.npy` mel (n_mels, T) -> waveform (T * hop,)."""
    return predict(read_mel(path), vocoder, where=path)


def predict_from_files_to_files(jobs: list, vocoder: Vocoder, subtype: str = "pcm16", advance=None,
                                fail_fast: bool = True, out: Path | None = None):
    """Every `Job(src .npy, dst .wav)` with one loaded vocoder; returns `voxtool.batch.BatchResults` (a bad mel is
    one `error: <file>: <problem>` line and the batch goes on unless `fail_fast`). Fixes the process's mmap
    threshold first (`voxtool.runtime.limit_mmap_threshold`: without it streamed synthesis creeps up window after
    window, e.g. +334 MB instead of +88 MB for 60 s at 16 kHz)."""
    from voxtool.audio.io import save_audio
    from voxtool.batch import run_jobs
    from voxtool.runtime import limit_mmap_threshold

    if subtype not in SUBTYPES:
        raise BadInput(None, f"unknown sample format '{subtype}' (choose {', '.join(SUBTYPES)})")
    limit_mmap_threshold()

    def work(job) -> dict:
        wav = predict_from_file(job.src, vocoder)
        save_audio(job.dst, wav, vocoder.sample_rate, subtype=SUBTYPES[subtype])
        return {"input": str(job.src), "output": str(job.dst), "samples": int(len(wav)),
                "seconds": round(len(wav) / vocoder.sample_rate, 4)}

    return run_jobs(jobs, work, fail_fast=fail_fast, advance=advance, out=out)


def evaluate_dataset(model, data: str | Path, split: str = "valid", *, device: str = "cpu", limit: int = 0,
                     advance=None, preset: str | None = None, max_seconds: float = 0.0, quality: bool = True):
    """Copy synthesis (the item's stored mel -> vocoder -> wav, compared with the item's wav) on a prepared split
    -> `voxtool.evaluation.EvalResult`: per item and as means, `mel_l1` (full-band loss mels, as `valid/mel_l1` in
    training) and, with `quality`, `mcd` (dB, DTW), `pesq` (wideband), `stoi` and `f0_rmse_cents` (see
    `metrics.py`; a score that is undefined for an item, e.g. no voiced frame, is NaN there and left out of the
    mean). `model`: a path / run folder / "griffinlim" (with `preset` for a published checkpoint) or a loaded
    `Vocoder`; `max_seconds` crops each item (0 = whole). A dataset of other mel settings is a BadInput."""
    from voxtool.evaluation import EvalResult
    from voxtool.tasks.hifigan.data import VocoderDataset
    from voxtool.tasks.hifigan.metrics import QUALITY_METRICS, quality_scores, wav_mel_l1
    from voxtool.vocoders.mel import VocoderLogMel, check_mel_settings

    vocoder = model if isinstance(model, Vocoder) else load_model(model, preset=preset, device=device)
    dataset = VocoderDataset(Path(data), split, vocoder.mel.n_mels, vocoder.hop_length)
    check_mel_settings(vocoder.mel, dataset.meta["mel"], where=Path(data) / "dataset.json")
    loss_mel = VocoderLogMel(vocoder.mel.for_loss()).to(vocoder.device)
    max_frames = int(max_seconds * vocoder.sample_rate) // vocoder.hop_length
    rows = []
    for i in range(len(dataset) if not limit else min(limit, len(dataset))):
        wav, mel = dataset[i]
        if max_frames:
            mel, wav = mel[:, :max_frames], wav[: max_frames * vocoder.hop_length]
        fake = vocoder.synthesize(torch.from_numpy(mel)[None])[0]  # unclamped, as in training validation
        row = {"name": dataset.paths[i].stem, "mel_l1": wav_mel_l1(fake, wav, loss_mel, vocoder.device)}
        if quality:
            row.update(quality_scores(wav, np.clip(fake, -1.0, 1.0), vocoder.sample_rate))
        row["seconds"] = len(wav) / vocoder.sample_rate
        rows.append(row)
        if advance:
            advance(1)
    names = ("mel_l1", *QUALITY_METRICS) if quality else ("mel_l1",)
    metrics = {}
    for name in names:
        values = [r[name] for r in rows if np.isfinite(r[name])]
        metrics[name] = float(np.mean(values)) if values else float("nan")
    return EvalResult(metrics, rows)
