"""Finding the utterances of a speaker-per-folder corpus, and the speaker / validation splits.

The speaker is the folder, never a filename prefix (DiffVC's `<speaker>_` file names are not needed). Layouts:

- "folders": `DIR/<speaker>/**/<utt>.<audio>` (any depth below the speaker folder);
- "libritts": the same shape, `DIR/<speaker>/<chapter>/<speaker>_<chapter>_<n>_<m>.wav`; DIR may also be the
  LibriTTS root holding subsets (`train-clean-100/`, `dev-clean/`, ...): their speakers are merged;
- "vctk": `DIR/wav48_silence_trimmed/<pXXX>/<pXXX>_<nnn>_mic{1,2}.flac` (VCTK 0.92, one microphone kept:
  mic2 by default, as DiffVC) or `DIR/wav48/<pXXX>/<pXXX>_<nnn>.wav` (VCTK 0.80); DIR may be the wav folder itself.

Item names are the file stems, made unique within a speaker by prefixing sub-folder names where two stems clash.
`TextGridIndex` finds each utterance's alignment in a TextGrid folder (MFA mirrors the corpus tree).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxtool.audio.io import is_audio_file
from voxtool.errors import BadInput

LIBRITTS_SUBSET = re.compile(r"^(train|dev|test)-(clean|other)(-\d+)?$")
VCTK_WAV_DIRS = ("wav48_silence_trimmed", "wav48")
MIC = re.compile(r"_mic([12])$")


@dataclass(frozen=True)
class Utterance:
    path: Path  # the audio file
    speaker: str
    rel: Path  # path relative to the speaker folder
    name: str  # item name, unique within the speaker (the file stem unless two clash)

    @property
    def item(self) -> str:
        """The item's path inside a prepared dataset."""
        return f"items/{self.speaker}/{self.name}.npz"


@dataclass
class Corpus:
    root: Path
    layout: str  # "folders" | "libritts" | "vctk"
    speaker_roots: list[Path]  # the folders whose sub-folders are speakers
    utterances: list[Utterance]
    ignored: list[tuple[str, str]]  # (path, reason): audio files outside any speaker folder, other microphones

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances})

    def by_speaker(self) -> dict[str, list[Utterance]]:
        out: dict[str, list[Utterance]] = defaultdict(list)
        for u in self.utterances:
            out[u.speaker].append(u)
        return dict(out)


def _visible(path: Path | str) -> bool:
    return not Path(path).name.startswith(".")


def _speaker_roots(root: Path) -> tuple[str, list[Path]]:
    for name in VCTK_WAV_DIRS:
        if (root / name).is_dir():
            return "vctk", [root / name]
    if root.name in VCTK_WAV_DIRS:
        return "vctk", [root]
    subsets = sorted(p for p in root.iterdir() if p.is_dir() and LIBRITTS_SUBSET.match(p.name))
    if subsets:
        return "libritts", subsets
    return "folders", [root]


def _is_libritts_speaker(folder: Path) -> bool:
    """<speaker>/<chapter>/<speaker>_<chapter>_... .wav"""
    for chapter in folder.iterdir():
        if chapter.is_dir() and chapter.name.isdigit():
            return any(f.name.startswith(f"{folder.name}_{chapter.name}_") for f in chapter.glob("*.wav"))
    return False


