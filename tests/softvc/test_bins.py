"""Pitch/dynamics bins (voxtool.tasks.softvc.bins) and the formant-synthesised voices (synth.py)."""

from __future__ import annotations

import numpy as np
import pytest

from voxtool.tasks.softvc import synth
from voxtool.tasks.softvc.bins import (
    PitchDynStats,
    bins_to_pitch,
    bins_to_rms,
    pitch_to_bins,
    rms_to_bins,
    steady_f0,
)


def test_pitdyn_default_range_gives_its_bin_count_plus_unvoiced():
    # hubert-pitdyn's DataBaker stats 43.1507-551.25 Hz gave 46 voiced bins; ours adds bin 0 for unvoiced.
    stats = PitchDynStats(43.1507, 551.25, 0.0, 0.33497)
    assert stats.pitch_bins == 2 + int(np.ceil(12 * np.log2(551.25 / 43.1507)))
    assert stats.pitch_bins - 1 == 46  # voiced bins 1..46


def test_pitch_bins_semitones_unvoiced_and_clipping():
    stats = PitchDynStats(100.0, 400.0, 0.0, 1.0)
    assert stats.pitch_bins == 26  # 24 semitones: bins 1..25, plus unvoiced
    f0 = np.array([0.0, 100.0, 100.0 * 2 ** (1 / 12), 200.0, 400.0, 900.0, 50.0, -1.0])
    np.testing.assert_array_equal(pitch_to_bins(f0, stats), [0, 1, 2, 13, 25, 25, 1, 0])
    # A key shift of +3 semitones moves voiced bins by 3, never the unvoiced bin.
    np.testing.assert_array_equal(pitch_to_bins(f0[:4], stats, shift_semitones=3), [0, 4, 5, 16])
    b = pitch_to_bins(np.array([0.0, 123.0, 250.0]), stats)
    back = bins_to_pitch(b, stats)
    assert back[0] == 0
    assert np.all(np.abs(1200 * np.log2(back[1:] / [123.0, 250.0])) <= 50.0 + 1e-6)


def test_rms_bins_are_linear_and_clipped():
    stats = PitchDynStats(100.0, 200.0, 0.0, 0.32)
    rms = np.array([-1.0, 0.0, 0.0099, 0.01, 0.16, 0.3199, 0.32, 5.0])
    np.testing.assert_array_equal(rms_to_bins(rms, stats), [0, 0, 0, 1, 16, 31, 31, 31])
    assert rms_to_bins(rms, stats).dtype == np.int64
    np.testing.assert_allclose(bins_to_rms(np.array([0, 31]), stats), [0.005, 0.315], rtol=1e-5)


def test_stats_from_arrays_and_dict_round_trip():
    f0s = [np.array([0.0, 110.0, 220.0]), np.array([0.0, 0.0]), np.array([330.0, 0.0])]
    rmss = [np.array([0.01, 0.2, 0.1]), np.array([0.0, 0.05]), np.array([0.4, 0.02])]
    stats = PitchDynStats.from_arrays(f0s, rmss, f0_method="rmvpe")
    assert (stats.f0_min_hz, stats.f0_max_hz, stats.rms_min, stats.rms_max) == (110.0, 330.0, 0.0, 0.4)
    d = stats.to_dict()
    assert d["pitch_bins"] == stats.pitch_bins and d["dynamics_bins"] == 32 and d["f0_method"] == "rmvpe"
    assert PitchDynStats.from_dict(d) == stats
    silent = PitchDynStats.from_arrays([np.zeros(4)], [np.zeros(4)])
    assert np.all(pitch_to_bins(np.zeros(4), silent) == 0) and silent.rms_max > silent.rms_min
    with pytest.raises(ValueError):
        PitchDynStats(200.0, 100.0, 0.0, 1.0)


