"""Audio basics: reading/resampling, atomic writes, mel parity with librosa, input expansion."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from voxtool.audio.io import load_audio, save_audio
from voxtool.audio.mel import LogMel, MelConfig
from voxtool.errors import BadInput
from voxtool.inputs import expand_inputs


def tone(sr=16000, seconds=1.0, f=220.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t) + 0.05 * np.random.default_rng(0).normal(size=t.size)).astype(np.float32)


def test_load_stereo_44k_to_mono_16k(tmp_path):
    x = tone(44100, 0.5)
    sf.write(tmp_path / "s.wav", np.stack([x, 0.5 * x], axis=1), 44100)
    y = load_audio(tmp_path / "s.wav", 16000)
    assert y.dtype == np.float32 and y.ndim == 1 and abs(len(y) - 8000) <= 1
    ref = librosa.resample(0.75 * x, orig_sr=44100, target_sr=16000)
    assert np.corrcoef(y[100:-100], ref[100:-100])[0, 1] > 0.99


def test_bad_audio_is_bad_input(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"not a wav at all")
    with pytest.raises(BadInput, match="cannot read audio"):
        load_audio(tmp_path / "x.wav")
    with pytest.raises(BadInput, match="not found"):
        load_audio(tmp_path / "missing.wav")


def test_save_audio_atomic(tmp_path):
    import os

    save_audio(tmp_path / "o.wav", tone(), 16000)
    data, sr = sf.read(tmp_path / "o.wav")
    assert sr == 16000 and len(data) == 16000
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "o.wav").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


@pytest.mark.parametrize(
    "cfg",
    [
        MelConfig(hop_length=320, n_mels=80),  # mouth
        MelConfig(hop_length=160, n_mels=128, f_min=30, f_max=8000, mel_scale="htk", norm=None),  # rmvpe
        MelConfig(n_fft=512, win_length=400, hop_length=160, n_mels=64, power=2.0),  # pinyin
        MelConfig(hop_length=160, n_mels=128, center=False),  # soft-vc
    ],
)
def test_mel_matches_librosa(cfg):
    x = tone()
    ours = LogMel(cfg)(torch.from_numpy(x)).numpy()
    ref = librosa.feature.melspectrogram(
        y=x, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win,
        center=cfg.center, pad_mode=cfg.pad_mode, power=cfg.power, n_mels=cfg.n_mels, fmin=cfg.f_min,
        fmax=cfg.f_max, htk=cfg.mel_scale == "htk", norm=cfg.norm,
    )
    ref = np.log(np.maximum(ref, cfg.log_floor))
    assert ours.shape == ref.shape == (cfg.n_mels, cfg.n_frames(len(x)))
    assert np.max(np.abs(ours - ref)) < 1e-4 * max(1.0, np.abs(ref).max())


def test_mel_extra_pad_and_frame_times():
    cfg = MelConfig(hop_length=320, n_mels=80, pad=352)
    x = tone()
    assert LogMel(cfg)(torch.from_numpy(x)).shape[-1] == cfg.n_frames(len(x)) == 1 + (16000 + 704) // 320
    times = cfg.frame_times(3)
    assert times[0] == pytest.approx(-352 / 16000) and times[1] - times[0] == pytest.approx(0.02)


def test_expand_inputs(tmp_path):
    (tmp_path / "in" / "a" / "b").mkdir(parents=True)
    for p in ["in/a/b/song.wav", "in/top.wav", "in/notes.txt"]:
        (tmp_path / p).write_bytes(b"")
    jobs = expand_inputs([str(tmp_path / "in")], tmp_path / "out", ".csv")
    assert sorted(str(j.dst.relative_to(tmp_path)) for j in jobs) == ["out/a/b/song.csv", "out/top.csv"]
    one = expand_inputs([str(tmp_path / "in/top.wav")], tmp_path / "x.csv", ".csv")
    assert one[0].dst == tmp_path / "x.csv"
    nxt = expand_inputs([str(tmp_path / "in/top.wav")], None, ".csv")
    assert nxt[0].dst == tmp_path / "in/top.csv"
    globbed = expand_inputs([str(tmp_path / "in/**/*.wav")], tmp_path / "g", ".npy")
    assert {j.dst.name for j in globbed} == {"song.npy", "top.npy"}
    (tmp_path / "out/top.csv").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "out/top.csv").write_text("x")
    assert len(expand_inputs([str(tmp_path / "in")], tmp_path / "out", ".csv", skip_existing=True)) == 1
    with pytest.raises(BadInput, match="no such file"):
        expand_inputs([str(tmp_path / "missing.wav")], None, ".csv")
    with pytest.raises(BadInput, match="matches no"):
        expand_inputs([str(tmp_path / "*.flac")], None, ".csv")
