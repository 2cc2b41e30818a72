"""GE2E speaker encoder: parity with resemblyzer's VoiceEncoder (DiffVC slicing), the loader, the weights lookup."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import resemblyzer  # scripts/setup.sh installs it (the weights voxtool uses ship in its wheel): parity must run
import torch

from voxtool.encoders import ge2e
from voxtool.errors import BadInput, VoxtoolError
from voxtool.tasks.diffvc import synth

RATE = 1.25  # resemblyzer's partials per second that give RTVC's step of 80 frames: round(100 / 1.25) = 80


@pytest.fixture(scope="module")
def clips() -> list[tuple[np.ndarray, int]]:
    """Synthetic speech of several lengths and rates: under one partial, a few partials, a long one."""
    rng = np.random.default_rng(3)
    voices = synth.make_voices(3, seed=3)
    out = []
    for voice, (n_min, n_max), sr in zip(voices, [(2, 2), (8, 10), (20, 22)], [22050, 16000, 22050], strict=True):
        wav, _ = synth.render(voice, synth.random_content(rng, n_min, n_max), rng, sr)
        out.append((wav, sr))
    return out


@pytest.fixture(scope="module")
def reference():
    return resemblyzer.VoiceEncoder(device="cpu", verbose=False)


def test_mel_filters_equal_librosa():
    import librosa

    ours = ge2e.slaney_mel_filters()
    theirs = librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)
    assert ours.shape == (40, 201)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)


def test_partial_slices_equal_resemblyzer_at_rtvc_rate():
    for n in [1, 159, 12_800, 25_599, 25_600, 25_760, 38_000, 38_400, 41_599, 160_000, 481_234]:
        _, mel_slices = resemblyzer.VoiceEncoder.compute_partial_slices(n, RATE, 0.75)
        assert ge2e.partial_slices(n) == [(s.start, s.stop) for s in mel_slices], n
    steps = {b[0] - a[0] for a, b in zip(ge2e.partial_slices(160_000), ge2e.partial_slices(160_000)[1:])}
    assert steps == {80}


def test_preprocessing_equals_resemblyzer(clips):
    for wav, sr in clips:
        np.testing.assert_array_equal(ge2e.preprocess_wav(wav, sr), resemblyzer.preprocess_wav(wav, sr))


def test_embedding_equals_resemblyzer_with_zero_padded_stft(clips, reference):
    enc = ge2e.load_ge2e(pad_mode="constant")
    for wav, sr in clips:
        ours = enc.embed_utterance(wav, sr)
        theirs = reference.embed_utterance(resemblyzer.preprocess_wav(wav, sr), rate=RATE, min_coverage=0.75)
        assert ours.shape == (256,) and ours.dtype == np.float32
        assert np.abs(ours - theirs).max() < 1e-4
        assert abs(np.linalg.norm(ours) - 1) < 1e-5 and ours.min() >= 0


def test_default_embedding_equals_librosa_06_reflect_padding(clips, reference):
    """DiffVC ran RTVC on librosa 0.6, whose centred STFT pads by reflection: same frames, same network."""
    import librosa

    enc = ge2e.load_ge2e()
    assert enc.pad_mode == "reflect"
    for wav, sr in clips:
        pre = resemblyzer.preprocess_wav(wav, sr)
        slices = ge2e.partial_slices(len(pre))
        pre = np.pad(pre, (0, max(0, slices[-1][1] * 160 - len(pre))))
        frames = librosa.feature.melspectrogram(y=pre, sr=16000, n_fft=400, hop_length=160, n_mels=40,
                                                pad_mode="reflect").astype(np.float32).T
        with torch.no_grad():
            partial = reference(torch.from_numpy(np.stack([frames[a:b] for a, b in slices]))).numpy()
        theirs = partial.mean(0) / np.linalg.norm(partial.mean(0))
        assert np.abs(enc.embed_utterance(wav, sr) - theirs).max() < 1e-4


def test_embed_speaker_is_the_normalised_mean(clips):
    enc = ge2e.load_ge2e()
    each = np.stack([enc.embed_utterance(w, sr) for w, sr in clips])
    mean = each.mean(0)
    np.testing.assert_allclose(enc.embed_speaker(clips), mean / np.linalg.norm(mean), atol=1e-6)
    with pytest.raises(BadInput):
        enc.embed_speaker([])


def test_loader_is_strict_on_the_published_layout(tmp_path):
    """A state dict in the published key layout (reference note, section 5) loads strictly and is used."""
    torch.manual_seed(0)
    shapes = {"similarity_weight": (1,), "similarity_bias": (1,), "linear.weight": (256, 256), "linear.bias": (256,)}
    for layer in range(3):
        shapes |= {f"lstm.weight_ih_l{layer}": (1024, 40 if layer == 0 else 256), f"lstm.weight_hh_l{layer}": (1024, 256),
                   f"lstm.bias_ih_l{layer}": (1024,), f"lstm.bias_hh_l{layer}": (1024,)}
    state = {k: 0.1 * torch.randn(s) for k, s in shapes.items()}
    path = tmp_path / "pretrained.pt"
    torch.save({"step": 7, "model_state": state, "optimizer_state": {}}, path)
    enc = ge2e.load_ge2e(weights=path)
    for k, v in enc.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert set(enc.state_dict()) == set(shapes) - {"similarity_weight", "similarity_bias"}

    torch.save({"model_state": {**state, "lstm.extra": torch.zeros(1)}}, path)
    with pytest.raises(BadInput, match="unexpected: lstm.extra"):
        ge2e.load_ge2e(weights=path)
    torch.save({"model_state": {k: v for k, v in state.items() if k != "linear.bias"}}, path)
    with pytest.raises(BadInput, match="missing: linear.bias"):
        ge2e.load_ge2e(weights=path)
    torch.save({"model_state": {**state, "linear.bias": torch.zeros(128)}}, path)
    with pytest.raises(BadInput, match="wrong shape: linear.bias"):
        ge2e.load_ge2e(weights=path)


def test_missing_wheel_names_the_install_route(monkeypatch):
    import importlib.metadata
    import importlib.util

    def not_found(*_a, **_k):
        raise importlib.metadata.PackageNotFoundError("resemblyzer")

    monkeypatch.setattr(importlib.util, "find_spec", lambda *_a, **_k: None)
    monkeypatch.setattr(importlib.metadata, "distribution", not_found)
    with pytest.raises(VoxtoolError, match="pip install webrtcvad-wheels && pip install --no-deps resemblyzer"):
        ge2e.load_ge2e()


def test_missing_webrtcvad_names_the_install_route(monkeypatch):
    monkeypatch.setitem(sys.modules, "webrtcvad", None)  # import webrtcvad -> ImportError
    with pytest.raises(VoxtoolError, match="needs webrtcvad; install it with: pip install webrtcvad-wheels"):
        ge2e.trim_long_silences(np.zeros(16000, dtype=np.float32))


def test_embedding_imports_neither_resemblyzer_nor_librosa():
    code = ("import sys, numpy as np\nfrom voxtool.encoders.ge2e import load_ge2e\n"
            "rng = np.random.default_rng(0)\nd = load_ge2e().embed_utterance(0.1 * rng.standard_normal(40000), 16000)\n"
            "assert d.shape == (256,)\nprint(sorted(m for m in ('resemblyzer', 'librosa', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_bad_waveforms():
    enc = ge2e.load_ge2e()
    with pytest.raises(BadInput, match="no speech"):
        enc.embed_utterance(np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(BadInput, match="NaN"):
        enc.embed_utterance(np.full(16000, np.nan, dtype=np.float32), 16000)
    with pytest.raises(BadInput, match="mono"):
        enc.embed_utterance(np.zeros((16000, 2), dtype=np.float32), 16000)
    # a quiet clip with one loud click exceeds int16 after the -30 dBFS gain: RTVC's struct.pack would raise
    rng = np.random.default_rng(1)
    wav, _ = synth.render(synth.make_voices(1)[0], synth.random_content(rng), rng, 16000)
    wav = 0.02 * wav
    wav[100] = 0.9
    assert np.abs(ge2e.normalize_volume(wav)).max() > 1.5
    d = enc.embed_utterance(wav, 16000)
    assert np.isfinite(d).all()


def test_infer_and_eval_commands(tmp_path, capfd):
    """`infer ge2e` mirrors a speaker folder tree into .npy d-vectors; `eval ge2e` scores audio or those .npy files:
    the synthetic voices are told apart (same-speaker cosine above different-speaker, EER well below chance)."""
    import json

    from voxtool.cli import main

    corpus = synth.write_corpus(tmp_path / "c", 3, 4, 0)
    (tmp_path / "c" / "spk1" / "silent.wav").write_bytes(b"not audio")
    capfd.readouterr()
    code = main(["infer", "ge2e", str(corpus.root), "--out", str(tmp_path / "dv"), "--json", "--quiet"])
    captured = capfd.readouterr()
    assert code == 2  # the bad file fails, the batch goes on
    assert [line for line in captured.err.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'c' / 'spk1' / 'silent.wav'}: cannot read audio (Error opening "
        f"'{tmp_path / 'c' / 'spk1' / 'silent.wav'}': Format not recognised.)"]
    written = [r for r in json.loads(captured.out) if r["output"]]
    assert len(written) == 12
    u = corpus.utterances[5]
    vec = np.load(tmp_path / "dv" / u.speaker / f"{u.wav.stem}.npy")
    np.testing.assert_allclose(vec, ge2e.load_ge2e().embed_utterance(*synth_read(u.wav)), atol=1e-6)
    (tmp_path / "c" / "spk1" / "silent.wav").unlink()
    assert main(["infer", "ge2e", str(corpus.root), "--out", str(tmp_path / "dv"), "--skip-existing", "--quiet"]) == 0

    for folder in (corpus.root, tmp_path / "dv"):
        capfd.readouterr()
        assert main(["eval", "ge2e", str(folder), "--json", "--quiet"]) == 0
        report = json.loads(capfd.readouterr().out)
        assert report["speakers"] == ["spk0", "spk1", "spk2"] and report["utterances"]["spk0"] == 4
        matrix = np.array(report["matrix"])
        assert matrix.shape == (3, 3) and np.allclose(matrix, matrix.T)
        assert report["same_mean"] > report["different_mean"] + 0.05
        assert report["eer"] < 0.3  # chance is 0.5
        assert all(matrix[i, i] > np.delete(matrix[i], i).max() for i in range(3))


def synth_read(path):
    import soundfile as sf

    return sf.read(path, dtype="float32")


def test_equal_error_rate():
    from voxtool.tasks.diffvc.ge2e_cli import equal_error_rate

    assert equal_error_rate(np.array([0.9, 0.8]), np.array([0.1, 0.2]))[0] == 0.0
    eer, threshold = equal_error_rate(np.array([0.3, 0.6, 0.9]), np.array([0.1, 0.4, 0.7]))
    assert eer == pytest.approx(1 / 3) and threshold == pytest.approx(0.6)
    rng = np.random.default_rng(0)
    same, diff = rng.normal(0.7, 0.1, 4000), rng.normal(0.5, 0.1, 4000)
    assert equal_error_rate(same, diff)[0] == pytest.approx(0.1587, abs=0.02)  # Phi(-1) for d' = 2
