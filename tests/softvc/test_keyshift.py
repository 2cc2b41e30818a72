"""Explicit pitch conditioning follows the source melody and a key shift moves the output's f0 (issue 12).

The softvc-tiny acoustic model (`explicit` conditioning) is trained through the Trainer for STEPS steps on synthetic
singing of one voice (melodies of 110-330 Hz, the synthesiser's exact f0; content units are the phone identity, as in
benchmarks/softvc_conditioning.py, so no HuBERT is needed). A held-out 3 s phrase (a scale walk within 150-200 Hz, so every
shift stays inside the training range) is converted with key shifts 0, -5, +3 and +7 semitones, vocoded by
Griffin-Lim, and WORLD harvest measures the output f0 (50 Hz):
- unshifted: the median |cents| between output and source f0, on frames voiced in both, must be under FOLLOW_CENTS,
  under half what the best constant pitch (the source's median f0, the best a model ignoring its f0 input can do)
  scores; the untrained model fails it (barely voiced noise, > 1000 cents);
- key N: the median |cents(f0 of key N) - cents(f0 unshifted) - 100 N| must be under KEY_CENTS. A model ignoring
  f0 (as the explicit model did before the pitch code, `model.pitch_code`) is off by |100 N| >= 300 cents.

The explicit model puts the harmonics where its f0 input says through its harmonic prior (`model.harmonic_template`,
`decoder.harmonic`); the training notes are sung off the semitone grid (DETUNE_CENTS), so the model has seen
pitches between the grid's notes (the source phrase sits 37 cents off the training grid).
Measured with this file (1500 steps; VOXTOOL_TEST_SEED, threads = 0, 1 / 1, 1 / 2, 2): unshifted 6.0 / 8.3 / 4.8
cents (constant pitch 196 / 185 / 140; untrained 568 / 1135 / 1477); key -5, +3, +7: 17.7, 15.6, 17.3 / 13.5, 14.5,
22.9 / 9.2, 10.3, 11.2. The issue's 25 cents is met on every seed; the test bounds at KEY_CENTS = 40 (1.7x the
worst seen) and FOLLOW_CENTS = 20 (2.4x). The previous version (pitch code only, notes on the semitone grid) was
16-53 cents off; the harmonic prior alone brought it to 8-33, the off-grid notes the rest (docs/softvc.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import seeded
from voxtool.tasks.softvc import synthdata

N_ITEMS, STEPS = 16, 1500
TRAIN_HZ, SOURCE_HZ = (110.0, 330.0), (150.0, 200.0)
KEYS = (-5, 3, 7)
DETUNE_CENTS = 50.0  # training notes sung off the semitone grid by up to +-50 cents (intonation), as a real bank is
KEY_CENTS = 40.0  # 1.7x the worst seed/key measured (see the docstring); a model ignoring f0 is off by >= 300
FOLLOW_CENTS = 20.0  # unshifted output vs source melody (worst measured 8.3)



def test_pitch_code_is_a_bump_that_moves_with_the_key():
    from voxtool.tasks.softvc.config import PITCH_CODE_BINS
    from voxtool.tasks.softvc.model import conditioning_features, pitch_code

    stats = {"f0_min_hz": 100.0, "f0_max_hz": 400.0, "rms_max": 1.0}  # 24 semitones over the bins
    semitones = np.array([6.0, 10.3, 15.0])  # inside the range after every key below
    f0 = np.concatenate([[0.0], 100 * 2 ** (semitones / 12), [50.0, 800.0]]).astype(np.float32)
    items = {"units": np.zeros((6, 2), np.float32), "f0": f0, "rms": np.full(6, 0.1, np.float32)}

    def code(key: float = 0.0) -> np.ndarray:
        x = torch.from_numpy(conditioning_features(items, "explicit", stats, key_shift=key))
        return pitch_code(x[:, -3], x[:, -2]).numpy()

    pos = semitones * (PITCH_CODE_BINS - 1) / 24
    assert code().shape == (6, PITCH_CODE_BINS) and np.all(code()[0] == 0)  # unvoiced: all zeros
    np.testing.assert_allclose(code()[1:4], np.exp(-0.5 * (np.arange(PITCH_CODE_BINS) - pos[:, None]) ** 2),
                               atol=1e-4)
    assert code()[4:].argmax(axis=1).tolist() == [0, PITCH_CODE_BINS - 1]  # out of range: clipped to the ends
    for key in (-5.0, 3.0, 7.0):  # the bump moves by the key: the code of the transposed melody
        moved = np.exp(-0.5 * (np.arange(PITCH_CODE_BINS) - pos[:, None] - key * (PITCH_CODE_BINS - 1) / 24) ** 2)
        np.testing.assert_allclose(code(key)[1:4], moved, atol=1e-4)


def harvest(wav: np.ndarray) -> np.ndarray:
    from voxtool.pitch import estimate_f0

    return estimate_f0(wav, 16000, method="harvest", hop_ms=20)[1]


def median_cents(a: np.ndarray, b: np.ndarray, shift_cents: float = 0.0) -> tuple[float, float]:
    """-> (median |cents(a / b) - shift| over frames voiced in both, fraction of such frames); inf when none."""
    n = min(len(a), len(b))
    both = (a[:n] > 0) & (b[:n] > 0)
    if not both.any():
        return float("inf"), 0.0
    cents = 1200 * np.log2(a[:n][both] / b[:n][both]) - shift_cents
    return float(np.median(np.abs(cents))), float(both.mean())


def convert_f0(model, stats, source, vocoder, key: float) -> np.ndarray:
    """The source's units and f0 (shifted by `key` semitones) -> mels -> Griffin-Lim -> harvest f0 at 50 Hz."""
    from voxtool.tasks.softvc.model import conditioning_features

    x = conditioning_features(source, "explicit", stats, key_shift=key)
    mel = model.generate(torch.from_numpy(x)[None])[0]
    return harvest(vocoder.synthesize(mel.T[None])[0])


