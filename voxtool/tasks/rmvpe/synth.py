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
