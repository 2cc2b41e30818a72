"""Mel front-end settings, cents/bin mapping, local-average decoding and f0 resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxtool.audio.framing import frame_config, frame_slice, frame_slice_from_audio, pad_edges
from voxtool.audio.mel import LogMel
from voxtool.audio.onnx_mel import ConvLogMel
from voxtool.pitch.decode import (
    CENTS_BIN0,
    bin_cents,
    cents_to_hz,
    decode,
    gaussian_targets,
    hz_to_cents,
    resample_f0,
)
from voxtool.pitch.settings import padding_config, published_mel_config


def test_bin_mapping_matches_the_published_constants():
    hz = cents_to_hz(bin_cents())
    assert hz[0] == pytest.approx(31.70, abs=0.01) and hz[-1] == pytest.approx(2005.5, abs=0.1)
    assert CENTS_BIN0 == pytest.approx(1200 * np.log2(3.17))
    assert hz_to_cents(np.array([20.0]))[0] == pytest.approx(1200.0)


def test_local_average_decoding_recovers_f0_and_applies_the_threshold():
    f0 = torch.tensor([0.0, 55.0, 220.0, 233.3, 1000.0, 1900.0])
    salience = gaussian_targets(f0).numpy()
    est, conf = decode(salience, threshold=0.5)
    voiced = f0.numpy() > 0
    assert np.all(est[~voiced] == 0)
    cents = 1200 * np.abs(np.log2(est[voiced] / f0.numpy()[voiced]))
    assert cents.max() < 1.0  # 9-bin weighted average of a Gaussian is unbiased away from the edges
    assert conf[1] == pytest.approx(float(salience[1].max()))
    weak = salience * 0.02  # peak 0.02 < 0.03 default threshold -> unvoiced
    assert np.all(decode(weak)[0] == 0)
    # edge bin: the window is clipped, not wrapped
    edge = np.zeros((1, 360), dtype=np.float32)
    edge[0, 0], edge[0, 1] = 1.0, 1.0
    assert decode(edge)[0][0] == pytest.approx(cents_to_hz(CENTS_BIN0 + 10), rel=1e-5)


def test_resample_f0_interpolates_log_f0_inside_voiced_runs_only():
    f0 = np.array([0, 0, 100, 200, 0, 0, 0, 400, 400, 0], dtype=np.float32)  # 10 ms frames
    out = resample_f0(f0, 0.01, 0.005)
    assert len(out) == 19
    assert out[5] == pytest.approx(np.sqrt(100 * 200), rel=1e-4)  # halfway in log-f0 (geometric mean)
    assert np.all(out[8:13] == 0)  # the gap stays unvoiced: no glide from 200 to 400 Hz
    assert np.all(out[14:17] == pytest.approx(400))
    coarse = resample_f0(f0, 0.01, 0.02)
    assert coarse.tolist() == pytest.approx([0, 100, 0, 0, 400])


def test_frames_match_the_centred_published_front_end_and_librosa():
    import librosa

    rng = np.random.default_rng(0)
    cfg = published_mel_config()
    rcfg = padding_config(cfg)  # reflect n_fft/2 per side, short clips zero-extended first
    audio = (0.3 * rng.standard_normal(16000 + 77)).astype(np.float32)
    centred = LogMel(cfg)(torch.from_numpy(audio)).numpy()  # [128, T]
    total = rcfg.n_frames(len(audio))
    assert centred.shape == (128, total)
    padded = pad_edges(audio, rcfg, extend_short=True)
    window = frame_slice(padded, 10, 32, rcfg)
    framed = LogMel(frame_config(cfg))(torch.from_numpy(window)[None])[0].numpy()
    np.testing.assert_allclose(framed, centred[:, 10:42], atol=1e-4)
    for start, count in ((0, 40), (3, 8), (90, 32), (95, 40), (200, 4)):  # edges, interior, past the end
        np.testing.assert_array_equal(frame_slice_from_audio(audio, start, count, rcfg, extend_short=True),
                                      frame_slice(padded, start, count, rcfg))
    short = audio[:300]
    np.testing.assert_array_equal(frame_slice_from_audio(short, 0, 8, rcfg, extend_short=True),
                                  frame_slice(pad_edges(short, rcfg, extend_short=True), 0, 8, rcfg))
    conv = ConvLogMel(frame_config(cfg))(torch.from_numpy(window)[None])[0].numpy()
    np.testing.assert_allclose(conv, framed, atol=2e-3)
    # independent reference: librosa STFT magnitude + HTK mel (Slaney norm) + ln(clamp 1e-5)
    spec = np.abs(librosa.stft(audio, n_fft=1024, hop_length=160, win_length=1024, window="hann", center=True,
                               pad_mode="reflect"))
    basis = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=30, fmax=8000, htk=True)
    reference = np.log(np.maximum(basis @ spec, 1e-5))
    np.testing.assert_allclose(centred, reference, atol=2e-3)


def test_viterbi_decoding_ignores_a_one_frame_octave_jump():
    from voxtool.pitch.decode import decode_viterbi

    f0 = torch.full((40,), 220.0)
    f0[20] = 440.0  # a spurious octave error in one frame
    salience = 0.6 * gaussian_targets(f0).numpy()
    salience[20] += 0.5 * gaussian_targets(torch.tensor([220.0])).numpy()[0]  # the true pitch is still there
    salience[30:] *= 0.01  # below the threshold: unvoiced
    local, _ = decode(salience)
    smooth, _ = decode_viterbi(salience)
    assert local[20] == pytest.approx(440.0, rel=1e-3)  # the argmax follows the spurious peak
    assert smooth[20] == pytest.approx(220.0, rel=1e-3)  # the path does not jump an octave for one frame
    np.testing.assert_allclose(smooth[:20], local[:20], rtol=1e-5)
    assert np.all(smooth[30:] == 0) and np.all(local[30:] == 0)
