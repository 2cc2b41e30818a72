"""Formant-synthesised "voices" for softvc tests and demos (numpy only, fast).

An utterance is content (a phone sequence: vowel-like voiced segments with formants, noise-like fricatives, short
silences, each with a loudness) plus a melody (f0 per 20 ms frame). A `SynthVoice` is the timbre: formant scaling,
glottal tilt, breathiness, formant bandwidths, fricative colour. The same content and melody rendered by two voices
is a parallel utterance (for conversion tests); the f0 is known exactly (`frame_f0`).

Voiced sound is additive: harmonics of the melody's f0 weighted by a cascade of three formant resonances and a
glottal spectral tilt, evaluated every 5 ms and interpolated, so f0 and formants glide without clicks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

SR = 16000
FRAME_RATE = 50  # melody / f0 frames per second (hop 320 at 16 kHz, aligned with HuBERT units)
CONTROL_RATE = 200  # envelope evaluation rate (5 ms)

# F1, F2, F3 (Hz) of a reference voice; nasals are voiced with a low F1 and weak upper formants.
VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730, 1090, 2440), "i": (270, 2290, 3010), "u": (300, 870, 2240), "e": (530, 1840, 2480),
    "o": (570, 840, 2410), "ae": (660, 1720, 2410), "er": (490, 1350, 1690), "m": (250, 1000, 2200),
    "n": (250, 1400, 2500),
}
# Fricatives: centre (Hz) and width (Hz) of the noise band.
FRICATIVES: dict[str, tuple[float, float]] = {"s": (6000, 2000), "sh": (3000, 1400), "f": (4500, 4000), "h": (1500, 1500)}
SILENCE = "_"
PHONES: tuple[str, ...] = (*VOWELS, *FRICATIVES, SILENCE)


class Phone(NamedTuple):
    """One segment of content: `name` in PHONES, `seconds` long, at relative `loudness` (0..1]."""

    name: str
    seconds: float
    loudness: float


@dataclass(frozen=True)
class SynthVoice:
    """Timbre settings. formant_scale multiplies F1-F3 (vocal tract length); tilt is the glottal roll-off exponent
    (harmonic k gets k**-tilt); breath is the aspiration noise level mixed into voiced sound; bandwidth_scale widens
    formants; fricative_scale shifts fricative bands; gain is the peak level."""

    name: str = "voice0"
    formant_scale: float = 1.0
    f3_scale: float = 1.0
    tilt: float = 1.2
    breath: float = 0.02
    bandwidth_scale: float = 1.0
    fricative_scale: float = 1.0
    gain: float = 0.5


def voice(i: int) -> SynthVoice:
    """Distinct voices: 0 a low, dark voice; 1 a high, bright one; 2.. drawn at random (deterministic in `i`)."""
    if i == 0:
        return SynthVoice("voice0", formant_scale=0.88, f3_scale=0.95, tilt=1.5, breath=0.01, bandwidth_scale=1.0,
                          fricative_scale=0.85, gain=0.5)
    if i == 1:
        return SynthVoice("voice1", formant_scale=1.18, f3_scale=1.08, tilt=0.9, breath=0.04, bandwidth_scale=1.4,
                          fricative_scale=1.15, gain=0.45)
    rng = np.random.default_rng(7919 + i)
    return SynthVoice(f"voice{i}", formant_scale=float(rng.uniform(0.85, 1.2)), f3_scale=float(rng.uniform(0.9, 1.1)),
                      tilt=float(rng.uniform(0.8, 1.6)), breath=float(rng.uniform(0.005, 0.05)),
                      bandwidth_scale=float(rng.uniform(0.8, 1.5)), fricative_scale=float(rng.uniform(0.8, 1.2)),
                      gain=float(rng.uniform(0.35, 0.6)))


def random_phones(seed: int, seconds: float) -> list[Phone]:
    """A random phone sequence exactly `seconds` long: mostly vowels, some fricatives, a few short silences."""
    rng = np.random.default_rng(seed)
    vowels, fricatives = list(VOWELS), list(FRICATIVES)
    phones: list[Phone] = []
    total = 0.0
    while total < seconds:
        r = rng.random()
        if r < 0.65:
            p = Phone(vowels[rng.integers(len(vowels))], float(rng.uniform(0.08, 0.25)), float(rng.uniform(0.4, 1.0)))
        elif r < 0.9:
            p = Phone(fricatives[rng.integers(len(fricatives))], float(rng.uniform(0.06, 0.15)),
                      float(rng.uniform(0.3, 0.8)))
        else:
            p = Phone(SILENCE, float(rng.uniform(0.06, 0.2)), 0.0)
        phones.append(p)
        total += p.seconds
    last = phones[-1]
    phones[-1] = last._replace(seconds=last.seconds - (total - seconds))
    return phones


def random_melody(seed: int, n_frames: int, low_hz: float = 110.0, high_hz: float = 330.0,
                  note_frames: tuple[int, int] = (8, 30), vibrato_cents: float = 20.0,
                  detune_cents: float = 0.0) -> np.ndarray:
    """(n_frames,) float32 f0 in Hz at 50 Hz: held notes on a semitone grid (random walk of -4..+4 semitones within
    [low_hz, high_hz]) with a 5.5 Hz vibrato of `vibrato_cents`. Always > 0 (unvoicing comes from the phones).
    `detune_cents` > 0 moves each note off the grid by a uniform offset in +-detune_cents (clipped to the range), as
    a singer's intonation does, so pitches between the grid's notes are sung too."""
    rng = np.random.default_rng(seed)
    detune_rng = np.random.default_rng([seed, 1])  # a separate stream: the grid melody is the same with or without
    span = int(np.floor(12 * np.log2(high_hz / low_hz)))
    note = int(rng.integers(0, span + 1))
    semis = np.empty(n_frames)
    i = 0
    while i < n_frames:
        n = int(rng.integers(note_frames[0], note_frames[1] + 1))
        semis[i:i + n] = note + (detune_rng.uniform(-1, 1) * detune_cents / 100 if detune_cents else 0.0)
        i += n
        note = int(np.clip(note + rng.integers(-4, 5), 0, span))
    t = np.arange(n_frames) / FRAME_RATE
    semis = np.clip(semis, 0, 12 * np.log2(high_hz / low_hz))
    semis = semis + vibrato_cents / 100 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))
    return (low_hz * 2 ** (semis / 12)).astype(np.float32)


def _segments(phones: list[Phone], n: int, rate: int) -> np.ndarray:
    """(n,) int phone index per step at `rate` steps/s (boundaries rounded; the last phone fills up)."""
    ends = np.round(np.cumsum([p.seconds for p in phones]) * rate).astype(int)
    idx = np.searchsorted(ends, np.arange(n), side="right")
    return np.minimum(idx, len(phones) - 1)


def frame_f0(phones: list[Phone], melody_hz: np.ndarray) -> np.ndarray:
    """(N,) float32 known f0 per 50 Hz frame: the melody where the frame centre lies in a voiced phone, else 0."""
    n = len(melody_hz)
    centres = (np.arange(n) + 0.5) / FRAME_RATE
    ends = np.cumsum([p.seconds for p in phones])
    idx = np.minimum(np.searchsorted(ends, centres, side="right"), len(phones) - 1)
    voiced = np.array([phones[i].name in VOWELS for i in idx], dtype=bool)
    return np.where(voiced, melody_hz, 0.0).astype(np.float32)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average along axis 0 (edge-padded), so control tracks glide between phones."""
    if width <= 1:
        return x
    pad = np.pad(x, [(width // 2, width - 1 - width // 2)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    c = np.cumsum(np.concatenate([np.zeros_like(pad[:1]), pad]), axis=0)
    return (c[width:] - c[:-width]) / width


def _upsample(track: np.ndarray, factor: int, n: int) -> np.ndarray:
    """Linear interpolation of a control-rate track (C, ...) to n samples (n <= C * factor)."""
    return _upsample_range(track, factor, 0, n)


def render(phones_or_seed: list[Phone] | int, melody_hz: np.ndarray, voice: SynthVoice, sr: int = SR,
           noise_seed: int = 0) -> np.ndarray:
    """(len(melody_hz) * sr // 50,) float32 waveform of the content spoken by `voice` over `melody_hz` (f0 per 20 ms).

    `phones_or_seed` is a phone list or a seed for `random_phones`; rendering the same content and melody with two
    voices gives a parallel utterance.
    """
    melody_hz = np.asarray(melody_hz, dtype=np.float64)
    hop = sr // FRAME_RATE
    n = len(melody_hz) * hop
    phones = phones_or_seed if isinstance(phones_or_seed, list) else random_phones(phones_or_seed, n / sr)
    rng = np.random.default_rng(noise_seed)
    step = sr // CONTROL_RATE
    n_ctrl = -(-n // step) + 1
    seg = _segments(phones, n_ctrl, CONTROL_RATE)
    names = [p.name for p in phones]
    is_voiced = np.array([nm in VOWELS for nm in names])[seg].astype(np.float64)
    is_fric = np.array([nm in FRICATIVES for nm in names])[seg].astype(np.float64)
    loud = np.array([p.loudness for p in phones])[seg]
    formants = np.array([VOWELS.get(nm, VOWELS["er"]) for nm in names], dtype=np.float64)[seg]
    formants = formants * voice.formant_scale * np.array([1.0, 1.0, voice.f3_scale])
    formants = _smooth(formants, 6)  # 30 ms formant transitions
    ramp = 3  # 15 ms on/offsets
    voiced_env = _smooth(is_voiced * loud, ramp)
    fric_env = _smooth(is_fric * loud, ramp)

    # f0 per sample: linear between frame centres, so the frame-centre value is the melody exactly.
    centres = (np.arange(len(melody_hz)) + 0.5) * hop
    f0 = np.interp(np.arange(n), centres, melody_hz)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    n_harm = int(0.48 * sr / max(f0.min(), 30.0))
    k = np.arange(1, n_harm + 1, dtype=np.float64)
    # Harmonic amplitudes at control rate: glottal tilt times a cascade of 3 resonances (DC gain 1).
    f0_ctrl = np.interp(np.arange(n_ctrl) * step, np.arange(n), f0)
    freqs = f0_ctrl[:, None] * k[None, :]  # (C, K)
    amp = k[None, :] ** -voice.tilt
    for j, base_bw in enumerate((80.0, 100.0, 150.0)):
        fj, half = formants[:, j:j + 1], 0.5 * base_bw * voice.bandwidth_scale
        amp = amp * (fj**2 + half**2) / np.sqrt(((freqs - fj) ** 2 + half**2) * ((freqs + fj) ** 2 + half**2))
    amp = np.where(freqs < 0.48 * sr, amp, 0.0)
    # Equal power per voiced frame (the loudness envelope sets the level), whatever the formants do to the gain.
    amp = amp / np.sqrt(np.sum(amp**2, axis=1, keepdims=True) + 1e-12) * voiced_env[:, None]

    wav = np.zeros(n)
    block = 4000
    for s in range(0, n, block):
        e = min(s + block, n)
        a = _upsample_range(amp, step, s, e)
        wav[s:e] = np.sum(a * np.sin(phase[s:e, None] * k[None, :]), axis=1)
    wav += voice.breath * _upsample(voiced_env, step, n) * rng.standard_normal(n)
    wav += _fricative_noise(phones, voice, sr, n, rng) * _upsample(fric_env, step, n)
    peak = np.max(np.abs(wav))
    return (wav * (voice.gain / peak if peak > 0 else 1.0)).astype(np.float32)


def _upsample_range(track: np.ndarray, factor: int, start: int, stop: int) -> np.ndarray:
    """Samples start..stop of `_upsample(track, factor, ...)` without building the whole signal."""
    pos = (np.arange(start, stop) + 0.5) / factor - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, len(track) - 1)
    hi = np.minimum(lo + 1, len(track) - 1)
    frac = np.clip(pos - lo, 0.0, 1.0).reshape((-1,) + (1,) * (track.ndim - 1))
    return track[lo] * (1 - frac) + track[hi] * frac


def _fricative_noise(phones: list[Phone], voice: SynthVoice, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) noise whose spectrum follows each fricative's band (Gaussian in frequency), unit RMS inside fricatives."""
    out = np.zeros(n)
    start = 0.0
    for p in phones:
        a, b = int(round(start * sr)), min(n, int(round((start + p.seconds) * sr)))
        start += p.seconds
        if p.name not in FRICATIVES or b - a < 16:
            continue
        pad = 256  # extra noise on both sides so the envelope ramps see band-limited noise, not silence
        a0, b0 = max(0, a - pad), min(n, b + pad)
        centre, width = FRICATIVES[p.name]
        centre *= voice.fricative_scale
        spec = np.fft.rfft(rng.standard_normal(b0 - a0))
        f = np.fft.rfftfreq(b0 - a0, 1 / sr)
        noise = np.fft.irfft(spec * np.exp(-0.5 * ((f - centre) / width) ** 2), b0 - a0)
        noise /= np.sqrt(np.mean(noise**2)) + 1e-12
        out[a0:b0] = np.where(out[a0:b0] == 0, noise, out[a0:b0])
    return 0.5 * out


def corpus_item(seed: int, i: int, seconds: float) -> tuple[list[Phone], np.ndarray]:
    """Content and melody of item `i` of a corpus drawn with `seed` (the same for every voice)."""
    n_frames = int(round(seconds * FRAME_RATE))
    return random_phones(seed * 100003 + 2 * i, n_frames / FRAME_RATE), random_melody(seed * 100003 + 2 * i + 1, n_frames)


def write_corpus(out_dir: str | Path, n_items: int, voice: SynthVoice, seed: int,
                 seconds: float | tuple[float, float] = 2.0, sr: int = SR) -> list[Path]:
    """Write `n_items` wavs `utt000.wav`, ... of `voice` into `out_dir` (created); returns their paths.

    Item i's content and melody depend only on (seed, i), so two voices written with the same seed are parallel
    corpora with matching file names. `seconds` is a length or a (low, high) range drawn per item.
    """
    import soundfile as sf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n_items):
        secs = float(seconds) if np.isscalar(seconds) else float(rng.uniform(*seconds))
        phones, melody = corpus_item(seed, i, secs)
        path = out / f"utt{i:03d}.wav"
        sf.write(path, render(phones, melody, voice, sr=sr, noise_seed=seed * 7 + i), sr, subtype="FLOAT")
        paths.append(path)
    return paths
