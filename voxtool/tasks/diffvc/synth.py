"""A synthetic multi-speaker corpus with known phone intervals, for the diffvc tests, demos and benchmarks.

Speakers (`Voice`) differ the way real ones do: mean f0 and its range, vocal-tract length (every formant and
noise band scaled by `formant_scale`), spectral tilt and breathiness. They speak phone sequences (`Content`: a
list of (phone, seconds)); the same content spoken by two voices has exactly the same timing, so average-voice
targets of two speakers can be compared frame by frame.

Phones: vowels (formant pairs/triples), nasals (low murmur), fricatives (noise bands) and `sil`.

    voices = make_voices(4, seed=0)
    wav, intervals = render(voices[0], content, rng)          # float32 at SR, [(start_s, end_s, phone)]
    corpus = write_corpus(root, n_speakers=4, n_utts=6, seed=0, layout="libritts", textgrids=root / "tg")

`write_corpus` writes wavs in a plain (`<spk>/<utt>.wav`), LibriTTS (`<spk>/<chapter>/<spk>_<chapter>_<n>.wav`) or
VCTK (`wav48_silence_trimmed/<spk>/<spk>_<n>_mic2.flac`) layout and, optionally, MFA-style TextGrids (tiers
`words` and `phones`, silence labelled `sil`) mirroring the speaker folders: `<textgrids>/<spk>/<stem>.TextGrid`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SR = 22050
VOWELS = {"AA": (730.0, 1090.0, 2440.0), "IY": (270.0, 2290.0, 3010.0), "UW": (300.0, 870.0, 2240.0),
          "EH": (530.0, 1840.0, 2480.0), "OW": (570.0, 840.0, 2410.0)}
NASALS = {"M": (250.0, 1100.0), "N": (250.0, 1700.0)}
FRICATIVES = {"S": (4500.0, 7500.0), "SH": (2000.0, 4000.0), "F": (1200.0, 6500.0)}
PHONES = ("sil", *VOWELS, *NASALS, *FRICATIVES)
CONSONANTS = (*NASALS, *FRICATIVES)

Content = list[tuple[str, float]]  # (phone, duration in seconds)
Interval = tuple[float, float, str]  # (start s, end s, phone)


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker."""

    name: str
    f0: float  # mean f0 (Hz)
    f0_range: float  # semitones of slow f0 movement around the mean
    formant_scale: float  # vocal-tract length: every formant / noise band x this
    tilt: float  # harmonic amplitudes x h**-tilt
    breath: float  # aspiration noise relative to the voicing


def make_voices(n: int, seed: int = 0, prefix: str = "spk") -> list[Voice]:
    """`n` clearly different voices: f0 spread log-evenly over 95-250 Hz and formant scales over 0.85-1.2 in an
    order unrelated to f0 (so neither alone identifies a speaker), with random tilt and breathiness."""
    rng = np.random.default_rng(seed)
    f0s = np.geomspace(95.0, 250.0, n) if n > 1 else np.array([150.0])
    scales = np.linspace(0.85, 1.2, n) if n > 1 else np.array([1.0])
    scales = scales[rng.permutation(n)]
    return [Voice(f"{prefix}{k}", float(f0s[k] * rng.uniform(0.97, 1.03)), float(rng.uniform(1.5, 4.0)),
                  float(scales[k]), float(rng.uniform(0.4, 1.2)), float(rng.uniform(0.01, 0.06))) for k in range(n)]


def random_content(rng: np.random.Generator, n_min: int = 4, n_max: int = 9) -> Content:
    """Leading silence, `n_min`-`n_max` consonant-vowel syllables (sometimes a bare vowel), trailing silence."""
    content: Content = [("sil", float(rng.uniform(0.12, 0.2)))]
    vowels, consonants = list(VOWELS), list(CONSONANTS)
    for _ in range(int(rng.integers(n_min, n_max + 1))):
        if rng.random() < 0.8:
            content.append((consonants[int(rng.integers(len(consonants)))], float(rng.uniform(0.06, 0.12))))
        content.append((vowels[int(rng.integers(len(vowels)))], float(rng.uniform(0.12, 0.25))))
        if rng.random() < 0.15:
            content.append(("sil", float(rng.uniform(0.05, 0.12))))
    content.append(("sil", float(rng.uniform(0.12, 0.2))))
    return content


