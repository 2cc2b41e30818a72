"""Reading a prepared pinyin dataset back: header checks, split lists, items, batches (`prep.py` writes it).

Dataset folder:
    dataset.json              format, version, voxtool version, feature/text settings, token inventory, sources
    train.txt valid.txt test.txt   relative .npz paths, one per line
    items/<corpus>/<utt>.npz  mel (F, T) float16, tokens (L,) int16, text, pinyin, speaker, seconds, trim_start
    skipped.tsv               utterances left out, with the reason
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxtool.datasets import PreparedDataset, read_split_list
from voxtool.errors import BadInput
from voxtool.tasks.pinyin.tokens import Vocab

DATASET_FORMAT = "voxtool-pinyin-dataset"
DATASET_VERSION = 1
SPLITS = ("train", "valid", "test")


def read_header(root: Path) -> dict:
    """The checked dataset.json of a prepared dataset: format and version (shared checks), then the mel
    settings, token inventory, text table and sources list this task reads."""
    ds = PreparedDataset(root, format=DATASET_FORMAT, task="pinyin", prep="voxtool prep ...", version_key="version",
                         max_version=DATASET_VERSION, splits=SPLITS)
    header, path = ds.meta, ds.meta_path
    try:
        from voxtool.audio.mel import MelConfig

        MelConfig.model_validate(header["features"]["mel"])
        Vocab.from_dict(header["vocab"])
    except Exception as e:  # KeyError, pydantic.ValidationError, a garbled vocab
        text = str(e).strip().splitlines()
        raise BadInput(path, f"garbled dataset header ({type(e).__name__}: {text[0][:100] if text else ''})") from None
    if not isinstance(header.get("text", {}), dict) or not isinstance(header.get("sources", []), list):
        raise BadInput(path, "garbled dataset header ('text' must be a table and 'sources' a list)")
    return header


def read_list(root: Path, split: str) -> list[str]:
    """Entries of `split` (relative .npz paths), [] when the dataset has no such list."""
    path = Path(root) / f"{split}.txt"
    return read_split_list(root, path) if path.is_file() else []


@dataclass
class Item:
    mel: np.ndarray  # (F, T) float16 as stored (collate makes float32 batches): halves the item cache
    tokens: np.ndarray  # (L,) int64
    text: str
    pinyin: str
    speaker: str


ITEM_KEYS = ("mel", "tokens", "text", "pinyin", "speaker")


def load_item(path: Path, n_mels: int | None = None, n_tokens: int | None = None) -> Item:
    """One `.npz` -> Item; a missing, corrupt or wrongly shaped item (mel not (n_mels, T), tokens not 1-D integers
    in [0, n_tokens)) is a BadInput naming the file."""
    if not Path(path).is_file():
        raise BadInput(path, "listed in the split but missing; re-run prep")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ITEM_KEYS if k not in z.files]
            if missing:
                raise BadInput(path, f"dataset item lacks the '{missing[0]}' array; re-run prep")
            mel, tokens = z["mel"], z["tokens"]
            text, pinyin, speaker = str(z["text"]), str(z["pinyin"]), str(z["speaker"])
    except BadInput:
        raise
    except Exception as e:  # BadZipFile, EOFError, OSError, ValueError (object arrays), zlib.error, ...
        msg = str(e).strip().splitlines()
        raise BadInput(path, f"unreadable dataset item ({msg[0][:80] if msg else type(e).__name__})") from None
    if mel.ndim != 2 or mel.shape[1] == 0 or not np.issubdtype(mel.dtype, np.floating) or (
            n_mels is not None and mel.shape[0] != n_mels):
        want = f"({n_mels if n_mels is not None else 'n_mels'}, frames)"
        raise BadInput(path, f"'mel' has shape {mel.shape} and dtype {mel.dtype}; {want} floats expected")
    if tokens.ndim != 1 or len(tokens) == 0 or not np.issubdtype(tokens.dtype, np.integer):
        raise BadInput(path, f"'tokens' has shape {tokens.shape} and dtype {tokens.dtype}; 1-D integers expected")
    tokens = tokens.astype(np.int64)
    if n_tokens is not None and (tokens.min() < 0 or tokens.max() >= n_tokens):
        raise BadInput(path, f"'tokens' holds ids outside the inventory [0, {n_tokens})")
    return Item(mel, tokens, text, pinyin, speaker)


class PinyinDataset:
    """One split of a prepared dataset; items are cached in memory up to `cache_items` of them."""

    def __init__(self, root: Path, split: str, cache_items: int = 4000):
        self.root = Path(root)
        self.header = read_header(self.root)
        self.vocab = Vocab.from_dict(self.header["vocab"])
        if self.vocab.tokens != Vocab().tokens:
            raise BadInput(self.root, f"token inventory {self.vocab.version} differs from this voxtool's")
        self.n_mels = int(self.header["features"]["mel"]["n_mels"])
        self.split = split
        self.entries = read_list(self.root, split)
        self._cache: dict[int, Item] = {}
        self.cache_items = cache_items

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Item:
        item = self._cache.get(i)
        if item is None:
            item = load_item(self.root / self.entries[i], self.n_mels, len(self.vocab.tokens))
            if len(self._cache) < self.cache_items:
                self._cache[i] = item
        return item


def collate(items: list[Item], pad_frames: int = 0):
    """Items (mel (F, T_i)) -> (feats (B, F, T) float32 zero-padded, feat_lens (B,), targets (B, L) int64 padded
    with 0, target_lens (B,)).

    `pad_frames` > 0 adds that many silence frames (the utterance's minimum log-mel per bin) at both ends."""
    import torch

    mels = []
    for it in items:
        m = it.mel.astype(np.float32, copy=False)
        if pad_frames:
            floor = m.min(axis=1, keepdims=True).repeat(pad_frames, axis=1)
            m = np.concatenate([floor, m, floor], axis=1)
        mels.append(m)
    F = mels[0].shape[0]
    T = max(m.shape[1] for m in mels)
    L = max(len(it.tokens) for it in items)
    feats = np.zeros((len(items), F, T), dtype=np.float32)
    targets = np.zeros((len(items), L), dtype=np.int64)
    for b, (m, it) in enumerate(zip(mels, items, strict=True)):
        feats[b, :, : m.shape[1]] = m
        targets[b, : len(it.tokens)] = it.tokens
    return (torch.from_numpy(feats), torch.tensor([m.shape[1] for m in mels]),
            torch.from_numpy(targets), torch.tensor([len(it.tokens) for it in items]))