def source_phrase(bench, seed: int) -> dict[str, np.ndarray]:
    """A 3 s phrase of voice 1 in the prepared layout (units, f0, rms): random phones over a melody walking up and
    down a scale between 150 and 200 Hz (notes of 0.3 s, 20-cent vibrato), so a constant pitch cannot follow it."""
    from voxtool.tasks.softvc import synth

    notes = [0, 2, 4, 5, 4, 2, 0, 2, 4, 5]  # semitones above 150 Hz
    frames = np.arange(len(notes) * 15)
    melody = 150.0 * 2 ** (np.repeat(notes, 15) / 12 + np.sin(2 * np.pi * 5.5 * frames / 50) * 20 / 1200)
    phones = synth.random_phones(seed, len(frames) / synth.FRAME_RATE)
    audio = synth.render(phones, melody.astype(np.float32), synth.voice(1), noise_seed=seed)
    n = len(audio) // bench.HOP
    return {"units": bench.phone_units(phones, n), "f0": synth.frame_f0(phones, melody)[:n],
            "rms": bench.frame_rms(audio[: n * bench.HOP])}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict:
    """Train once; -> {"source": source f0, "untrained": its unshifted output f0, key: output f0 for key in 0, KEYS}."""
    from voxtool.tasks.softvc import synth
    from voxtool.tasks.softvc.checkpoint import load_acoustic
    from voxtool.tasks.softvc.model import AcousticModel
    from voxtool.vocoders.loading import load_vocoder
    from voxtool.vocoders.settings import MEL_16K_BSHALL

    bench = synthdata
    root = tmp_path_factory.mktemp("softvc_key")
    seed = seeded(21)
    items = bench.synthetic_items(synth.voice(1), N_ITEMS, seed, seconds=(1.5, 2.5), f0="known", melody_hz=TRAIN_HZ,
                                  detune_cents=DETUNE_CENTS)
    data = bench.write_dataset(root / "data", items, n_valid=2, seed=seed)
    model, meta = load_acoustic(bench.train(data, root / "runs", "explicit", "explicit", STEPS, seeded(1234)))
    source = source_phrase(bench, seed + 777)
    vocoder = load_vocoder("griffinlim", mel=MEL_16K_BSHALL)
    out = {key: convert_f0(model, meta.stats, source, vocoder, key) for key in (0, *KEYS)}
    torch.manual_seed(seeded(5))
    out["untrained"] = convert_f0(AcousticModel(meta.section).eval(), meta.stats, source, vocoder, 0)
    out["source"] = source["f0"]
    return out


@pytest.mark.slow
def test_unshifted_output_follows_the_source_melody(converted):
    err, voiced = median_cents(converted[0], converted["source"])
    f0 = converted["source"][converted["source"] > 0]
    constant, _ = median_cents(f0, np.full_like(f0, np.median(f0)))  # the best a pitch-blind model can do
    untrained, _ = median_cents(converted["untrained"], converted["source"])
    print(f"unshifted: {err:.1f} cents on {voiced:.2f} of frames; constant pitch {constant:.1f}; "
          f"untrained {untrained:.1f}")
    assert voiced > 0.5
    assert err < FOLLOW_CENTS and err < constant / 2
    assert untrained > FOLLOW_CENTS


@pytest.mark.slow
def test_key_shift_moves_the_output_f0_by_semitones(converted):
    errors = {key: median_cents(converted[key], converted[0], 100 * key) for key in KEYS}
    print("key shift errors (cents, voiced fraction):", {k: (round(e, 1), round(v, 2)) for k, (e, v) in errors.items()})
    for key, (err, voiced) in errors.items():
        assert voiced > 0.5, f"key {key:+d}: only {voiced:.2f} of frames voiced in both"
        assert err < KEY_CENTS, f"key {key:+d}: median error {err:.1f} cents"
