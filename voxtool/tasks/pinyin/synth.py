"""A synthetic tonal "language" with known answers, for the learning, alignment tests and the benchmark.

Syllables = initial (none, b, s, sh, m) + final (a, i, u) + tone (1-4): 60 syllables.
- finals are harmonic sounds whose spectral envelope has two formant peaks per vowel (a / i / u);
- tones are f0 contours (1 high level, 2 rising, 3 low dipping, 4 falling);
- initials are noise bursts in distinct bands (b low burst, s very high, sh high) or a low murmur (m).
Utterances are 2-6 syllables with random pauses; the exact syllable and initial/final boundaries are returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SR = 16000
INITIALS = ("", "b", "s", "sh", "m")
FINALS = ("a", "i", "u")
TONES = (1, 2, 3, 4)
FORMANTS = {"a": (850.0, 1250.0), "i": (300.0, 2400.0), "u": (350.0, 750.0)}
F0 = {1: (265.0, 265.0, 265.0), 2: (165.0, 200.0, 275.0), 3: (175.0, 125.0, 160.0), 4: (290.0, 230.0, 150.0)}
NOISE_BANDS = {"b": (150.0, 1200.0), "s": (5000.0, 7500.0), "sh": (2200.0, 4200.0)}


def syllable_name(initial: str, final: str, tone: int) -> str:
    """Ordinary pinyin spelling of a synthetic syllable (''+i+1 -> yi1, s+i+1 -> si1)."""
    from voxtool.tasks.pinyin.tokens import display_pinyin

    return display_pinyin(initial, f"{final}{tone}")


ALL_SYLLABLES = [(i, f, t) for i in INITIALS for f in FINALS for t in TONES]


@dataclass
class Segment:
    pinyin: str
    start: float  # syllable start (s)
    final_start: float  # where the final begins (== start for zero initials)
    end: float


def _band_noise(n: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spec[(freqs < lo) | (freqs > hi)] = 0
    out = np.fft.irfft(spec, n)
    return out / (np.abs(out).max() + 1e-9)


def _voiced(n: int, vowel: str, tone: int, rng: np.random.Generator, nasal: bool = False) -> np.ndarray:
    knots = np.asarray(F0[tone]) * rng.uniform(0.95, 1.05)
    f0 = np.interp(np.linspace(0, 2, n), [0, 1, 2], knots)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    if nasal:
        f1, f2, bw = 250.0, 250.0, 120.0
    else:
        f1, f2 = FORMANTS[vowel]
        bw = 110.0
    # harmonic amplitudes from the mean f0 (the envelope barely moves within one syllable): (H,) scalars
    h = np.arange(1, int(5000 / knots.max()) + 1)
    fh = h * knots.mean()
    amp = np.exp(-0.5 * ((fh - f1) / bw) ** 2) + 0.7 * np.exp(-0.5 * ((fh - f2) / bw) ** 2) + 0.02
    out = amp @ np.sin(h[:, None] * phase[None, :])
    env = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.012 * SR))
    return out * env / (np.abs(out).max() + 1e-9)


def render_syllable(initial: str, final: str, tone: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """-> (audio, samples of the initial)."""
    n_init = int(rng.uniform(0.05, 0.08) * SR) if initial else 0
    n_final = int(rng.uniform(0.16, 0.30) * SR)
    parts = []
    if initial == "m":
        parts.append(0.5 * _voiced(n_init, "u", tone, rng, nasal=True))
    elif initial:
        lo, hi = NOISE_BANDS[initial]
        noise = _band_noise(n_init, lo, hi, rng)
        env = np.ones(n_init)
        if initial == "b":  # a short burst, then a gap-free fade
            env = np.exp(-np.arange(n_init) / (0.02 * SR))
        parts.append(0.5 * noise * env)
    parts.append(0.8 * _voiced(n_final, final, tone, rng))
    return np.concatenate(parts), n_init


def make_utterance(rng: np.random.Generator, n_min: int = 2, n_max: int = 6,
                   syllables: list[tuple[str, str, int]] | None = None,
                   max_pause: float = 0.12) -> tuple[np.ndarray, list[Segment]]:
    """-> (float32 audio at 16 kHz, segments with exact times)."""
    if syllables is None:
        n = int(rng.integers(n_min, n_max + 1))
        syllables = [ALL_SYLLABLES[int(k)] for k in rng.integers(0, len(ALL_SYLLABLES), n)]
    pieces = [np.zeros(int(rng.uniform(0.08, 0.15) * SR))]
    pos = pieces[0].size
    segs = []
    for k, (ini, fin, tone) in enumerate(syllables):
        audio, n_init = render_syllable(ini, fin, tone, rng)
        segs.append(Segment(syllable_name(ini, fin, tone), pos / SR, (pos + n_init) / SR, (pos + audio.size) / SR))
        pieces.append(audio)
        pos += audio.size
        gap = np.zeros(int(rng.uniform(0.0, max_pause) * SR) if k < len(syllables) - 1 else
                       int(rng.uniform(0.08, 0.15) * SR))
        pieces.append(gap)
        pos += gap.size
    wav = np.concatenate(pieces)
    wav = wav + 0.003 * rng.standard_normal(wav.size)  # a noise floor so trimming and log-mel behave
    return (0.5 * wav).astype(np.float32), segs


def write_corpus(root, n: int, seed: int, speakers: int = 6, **kw) -> list[tuple[str, str, list[Segment]]]:
    """Write `n` utterances as wavs + `corpus.tsv` (path<TAB>pinyin<TAB>speaker) under `root`."""
    from pathlib import Path

    import soundfile as sf

    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    out = []
    for k in range(n):
        spk = f"spk{k % speakers}"
        wav, segs = make_utterance(rng, **kw)
        rel = f"{spk}/utt{k:04d}.wav"
        (root / spk).mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, wav, SR)
        text = " ".join(s.pinyin for s in segs)
        rows.append(f"{rel}\t{text}\t{spk}")
        out.append((rel, text, segs))
    (root / "corpus.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out
