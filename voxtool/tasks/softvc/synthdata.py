"""Synthetic softvc datasets for tests and benchmarks: formant-synthesised voices (`synth`) written straight into
the prepared-dataset layout of `voxtool prep softvc`, and the softvc-tiny training call they share.

Stand-ins that keep the tests about the acoustic model (no HuBERT, no pitch tracker needed):
- content units (`phone_units`): the phone identity per 50 Hz frame, one-hot and smoothed over 3 frames
  (speaker-independent and pitch-free by construction);
- pitdyn streams (`write_dataset`): the oracle pitch and dynamics bins one-hot, optionally corrupted to a given
  accuracy (`corrupt`), as a HuBERT-pit/dyn of that accuracy would give them.
Items depend only on (seed, i), so two voices rendered with the same arguments are parallel item by item.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from voxtool.tasks.softvc import synth
from voxtool.tasks.softvc.bins import PitchDynStats, pitch_to_bins, rms_to_bins

UNIT_DIM = 16  # >= len(synth.PHONES)
PITDYN_DIM = 64  # >= pitch_bins of 110-330 Hz (22) and the 32 dynamics bins
HOP = 320


def phone_units(phones: list[synth.Phone], n_frames: int, dim: int = UNIT_DIM) -> np.ndarray:
    """(N, dim) float32: one-hot phone identity at each 20 ms frame centre, smoothed by [1/4, 1/2, 1/4] over time."""
    centres = (np.arange(n_frames) + 0.5) / synth.FRAME_RATE
    ends = np.cumsum([p.seconds for p in phones])
    idx = np.minimum(np.searchsorted(ends, centres, side="right"), len(phones) - 1)
    ids = np.array([synth.PHONES.index(phones[i].name) for i in idx])
    onehot = np.eye(dim, dtype=np.float32)[ids]
    padded = np.pad(onehot, ((1, 1), (0, 0)), mode="edge")
    return (0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]).astype(np.float32)


def frame_rms(audio: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(audio.reshape(-1, HOP).astype(np.float64) ** 2, axis=1)).astype(np.float32)


def one_hot(bins: np.ndarray, dim: int) -> np.ndarray:
    return np.eye(dim, dtype=np.float32)[np.clip(bins, 0, dim - 1)]


def corrupt(bins: np.ndarray, accuracy: float, max_step: int, low: int, high: int, rng: np.random.Generator,
            keep: np.ndarray | None = None) -> np.ndarray:
    """A (1 - accuracy) fraction of the frames (among `keep`) moved by 1..max_step bins up or down, within
    [low, high]."""
    out = bins.copy()
    pick = rng.random(len(bins)) > accuracy
    if keep is not None:
        pick &= keep
    step = rng.integers(1, max_step + 1, len(bins)) * rng.choice([-1, 1], len(bins))
    out[pick] = np.clip(bins[pick] + step[pick], low, high)
    return out


def synthetic_items(voice: synth.SynthVoice, n_items: int, seed: int, seconds=(2.0, 3.0), f0: str = "harvest",
                    melody_hz: tuple[float, float] = (110.0, 330.0),
                    detune_cents: float = 0.0) -> list[dict[str, np.ndarray]]:
    """Items 0..n_items-1 of corpus `seed` sung by `voice` in the prepared layout (audio, mel, f0, rms, units).
    `f0`: "harvest" (WORLD, as prep computes it) or "known" (the synthesiser's exact f0, much faster).
    `melody_hz`: the melodies' range (110-330 Hz sings; a range under a semitone is a near-monotone voice bank);
    `detune_cents`: each note's random offset from the semitone grid (synth.random_melody).
    Items depend only on (seed, i), so two voices with the same arguments are parallel item by item."""
    import torch

    from voxtool.pitch import estimate_f0
    from voxtool.vocoders.mel import VocoderLogMel
    from voxtool.vocoders.settings import MEL_16K_BSHALL

    logmel = VocoderLogMel(MEL_16K_BSHALL)
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n_items):
        secs = float(rng.uniform(*seconds))
        n_frames = int(round(secs * synth.FRAME_RATE))
        phones = synth.random_phones(seed * 100003 + 2 * i, n_frames / synth.FRAME_RATE)
        melody = synth.random_melody(seed * 100003 + 2 * i + 1, n_frames, *melody_hz, detune_cents=detune_cents)
        audio = synth.render(phones, melody, voice, noise_seed=seed * 7 + i)
        n = len(audio) // HOP
        audio = audio[: n * HOP]
        if f0 == "known":
            track = synth.frame_f0(phones, melody)[:n]
        else:
            _, track, _ = estimate_f0(audio, 16000, method="harvest", hop_ms=20.0, f0_min=50.0, f0_max=1100.0)
        track = np.pad(track[:n], (0, max(0, n - len(track)))).astype(np.float32)
        with torch.no_grad():
            mel = logmel(torch.from_numpy(audio)[None])[0].T.numpy()[: 2 * n]
        items.append({"audio": audio, "mel": mel.astype(np.float32), "f0": track, "rms": frame_rms(audio),
                      "units": phone_units(phones, n)})
    return items


def write_dataset(out: Path, items: list[dict[str, np.ndarray]], n_valid: int = 4, pitdyn_accuracy: float = 1.0,
                  seed: int = 0) -> Path:
    """Write `items` as a prepared softvc dataset (the last `n_valid` are the valid split), with the oracle pitdyn
    streams (bins from the training items' statistics; a 1 - `pitdyn_accuracy` fraction of frames corrupted)."""
    from voxtool.vocoders.settings import MEL_16K_BSHALL

    n_items, n_train = len(items), len(items) - n_valid
    stats = PitchDynStats.from_arrays([it["f0"] for it in items[:n_train]], [it["rms"] for it in items[:n_train]])
    noise = np.random.default_rng(seed + 999)
    (out / "items").mkdir(parents=True, exist_ok=True)
    names = [f"items/utt{i:03d}.npz" for i in range(n_items)]
    for name, it in zip(names, items):
        pb, db = pitch_to_bins(it["f0"], stats), rms_to_bins(it["rms"], stats)
        if pitdyn_accuracy < 1.0:
            pb = corrupt(pb, pitdyn_accuracy, 2, 1, stats.pitch_bins - 1, noise, keep=pb > 0)
            db = corrupt(db, pitdyn_accuracy, 3, 0, stats.dynamics_bins - 1, noise)
        np.savez(out / name, **it, pitch_units=one_hot(pb, PITDYN_DIM), dynamics_units=one_hot(db, PITDYN_DIM))
    (out / "train.txt").write_text("".join(n + "\n" for n in names[:n_train]))
    (out / "valid.txt").write_text("".join(n + "\n" for n in names[n_train:]))
    meta = {"format": "voxtool-softvc-dataset", "format_version": 1, "voxtool_version": "bench", "sample_rate": 16000,
            "unit_hop": HOP, "mel": MEL_16K_BSHALL.model_dump(mode="json"),
            "content": {"path": "synthetic phone identity", "unit_dim": UNIT_DIM},
            "pitch_units": {"path": f"oracle pitch bins (accuracy {pitdyn_accuracy:g})", "unit_dim": PITDYN_DIM},
            "dynamics_units": {"path": f"oracle dynamics bins (accuracy {pitdyn_accuracy:g})", "unit_dim": PITDYN_DIM},
            "stats": stats.to_dict(), "items": n_items, "skipped": []}
    (out / "dataset.json").write_text(json.dumps(meta, indent=2))
    return out


def tiny_overrides(conditioning: str) -> list[str]:
    return [f'model.conditioning="{conditioning}"', f"model.unit_dim={UNIT_DIM}", f"model.pitdyn_dim={PITDYN_DIM}"]


def train(data: Path, runs: Path, name: str, conditioning: str, steps: int, seed: int,
          extra: tuple[str, ...] = ()) -> Path:
    """Train the softvc-tiny acoustic model through the Trainer; returns the run folder (model.pt inside)."""
    from voxtool.options import TrainOptions
    from voxtool.tasks.softvc.train import SoftvcConfig, SoftvcTask
    from voxtool.training.run import train_from_options

    opts = TrainOptions(exp=name, runs_dir=runs, preset="softvc-tiny", device="cpu", steps=steps, seed=seed,
                        quiet=True, set=[*tiny_overrides(conditioning), f"train.valid_every={steps}", *extra])
    train_from_options(SoftvcTask, SoftvcConfig, data, opts, default_preset="softvc-tiny")
    return runs / name


def generate(model, feats: np.ndarray) -> np.ndarray:
    import torch

    return model.generate(torch.from_numpy(feats)[None])[0].numpy()
