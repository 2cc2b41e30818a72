"""Reading a prepared diffvc dataset (`voxtool prep diffvc DIR OUT`) and cutting training crops.

The folder (written by `prep_cli.py`; checked here through `voxtool.datasets.PreparedDataset`):

    OUT/dataset.json      {"format": "voxtool-diffvc-dataset", "format_version": 1, "mel": {MelSettings},
                           "avg_units": "phones" | "kmeans", "speakers": {name: {"items", "split"}}, ...}
    OUT/train.txt, valid.txt, unseen.txt   item paths relative to OUT
    OUT/items/<speaker>/<stem>.npz         mel (80, F), avg_mel (80, F), embed (256,), speaker (0-d str)

Crops follow the original collates (DiffVC/data.py): a random `frames`-long window; an item shorter than that is
zero-padded and its length kept for the mask. The encoder takes the same window of `mel` (input) and `avg_mel`
(target); the decoder takes two independent windows of one utterance's `mel`, the first the target, the second the
reference, with that utterance's own d-vector.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from voxtool.datasets import PreparedDataset
from voxtool.errors import BadInput
from voxtool.tasks.diffvc.config import DATASET_FORMAT

EMBED_DIM = 256


class Item(NamedTuple):
    mel: np.ndarray  # float32 (n_mels, F), HiFi-GAN 22.05 kHz log-mel
    avg_mel: np.ndarray | None  # float32 (n_mels, F), the average-voice target (None when not asked for)
    embed: np.ndarray  # float32 (256,), the utterance's GE2E d-vector
    speaker: str


class EncoderBatch(NamedTuple):
    mel: np.ndarray  # (B, n_mels, frames) float32, zero beyond each length
    avg_mel: np.ndarray  # (B, n_mels, frames)
    lengths: np.ndarray  # (B,) int64


class DecoderBatch(NamedTuple):
    mel: np.ndarray  # (B, n_mels, frames) target crops
    lengths: np.ndarray  # (B,) int64
    ref: np.ndarray  # (B, n_mels, frames) reference crops of the same utterances
    embed: np.ndarray  # (B, 256) d-vectors


def open_dataset(root: str | Path) -> PreparedDataset:
    return PreparedDataset(root, format=DATASET_FORMAT, task="diffvc", prep="voxtool prep diffvc DIR OUT",
                           version_key="format_version", max_version=1)


class DiffvcItems:
    """The items of one split, read lazily (a LibriTTS-sized dataset does not fit in memory as mels)."""

    def __init__(self, root: str | Path, split: str, n_mels: int, with_avg: bool, required: bool = False):
        self.dataset = open_dataset(root)
        self.meta = self.dataset.meta
        self.paths = self.dataset.paths(split, required=required)
        self.n_mels = n_mels
        self.with_avg = with_avg

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Item:
        return read_item(self.paths[i], self.n_mels, self.with_avg)


def read_item(path: Path, n_mels: int, with_avg: bool = True) -> Item:
    """One item .npz, checked (shapes, finiteness); any problem is a BadInput naming the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            mel = z["mel"].astype(np.float32)
            avg = z["avg_mel"].astype(np.float32) if with_avg else None
            embed = z["embed"].astype(np.float32)
            speaker = str(z["speaker"]) if "speaker" in z.files else path.parent.name
    except FileNotFoundError:
        raise BadInput(path, "item listed in the split but missing; re-run prep diffvc") from None
    except KeyError as exc:
        raise BadInput(path, f"item lacks {exc} (written by another prep?)") from None
    except Exception as exc:  # ValueError, OSError, zipfile.BadZipFile of a damaged file
        raise BadInput(path, f"unreadable item ({type(exc).__name__})") from None
    if mel.ndim != 2 or mel.shape[0] != n_mels or mel.shape[1] < 1:
        raise BadInput(path, f"mel has shape {mel.shape}; ({n_mels}, frames) expected")
    if avg is not None and avg.shape != mel.shape:
        raise BadInput(path, f"avg_mel has shape {avg.shape}, the mel {mel.shape}")
    if embed.shape != (EMBED_DIM,):
        raise BadInput(path, f"embed has shape {embed.shape}; ({EMBED_DIM},) expected")
    for name, arr in (("mel", mel), ("avg_mel", avg), ("embed", embed)):
        if arr is not None and not np.all(np.isfinite(arr)):
            raise BadInput(path, f"{name} holds NaN or infinite values")
    return Item(mel, avg, embed, speaker)


def crop_start(length: int, frames: int, rng: np.random.Generator) -> int:
    """A uniform start of a `frames`-long window in `length` frames (0 when the item is shorter)."""
    return int(rng.integers(0, length - frames + 1)) if length > frames else 0


def _window(mel: np.ndarray, start: int, frames: int) -> np.ndarray:
    """(n_mels, frames) from `start`, zero-padded past the item's end."""
    out = np.zeros((mel.shape[0], frames), np.float32)
    part = mel[:, start:start + frames]
    out[:, :part.shape[1]] = part
    return out


def encoder_batch(items: list[Item], frames: int, rng: np.random.Generator) -> EncoderBatch:
    """The same random window of mel and avg_mel per item."""
    mels, avgs, lengths = [], [], []
    for it in items:
        start = crop_start(it.mel.shape[1], frames, rng)
        mels.append(_window(it.mel, start, frames))
        avgs.append(_window(it.avg_mel, start, frames))
        lengths.append(min(frames, it.mel.shape[1]))
    return EncoderBatch(np.stack(mels), np.stack(avgs), np.asarray(lengths, np.int64))


def decoder_batch(items: list[Item], frames: int, rng: np.random.Generator) -> DecoderBatch:
    """Two independent random windows of each utterance (target, reference) and its d-vector."""
    mels, refs, lengths = [], [], []
    for it in items:
        length = it.mel.shape[1]
        mels.append(_window(it.mel, crop_start(length, frames, rng), frames))
        refs.append(_window(it.mel, crop_start(length, frames, rng), frames))
        lengths.append(min(frames, length))
    return DecoderBatch(np.stack(mels), np.asarray(lengths, np.int64), np.stack(refs),
                        np.stack([it.embed for it in items]))
