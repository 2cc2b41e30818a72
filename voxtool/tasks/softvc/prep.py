"""`voxtool prep softvc WAVS OUT`: audio -> the prepared dataset every softvc trainer reads.

Layout (pinned in the softvc interface note; read back with `voxtool.datasets.PreparedDataset`):

    OUT/dataset.json    format "voxtool-softvc-dataset", format_version 1, sample_rate 16000, unit_hop 320,
                        mel (MEL_16K_BSHALL), content / pitch_units / dynamics_units (null or {"path", "unit_dim"}),
                        stats (PitchDynStats.to_dict(): the pitch and dynamics bins), items, minutes, skipped
    OUT/train.txt, OUT/valid.txt     item paths relative to OUT (a seeded split)
    OUT/items/<relative path without suffix>.npz, N = len(audio) // 320 frames at 50 Hz:
        audio  float32 (T,) 16 kHz mono, silence-trimmed, T = 320 N
        mel    float32 (2N, 128) the 16 kHz vocoder's log-mel (hop 160: two frames per unit)
        f0     float32 (N,) Hz at the centre of each 320-sample frame, 0 = unvoiced
        rms    float32 (N,) linear RMS of each 320-sample frame
        units / pitch_units / dynamics_units  float32 (N, D): with --content / --pitch-units / --dynamics-units

Bad files (unreadable, too short after trimming, silent) are skipped with the reason (stderr and dataset.json).
Items are written atomically and dataset.json last, so an interrupted prep leaves no dataset that looks finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxtool.datasets import PrepReport
from voxtool.errors import BadInput
from voxtool.tasks.softvc.sources import Source, collect_sources  # re-exported: prep.collect_sources

FORMAT = "voxtool-softvc-dataset"
FORMAT_VERSION = 1
SAMPLE_RATE = 16000
UNIT_HOP = 320
MIN_SECONDS = 0.5  # after trimming: 25 units, enough for a training crop
SILENT_PEAK = 1e-4
F0_METHODS = ("harvest", "rmvpe")
TRIM_FRAME, TRIM_HOP = 2048, 512  # librosa.effects.trim's framing (hubert-pitdyn trims with it at 50 dB)


def trim_silence(audio: np.ndarray, top_db: float) -> np.ndarray:
    """(T,) -> the span from the first to the last frame whose RMS is within `top_db` of the loudest frame
    (librosa.effects.trim's rule); `top_db` <= 0 keeps everything."""
    if top_db <= 0 or len(audio) < TRIM_FRAME:
        return audio
    n = 1 + (len(audio) - TRIM_FRAME) // TRIM_HOP
    idx = np.arange(TRIM_FRAME)[None, :] + TRIM_HOP * np.arange(n)[:, None]
    rms = np.sqrt(np.mean(np.square(audio[idx], dtype=np.float64), axis=1))
    db = 20 * np.log10(np.maximum(rms, 1e-10) / max(float(rms.max()), 1e-10))
    loud = np.flatnonzero(db > -top_db)
    if not len(loud):
        return audio[:0]
    return audio[loud[0] * TRIM_HOP : min(len(audio), loud[-1] * TRIM_HOP + TRIM_FRAME)]


def frame_f0(audio: np.ndarray, method: str = "harvest", model: Any = None) -> np.ndarray:
    """(320 N,) 16 kHz -> (N,) f0 in Hz at each 320-sample frame's centre (0 = unvoiced), via voxtool.pitch at a
    10 ms hop (odd frames are the centres)."""
    from voxtool.pitch import estimate_f0

    n = len(audio) // UNIT_HOP
    if method not in F0_METHODS:
        raise BadInput(None, f"unknown f0 method {method!r} (choose {', '.join(F0_METHODS)})")
    _, f0, _ = estimate_f0(audio, SAMPLE_RATE, method=method, model=model, hop_ms=10.0)
    centres = np.asarray(f0[1::2][:n], dtype=np.float32)
    if len(centres) < n:  # an estimator that drops the last partial frame
        centres = np.pad(centres, (0, n - len(centres)))
    return np.where(np.isfinite(centres) & (centres > 0), centres, 0.0).astype(np.float32)


def frame_rms(audio: np.ndarray) -> np.ndarray:
    """(320 N,) -> (N,) float32 linear RMS per 320-sample frame."""
    n = len(audio) // UNIT_HOP
    frames = audio[: n * UNIT_HOP].reshape(n, UNIT_HOP).astype(np.float64)
    return np.sqrt(np.mean(frames**2, axis=1)).astype(np.float32)


@dataclass
class Encoders:
    """What every item shares: the mel, the pitch estimator and the optional HuBERT models (loaded once)."""

    log_mel: Any
    f0: str = "harvest"
    f0_model: Any = None  # a loaded voxtool.pitch model for "rmvpe"
    content: Any = None  # HubertSoft models (voxtool.encoders.hubert)
    pitch_units: Any = None
    dynamics_units: Any = None
    described: dict = field(default_factory=dict)  # dataset.json's content / pitch_units / dynamics_units


def prepare_item(path: Path, enc: Encoders, trim_db: float = 50.0) -> dict[str, np.ndarray]:
    """One audio file -> the item arrays of the module doc; BadInput with the reason when unusable."""
    import torch

    from voxtool.audio.io import load_audio

    audio = load_audio(path, sr=SAMPLE_RATE)
    if float(np.abs(audio).max()) < SILENT_PEAK:
        raise BadInput(path, "silent")
    audio = trim_silence(audio, trim_db)
    n = len(audio) // UNIT_HOP
    if n * UNIT_HOP < MIN_SECONDS * SAMPLE_RATE:
        raise BadInput(path, f"too short after trimming ({len(audio) / SAMPLE_RATE:.2f} s; at least "
                             f"{MIN_SECONDS:g} s needed)")
    audio = np.ascontiguousarray(audio[: n * UNIT_HOP], dtype=np.float32)
    with torch.inference_mode():
        mel = enc.log_mel(torch.from_numpy(audio)).numpy().T  # (2N, 128)
    if mel.shape[0] != 2 * n:
        raise BadInput(path, f"mel has {mel.shape[0]} frames for {n} units (expected {2 * n})")
    item = {"audio": audio, "mel": np.ascontiguousarray(mel, dtype=np.float32),
            "f0": frame_f0(audio, enc.f0, enc.f0_model), "rms": frame_rms(audio)}
    if enc.content is not None or enc.pitch_units is not None or enc.dynamics_units is not None:
        from voxtool.encoders.hubert import content_units

        for key, model in (("units", enc.content), ("pitch_units", enc.pitch_units),
                           ("dynamics_units", enc.dynamics_units)):
            if model is not None:
                units = np.asarray(content_units(model, audio), dtype=np.float32)[:n]
                if units.shape[0] != n:
                    raise BadInput(path, f"{key}: {units.shape[0]} frames for {n} (the encoder's hop is not 320)")
                item[key] = units
    return item


OWN_NAMES = {"items", "train.txt", "valid.txt", "dataset.json"}


def check_prep_out(out: Path, inputs: list) -> None:
    """OUT is new, empty, or a (possibly unfinished) softvc dataset, and holds no input (BadInput otherwise)."""
    from voxtool.datasets import read_json
    from voxtool.fileio import check_output_dir
    from voxtool.inputs import check_dataset_out

    check_dataset_out(out, [Path(p) for p in inputs if not any(ch in str(p) for ch in "*?[")])
    check_output_dir(out)
    if not out.is_dir():
        return
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    if (out / "dataset.json").is_file():
        meta = read_json(out / "dataset.json")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise BadInput(out, "output folder holds another kind of dataset; choose another folder")
    elif names - OWN_NAMES:
        raise BadInput(out, "output folder exists and is not a softvc dataset; choose an empty folder")


def load_encoders(content=None, pitch_units=None, dynamics_units=None, f0: str = "harvest", f0_model=None,
                  device: str = "cpu") -> Encoders:
    """The shared models of a prep run (BadInput naming a file that cannot be loaded)."""
    from voxtool.vocoders.mel import VocoderLogMel
    from voxtool.vocoders.settings import MEL_16K_BSHALL

    if f0 not in F0_METHODS:
        raise BadInput(None, f"--f0 {f0}: choose {', '.join(F0_METHODS)}")
    if f0 == "rmvpe" and f0_model is None:
        raise BadInput(None, "--f0 rmvpe needs --f0-model (an RMVPE checkpoint); --f0 harvest needs none")
    enc = Encoders(VocoderLogMel(MEL_16K_BSHALL), f0=f0)
    if f0_model is not None:
        if f0 != "rmvpe":
            raise BadInput(None, "--f0-model applies to --f0 rmvpe only")
        from voxtool.pitch.runtime import load_model

        enc.f0_model = load_model(f0_model, device=device)
    for key, spec in (("content", content), ("pitch_units", pitch_units), ("dynamics_units", dynamics_units)):
        if spec is None:
            enc.described[key] = None
            continue
        from voxtool.encoders.hubert import load_content_encoder

        model = load_content_encoder(spec, device=device)
        setattr(enc, key, model)
        enc.described[key] = {"path": str(spec), "unit_dim": int(model.unit_dim)}
    return enc


def prep_softvc(wavs: list[str | Path], out: str | Path, content=None, pitch_units=None, dynamics_units=None,
                f0: str = "harvest", f0_model=None, workers: int = 1, valid_fraction: float = 0.05, seed: int = 0,
                trim_db: float = 50.0, device: str = "cpu", advance=None, sources: list[Source] | None = None,
                encoders: Encoders | None = None) -> PrepReport:
    """Prepare `wavs` (files, folders, globs) into `out` (module doc) -> what was written and skipped.

    BadInput when no file is usable (after writing nothing that looks like a finished dataset)."""
    from voxtool import __version__
    from voxtool.datasets import split_names
    from voxtool.fileio import atomic_write, ensure_output_dir, write_text_atomic
    from voxtool.outputs import write_json
    from voxtool.prep_pool import map_items
    from voxtool.tasks.softvc.bins import PitchDynStats
    from voxtool.vocoders.settings import MEL_16K_BSHALL

    out = Path(out)
    sources = sources if sources is not None else collect_sources(list(wavs))
    enc = encoders or load_encoders(content, pitch_units, dynamics_units, f0, f0_model, device)
    report = PrepReport()
    check_prep_out(out, list(wavs) + [s.path for s in sources])
    ensure_output_dir(out)
    (out / "dataset.json").unlink(missing_ok=True)  # a re-run cut short must not look finished

    def one(src: Source):
        try:
            item = prepare_item(src.path, enc, trim_db)
        except BadInput as exc:
            return src, None, exc.problem if exc.where in (None, str(src.path)) else f"{exc.where}: {exc.problem}"
        rel = f"items/{src.rel}.npz"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / rel, "wb") as f:
            np.savez(f, **item)
        return src, (rel, len(item["audio"]), item["f0"], item["rms"]), None

    written = {}
    # one item is too small for intra-op threads: parallelism is across files (STFT, harvest release the GIL)
    for src, done, reason in map_items(one, sources, workers, kind="thread", ordered=True, advance=advance,
                                       torch_threads=1 if workers > 1 else None):
        if done is None:
            from voxtool.console import error_line

            report.skipped.append((str(src.path), reason))
            error_line(f"{src.path}: {reason} (skipped)")
        else:
            written[done[0]] = done[1:]
    if not written:
        first = f"; first: {report.skipped[0][0]}: {report.skipped[0][1]}" if report.skipped else ""
        raise BadInput(out, f"no usable audio ({len(report.skipped)} skipped{first})")
    stats = PitchDynStats.from_arrays([v[1] for v in written.values()], [v[2] for v in written.values()], f0)
    splits = split_names(list(written), valid_fraction, seed)
    lists: dict[str, list[str]] = {"train": [], "valid": []}
    for rel, (samples, _, _) in written.items():
        lists[splits[rel]].append(rel)
        report.written[splits[rel]] += 1
        report.seconds[splits[rel]] += samples / SAMPLE_RATE
    for split, names in lists.items():
        write_text_atomic(out / f"{split}.txt", "".join(n + "\n" for n in names))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "voxtool_version": __version__,
        "sample_rate": SAMPLE_RATE,
        "unit_hop": UNIT_HOP,
        "mel": MEL_16K_BSHALL.model_dump(mode="json"),
        **{k: enc.described.get(k) for k in ("content", "pitch_units", "dynamics_units")},
        "f0_method": f0,
        "trim_db": trim_db,
        "stats": stats.to_dict(),
        "items": sum(report.written.values()),
        "splits": dict(report.written),
        "minutes": {k: round(v / 60, 3) for k, v in report.seconds.items()},
        "skipped": [{"input": p, "reason": r} for p, r in report.skipped],
    }
    write_json(out / "dataset.json", meta, indent=2, trailing_newline=True)  # last: marks a finished dataset
    return report