def discover(root: str | Path, mic: str = "mic2") -> Corpus:
    """Every audio file of the corpus at `root` with its speaker (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise BadInput(root, "corpus folder not found (a folder with one sub-folder per speaker is needed)")
    if mic not in ("mic1", "mic2"):
        raise ValueError(f"mic must be mic1 or mic2, not {mic!r}")
    layout, bases = _speaker_roots(root)
    ignored: list[tuple[str, str]] = []
    found: dict[str, list[tuple[Path, Path]]] = defaultdict(list)  # speaker -> [(file, rel)]
    for base in bases:
        for f in sorted(base.iterdir()):
            if f.is_file() and is_audio_file(f):
                ignored.append((str(f), "not inside a speaker folder"))
        for spk_dir in sorted(p for p in base.iterdir() if p.is_dir() and _visible(p)):
            if layout == "folders" and _is_libritts_speaker(spk_dir):
                layout = "libritts"
            files = [f for f in sorted(spk_dir.rglob("*")) if f.is_file() and is_audio_file(f)
                     and all(_visible(p) for p in f.relative_to(spk_dir).parts)]
            found[spk_dir.name] += [(f, f.relative_to(spk_dir)) for f in files]
    utterances: list[Utterance] = []
    for speaker in sorted(found):
        files = found[speaker]
        if layout == "vctk":
            files, dropped = _one_microphone(files, mic)
            ignored += [(str(f), f"the other microphone (keeping {mic})") for f in dropped]
        stems: dict[str, int] = defaultdict(int)
        for _, rel in files:
            stems[rel.stem] += 1
        for f, rel in files:
            name = rel.stem if stems[rel.stem] == 1 else "_".join([*rel.parent.parts, rel.stem])
            utterances.append(Utterance(f, speaker, rel, name))
    if not utterances:
        raise BadInput(root, "no audio files in speaker folders (expected DIR/<speaker>/.../<utterance>.wav, "
                             "a LibriTTS or a VCTK folder)")
    return Corpus(root, layout, bases, utterances, ignored)


def _one_microphone(files: list[tuple[Path, Path]], mic: str) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """VCTK 0.92 has every utterance twice (_mic1, _mic2): keep `mic`, or the other one where `mic` is missing."""
    groups: dict[str, list[tuple[Path, Path]]] = defaultdict(list)
    for f, rel in files:
        groups[MIC.sub("", rel.stem)].append((f, rel))
    kept, dropped = [], []
    for key in sorted(groups):
        group = groups[key]
        pick = next((g for g in group if rel_mic(g[1]) == mic), group[0])
        kept.append(pick)
        dropped += [f for f, _ in group if f != pick[0]]
    return kept, dropped


def rel_mic(rel: Path) -> str | None:
    m = MIC.search(rel.stem)
    return f"mic{m.group(1)}" if m else None


class TextGridIndex:
    """Finds an utterance's TextGrid: TG_DIR/<speaker>/<relative path>, TG_DIR/<speaker>/<stem>, then the one file
    of that stem below a folder of the speaker, or outside every speaker's folder (a flat TG_DIR); a VCTK `_micN`
    suffix is stripped as a last try. Never another speaker's file."""

    def __init__(self, root: Path, speakers: list[str]):
        if not root.is_dir():
            raise BadInput(root, "--alignments folder not found")
        self.root = root
        self.speakers = set(speakers)
        self.by_stem: dict[str, list[Path]] = {}
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() == ".textgrid" and p.is_file():
                self.by_stem.setdefault(p.stem, []).append(p)
        if not self.by_stem:
            raise BadInput(root, "no .TextGrid files in the --alignments folder")

    def find(self, u: Utterance) -> Path | None:
        for cand in (self.root / u.speaker / u.rel.with_suffix(".TextGrid"),
                     self.root / u.speaker / f"{u.rel.stem}.TextGrid"):
            if cand.is_file():
                return cand
        for stem in (u.rel.stem, MIC.sub("", u.rel.stem)):
            hits = self.by_stem.get(stem, [])
            mine = [h for h in hits if u.speaker in h.relative_to(self.root).parts[:-1]]
            # a flat folder's file, never one inside another speaker's folder
            flat = [h for h in hits if not set(h.relative_to(self.root).parts[:-1]) & self.speakers]
            if len(mine) == 1 or (not mine and len(flat) == 1):
                return (mine or flat)[0]
        return None


def split_speakers(speakers: list[str], unseen: list[str] | None, unseen_fraction: float, seed: int) -> set[str]:
    """The unseen (held-out test) speakers: `unseen` by name, else a seeded `unseen_fraction` of them (at least one
    when the fraction is positive, never all)."""
    if unseen:
        missing = sorted(set(unseen) - set(speakers))
        if missing:
            raise BadInput(None, f"--unseen: no speaker folder named {', '.join(missing)} "
                                 f"(speakers: {', '.join(speakers[:12])}{' ...' if len(speakers) > 12 else ''})")
        if set(unseen) >= set(speakers):
            raise BadInput(None, "--unseen holds out every speaker; leave at least one for training")
        return set(unseen)
    if unseen_fraction <= 0 or len(speakers) < 2:
        return set()
    n = min(len(speakers) - 1, max(1, round(unseen_fraction * len(speakers))))
    order = np.random.default_rng(seed).permutation(len(speakers))
    return {speakers[i] for i in order[:n]}


def split_valid(items: list[str], fraction: float, seed: int) -> set[str]:
    """A seeded `fraction` of the seen items for validation (at least one when positive, never all)."""
    if fraction <= 0 or len(items) < 2:
        return set()
    n = min(len(items) - 1, max(1, round(fraction * len(items))))
    order = np.random.default_rng(seed + 1).permutation(len(items))
    return {items[i] for i in order[:n]}
