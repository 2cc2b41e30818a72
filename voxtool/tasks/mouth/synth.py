"""Synthetic LipsSync takes where the mouth opening drives the sound (tests, demo, benchmarks).

A take is a source-filter "singer": a harmonic glottal source at a sung pitch, shaped by formant resonances.
The first formant (F1) rises with the mouth opening, as it does in real vowels, and the loudness follows the
opening only partly: each note also has its own dynamic (crescendo, accent), so a loudness envelope is a weak
predictor of the opening while the spectrum (F1) is a strong one. Singers differ by pitch range, formant scale
(vocal-tract length), spectral tilt and level, so a model must generalise to an unseen singer.

The capture side imitates the iPhone app: blendshape rows at ~60 fps with timing jitter, starting a little after
the audio and ending a little before it, optionally beginning with a frozen-tracker run (identical rows).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxtool.tasks.mouth.metrics import pearson  # noqa: F401  (re-exported for tests and the demo)

CONTROL_RATE = 200  # Hz; the curves and the filter are defined at this rate and interpolated to audio rate


@dataclass(frozen=True)
class Singer:
    """One synthetic voice. `f0_hz` is the centre of the sung range; `formant_scale` >1 = shorter tract;
    `label_scale` is the face's jaw scale as the tracker sees it: the captured jawOpen and mouthClose are the true
    ones times this factor (a per-face gain the sound does not reveal, what the original's k_filter absorbs)."""

    name: str
    f0_hz: float
    formant_scale: float
    tilt_db_per_octave: float = -9.0
    level: float = 0.3
    label_scale: float = 1.0


@dataclass
class SynthTake:
    """A synthetic take: audio (N,) at `sr` and the ground-truth blendshapes at CONTROL_RATE.

    `curve_t` (M,) seconds, `jaw_open`, `mouth_close`, `lips_distance` (M,) float arrays.
    """

    audio: np.ndarray
    sr: int
    curve_t: np.ndarray
    jaw_open: np.ndarray
    mouth_close: np.ndarray
    lips_distance: np.ndarray

    @property
    def opening(self) -> np.ndarray:
        """jawOpen - mouthClose, the default training target."""
        return self.jaw_open - self.mouth_close

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sr


TRAIN_SINGERS = (
    Singer("bass", 110.0, 0.88, -10.0, 0.35),
    Singer("baritone", 147.0, 0.94, -9.0, 0.25),
    Singer("tenor", 220.0, 1.00, -8.0, 0.30),
    Singer("alto", 262.0, 1.08, -9.5, 0.20),
    Singer("soprano", 392.0, 1.16, -8.5, 0.28),
)
UNSEEN_SINGER = Singer("mezzo", 196.0, 1.04, -11.0, 0.22)


def make_singers(n: int, seed: int = 0) -> list[Singer]:
    """`n` random singers spread over bass..soprano ranges (for larger synthetic corpora)."""
    rng = np.random.default_rng(seed)
    singers = []
    for i in range(n):
        f0 = float(110.0 * 2 ** rng.uniform(0, 2))
        scale = float(0.86 + 0.32 * (np.log2(f0 / 110.0) / 2) + rng.uniform(-0.04, 0.04))
        singers.append(Singer(f"s{i:02d}", f0, scale, float(rng.uniform(-12, -7)), float(rng.uniform(0.15, 0.4))))
    return singers


def _smooth(x: np.ndarray, seconds: float) -> np.ndarray:
    """Moving-average smoothing at CONTROL_RATE with edge replication."""
    n = max(1, int(round(seconds * CONTROL_RATE)))
    if n == 1:
        return x
    kernel = np.ones(n) / n
    padded = np.concatenate([np.full(n, x[0]), x, np.full(n, x[-1])])
    return np.convolve(padded, kernel, mode="same")[n:-n]


def _score(rng: np.random.Generator, duration: float) -> dict[str, np.ndarray]:
    """Notes and rests at CONTROL_RATE: opening, lip closure, loudness, pitch ratio, F2 and breath noise."""
    m = int(round(duration * CONTROL_RATE))
    room = m + 2 * CONTROL_RATE  # notes may run past the end; cropped to m below
    opening = np.zeros(room)
    closure = np.zeros(room)
    dyn = np.zeros(room)
    semitones = np.zeros(room)
    f2 = np.full(room, 1500.0)
    breath = np.zeros(room)
    i = 0
    last_semi = 0.0
    while i < m:
        if rng.random() < 0.18:  # a rest: silent, mouth nearly closed, sometimes an inhale through the mouth
            n = int(rng.uniform(0.2, 0.6) * CONTROL_RATE)
            opening[i : i + n] = rng.uniform(0.0, 0.08)
            if rng.random() < 0.25:
                opening[i : i + n] = rng.uniform(0.25, 0.5)
                breath[i : i + n] = rng.uniform(0.01, 0.03)
            semitones[i : i + n] = last_semi
            i += n
            continue
        n = int(rng.uniform(0.25, 0.9) * CONTROL_RATE)
        vowel = rng.uniform(0.12, 0.95)
        onset = int(rng.uniform(0.03, 0.12) * CONTROL_RATE)
        seg = np.full(n, vowel)
        seg[:onset] = np.linspace(rng.uniform(0.0, 0.15), vowel, onset)  # consonant -> vowel
        opening[i : i + n] = seg
        if rng.random() < 0.3:  # bilabial onset (m/b/p): the lips press together
            closure[i : i + min(onset, n)] = rng.uniform(0.15, 0.35)
        # loudness: its own per-note dynamic (independent of the vowel) with a crescendo or decrescendo
        start, end = rng.uniform(0.35, 1.0, size=2)
        dyn[i : i + n] = np.linspace(start, end, n)
        last_semi = float(np.clip(last_semi + rng.integers(-4, 5), -7, 7))
        semitones[i : i + n] = last_semi
        f2[i : i + n] = rng.uniform(900, 2300)
        i += n
    opening, closure = opening[:m], closure[:m]
    return {
        "opening": np.clip(_smooth(opening, 0.04), 0.0, 1.0),
        "closure": np.clip(_smooth(closure, 0.03), 0.0, 1.0),
        "dyn": _smooth(dyn[:m], 0.03),
        "semitones": _smooth(semitones[:m], 0.04),
        "f2": _smooth(f2[:m], 0.06),
        "breath": _smooth(breath[:m], 0.05),
    }


def _envelope(freqs: np.ndarray, formants: list[np.ndarray], bandwidths: list[float]) -> np.ndarray:
    """Cascade (all-pole) vocal tract, unit gain at 0 Hz. freqs (K, M) Hz, formants list of (M,) -> (K, M).

    A cascade is used rather than a sum of peaks because it gets the physics right that matters here:
    raising F1 (opening the mouth) raises the level of everything above it, so open vowels are louder.
    """
    out = np.ones(freqs.shape)
    for f, bw in zip(formants, bandwidths):
        fc = f[None, :]
        out *= fc**2 / np.sqrt((fc**2 - freqs**2) ** 2 + (freqs * bw) ** 2)
    return out


def render(score: dict[str, np.ndarray], singer: Singer, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Source-filter rendering of a score -> float32 audio (N,)."""
    m = len(score["opening"])
    n = int(m * sr / CONTROL_RATE)
    t_ctrl = np.arange(m) / CONTROL_RATE
    t = np.arange(n) / sr
    effective = np.clip(score["opening"] - score["closure"], 0.0, 1.0)
    vib = 0.25 * np.sin(2 * np.pi * 5.5 * t_ctrl) * np.clip(score["dyn"] > 0, 0, 1)
    f0_ctrl = singer.f0_hz * 2.0 ** ((score["semitones"] + vib) / 12.0)
    f0 = np.interp(t, t_ctrl, f0_ctrl)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    s = singer.formant_scale
    formants = [
        s * (260.0 + 640.0 * effective),  # F1 follows the opening
        s * score["f2"],
        np.full(m, s * 2650.0),
        np.full(m, s * 3450.0),
    ]
    k_max = int(min(6000.0, sr / 2 - 200) / (singer.f0_hz * 2 ** (-7.5 / 12)))
    harmonics = np.arange(1, k_max + 1, dtype=np.float64)
    freqs = harmonics[:, None] * f0_ctrl[None, :]  # (K, M)
    env = _envelope(freqs, formants, [90.0, 120.0, 180.0, 250.0])
    tilt = 10 ** (singer.tilt_db_per_octave * np.log2(harmonics) / 20.0)[:, None]
    amp_ctrl = env * tilt * (freqs < sr / 2 - 100)
    loud = score["dyn"]  # the opening changes loudness only through the tract (F1)
    voice = np.zeros(n)
    for k in range(len(harmonics)):
        voice += np.interp(t, t_ctrl, amp_ctrl[k] * loud) * np.sin(harmonics[k] * phase + 0.3 * k)
    voice *= singer.level / max(1e-6, np.abs(voice).max())
    # breath/aspiration noise shaped by a low-pass, plus a quiet noise floor so silence is not digital zero
    noise = rng.standard_normal(n)
    noise = np.convolve(noise, np.ones(4) / 4, mode="same")
    breath = np.interp(t, t_ctrl, score["breath"]) * noise
    floor = 10 ** (-62 / 20) * rng.standard_normal(n)
    return (voice + breath + floor).astype(np.float32)


def synth_take(singer: Singer, duration: float, seed: int, sr: int = 16000) -> SynthTake:
    """A `duration`-second take of `singer` with its true blendshape curves."""
    rng = np.random.default_rng(seed)
    score = _score(rng, duration)
    audio = render(score, singer, sr, rng)
    t = np.arange(len(score["opening"])) / CONTROL_RATE
    # jawOpen carries the opening; mouthClose the lip press (plus a small resting value)
    jaw = np.clip(singer.label_scale * (score["opening"] + score["closure"] * 0.5), 0, 1)
    close = np.clip(singer.label_scale * (0.02 + score["closure"] * 0.5), 0, 1)
    lips = 0.2 + 3.5 * np.clip(jaw - close, 0, 1)
    return SynthTake(audio, sr, t, jaw, close, lips)


def capture_rows(
    take: SynthTake,
    rng: np.random.Generator,
    fps: float = 60.0,
    start: float | None = None,
    end: float | None = None,
    frozen_rows: int = 0,
) -> np.ndarray:
    """Tracker rows (R, 4): time s, jawOpen, mouthClose, lipsDistance, sampled with jitter within [start, end].

    The first `frozen_rows` rows repeat the first row's values (a tracker that has not locked on yet).
    """
    start = rng.uniform(0.15, 0.5) if start is None else start
    end = take.duration - rng.uniform(0.1, 0.4) if end is None else end
    n = int((end - start) * fps)
    times = start + np.arange(n) / fps + rng.uniform(-0.002, 0.002, n)
    times[0], times[-1] = start, min(end, times[-1])
    times = np.maximum.accumulate(times)
    rows = np.stack(
        [
            times,
            np.interp(times, take.curve_t, take.jaw_open),
            np.interp(times, take.curve_t, take.mouth_close),
            np.interp(times, take.curve_t, take.lips_distance),
        ],
        axis=1,
    )
    rows[:, 1:] = np.round(rows[:, 1:], 6)
    if frozen_rows:
        rows[:frozen_rows, 1:] = [0.3712, 0.0405, 1.9]  # a stuck tracker, not the singer's face
    return rows


def write_csv(path: Path, rows: np.ndarray, schema: str = "iphone", lips_column: str | None = "LipsDistance"):
    """Write tracker rows in the iPhone (`TimeStamp` s) or Android (`timestamp_ms`) LipsSync schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if schema == "iphone":
            header = ["TimeStamp", "jawOpen", "mouthClose"] + ([lips_column] if lips_column else [])
            w.writerow(header)
            for r in rows:
                w.writerow([f"{r[0]:.6f}", f"{r[1]:.6f}", f"{r[2]:.6f}"] + ([f"{r[3]:.4f}"] if lips_column else []))
        elif schema == "android":
            w.writerow(["timestamp_ms", "jaw_open", "mouth_close"])
            for r in rows:
                w.writerow([int(round(r[0] * 1000)), f"{r[1]:.4f}", f"{r[2]:.4f}"])
        else:
            raise ValueError(f"unknown schema {schema!r}")


def write_take(
    take_dir: Path,
    take: SynthTake,
    seed: int = 0,
    schema: str = "iphone",
    frozen_rows: int = 0,
    file_sr: int | None = None,
) -> Path:
    """Write `audio.wav` + `mouth_data.csv` into `take_dir` (a LipsSync session folder); returns the wav path."""
    import soundfile as sf

    from voxtool.audio.io import resample

    take_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 7919)
    rows = capture_rows(take, rng, frozen_rows=frozen_rows)
    write_csv(take_dir / "mouth_data.csv", rows, schema)
    audio = take.audio if not file_sr or file_sr == take.sr else resample(take.audio, take.sr, file_sr)
    wav = take_dir / "audio.wav"
    sf.write(str(wav), audio, file_sr or take.sr, subtype="PCM_16")
    return wav


def make_corpus(
    root: Path,
    singers: list[Singer] | tuple[Singer, ...] = TRAIN_SINGERS,
    takes_per_singer: int = 3,
    duration: float = 12.0,
    seed: int = 0,
    frozen_rows: int = 6,
) -> list[Path]:
    """`root/<singer>/take_<i>/{audio.wav,mouth_data.csv}` for every singer; returns the wav paths."""
    wavs = []
    for si, singer in enumerate(singers):
        for ti in range(takes_per_singer):
            take_seed = seed * 100_003 + si * 1009 + ti
            take = synth_take(singer, duration, take_seed)
            wavs.append(write_take(root / singer.name / f"take_{ti}", take, take_seed, frozen_rows=frozen_rows))
    return wavs


def loudness_db(audio: np.ndarray, sr: int, times: np.ndarray, window: float = 0.064) -> np.ndarray:
    """RMS level in dB of a `window`-second frame centred at each of `times` (the loudness-envelope baseline)."""
    half = int(window * sr / 2)
    padded = np.pad(audio.astype(np.float64), half)
    power = np.concatenate([[0.0], np.cumsum(padded**2)])
    centre = np.clip(np.round(times * sr).astype(int), 0, len(audio)) + half
    energy = (power[centre + half] - power[centre - half]) / (2 * half)
    return 10 * np.log10(energy + 1e-10)
