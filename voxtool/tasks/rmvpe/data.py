"""Prepared pitch datasets: ``prep mir1k`` / ``prep pitch`` writers, the reader, crops and augmentation.

A prepared dataset is a folder with ``dataset.json`` (sample rate, label hop, counts, voxtool version),
``train.txt`` / ``valid.txt`` (relative item paths), ``skipped.tsv`` (source, reason) and one ``items/<name>.npz`` per clip holding
``voice`` int16 ``[N]`` (16 kHz), ``accompaniment`` int16 ``[N]`` or ``[0]`` (mono sources) and ``f0``
float32 ``[T]`` in Hz on the 10 ms grid (frame i at i * 10 ms, ``T = N // 160 + 1``, 0 = unvoiced).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voxtool.datasets import PrepReport
from voxtool.errors import BadInput
from voxtool.tasks.rmvpe.config import DataSection
from voxtool.tasks.rmvpe.labels import LABEL_SUFFIXES, LabelError, check_labels, labels_on_grid, read_labels

if TYPE_CHECKING:
    from voxtool.audio.mel import MelConfig

SAMPLE_RATE = 16000
HOP = 160
PCM_SCALE = 32767.0
FORMAT = "voxtool-rmvpe-dataset"


# ---------------------------------------------------------------------------------------------------------
# Prep
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Source:
    """One clip to prepare: audio file, label file, split ('train'/'valid' or None = decide later)."""

    audio: Path
    label: Path | None
    name: str
    split: str | None = None


def singer_of(name: str) -> str:
    """MIR-1K names are ``<singer>_<song>_<part>``; other names group by their stem."""
    m = re.match(r"^([A-Za-z]+)_\d+", name)
    return m.group(1) if m else name


def split_sources(
    sources: list[Source], test_list: set[str] | None, test_fraction: float, seed: int
) -> list[Source]:
    """Assign 'train'/'valid' to sources without a split: a test list by name, else a seeded fraction by singer."""
    undecided = [s for s in sources if s.split is None]
    if test_list is not None:
        for s in undecided:
            s.split = "valid" if (s.name in test_list or s.audio.name in test_list) else "train"
        return sources
    groups: dict[str, list[Source]] = {}
    for s in undecided:
        groups.setdefault(singer_of(s.name), []).append(s)
    rng = np.random.default_rng(seed)
    keys = sorted(groups)
    if len(keys) < 2:  # one singer: split clips instead
        groups = {s.name: [s] for s in undecided}
        keys = sorted(groups)
    order = [keys[i] for i in rng.permutation(len(keys))]
    target = test_fraction * len(undecided)
    taken = 0
    for key in order:
        split = "valid" if test_fraction > 0 and taken < target else "train"
        if split == "valid":
            taken += len(groups[key])
        for s in groups[key]:
            s.split = split
    if test_fraction > 0 and len(undecided) > 1 and all(s.split == "valid" for s in undecided):
        undecided[0].split = "train"
    return sources


def _to_pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * PCM_SCALE), -32768, 32767).astype(np.int16)


def prepare_item(src: Source, label_hop_s: float | None) -> tuple[dict, float]:
    """Read, check and convert one clip -> (npz arrays, seconds). Raises BadInput/LabelError with a reason."""
    from voxtool.audio.io import load_audio

    if src.label is None:
        raise LabelError("no label file next to the audio")
    audio = load_audio(src.audio, sr=SAMPLE_RATE, mono=False)  # [N, C]
    if audio.shape[1] >= 2:
        # MIR-1K / yxlllc convention: left (channel 0) accompaniment, right (channel 1) voice.
        accompaniment, voice = audio[:, 0], audio[:, 1]
    else:
        accompaniment, voice = np.zeros(0, dtype=np.float32), audio[:, 0]
    duration = len(voice) / SAMPLE_RATE
    times, f0 = read_labels(src.label, duration, label_hop_s)
    check_labels(times, f0, duration)
    n_frames = len(voice) // HOP + 1
    grid = labels_on_grid(times, f0, HOP / SAMPLE_RATE, n_frames)
    arrays = {"voice": _to_pcm(voice), "accompaniment": _to_pcm(accompaniment), "f0": grid}
    return arrays, duration


def write_dataset(
    sources: list[Source],
    out: Path,
    label_hop_s: float | None = None,
    kind: str = "pitch",
    advance=None,
) -> PrepReport:
    """Write every source with a split into ``out``; bad items are skipped with their reason."""
    from voxtool import __version__
    from voxtool.fileio import atomic_write, ensure_output_dir, write_text_atomic

    report = PrepReport()
    lists: dict[str, list[str]] = {"train": [], "valid": []}
    ensure_output_dir(out)  # also removes temporary files that killed runs left behind
    (out / "items").mkdir(parents=True, exist_ok=True)
    used_names: set[str] = set()
    for src in sources:
        try:
            arrays, seconds = prepare_item(src, label_hop_s)
        except (BadInput, LabelError) as exc:
            reason = exc.problem if isinstance(exc, BadInput) else str(exc)
            report.skipped.append((str(src.audio), reason))
            if advance:
                advance(1)
            continue
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", src.name)
        while name in used_names:
            name += "_"
        used_names.add(name)
        rel = f"items/{name}.npz"
        with atomic_write(out / rel, "wb") as f:
            np.savez(f, **arrays)
        lists[src.split].append(rel)
        report.written[src.split] += 1
        report.seconds[src.split] += seconds
        if advance:
            advance(1)
    if not any(report.written.values()):
        raise BadInput(out, "no usable items (every source was skipped)")
    for split, names in lists.items():
        write_text_atomic(out / f"{split}.txt", "".join(n + "\n" for n in names))
    write_text_atomic(out / "skipped.tsv", "path\treason\n" + "".join(f"{p}\t{r}\n" for p, r in report.skipped))
    meta = {
        "format": FORMAT,
        "kind": kind,
        "voxtool_version": __version__,
        "sample_rate": SAMPLE_RATE,
        "hop_length": HOP,
        "items": report.written,
        "minutes": {k: round(v / 60, 3) for k, v in report.seconds.items()},
        "skipped": len(report.skipped),
    }
    write_text_atomic(out / "dataset.json", json.dumps(meta, indent=2) + "\n")
    return report


def find_label(audio: Path, label_dirs: list[Path]) -> Path | None:
    for d in label_dirs:
        for suffix in LABEL_SUFFIXES:
            candidate = d / (audio.stem + suffix)
            if candidate.is_file() and candidate != audio:
                return candidate
    return None


def mir1k_sources(root: Path) -> list[Source]:
    """MIR-1K: ``Wavfile/*.wav`` with ``PitchLabel/*.pv`` (a flat folder of wav+pv also works)."""
    from voxtool.audio.io import is_audio_file

    wav_dir = root / "Wavfile" if (root / "Wavfile").is_dir() else root
    label_dirs = [d for d in (root / "PitchLabel", wav_dir) if d.is_dir()]
    if not wav_dir.is_dir():
        raise BadInput(root, "not a directory")
    files = sorted(p for p in wav_dir.iterdir() if p.is_file() and is_audio_file(p))
    if not files:
        raise BadInput(root, "no Wavfile/*.wav found (expected the MIR-1K layout)")
    return [Source(p, find_label(p, label_dirs), p.stem) for p in files]


def pitch_sources(root: Path) -> list[Source]:
    """Generic: ``{train,test}/*.wav`` + labels (the Hybrid layout) or any tree of audio + label files."""
    from voxtool.audio.io import is_audio_file

    if not root.is_dir():
        raise BadInput(root, "not a directory")
    splits = {"train": "train", "test": "valid", "valid": "valid", "validation": "valid"}
    present = [d for d in splits if (root / d).is_dir()]
    sources = []
    if "train" in present and len(present) > 1:
        for d in present:
            for p in sorted((root / d).rglob("*")):
                if p.is_file() and is_audio_file(p):
                    rel = p.relative_to(root / d).with_suffix("")
                    sources.append(Source(p, find_label(p, [p.parent]), "_".join(rel.parts), splits[d]))
    else:
        for p in sorted(root.rglob("*")):
            if p.is_file() and is_audio_file(p):
                rel = p.relative_to(root).with_suffix("")
                sources.append(Source(p, find_label(p, [p.parent]), "_".join(rel.parts)))
    if not sources:
        raise BadInput(root, "no audio files found")
    return sources


# ---------------------------------------------------------------------------------------------------------
# Reading and sampling
# ---------------------------------------------------------------------------------------------------------


@dataclass
class PitchItem:
    voice: np.ndarray  # float32 [N]
    accompaniment: np.ndarray  # float32 [N] or [0]
    f0: np.ndarray  # float32 [T] at the dataset hop


def read_item_arrays(path: Path, hop: int = HOP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One prepared ``.npz`` -> (voice, accompaniment, f0) float32, checked against the layout in the module doc;
    a missing, corrupt or wrongly shaped item is a BadInput naming the file."""
    if not path.is_file():
        raise BadInput(path, "listed in the split but missing; re-run prep")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {}
            for key in ("voice", "accompaniment", "f0"):
                if key not in z.files:
                    raise BadInput(path, f"dataset item lacks the '{key}' array; re-run prep")
                arrays[key] = z[key]
    except BadInput:
        raise
    except Exception as exc:  # BadZipFile, EOFError, OSError, ValueError (object arrays), zlib.error, ...
        text = str(exc).strip()
        raise BadInput(path, f"unreadable dataset item ({text.splitlines()[0][:80] if text else type(exc).__name__})"
                       ) from None
    voice, acc, f0 = arrays["voice"], arrays["accompaniment"], arrays["f0"]
    for key, a in arrays.items():
        if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise BadInput(path, f"'{key}' has shape {a.shape} and dtype {a.dtype}; a 1-D numeric array is expected")
    if len(voice) == 0:
        raise BadInput(path, "'voice' is empty")
    if len(acc) not in (0, len(voice)):
        raise BadInput(path, f"'accompaniment' has {len(acc)} samples; 0 or {len(voice)} (as 'voice') expected")
    if len(f0) != len(voice) // hop + 1:
        raise BadInput(path, f"'f0' has {len(f0)} frames; {len(voice) // hop + 1} expected for {len(voice)} samples "
                             f"at hop {hop}")
    f0 = f0.astype(np.float32)
    if not np.all(np.isfinite(f0)) or (f0 < 0).any():
        raise BadInput(path, "'f0' holds NaN, infinite or negative values")
    scale = PCM_SCALE if np.issubdtype(voice.dtype, np.integer) else 1.0
    return voice.astype(np.float32) / scale, acc.astype(np.float32) / scale, f0


class PitchDataset:
    """A prepared dataset split; items are read from disk on demand (the OS caches them)."""

    def __init__(self, root: Path, split: str, hop_length: int = HOP):
        from voxtool.datasets import PreparedDataset

        ds = PreparedDataset(root, format=FORMAT, task="rmvpe", prep="voxtool prep mir1k")
        self.meta = ds.meta
        self.root = Path(root)
        # resolved: a BadInput about an item names the file the split list leads to
        self.paths = [p.resolve() for p in ds.paths(split, required=True)]
        self.hop_length = hop_length
        try:
            self.data_hop = int(self.meta.get("hop_length", HOP))
        except (TypeError, ValueError):
            self.data_hop = 0
        if self.data_hop <= 0:
            raise BadInput(ds.meta_path, f"hop_length {self.meta.get('hop_length')!r} is not a positive integer")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> PitchItem:
        path = self.paths[index]
        voice, acc, f0 = read_item_arrays(path, self.data_hop)
        if self.data_hop != self.hop_length:
            times = np.arange(len(f0)) * self.data_hop / SAMPLE_RATE
            f0 = labels_on_grid(times, f0, self.hop_length / SAMPLE_RATE, len(voice) // self.hop_length + 1)
        return PitchItem(voice, acc, f0)

    def name(self, index: int) -> str:
        return self.paths[index].stem


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian noise with a 1/f^exponent power spectrum ``[n]``."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    noise = np.fft.irfft(spectrum * freqs ** (-exponent / 2), n)
    return (noise / (noise.std() + 1e-12)).astype(np.float32)


def _f0_at(f0: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """f0 sampled at fractional frame positions: nearest-frame voicing, log interpolation inside runs."""
    idx = np.clip(np.rint(positions).astype(np.int64), 0, len(f0) - 1)
    voiced = f0[idx] > 0
    out = np.zeros(len(positions), dtype=np.float32)
    if voiced.any():
        lo = np.clip(np.floor(positions).astype(np.int64), 0, len(f0) - 1)
        hi = np.clip(lo + 1, 0, len(f0) - 1)
        frac = np.clip(positions - lo, 0, 1)
        both = (f0[lo] > 0) & (f0[hi] > 0)
        interp = np.exp((1 - frac) * np.log(np.maximum(f0[lo], 1e-3)) + frac * np.log(np.maximum(f0[hi], 1e-3)))
        out = np.where(voiced, np.where(both, interp, f0[idx]), 0.0).astype(np.float32)
    return out


def _drop_voice(voice: np.ndarray, start: int, need: int, s: DataSection, rng: np.random.Generator, hop: int
                ) -> tuple[np.ndarray, tuple[int, int]]:
    """A copy of `voice` [N] silenced over a span of the crop's source frames [start, start + need) ->
    (voice, (first, stop) frame of the span). The span's samples are those nearest its frames' centres
    ([first * hop - hop/2, stop * hop - hop/2)), faded over 5 ms at each end so no click marks the cut."""
    length = max(1, int(round(rng.uniform(*s.voice_drop_fraction) * need)))
    first = start + int(rng.integers(0, max(1, need - length + 1)))
    stop = first + length
    a, b = max(0, first * hop - hop // 2), min(len(voice), stop * hop - hop // 2)
    gain = np.zeros(max(0, b - a), dtype=np.float32)
    fade = min(hop // 2, len(gain) // 2)
    if fade:
        ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
        gain[:fade], gain[-fade:] = ramp * (a > 0), ramp[::-1] * (b < len(voice))
    out = voice.copy()
    out[a:b] *= gain
    return out, (first, stop)


def training_crop(
    item: PitchItem,
    s: DataSection,
    rng: np.random.Generator,
    mel: MelConfig | None = None,
    augment: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One crop of ``s.crop_frames`` frames, augmented as ``s`` says (unless ``augment`` is False) -> (pre-padded
    waveform ``[(F-1)*hop + n_fft]``, f0 ``[F]``); hop and n_fft from ``mel`` (default: the published front-end).

    Frame i of the crop is centred on the waveform sample ``i*hop + n_fft/2`` (see ``voxtool.pitch.settings``).
    Pitch shift by
    r = 2^(k/12) reads r times more source audio and resamples it to the crop length; labels are read at
    the matching source positions and multiplied by r.
    """
    from voxtool.audio.framing import frame_slice_from_audio
    from voxtool.audio.io import resample
    from voxtool.pitch.settings import padding_config, published_mel_config

    rcfg = padding_config(mel or published_mel_config())
    frames, hop, n_fft = s.crop_frames, rcfg.hop_length, rcfg.n_fft
    ratio = 1.0
    if augment and rng.random() < s.pitch_shift_prob:
        ratio = 2.0 ** (rng.uniform(*s.pitch_shift_semitones) / 12.0)
    total = len(item.f0)
    need = int(np.ceil((frames - 1) * ratio)) + 1
    start = int(rng.integers(0, max(1, total - need + 1)))
    out_len = (frames - 1) * hop + n_fft
    src_len = int(np.ceil(out_len * ratio))
    src_frames = -(-(src_len - n_fft) // hop) + 1
    voice, dropped = item.voice, None
    if augment and s.voice_drop_prob and rng.random() < s.voice_drop_prob:
        voice, dropped = _drop_voice(item.voice, start, need, s, rng, hop)
    # Mix voice and accompaniment before shifting: both move together, as a resampled recording would.
    if len(item.accompaniment) and augment:
        mix = voice + np.float32(rng.uniform(*s.accompaniment_gain)) * item.accompaniment
    elif len(item.accompaniment):
        mix = voice + item.accompaniment
    else:
        mix = voice
    segment = frame_slice_from_audio(mix, start, src_frames, rcfg, extend_short=True)[:src_len]
    if ratio != 1.0:
        segment = resample(segment.astype(np.float32), SAMPLE_RATE, int(round(SAMPLE_RATE / ratio)))
        segment = np.pad(segment, (0, max(0, out_len - len(segment))))[:out_len]
    positions = start + np.arange(frames) * ratio  # source frame of each crop frame
    f0 = _f0_at(item.f0, positions) * ratio
    f0[positions > total - 1] = 0.0
    if dropped is not None:  # frames whose nearest source frame lies in the silenced span are unvoiced
        nearest = np.rint(positions)
        f0[(nearest >= dropped[0]) & (nearest < dropped[1])] = 0.0
    wave = segment.astype(np.float32)
    if augment:
        if not len(item.accompaniment) and rng.random() < s.noise_prob:
            amp = 10.0 ** rng.uniform(*s.noise_log10_amp)
            wave = wave + np.float32(amp) * coloured_noise(len(wave), rng.uniform(*s.noise_exponent), rng)
        peak = float(np.abs(wave).max()) + 1e-9
        hi = min(s.volume_log10[1], np.log10(1.0 / peak))
        lo = min(s.volume_log10[0], hi)
        wave = wave * np.float32(10.0 ** rng.uniform(lo, hi))
    return wave.astype(np.float32), f0.astype(np.float32)


def validation_audio(item: PitchItem, max_seconds: float = 0.0, hop: int = HOP) -> tuple[np.ndarray, np.ndarray]:
    """Full mixture (accompaniment at gain 1), no augmentation -> (audio ``[N]``, f0 ``[T]``)."""
    audio = item.voice + item.accompaniment if len(item.accompaniment) else item.voice
    f0 = item.f0
    if max_seconds:
        n = int(max_seconds * SAMPLE_RATE)
        audio = audio[:n]
        f0 = f0[: len(audio) // hop + 1]
    return audio.astype(np.float32), f0
