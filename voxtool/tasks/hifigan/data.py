"""Prepared vocoder datasets: the `prep hifigan` writer, the reader and aligned random segments.

A prepared dataset is a folder with
- `dataset.json`: format, the vocoder's mel settings (`mel`, the `MelSettings` fields), the loudness
  normalisation used, item counts and minutes, the voxtool version;
- `train.txt` / `valid.txt`: item paths relative to the folder (a seeded split, `--valid-fraction`);
- `skipped.tsv`: `path<TAB>reason` of every source that was left out;
- `items/<name>.npz` per clip: `wav` float32 (N,) at the vocoder's rate, loudness-normalised and cut to
  N = T * hop samples, and `mel` float32 (n_mels, T), the vocoder's log-mel of exactly that wav.

Ground-truth-aligned (GTA) fine-tuning (`prep hifigan --mels-from DIR`): each wav is paired with
`DIR/<its path relative to the input folder, suffix .npy>` (for a file given directly: `DIR/<stem>.npy`), a log-mel
(n_mels, T) predicted by an acoustic model from that very utterance; it is stored as the item's `mel` instead of the
computed one, so the vocoder learns to turn the acoustic model's (smoothed) mels into the real waveform. A pair is
skipped (skipped.tsv, with the reason) when the .npy is missing or unreadable, has another n_mels, or has another
frame count than the wav's N // hop; dataset.json then records `"gta_mels": DIR`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from voxtool.datasets import PrepReport, split_names
from voxtool.errors import BadInput

FORMAT = "voxtool-hifigan-dataset"


# ---------------------------------------------------------------------------------------------------------
# Prep
# ---------------------------------------------------------------------------------------------------------


class Source(NamedTuple):
    path: Path  # the audio file
    name: str  # item name, from the relative path
    rel: str  # relative path without suffix (posix), for --mels-from pairing


def collect_audio(inputs: list[Path]) -> list[Source]:
    """Audio files (files, or directories searched recursively) -> `Source(path, item name, relative stem)`."""
    from voxtool.audio.io import is_audio_file

    found: list[Source] = []
    for path in inputs:
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and is_audio_file(p))
            if not files:
                raise BadInput(path, "directory holds no audio files")
            for p in files:
                rel = p.relative_to(path).with_suffix("")
                found.append(Source(p, "_".join(rel.parts), rel.as_posix()))
        elif path.is_file():
            found.append(Source(path, path.stem, path.stem))
        else:
            raise BadInput(path, "no such file or directory")
    return found


def normalize_loudness(wav: np.ndarray, mode: str, peak_level: float = 0.95, rms_dbfs: float = -20.0) -> np.ndarray:
    """(N,) -> (N,) scaled by `mode` ("peak" | "rms" | "none", see config.py); the peak never exceeds peak_level
    after "rms" either (no clipping)."""
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if mode == "none" or peak == 0.0:
        return wav.astype(np.float32)
    if mode == "peak":
        gain = peak_level / peak
    else:
        rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
        gain = min(10 ** (rms_dbfs / 20) / rms, peak_level / peak)
    return (wav * gain).astype(np.float32)


def read_gta_mel(path: Path, n_mels: int, frames: int) -> np.ndarray:
    """A predicted mel for GTA prep: float32 (n_mels, frames); BadInput naming the file when it does not fit."""
    if not path.is_file():
        raise BadInput(path, "no predicted mel (.npy) for this wav in --mels-from")
    try:
        mel = np.load(path, allow_pickle=False)
    except Exception as exc:  # ValueError, OSError, EOFError of a garbled file
        raise BadInput(path, f"not a readable .npy array ({type(exc).__name__})") from None
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.ndim != 2 or not np.issubdtype(mel.dtype, np.floating):
        raise BadInput(path, f"expected a float (n_mels, frames) array, got {mel.dtype} {mel.shape}")
    if mel.shape[0] != n_mels:
        raise BadInput(path, f"predicted mel has {mel.shape[0]} mels; the vocoder takes {n_mels}")
    if mel.shape[1] != frames:
        raise BadInput(path, f"predicted mel has {mel.shape[1]} frames; the wav has {frames} (samples // hop)")
    if not np.all(np.isfinite(mel)):
        raise BadInput(path, "predicted mel holds NaN or infinite values")
    return np.ascontiguousarray(mel, dtype=np.float32)


def prepare_item(path: Path, config, log_mel, gta_mel: Path | None = None) -> dict[str, np.ndarray]:
    """One audio file -> {"wav": (T*hop,), "mel": (n_mels, T)}; BadInput with the reason when unusable. With
    `gta_mel` the mel is read from that .npy (checked against the wav) instead of computed."""
    import torch

    from voxtool.audio.io import load_audio

    mel_cfg, data = config.mel, config.data
    wav = load_audio(path, sr=mel_cfg.sample_rate)
    if not np.all(np.isfinite(wav)):
        raise BadInput(path, "audio holds NaN or infinite samples")
    seconds = len(wav) / mel_cfg.sample_rate
    if seconds < max(data.min_seconds, mel_cfg.n_fft / mel_cfg.sample_rate):
        raise BadInput(path, f"too short ({seconds:.3f} s; at least {data.min_seconds:g} s needed)")
    if float(np.abs(wav).max()) < 1e-6:
        raise BadInput(path, "silent")
    wav = normalize_loudness(wav, data.normalize, data.peak_level, data.rms_dbfs)
    frames = len(wav) // mel_cfg.hop_length
    wav = np.ascontiguousarray(wav[: frames * mel_cfg.hop_length])  # exactly T * hop samples for T frames
    if gta_mel is not None:
        return {"wav": wav, "mel": read_gta_mel(gta_mel, mel_cfg.n_mels, frames)}
    with torch.inference_mode():
        mel = log_mel(torch.from_numpy(wav)).numpy().astype(np.float32)
    if mel.shape != (mel_cfg.n_mels, frames):  # the published settings give N // hop frames; others may not
        raise BadInput(path, f"mel settings give {mel.shape[1]} frames for {frames} hops; use an uncentred mel "
                             "with pad = (n_fft - hop) / 2")
    return {"wav": wav, "mel": mel}


def write_dataset(sources: list[Source], out: Path, config, valid_fraction: float, seed: int,
                  advance=None, mels_from: Path | None = None) -> PrepReport:
    """Write every usable source into `out` (see the module doc); unusable ones go to skipped.tsv with the reason.
    BadInput when nothing is usable (after writing skipped.tsv, so the reasons can be read). `mels_from`: GTA
    mels (see the module doc)."""
    from voxtool import __version__
    from voxtool.fileio import atomic_write, ensure_output_dir, write_text_atomic
    from voxtool.outputs import write_json
    from voxtool.vocoders.mel import VocoderLogMel

    report = PrepReport()
    ensure_output_dir(out)
    (out / "items").mkdir(parents=True, exist_ok=True)
    log_mel = VocoderLogMel(config.mel)
    used: set[str] = set()
    written: list[tuple[str, float]] = []
    for path, name, rel in sources:
        gta = Path(mels_from) / f"{rel}.npy" if mels_from is not None else None
        try:
            arrays = prepare_item(path, config, log_mel, gta)
        except BadInput as exc:
            reason = exc.problem if exc.where in (None, str(path)) else f"{exc.where}: {exc.problem}"
            report.skipped.append((str(path), reason))
            if advance:
                advance(1)
            continue
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "item"
        while name in used:
            name += "_"
        used.add(name)
        rel = f"items/{name}.npz"
        with atomic_write(out / rel, "wb") as f:
            np.savez(f, **arrays)
        written.append((rel, len(arrays["wav"]) / config.mel.sample_rate))
        if advance:
            advance(1)
    write_text_atomic(out / "skipped.tsv", "path\treason\n" + "".join(f"{p}\t{r}\n" for p, r in report.skipped))
    if not written:
        raise BadInput(out, f"no usable audio ({len(report.skipped)} skipped; reasons in {out / 'skipped.tsv'})")
    splits = split_names([rel for rel, _ in written], valid_fraction, seed)
    lists: dict[str, list[str]] = {"train": [], "valid": []}
    for rel, seconds in written:
        lists[splits[rel]].append(rel)
        report.written[splits[rel]] += 1
        report.seconds[splits[rel]] += seconds
    for split, names in lists.items():
        write_text_atomic(out / f"{split}.txt", "".join(n + "\n" for n in names))
    meta = {
        "format": FORMAT,
        "voxtool_version": __version__,
        "mel": config.mel.model_dump(mode="json"),
        "normalize": config.data.normalize,
        "peak_level": config.data.peak_level,
        "rms_dbfs": config.data.rms_dbfs,
        "items": report.written,
        "minutes": {k: round(v / 60, 3) for k, v in report.seconds.items()},
        "skipped": len(report.skipped),
    }
    if mels_from is not None:
        meta["gta_mels"] = str(mels_from)
    write_json(out / "dataset.json", meta, indent=2, trailing_newline=True)  # last: marks a finished dataset
    return report


# ---------------------------------------------------------------------------------------------------------
# Reading and sampling
# ---------------------------------------------------------------------------------------------------------


def open_dataset(root: Path):
    """The prepared folder as a `voxtool.datasets.PreparedDataset` (the shared reader: dataset.json, split lists,
    entries checked to stay inside the folder); BadInput when it is no hifigan dataset or has no mel settings."""
    from voxtool.datasets import PreparedDataset

    ds = PreparedDataset(root, format=FORMAT, task="hifigan", prep="voxtool prep hifigan", splits=("train", "valid"))
    if not isinstance(ds.meta.get("mel"), dict):
        raise BadInput(ds.meta_path, "not a hifigan dataset (no mel settings)")
    return ds


def read_meta(root: Path) -> dict:
    """The checked dataset.json of a prepared folder (see `open_dataset`)."""
    return open_dataset(root).meta


@lru_cache(maxsize=512)
def read_item(path: Path, n_mels: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """One `.npz` -> (wav (T*hop,), mel (n_mels, T)) float32, checked; BadInput naming the file otherwise.
    Cached: small datasets are read once (the arrays are never written to)."""
    if not path.is_file():
        raise BadInput(path, "listed in the split but missing; re-run prep")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "wav" not in z.files or "mel" not in z.files:
                raise BadInput(path, "dataset item lacks the 'wav' or 'mel' array; re-run prep")
            wav, mel = z["wav"].astype(np.float32), z["mel"].astype(np.float32)
    except BadInput:
        raise
    except Exception as exc:  # BadZipFile, EOFError, OSError, ValueError (object arrays), ...
        raise BadInput(path, f"unreadable dataset item ({type(exc).__name__})") from None
    if wav.ndim != 1 or mel.ndim != 2 or mel.shape[0] != n_mels or len(wav) != mel.shape[1] * hop:
        raise BadInput(path, f"wav {wav.shape} and mel {mel.shape} do not fit {n_mels} mels at hop {hop}")
    return wav, mel


class VocoderDataset:
    """A prepared split; items are read on first use and kept (see `read_item`)."""

    def __init__(self, root: Path, split: str, n_mels: int, hop: int):
        dataset = open_dataset(root)
        self.meta = dataset.meta
        self.paths: list[Path] = dataset.paths(split, required=True)
        self.n_mels, self.hop = n_mels, hop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return read_item(self.paths[index], self.n_mels, self.hop)


def random_segment(wav: np.ndarray, mel: np.ndarray, frames: int, hop: int, floor: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An aligned random crop: mel (n_mels, frames) and its wav (frames * hop,). Shorter items are padded at the
    end with silence: zero samples and the log floor in the mel."""
    total = mel.shape[1]
    if total >= frames:
        start = int(rng.integers(0, total - frames + 1))
        return mel[:, start:start + frames], wav[start * hop:(start + frames) * hop]
    mel = np.pad(mel, ((0, 0), (0, frames - total)), constant_values=np.float32(np.log(floor)))
    return mel, np.pad(wav, (0, (frames - total) * hop))
