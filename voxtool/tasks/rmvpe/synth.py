"""Synthetic singing-like data with exact f0 (tests, benchmarks, demos): harmonic tones with glides, vibrato and
unvoiced gaps, written as the generic `prep pitch` layout or the MIR-1K layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
HOP_S = 0.01


def harmonic_clip(rng: np.random.Generator, seconds: float = 2.0, f_lo: float = 110.0, f_hi: float = 880.0,
                  gap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(audio [N] float32, f0 [T] Hz on the 10 ms grid, 0 = unvoiced)."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    start, end = np.exp(rng.uniform(np.log(f_lo), np.log(f_hi), 2))
    vibrato = 1 + rng.uniform(0, 0.02) * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    f0 = start * (end / start) ** (t / seconds) * vibrato
    voiced = np.ones(n, dtype=bool)
    if gap:  # one silent gap so voicing decisions are tested too
        a = int(rng.uniform(0.3, 0.6) * n)
        voiced[a : a + int(0.25 * SR)] = False
    phase = 2 * np.pi * np.cumsum(f0) / SR
    amps = rng.uniform(0.2, 1.0, 8) / np.arange(1, 9)
    audio = sum(a * np.sin(k * phase) for k, a in enumerate(amps, start=1) if k * f0.max() < SR / 2 - 500)
    env = np.convolve(voiced.astype(float), np.ones(160) / 160, mode="same")  # 10 ms fades, no clicks
    audio = 0.5 * audio / np.abs(audio).max() * env + 0.003 * rng.standard_normal(n)
    frames = np.arange(n // 160 + 1) * 160
    f0_frames = np.where(voiced[np.minimum(frames, n - 1)], f0[np.minimum(frames, n - 1)], 0.0)
    # frames whose 10 ms neighbourhood straddles a voicing edge are ambiguous: label them by the centre sample
    return audio.astype(np.float32), f0_frames.astype(np.float32)


def write_csv_dataset(root: Path, n_train: int, n_test: int, seed: int = 0, seconds: float = 2.0) -> Path:
    """``root/{train,test}/clip_i.wav`` + ``clip_i.csv`` (time,f0): the generic prep layout."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("test", n_test)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            audio, f0 = harmonic_clip(rng, seconds)
            sf.write(root / split / f"clip{i:03d}.wav", audio, SR)
            rows = "\n".join(f"{j * HOP_S:.3f},{v:.4f}" for j, v in enumerate(f0))
            (root / split / f"clip{i:03d}.csv").write_text("time,f0\n" + rows + "\n")
    return root


def write_mir1k_tree(root: Path, singers=("abjones", "amy", "bobon"), clips_per_singer: int = 3, seed: int = 1,
                     seconds: float = 2.0) -> Path:
    """A tiny tree in the MIR-1K layout: stereo Wavfile/*.wav (left accompaniment, right voice) and
    PitchLabel/*.pv (MIDI notes, 20 ms hop, line n = frame n)."""
    rng = np.random.default_rng(seed)
    (root / "Wavfile").mkdir(parents=True)
    (root / "PitchLabel").mkdir(parents=True)
    for singer in singers:
        for k in range(clips_per_singer):
            name = f"{singer}_{k + 1}_01"
            voice, f0 = harmonic_clip(rng, seconds)
            n = len(voice)
            acc = 0.2 * np.sin(2 * np.pi * 55 * np.arange(n) / SR) + 0.02 * rng.standard_normal(n)
            sf.write(root / "Wavfile" / f"{name}.wav", np.stack([acc, voice], axis=1).astype(np.float32), SR)
            lines = []
            for j in range(1, int(seconds / 0.02)):  # line j (1-based) = time j * 20 ms
                hz = f0[min(2 * j, len(f0) - 1)]
                lines.append(f"{69 + 12 * np.log2(hz / 440):.5f}" if hz > 0 else "0")
            (root / "PitchLabel" / f"{name}.pv").write_text("\n".join(lines) + "\n")
    return root


# Frame kinds of `voicing_clip` (what each unvoiced span holds): the voicing tests score false alarms per kind.
VOICED, SILENCE, BREATH, ACCOMPANIMENT = 0, 1, 2, 3
KIND_NAMES = {VOICED: "voiced", SILENCE: "silence", BREATH: "breath", ACCOMPANIMENT: "accompaniment-only"}


