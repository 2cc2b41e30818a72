"""Reading a prepared softvc dataset (`voxtool prep softvc`) for the acoustic model: aligned input/mel crops.

Per item (an .npz of the prepared layout, N unit frames at 50 Hz): the model input `conditioning_features(...)`
(N, in_dim) and the log-mel (2N, n_mels) at 100 Hz. A training batch is B random crops of the same length L units
(the data section's `crop_units`, or the shortest item picked when that is shorter): inputs (B, L, in_dim), targets
(B, 2L, n_mels) and the teacher-forcing input (B, 2L, n_mels) = the targets shifted right by one frame behind a
zero go frame, as bshall's dataset prepends a zero frame to each mel.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from voxtool.datasets import PreparedDataset
from voxtool.errors import BadInput
from voxtool.tasks.softvc.model import conditioning_features

FORMAT = "voxtool-softvc-dataset"
MAX_FORMAT_VERSION = 1
PREP = "voxtool prep softvc WAVS OUT --content HUBERT"


def open_dataset(root: str | Path) -> PreparedDataset:
    return PreparedDataset(root, format=FORMAT, task="softvc", prep=PREP, version_key="format_version",
                           max_version=MAX_FORMAT_VERSION)


def read_item(path: Path) -> dict[str, np.ndarray]:
    """An item's arrays; an unreadable .npz is a BadInput naming it."""
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        raise BadInput(path, f"cannot read the prepared item ({str(e).splitlines()[0][:120] if str(e) else e})") from None


class SoftvcItems:
    """One split's items as (features (N, in_dim) float32, mel (2N, n_mels) float32), in list order.

    Items are kept in memory up to `cache_mb` (the rest are read again when picked)."""

    def __init__(self, root: str | Path, split: str, conditioning: str, n_mels: int, cache_mb: int = 2048,
                 dataset: PreparedDataset | None = None):
        self.ds = dataset or open_dataset(root)
        self.paths = self.ds.paths(split, required=split == "train")
        self.conditioning, self.n_mels = conditioning, n_mels
        self.stats: dict[str, Any] | None = self.ds.meta.get("stats")
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._budget, self._used = cache_mb * 2**20, 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i in self._cache:
            return self._cache[i]
        path = self.paths[i]
        arrays = read_item(path)
        try:
            feats = conditioning_features(arrays, self.conditioning, self.stats)
        except ValueError as e:
            raise BadInput(path, str(e)) from None
        mel = np.asarray(arrays.get("mel"), dtype=np.float32)
        n = feats.shape[0]
        if mel.ndim != 2 or mel.shape[1] != self.n_mels or mel.shape[0] < 2 * n:
            raise BadInput(path, f"mel has shape {mel.shape}; expected ({2 * n}, {self.n_mels}) for {n} unit frames")
        pair = (feats, mel[: 2 * n])
        size = feats.nbytes + pair[1].nbytes
        if self._used + size <= self._budget:
            self._cache[i] = pair
            self._used += size
        return pair


def teacher_input(mel: np.ndarray) -> np.ndarray:
    """(..., F, n_mels) target -> the decoder's previous-frame input: a zero go frame, then frames 0..F-2."""
    prev = np.zeros_like(mel)
    prev[..., 1:, :] = mel[..., :-1, :]
    return prev


def random_crops(items: SoftvcItems, batch_size: int, crop_units: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (features (B, L, in_dim), previous mels (B, 2L, n_mels), target mels (B, 2L, n_mels)), L = min(crop_units,
    the shortest picked item)."""
    picks = [items[int(i)] for i in rng.integers(0, len(items), batch_size)]
    length = min(crop_units, *(f.shape[0] for f, _ in picks))
    feats, mels = [], []
    for f, m in picks:
        start = int(rng.integers(0, f.shape[0] - length + 1))
        feats.append(f[start:start + length])
        mels.append(m[2 * start:2 * (start + length)])
    target = np.stack(mels)
    return np.stack(feats), teacher_input(target), target
