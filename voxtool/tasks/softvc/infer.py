"""Voice conversion with Soft-VC: source audio -> HuBERT-Soft units (+ pitch/dynamics) -> acoustic model -> vocoder.

Ladder (torchcrepe style): `load_model(model, content, vocoder)` -> `Converter`; `predict(audio, sr, converter,
key)` -> (wav, 16000); `predict_from_file(path, converter)`; `predict_from_files_to_files(jobs, converter)` (one
error line per bad file, the batch goes on). Scoring a prepared split is `evaluate.evaluate_dataset`.

Per piece of audio (`chunking.py`: long inputs go in pieces cut at silences, each with context, cross-faded, so
memory is flat in the duration):
- units (N, 256) from the content HuBERT (`voxtool.encoders.hubert.content_units`), N = samples // 320;
- "explicit": f0 at each unit frame's centre (`prep.frame_f0`: harvest, or RMVPE with a model) and frame RMS,
  exactly as prep computed them for training; `--key N` moves the log-f0 input by N semitones
  (`model.conditioning_features(..., key_shift=N)`);
- "pitdyn": the pitch and dynamics HuBERTs' soft units; `--key N` shifts the audio the *pitch* HuBERT hears by N
  semitones with WORLD (`voxtool.pitch.world.pitch_shift_world`, spectral envelope kept), because its 256-d output
  is a continuous vector with no semitone axis to add to; the content and dynamics streams hear the source as is;
- "none": no pitch input, so a key shift is refused;
- the acoustic model generates (2N, 128) log-mels, the vocoder (`voxtool.vocoders.loading.load_vocoder`: a hifigan
  model, a published 16 kHz generator, or Griffin-Lim) makes 320 N samples at 16 kHz.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxtool.errors import BadInput
from voxtool.tasks.softvc import chunking
from voxtool.tasks.softvc.prep import F0_METHODS, SAMPLE_RATE, UNIT_HOP, frame_f0, frame_rms

MAX_KEY = 24
SUBTYPES = {"pcm16": "PCM_16", "float": "FLOAT"}


@dataclass
class Converter:
    """Every model of the chain, loaded once, and how pieces are cut. `timings` adds up seconds per stage
    (content, f0, acoustic, vocoder) over every call, for benchmarks."""

    acoustic: Any  # voxtool.tasks.softvc.model.AcousticModel (eval)
    meta: Any  # voxtool.tasks.softvc.checkpoint.AcousticMeta
    content: Any  # voxtool.encoders.hubert.HubertSoft
    vocoder: Any  # voxtool.vocoders.loading.Vocoder
    device: torch.device
    pitch_units: Any = None
    dynamics_units: Any = None
    f0_method: str = "harvest"
    f0_model: Any = None
    min_seconds: float = chunking.DEFAULT_MIN_SECONDS
    max_seconds: float = chunking.DEFAULT_MAX_SECONDS
    context_seconds: float = chunking.DEFAULT_CONTEXT_SECONDS
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("content", "f0", "acoustic",
                                                                             "vocoder"), 0.0))

    @property
    def conditioning(self) -> str:
        return self.meta.conditioning

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def description(self) -> str:
        return (f"conditioning {self.conditioning}, content units {self.content.unit_dim}-d, "
                f"vocoder {self.vocoder.description}")


def check_key(key: float, conditioning: str) -> None:
    """BadInput unless `key` semitones is in range and the model has a pitch input to shift."""
    if not -MAX_KEY <= key <= MAX_KEY:
        raise BadInput(None, f"--key {key:g}: choose -{MAX_KEY} to {MAX_KEY} semitones")
    if key and conditioning == "none":
        raise BadInput(None, "--key needs a model trained with --conditioning explicit or pitdyn; this model's "
                             "conditioning is 'none' (it takes no pitch input)")


def load_model(model: str | Path, content: str | Path, vocoder: str | Path = "griffinlim",
               pitch_units: str | Path | None = None, dynamics_units: str | Path | None = None,
               device: str = "cpu", f0: str = "harvest", f0_model: str | Path | None = None) -> Converter:
    """The acoustic model (voxtool softvc model.pt / run folder / published file), the content HuBERT, the vocoder,
    and for "pitdyn" the two stream HuBERTs; every mismatch between them is a BadInput naming the file."""
    from voxtool.devices import resolve_device
    from voxtool.encoders.hubert import load_content_encoder
    from voxtool.tasks.softvc.checkpoint import load_acoustic
    from voxtool.vocoders.loading import load_vocoder

    dev = resolve_device(device).torch
    if f0 not in F0_METHODS:
        raise BadInput(None, f"--f0 {f0}: choose {', '.join(F0_METHODS)}")
    if f0 == "rmvpe" and f0_model is None:
        raise BadInput(None, "--f0 rmvpe needs --f0-model (an RMVPE checkpoint)")
    acoustic, meta = load_acoustic(model, dev)
    if meta.conditioning == "explicit" and not meta.stats:
        raise BadInput(model, "an explicit-pitch model needs the dataset statistics a voxtool model.pt carries")
    if meta.conditioning == "pitdyn" and (pitch_units is None or dynamics_units is None):
        raise BadInput(model, "a pitdyn model needs --pitch-units and --dynamics-units (the two fine-tuned HuBERTs)")
    hubert = load_content_encoder(content, device=str(dev))
    if hubert.unit_dim != meta.section.unit_dim:
        raise BadInput(content, f"gives {hubert.unit_dim}-d units; the acoustic model takes "
                                f"{meta.section.unit_dim}-d units")
    streams = {}
    for name, spec in (("pitch_units", pitch_units), ("dynamics_units", dynamics_units)):
        if spec is not None and meta.conditioning == "pitdyn":
            streams[name] = load_content_encoder(spec, device=str(dev))
            if streams[name].unit_dim != meta.section.pitdyn_dim:
                raise BadInput(spec, f"gives {streams[name].unit_dim}-d units; the model's {name} are "
                                     f"{meta.section.pitdyn_dim}-d")
    voc = load_vocoder(vocoder, mel=meta.mel, device=str(dev))
    pitch = None
    if f0 == "rmvpe":
        from voxtool.pitch.runtime import load_model as load_pitch

        pitch = load_pitch(f0_model, device=str(dev))
    return Converter(acoustic, meta, hubert, voc, dev, f0_method=f0, f0_model=pitch, **streams)


def _timed(converter: Converter, stage: str, fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    converter.timings[stage] += time.perf_counter() - start
    return result


def model_input(audio: np.ndarray, converter: Converter, key: float = 0.0) -> np.ndarray:
    """(320 N,) 16 kHz -> the acoustic model's input (N, in_dim) for the converter's conditioning."""
    from voxtool.encoders.hubert import content_units
    from voxtool.tasks.softvc.model import conditioning_features

    n = len(audio) // UNIT_HOP
    items = {"units": _timed(converter, "content", content_units, converter.content, audio)[:n]}
    if converter.conditioning == "explicit":
        items["f0"] = _timed(converter, "f0", frame_f0, audio, converter.f0_method, converter.f0_model)
        items["rms"] = frame_rms(audio)
    elif converter.conditioning == "pitdyn":
        heard = audio
        if key:
            from voxtool.pitch.world import pitch_shift_world

            heard = _timed(converter, "f0", pitch_shift_world, audio.astype(np.float64), SAMPLE_RATE, key)
        items["pitch_units"] = _timed(converter, "content", content_units, converter.pitch_units,
                                      np.asarray(heard, np.float32))[:n]
        items["dynamics_units"] = _timed(converter, "content", content_units, converter.dynamics_units, audio)[:n]
    shift = key if converter.conditioning == "explicit" else 0.0
    try:
        return conditioning_features(items, converter.conditioning, converter.meta.stats, key_shift=shift)
    except ValueError as exc:
        raise BadInput(None, str(exc)) from None


def convert_piece(audio: np.ndarray, converter: Converter, key: float = 0.0) -> np.ndarray:
    """(320 N,) 16 kHz -> converted (320 N,) float32, not clamped."""
    x = torch.from_numpy(model_input(audio, converter, key)).to(converter.device)[None]
    mel = _timed(converter, "acoustic", converter.acoustic.generate, x)  # (1, 2N, 128)
    wav = _timed(converter, "vocoder", converter.vocoder.synthesize, mel.transpose(1, 2))[0]
    if len(wav) != len(audio):
        raise BadInput(None, f"the vocoder made {len(wav)} samples for {len(audio)} (hop mismatch)")
    return wav.astype(np.float32, copy=False)


def convert_stream(audio16: np.ndarray, converter: Converter, key: float = 0.0) -> Iterator[np.ndarray]:
    """(T,) 16 kHz -> the converted (T,) in order, piece by piece (`chunking.convert_in_pieces`), in [-1, 1]."""
    check_key(key, converter.conditioning)
    if len(audio16) < UNIT_HOP:
        raise BadInput(None, f"too short to convert ({len(audio16)} samples at 16 kHz; at least {UNIT_HOP})")
    for part in chunking.convert_in_pieces(audio16, lambda piece: convert_piece(piece, converter, key),
                                           converter.min_seconds, converter.max_seconds, converter.context_seconds):
        yield np.clip(part, -1.0, 1.0)


def predict(audio: np.ndarray, sr: int, converter: Converter, key: float = 0.0) -> tuple[np.ndarray, int]:
    """Mono (T,) audio at `sr` -> (converted float32 (T * 16000 / sr,), 16000), in [-1, 1]."""
    from voxtool.audio.io import resample

    audio16 = resample(np.asarray(audio, np.float32), sr, SAMPLE_RATE)
    return np.concatenate(list(convert_stream(audio16, converter, key))), SAMPLE_RATE


def predict_from_file(path: str | Path, converter: Converter, key: float = 0.0) -> tuple[np.ndarray, int]:
    """An audio file -> (converted float32 at 16 kHz, 16000)."""
    from voxtool.audio.io import load_audio

    return predict(load_audio(path, sr=SAMPLE_RATE), SAMPLE_RATE, converter, key)


def write_converted(dst: Path, audio16: np.ndarray, converter: Converter, key: float = 0.0,
                    sample_rate: int = SAMPLE_RATE, subtype: str = "pcm16") -> int:
    """Convert (T,) 16 kHz audio into `dst` atomically, piece by piece (resampled when `sample_rate` is not
    16 kHz) -> samples written: round(T * sample_rate / 16000)."""
    return chunking.write_stream(dst, convert_stream(audio16, converter, key), len(audio16), SAMPLE_RATE,
                                 sample_rate, SUBTYPES[subtype])


def predict_from_files_to_files(jobs: list, converter: Converter, key: float = 0.0, sample_rate: int = SAMPLE_RATE,
                                subtype: str = "pcm16", advance=None, fail_fast: bool = True,
                                out: Path | None = None):
    """Every `Job(src audio, dst .wav)` with one loaded converter -> `voxtool.batch.BatchResults` (a bad file is one
    `error: <file>: <problem>` line and the batch goes on unless `fail_fast`)."""
    from voxtool.audio.io import load_audio
    from voxtool.batch import run_jobs
    from voxtool.runtime import limit_mmap_threshold

    if subtype not in SUBTYPES:
        raise BadInput(None, f"unknown sample format '{subtype}' (choose {', '.join(SUBTYPES)})")
    if not 8000 <= sample_rate <= 192_000:
        raise BadInput(None, f"--sample-rate {sample_rate}: choose 8000 to 192000")
    check_key(key, converter.conditioning)
    limit_mmap_threshold()

    def work(job) -> dict:
        audio16 = load_audio(job.src, sr=SAMPLE_RATE)
        try:
            n = write_converted(Path(job.dst), audio16, converter, key, sample_rate, subtype)
        except BadInput as exc:
            raise BadInput(exc.where or job.src, exc.problem) from None
        return {"input": str(job.src), "output": str(job.dst), "samples": n, "sample_rate": sample_rate,
                "seconds": round(n / sample_rate, 4), "key": key}

    return run_jobs(jobs, work, fail_fast=fail_fast, advance=advance, out=out)