def test_stats_f0_range_ignores_tracker_outliers():
    """A tracker's isolated octave jumps (here every 10th voiced frame, alternately up and down: too many for the
    percentiles alone) do not stretch the f0 range: it is the 1st-99th percentile of the frames that agree with
    their neighbours."""
    rng = np.random.default_rng(0)
    tracks, sung = [], []
    for _ in range(40):  # notes of 90-450 Hz, 50 voiced frames each, between unvoiced gaps
        voiced = 90.0 * 2 ** rng.uniform(0, np.log2(450 / 90)) * 2 ** (rng.normal(0, 0.2, 50) / 12)
        sung.append(voiced.copy())
        voiced[5::20] *= 2.0
        voiced[15::20] *= 0.5
        tracks.append(np.concatenate([np.zeros(10), voiced, np.zeros(10)]))
    sung, heard = np.concatenate(sung), np.concatenate(tracks)
    lo, hi = np.percentile(heard[heard > 0], [1, 99])
    assert lo < sung.min() / 1.2 and hi > sung.max() * 1.2  # what the percentiles alone would give
    stats = PitchDynStats.from_arrays(tracks, [np.full(len(t), 0.1) for t in tracks])
    assert sung.min() <= stats.f0_min_hz < np.percentile(sung, 2)
    assert np.percentile(sung, 98) < stats.f0_max_hz <= sung.max()
    assert len(steady_f0(tracks[0])) == 45 and len(steady_f0(np.zeros(5))) == 0


def test_synth_voices_are_parallel_with_known_f0():
    phones, melody = synth.corpus_item(3, 0, 2.0)
    a = synth.render(phones, melody, synth.voice(0))
    b = synth.render(phones, melody, synth.voice(1))
    assert a.shape == b.shape == (len(melody) * 320,) and a.dtype == np.float32
    assert np.isfinite(a).all() and 0.1 < np.abs(a).max() <= 1.0
    f0 = synth.frame_f0(phones, melody)
    voiced = f0 > 0
    assert 0.4 < voiced.mean() < 0.98  # vowels and fricatives/silences
    np.testing.assert_array_equal(f0[voiced], melody[voiced])
    # Same content, different timbre: frame energies follow the same phones, spectra differ.
    frames_a, frames_b = a.reshape(-1, 320), b.reshape(-1, 320)
    ea, eb = np.log(np.mean(frames_a**2, 1) + 1e-8), np.log(np.mean(frames_b**2, 1) + 1e-8)
    assert np.corrcoef(ea, eb)[0, 1] > 0.8
    centroid = [np.sum(np.abs(np.fft.rfft(x[voiced], axis=1)) * np.arange(161), 1).mean()
                / np.abs(np.fft.rfft(x[voiced], axis=1)).sum(1).mean() for x in (frames_a, frames_b)]
    assert centroid[1] > 1.2 * centroid[0]  # voice 1 is the brighter one
    # Deterministic in the seed.
    np.testing.assert_array_equal(a, synth.render(phones, melody, synth.voice(0)))


def test_synth_f0_is_what_harvest_measures():
    from voxtool.pitch import estimate_f0

    phones, melody = synth.corpus_item(5, 1, 1.5)
    wav = synth.render(phones, melody, synth.voice(2))
    times, f0_est, _ = estimate_f0(wav.astype(np.float64), 16000, method="harvest", hop_ms=20.0)
    known = synth.frame_f0(phones, melody)
    n = min(len(known), len(f0_est))
    both = (known[:n] > 0) & (f0_est[:n] > 0)
    assert both.mean() > 0.4
    assert np.median(np.abs(1200 * np.log2(f0_est[:n][both] / known[:n][both]))) < 20.0


def test_write_corpus_parallel_names(tmp_path):
    import soundfile as sf

    pa = synth.write_corpus(tmp_path / "a", 2, synth.voice(0), seed=4, seconds=(0.5, 1.0))
    pb = synth.write_corpus(tmp_path / "b", 2, synth.voice(1), seed=4, seconds=(0.5, 1.0))
    assert [p.name for p in pa] == [p.name for p in pb] == ["utt000.wav", "utt001.wav"]
    for x, y in zip(pa, pb):
        wa, sra = sf.read(x)
        wb, _ = sf.read(y)
        assert sra == 16000 and len(wa) == len(wb) and len(wa) % 320 == 0
