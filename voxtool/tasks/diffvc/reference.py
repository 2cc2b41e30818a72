"""The target voice of a DiffVC conversion (`Reference`): a GE2E d-vector and a reference mel for the decoder's
reference block, made from one speaker's audio (`make_reference`) or from `--ref` (a file, or a folder of one
speaker's files: `reference_from_paths`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voxtool.errors import BadInput

if TYPE_CHECKING:
    from voxtool.tasks.diffvc.runtime import Converter

MAX_REF_FRAMES = 1024  # ~11.9 s of reference mel at most (the reference block runs at full resolution)
MIN_FRAMES = 4  # shorter inputs (< ~46 ms) are refused


@dataclass
class Reference:
    mel: np.ndarray  # (80, F_ref) log-mel for the reference block
    embed: np.ndarray  # (256,) L2-normalised GE2E d-vector


def make_reference(wavs: list[tuple[np.ndarray, int]], converter: Converter, embed: np.ndarray | None = None,
                   max_frames: int = MAX_REF_FRAMES) -> Reference:
    """One speaker's utterances [(wav, sr), ...] -> Reference: the averaged d-vector (or `embed` when given) and a
    middle slice of each utterance's mel (max_frames // len(wavs) frames each), concatenated."""
    from voxtool.audio.io import resample

    if not wavs:
        raise BadInput(None, "no reference audio")
    share = max(max_frames // len(wavs), 32)
    mels = []
    for wav, sr in wavs:
        mel = converter.log_mel(resample(np.asarray(wav, np.float32), sr, converter.sample_rate))
        if mel.shape[1] > share:
            start = (mel.shape[1] - share) // 2
            mel = mel[:, start:start + share]
        mels.append(mel)
    mel = np.concatenate(mels, axis=1)[:, :max_frames]
    if mel.shape[1] < MIN_FRAMES:
        raise BadInput(None, "reference audio is too short")
    if embed is None:
        embed = converter.ge2e().embed_speaker(list(wavs))
    return Reference(mel.astype(np.float32), np.asarray(embed, np.float32))


def reference_files(ref: str | Path) -> list[Path]:
    """`--ref`: an audio file, or a folder of one speaker's audio files (searched recursively)."""
    from voxtool.audio.io import is_audio_file

    ref = Path(ref)
    if ref.is_dir():
        files = sorted(p for p in ref.rglob("*") if p.is_file() and is_audio_file(p))
        if not files:
            raise BadInput(ref, "reference folder holds no audio files")
        return files
    if not ref.is_file():
        raise BadInput(ref, "reference not found")
    return [ref]


def reference_from_paths(ref: str | Path, converter: Converter) -> Reference:
    from voxtool.audio.io import load_audio_channels

    wavs = []
    for path in reference_files(ref):
        data, sr = load_audio_channels(path)
        wavs.append((data.mean(axis=1).astype(np.float32), sr))
    try:
        return make_reference(wavs, converter)
    except BadInput as exc:
        raise BadInput(exc.where or ref, exc.problem) from None
