"""Label readers, prep of MIR-1K / generic layouts (with bad items), crops and augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from voxtool.tasks.rmvpe import data
from voxtool.tasks.rmvpe.config import DataSection
from voxtool.tasks.rmvpe.labels import LabelError, check_labels, labels_on_grid, midi_to_hz, read_labels
from voxtool.tasks.rmvpe.synth import SR, harmonic_clip, write_mir1k_tree


def test_pv_labels_line_n_is_frame_n_at_20ms(tmp_path):
    pv = tmp_path / "a.pv"
    pv.write_text("0\n69\n69\n81\n0\n")
    times, f0 = read_labels(pv, duration_s=0.12, label_hop_s=0.02)
    assert times.tolist() == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.10])
    assert f0.tolist() == pytest.approx([0, 440, 440, 880, 0])
    times_guess, _ = read_labels(pv, duration_s=0.12)  # hop guessed from the audio length
    assert times_guess.tolist() == pytest.approx(times.tolist())
    grid = labels_on_grid(times, f0, 0.01, 13)
    assert grid[0] == 0 and grid[2] == 0  # before the first label / the unvoiced line 1 (20 ms)
    assert grid[4] == pytest.approx(440) and grid[8] == pytest.approx(880)
    assert grid[7] == pytest.approx(np.sqrt(440 * 880), rel=1e-4)  # log-f0 between 60 ms and 80 ms
    assert np.all(grid[10:] == 0)
    assert midi_to_hz(np.array([57.0]))[0] == pytest.approx(220.0)


def test_csv_npy_labels_and_checks(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("time,f0\n0.00,0\n0.01,200\n0.02,210\n")
    times, f0 = read_labels(csv, 0.03)
    assert times.tolist() == pytest.approx([0, 0.01, 0.02]) and f0.tolist() == [0, 200, 210]
    npy = tmp_path / "b.npy"
    np.save(npy, np.array([0, 300, 300, 0], dtype=np.float32))
    times, f0 = read_labels(npy, 0.04, label_hop_s=0.01)
    assert times.tolist() == pytest.approx([0, 0.01, 0.02, 0.03])
    with pytest.raises(LabelError, match="negative"):
        check_labels(np.array([0.0, 0.01]), np.array([-5.0, 100.0]), 0.02)
    with pytest.raises(LabelError, match="absurd"):
        check_labels(np.array([0.0, 0.01]), np.array([5000.0, 100.0]), 0.02)
    with pytest.raises(LabelError, match="audio is"):
        check_labels(np.arange(100) * 0.01, np.full(100, 200.0), 8.0)


def test_prep_mir1k_splits_by_singer_and_skips_bad_items(tmp_path):
    root = write_mir1k_tree(tmp_path / "MIR-1K", singers=("abjones", "amy", "bobon", "davidson"),
                            clips_per_singer=2, seconds=1.0)
    # bad items: unreadable audio, labels 4x too long, negative notes, no label file at all
    (root / "Wavfile" / "zz_1_01.wav").write_bytes(b"not audio")
    (root / "PitchLabel" / "zz_1_01.pv").write_text("60\n")
    (root / "PitchLabel" / "abjones_1_01.pv").write_text("60\n" * 200)
    (root / "PitchLabel" / "amy_1_01.pv").write_text("-3\n" * 49)
    sf.write(root / "Wavfile" / "nolabel_1_01.wav", np.zeros(SR, dtype=np.float32), SR)
    sources = data.mir1k_sources(root)
    data.split_sources(sources, None, test_fraction=0.25, seed=0)
    singers_by_split: dict[str, set] = {}
    for s in sources:
        singers_by_split.setdefault(s.split, set()).add(data.singer_of(s.name))
    assert not singers_by_split["train"] & singers_by_split["valid"]  # no singer on both sides
    out = tmp_path / "prepared"
    report = data.write_dataset(sources, out, label_hop_s=0.02, kind="mir1k")
    reasons = dict(report.skipped)
    assert len(reasons) == 4
    assert "cannot read audio" in reasons[str(root / "Wavfile" / "zz_1_01.wav")]
    assert "labels span" in reasons[str(root / "Wavfile" / "abjones_1_01.wav")]
    assert "negative" in reasons[str(root / "Wavfile" / "amy_1_01.wav")] or "no voiced" in reasons[
        str(root / "Wavfile" / "amy_1_01.wav")]
    assert "no label" in reasons[str(root / "Wavfile" / "nolabel_1_01.wav")]
    assert len((out / "skipped.tsv").read_text().splitlines()) == 1 + 4
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["items"]["train"] + meta["items"]["valid"] == 6 and meta["skipped"] == 4
    ds = data.PitchDataset(out, "train")
    item = ds[0]
    assert len(item.accompaniment) == len(item.voice)  # stereo: kept apart for mixing
    assert len(item.f0) == len(item.voice) // 160 + 1
    assert np.all(item.f0[:2] == 0)  # frame 0 is before the first .pv line


def test_test_list_overrides_fraction(tmp_path):
    root = write_mir1k_tree(tmp_path / "m", singers=("abjones", "amy"), clips_per_singer=2, seconds=0.6)
    sources = data.mir1k_sources(root)
    data.split_sources(sources, {"amy_2_01"}, 0.5, 0)
    assert [s.name for s in sources if s.split == "valid"] == ["amy_2_01"]


def test_pitch_shift_crop_labels_follow_the_audio():
    rng = np.random.default_rng(3)
    n = 3 * SR
    t = np.arange(n) / SR
    voice = (0.4 * np.sin(2 * np.pi * 200.0 * t)).astype(np.float32)
    item = data.PitchItem(voice, np.zeros(0, np.float32), np.full(n // 160 + 1, 200.0, np.float32))
    settings = DataSection(crop_frames=64, pitch_shift_prob=1.0, pitch_shift_semitones=(4.0, 4.0),
                                 noise_prob=0.0, volume_log10=(0.0, 0.0))
    wave, f0 = data.training_crop(item, settings, rng)
    assert wave.shape == (63 * 160 + 1024,) and f0.shape == (64,)
    expected = 200.0 * 2 ** (4 / 12)
    assert np.allclose(f0, expected, rtol=1e-4)
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave)), 1 << 16))
    measured = np.argmax(spectrum) * SR / (1 << 16)
    assert abs(1200 * np.log2(measured / expected)) < 10  # the audio moved by the same 4 semitones


def test_accompaniment_mix_and_noise_augmentation():
    rng = np.random.default_rng(0)
    voice, f0 = harmonic_clip(rng, 2.0)
    acc = np.ones_like(voice) * 0.25
    settings = DataSection(crop_frames=32, pitch_shift_prob=0.0, volume_log10=(0.0, 0.0))
    with_acc = data.PitchItem(voice, acc, f0)
    gains = []
    for seed in range(20):
        wave, _ = data.training_crop(with_acc, settings, np.random.default_rng(seed))
        gains.append(float(np.median(wave)) / 0.25)
    assert min(gains) < -0.3 and max(gains) > 0.3  # U(-1, 1) x accompaniment: phase-inverted to full mix
    mono = data.PitchItem(voice, np.zeros(0, np.float32), f0)
    clean = data.training_crop(mono, DataSection(crop_frames=32, pitch_shift_prob=0, noise_prob=0,
                                                       volume_log10=(0, 0)), np.random.default_rng(1))[0]
    noisy = data.training_crop(mono, DataSection(crop_frames=32, pitch_shift_prob=0, noise_prob=1,
                                                       noise_log10_amp=(-1, -1), volume_log10=(0, 0)),
                               np.random.default_rng(1))[0]
    assert np.std(noisy - clean) == pytest.approx(0.1, rel=0.3)
    loud = data.training_crop(mono, DataSection(crop_frames=32, pitch_shift_prob=0, noise_prob=0,
                                                      volume_log10=(1.0, 1.0)), np.random.default_rng(1))[0]
    assert np.abs(loud).max() <= 1.0 + 1e-6  # the gain is capped at the clip's headroom