def _band_noise(n: int, lo: float, hi: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spec[(freqs < lo) | (freqs > hi)] = 0
    out = np.fft.irfft(spec, n)
    return out / (np.abs(out).max() + 1e-9)


def _harmonic_amps(formants: tuple[float, ...], f0: float, voice: Voice, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(harmonic numbers [H], amplitudes [H]) of a formant envelope scaled by the voice."""
    h = np.arange(1, int(min(7000.0, sr / 2 - 200) / f0) + 1)
    fh = h * f0
    env = np.full(len(h), 0.02)
    for k, f in enumerate(formants):
        bw = 80.0 + 40.0 * k
        env += (0.8**k) * np.exp(-0.5 * ((fh - f * voice.formant_scale) / (bw * voice.formant_scale)) ** 2)
    return h, env * h.astype(np.float64) ** -voice.tilt


def render(voice: Voice, content: Content, rng: np.random.Generator, sr: int = SR) -> tuple[np.ndarray, list[Interval]]:
    """Speak `content` -> (float32 waveform at `sr` with a peak near 0.5, exact phone intervals in seconds)."""
    bounds = np.round(np.cumsum([0.0] + [d for _, d in content]) * sr).astype(int)
    n = int(bounds[-1])
    t = np.arange(n) / sr
    drift = voice.f0_range * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t + rng.uniform(0, 2 * np.pi))
    f0 = voice.f0 * 2 ** ((drift + 0.3 * np.sin(2 * np.pi * 5.0 * t)) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wav = np.zeros(n)
    fade = int(0.008 * sr)
    intervals: list[Interval] = []
    for (phone, _), a, b in zip(content, bounds[:-1], bounds[1:], strict=True):
        intervals.append((a / sr, b / sr, phone))
        m = b - a
        if phone == "sil" or m <= 0:
            continue
        if phone in FRICATIVES:
            lo, hi = FRICATIVES[phone]
            seg = 0.35 * _band_noise(m, lo * voice.formant_scale, min(hi * voice.formant_scale, sr / 2 - 100), rng, sr)
        else:
            formants = VOWELS.get(phone) or NASALS[phone]
            h, amp = _harmonic_amps(formants, float(f0[a:b].mean()), voice, sr)
            seg = amp @ np.sin(h[:, None] * phase[None, a:b])
            seg = (0.45 if phone in NASALS else 1.0) * seg / (np.abs(seg).max() + 1e-9)
            seg += voice.breath * _band_noise(m, 300.0 * voice.formant_scale, 5000.0, rng, sr)
        ramp = np.minimum(1.0, np.minimum(np.arange(m), np.arange(m)[::-1]) / fade)
        wav[a:b] += seg * ramp
    wav += 0.002 * rng.standard_normal(n)  # a noise floor, so silence is not digital zero
    return (0.5 * wav / (np.abs(wav).max() + 1e-9)).astype(np.float32), intervals


def write_textgrid(path: Path, intervals: list[Interval], duration: float, phones_tier: str = "phones") -> None:
    """An MFA-style TextGrid: a `words` tier (one pseudo-word per syllable, silence blank) and the phones tier."""
    from praatio import textgrid

    words: list[Interval] = []
    for start, end, phone in intervals:
        if phone == "sil":
            continue
        if words and phone in VOWELS and words[-1][2] in CONSONANTS and abs(words[-1][1] - start) < 1e-9:
            words[-1] = (words[-1][0], end, words[-1][2] + phone)
        else:
            words.append((start, end, phone))
    tg = textgrid.Textgrid()
    tg.addTier(textgrid.IntervalTier("words", [(s, e, w.lower()) for s, e, w in words], 0, duration))
    tg.addTier(textgrid.IntervalTier(phones_tier, intervals, 0, duration))
    path.parent.mkdir(parents=True, exist_ok=True)
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True)


@dataclass
class Utterance:
    speaker: str
    wav: Path
    textgrid: Path | None
    content_id: int  # index into Corpus.contents (same id = same phones and timing)
    intervals: list[Interval]


@dataclass
class Corpus:
    root: Path
    voices: list[Voice]
    contents: list[Content]
    utterances: list[Utterance] = field(default_factory=list)


def _relative_wav(layout: str, spk: str, k: int) -> Path:
    if layout == "plain":
        return Path(spk) / f"utt{k:03d}.wav"
    if layout == "libritts":
        chapter = 100 + k % 2
        return Path(spk) / str(chapter) / f"{spk}_{chapter}_{k:06d}_000000.wav"
    if layout == "vctk":
        return Path("wav48_silence_trimmed") / spk / f"{spk}_{k + 1:03d}_mic2.flac"
    raise ValueError(f"layout must be plain, libritts or vctk, not {layout!r}")


def write_corpus(root: str | Path, n_speakers: int = 4, n_utts: int = 6, seed: int = 0, *, layout: str = "plain",
                 textgrids: str | Path | None = None, shared_content: bool = True, sr: int = SR,
                 spn_utts: int = 0, phones_tier: str = "phones") -> Corpus:
    """Write `n_utts` utterances per speaker under `root` (see the module docstring). With `shared_content` every
    speaker says the same `n_utts` contents (parallel data), else every utterance is new. The first `spn_utts`
    utterances of each speaker get an `spn` (unknown word) interval in their TextGrid."""
    import soundfile as sf

    root = Path(root)
    rng = np.random.default_rng(seed)
    voices = make_voices(n_speakers, seed)
    names = {"libritts": [str(1000 + 37 * k) for k in range(n_speakers)],
             "vctk": [f"p{225 + k}" for k in range(n_speakers)]}.get(layout)
    if names is not None:  # the corpus's own speaker naming
        voices = [Voice(name, v.f0, v.f0_range, v.formant_scale, v.tilt, v.breath) for name, v in zip(names, voices)]
    n_contents = n_utts if shared_content else n_utts * n_speakers
    contents = [random_content(rng) for _ in range(n_contents)]
    corpus = Corpus(root, voices, contents)
    for s, voice in enumerate(voices):
        for k in range(n_utts):
            cid = k if shared_content else s * n_utts + k
            wav, intervals = render(voice, contents[cid], rng, sr)
            rel = _relative_wav(layout, voice.name, k)
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, wav, sr)
            tg_path = None
            if textgrids is not None:
                tg_path = Path(textgrids) / voice.name / (Path(rel).stem + ".TextGrid")
                tier = list(intervals)
                if k < spn_utts:
                    start, end, _ = tier[1]
                    tier[1] = (start, end, "spn")
                write_textgrid(tg_path, tier, len(wav) / sr, phones_tier)
            corpus.utterances.append(Utterance(voice.name, root / rel, tg_path, cid, intervals))
    return corpus