def _band_noise(rng: np.random.Generator, n: int, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Unit-peak white noise band-limited to [lo_hz, hi_hz] (a breath-like hiss) ``[n]``."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    noise = np.fft.irfft(spectrum * ((freqs >= lo_hz) & (freqs <= hi_hz)), n)
    return noise / (np.abs(noise).max() + 1e-12)


def _accompaniment(rng: np.random.Generator, n: int) -> np.ndarray:
    """Accompaniment ``[n]``, unit peak: either 2-3 steady bright harmonic notes re-struck with a plucked decay, or
    a lead line (one held note with vibrato, like the voice, but a clarinet's odd harmonics only)."""
    t = np.arange(n) / SR
    out = np.zeros(n)
    if rng.random() < 0.5:
        root_hz = np.exp(rng.uniform(np.log(90.0), np.log(300.0)))
        for ratio in rng.choice([1.0, 1.26, 1.5, 2.0], size=int(rng.integers(2, 4)), replace=False):
            phase = 2 * np.pi * root_hz * ratio * t
            out += sum(np.sin(k * phase) / k**1.2 for k in range(1, 12) if k * root_hz * ratio < SR / 2 - 500)
        period = rng.uniform(0.15, 0.5)  # re-struck every `period` seconds
        out *= np.exp(-(t % period) / rng.uniform(0.05, 0.3))
    else:
        pitch = np.exp(rng.uniform(np.log(150.0), np.log(600.0)))
        pitch = pitch * (1 + rng.uniform(0.005, 0.02) * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
        phase = 2 * np.pi * np.cumsum(pitch) / SR
        out = sum(np.sin(k * phase) / k for k in range(1, 16, 2) if k * pitch.max() < SR / 2 - 500)
    return out / (np.abs(out).max() + 1e-12)


def voicing_clip(rng: np.random.Generator, seconds: float = 3.0, f_lo: float = 110.0, f_hi: float = 660.0,
                 backing: tuple[float, float] = (0.1, 0.3)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sung notes separated by unvoiced spans of three known kinds -> (voice [N], accompaniment [N] float32,
    f0 [T] Hz on the 10 ms grid (0 = unvoiced), kind [T] int8: VOICED, SILENCE, BREATH or ACCOMPANIMENT).

    Notes (0.3-0.8 s, one pitch each with a glide and vibrato) alternate with gaps (0.2-0.5 s) that are, in a
    shuffled cycle, silent, a breath (band-limited hiss in the voice track) or accompaniment only (chords or a
    clarinet-like lead line in the accompaniment track, no voice). Half of the notes are sung over accompaniment too, so accompaniment alone is
    not a voicing cue; its peak under a note is U(`backing`) (the voice's is U(0.2, 0.5))."""
    n = int(seconds * SR)
    voice = np.zeros(n)
    acc = np.zeros(n)
    kind = np.full(n, SILENCE, dtype=np.int8)
    f0 = np.zeros(n)
    gaps: list[int] = []
    pos = int(rng.uniform(0.0, 0.3) * SR)
    sing = bool(rng.integers(0, 2))
    while pos < n:
        length = int((rng.uniform(0.3, 0.8) if sing else rng.uniform(0.2, 0.5)) * SR)
        end = min(n, pos + length)
        span = slice(pos, end)
        m = end - pos
        env = np.ones(m)
        fade = min(160, m // 2)  # 10 ms fades: no clicks
        env[:fade] = env[-fade:][::-1] = np.linspace(0, 1, fade) if fade else env[:0]
        if sing:
            t = np.arange(m) / SR
            start = np.exp(rng.uniform(np.log(f_lo), np.log(f_hi)))
            glide = 2 ** (rng.uniform(-1, 1) * t / 12)  # up to a semitone per second
            pitch = start * glide * (1 + rng.uniform(0, 0.02) * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
            phase = 2 * np.pi * np.cumsum(pitch) / SR
            amps = rng.uniform(0.2, 1.0, 8) / np.arange(1, 9)
            tone = sum(a * np.sin(k * phase) for k, a in enumerate(amps, start=1) if k * pitch.max() < SR / 2 - 500)
            voice[span] = rng.uniform(0.2, 0.5) * tone / np.abs(tone).max() * env
            kind[span], f0[span] = VOICED, pitch
            if rng.random() < 0.5:
                acc[span] = rng.uniform(*backing) * _accompaniment(rng, m)
        else:
            if not gaps:
                gaps = list(rng.permutation([SILENCE, BREATH, ACCOMPANIMENT]))
            kind[span] = gaps.pop()
            if kind[pos] == BREATH:
                voice[span] = rng.uniform(0.03, 0.15) * _band_noise(rng, m, 500.0, 5000.0) * np.hanning(m)
            elif kind[pos] == ACCOMPANIMENT:
                acc[span] = rng.uniform(0.1, 0.4) * _accompaniment(rng, m) * env
        pos, sing = end, not sing
    voice += 0.001 * rng.standard_normal(n)  # a recording's noise floor
    frames = np.minimum(np.arange(n // 160 + 1) * 160, n - 1)  # label each frame by its centre sample
    return voice.astype(np.float32), acc.astype(np.float32), f0[frames].astype(np.float32), kind[frames]


def write_voicing_dataset(root: Path, n_train: int, n_test: int, seed: int = 0, seconds: float = 3.0,
                          **clip_options) -> Path:
    """``root/{train,test}/clip_i.wav`` (stereo: left accompaniment, right voice, as MIR-1K) + ``clip_i.csv``
    (time,f0) from `voicing_clip` (`clip_options` go to it); each clip's frame kinds go to ``root/kinds/clip_i.npy`` (outside the
    prep tree, where a .npy would be read as a label)."""
    rng = np.random.default_rng(seed)
    (root / "kinds").mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n_train), ("test", n_test)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            voice, acc, f0, kind = voicing_clip(rng, seconds, **clip_options)
            name = f"{split}_clip{i:03d}"
            sf.write(root / split / f"{name}.wav", np.stack([acc, voice], axis=1), SR)
            rows = "\n".join(f"{j * HOP_S:.3f},{v:.4f}" for j, v in enumerate(f0))
            (root / split / f"{name}.csv").write_text("time,f0\n" + rows + "\n")
            np.save(root / "kinds" / f"{name}.npy", kind)
    return root
