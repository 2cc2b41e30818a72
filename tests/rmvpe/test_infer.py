"""Chunked inference: window plan, chunked-vs-whole parity (random and trained weights), writers, ONNX."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import seeded
from voxtool.pitch.rmvpe import plan_windows
from voxtool.pitch.rmvpe_model import E2E0
from voxtool.pitch.runtime import TorchPitchModel
from voxtool.pitch.settings import published_mel_config
from voxtool.tasks.rmvpe.infer import load_model, predict, write_track
from voxtool.tasks.rmvpe.metrics import melody_metrics
from voxtool.tasks.rmvpe.synth import SR, harmonic_clip


def _max_cents_on_voiced(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    voiced = a > 0
    assert voiced.mean() > 0.3
    both = voiced & (b > 0)
    agreement = float(np.mean(both[voiced]))
    return float(np.max(np.abs(1200 * np.log2(b[both] / a[both])))), agreement


@pytest.mark.parametrize("total,chunk,context", [(1000, 256, 64), (100, 256, 64), (700, 100, 30), (33, 0, 0)])
def test_window_plan_covers_every_frame_once(total, chunk, context):
    length, windows = plan_windows(total, chunk, context, 32)
    assert length % 32 == 0
    covered = np.zeros(total, dtype=int)
    for w in windows:
        assert w.start <= w.core_start < w.core_stop <= w.start + length
        covered[w.core_start : w.core_stop] += 1
    assert np.all(covered == 1)


def test_chunked_matches_whole_file_with_random_published_size_weights():
    torch.manual_seed(0)
    model = TorchPitchModel(E2E0().eval(), published_mel_config())
    audio, _ = harmonic_clip(np.random.default_rng(5), seconds=7.0)
    whole = predict(audio, SR, model, chunk_frames=0)
    chunked = predict(audio, SR, model, chunk_frames=128, context_frames=64, batch_size=3)
    assert len(whole.f0) == len(audio) // 160 + 1
    worst, agreement = _max_cents_on_voiced(whole.f0, chunked.f0)
    assert worst < 1.0 and agreement == 1.0


def test_chunked_matches_whole_file_with_a_trained_tiny_model(tiny_run):
    """With the model's context frames, chunking is the whole-file computation away from the seams; near them a
    trained bidirectional GRU still remembers a little beyond the context, which moves a few frames by a few cents
    (seeds 0-5: median < 0.001 cents, worst up to 7.6; without context up to 1500, i.e. octave jumps)."""
    model = load_model(tiny_run)
    audio, _ = harmonic_clip(np.random.default_rng(seeded(6)), seconds=8.0)
    whole = predict(audio, SR, model, chunk_frames=0)
    chunked = predict(audio, SR, model, chunk_frames=256, context_frames=128, batch_size=2)
    worst, agreement = _max_cents_on_voiced(whole.f0, chunked.f0)
    both = (whole.f0 > 0) & (chunked.f0 > 0)
    median = float(np.median(np.abs(1200 * np.log2(chunked.f0[both] / whole.f0[both]))))
    print(f"rmvpe chunked vs whole (trained): median {median:.4f} worst {worst:.4f} cents, voicing agreement "
          f"{agreement:.4f}")
    assert agreement > 0.99 and median < 0.1
    assert worst < 25.0  # half the 50-cent tolerance of raw pitch accuracy: seams are musically negligible


def test_writers_and_hop_resampling(tmp_path, tiny_run):
    model = load_model(tiny_run)
    audio, ref = harmonic_clip(np.random.default_rng(seeded(7)), seconds=1.0)
    track = predict(audio, SR, model)
    write_track(tmp_path / "a.csv", track, "csv", with_confidence=True)
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "time,f0,confidence" and len(lines) == len(track.f0) + 1
    assert lines[2].startswith("0.010,")
    write_track(tmp_path / "a.npy", track, "npy")
    assert np.load(tmp_path / "a.npy").shape == (len(track.f0), 2)
    smooth = predict(audio, SR, model, decoder="viterbi", chunk_frames=64, context_frames=32)
    sung = (ref > 0) & (track.f0 > 0) & (smooth.f0 > 0)
    # a clean tone: the chunked Viterbi path tracks it as well as the argmax does, and mostly picks the same region
    # (where a barely trained net's argmax jumps, the smoothed path may not: seeds 0-5 agree on 0.86-1.0 of frames)
    same = float(np.mean(np.abs(1200 * np.log2(smooth.f0[sung] / track.f0[sung])) < 50))
    rpa = {name: melody_metrics(ref, t.f0, 0.01)["rpa"] for name, t in (("argmax", track), ("viterbi", smooth))}
    print(f"rmvpe viterbi vs argmax: {same:.4f} of {int(sung.sum())} sung frames within 50 cents; raw pitch "
          f"accuracy {rpa}")
    assert same > 0.7 and rpa["viterbi"] >= rpa["argmax"] - 0.05 and rpa["viterbi"] > 0.6
    coarse = track.resampled(0.0116)  # e.g. 44.1 kHz / 512 hop
    write_track(tmp_path / "a.json", coarse, "json")
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["hop_s"] == pytest.approx(0.0116) and len(doc["f0"]) == len(coarse.f0)
    assert len(coarse.f0) == int((len(track.f0) - 1) * 0.01 / 0.0116) + 1


def test_onnx_export_parity_and_onnx_inference(tmp_path, tiny_run):
    from voxtool.tasks.rmvpe.export import export_onnx, parity_check

    model = load_model(tiny_run)
    path = export_onnx(model, tmp_path / "f0.onnx")
    report = parity_check(model, path, seconds=2.5)
    assert report["max_cents"] < 1.0 and report["voicing_agreement"] > 0.99
    onnx_model = load_model(path)
    assert [o.name for o in onnx_model.session.get_outputs()] == ["f0", "confidence", "voiced"]
    rng = np.random.default_rng(seeded(4))
    for n in (127 * 160 + 77, 127 * 160, 16000, 700, 100):  # frame counts on and off the multiple of 8 (tiny net)
        audio = harmonic_clip(rng, seconds=2.0)[0][:n]
        a = predict(audio, SR, model, chunk_frames=0)
        b = predict(audio, SR, onnx_model, chunk_frames=0)
        assert len(a.f0) == len(b.f0) == n // 160 + 1
        np.testing.assert_allclose(b.confidence, a.confidence, atol=1e-4)
    audio, _ = harmonic_clip(np.random.default_rng(seeded(8)), seconds=6.0)
    a = predict(audio, SR, model, chunk_frames=256, context_frames=128)
    b = predict(audio, SR, onnx_model, chunk_frames=256, context_frames=128)
    worst, agreement = _max_cents_on_voiced(a.f0, b.f0)
    print(f"rmvpe onnx vs torch: parity {report}; 6 s clip worst {worst:.4f} cents, agreement {agreement:.4f}")
    assert worst < 1.0 and agreement > 0.99


def test_infer_cli_files_dirs_formats_and_bad_input(tmp_path, tiny_run, voxtool_cli):
    rng = np.random.default_rng(9)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("a.wav", "sub/b.wav"):
        audio, _ = harmonic_clip(rng, seconds=1.0)
        stereo_44k = np.stack([audio, audio], axis=1)  # any rate / channel count is accepted
        sf.write(tmp_path / "in" / name, stereo_44k, SR if name == "a.wav" else 22050)
    result = voxtool_cli("infer", "rmvpe", str(tmp_path / "in"), "--model", str(tiny_run), "--out",
                         str(tmp_path / "out"), "--hop-ms", "5", "--confidence", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {s["output"] for s in summary} == {str(tmp_path / "out" / "a.csv"), str(tmp_path / "out" / "sub" / "b.csv")}
    header = (tmp_path / "out" / "a.csv").read_text().splitlines()[:3]
    assert header[0] == "time,f0,confidence" and header[2].startswith("0.005,")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nope")
    result = voxtool_cli("infer", "rmvpe", str(bad), "--model", str(tiny_run), "--out", str(tmp_path / "x.csv"),
                         "--device", "cpu")
    assert result.returncode == 2 and "bad.wav" in result.stderr and "Traceback" not in result.stderr
    result = voxtool_cli("infer", "rmvpe", str(tmp_path / "in" / "a.wav"), "--model", str(bad), "--device", "cpu")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_published_style_checkpoint_file_loads_exactly_the_fp16_rounded_weights(tmp_path, tiny_run):
    """A plain fp16 state dict on disk (RVC's rmvpe.pt layout) loads through the same entry point: the network gets
    exactly the fp16-rounded weights of the run it came from, and predicts exactly like the run's own network with
    those weights behind the same front-end."""
    run_model = load_model(tiny_run, fold_norms=False)
    original = run_model.net.state_dict()
    plain = {k: v.half() if v.is_floating_point() else v for k, v in original.items()}
    torch.save(plain, tmp_path / "rmvpe.pt")
    model = load_model(tmp_path / "rmvpe.pt", fold_norms=False)
    assert "fp16" in model.description and "no tf" in model.description
    assert model.net.arch == run_model.net.arch and model.mel_cfg == run_model.mel_cfg
    rounded = {k: v.half().float() if v.is_floating_point() else v for k, v in original.items()}
    loaded = model.net.state_dict()
    assert set(loaded) == set(rounded)
    for key, value in rounded.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value), key
    assert any(not torch.equal(rounded[k], original[k]) for k in original)  # the rounding is really there

    same_net = E2E0(run_model.net.arch)
    same_net.load_state_dict(rounded)
    reference = TorchPitchModel(same_net, run_model.mel_cfg, threshold=model.threshold, chunking=model.chunking)
    audio, _ = harmonic_clip(np.random.default_rng(seeded(11)), seconds=2.0)
    a = predict(audio, SR, reference)
    b = predict(audio, SR, model)
    folded = predict(audio, SR, load_model(tmp_path / "rmvpe.pt"))  # the default: batch norms folded
    np.testing.assert_allclose(folded.confidence, a.confidence, rtol=0, atol=1e-5)
    np.testing.assert_allclose(folded.f0, a.f0, rtol=1e-5, atol=0)
    np.testing.assert_allclose(b.confidence, a.confidence, rtol=0, atol=1e-5)
    np.testing.assert_allclose(b.f0, a.f0, rtol=1e-5, atol=0)  # unvoiced (0) frames must match exactly
    # and, loosely, like the fp32 run itself: fp16 rounding moves a barely trained net's argmax by up to tens of
    # cents on a few frames (measured up to 23), the median by far less
    fp32 = predict(audio, SR, run_model)
    both = (fp32.f0 > 0) & (b.f0 > 0)
    cents = np.abs(1200 * np.log2(b.f0[both] / fp32.f0[both]))
    median_cents = float(np.median(cents))
    print(f"rmvpe fp16 file vs fp32 run: median {median_cents:.3f} max {cents.max():.3f} cents on {int(both.sum())} "
          f"frames, voicing "
          f"agreement {np.mean((fp32.f0 > 0) == (b.f0 > 0)):.4f}")
    assert both.mean() > 0.3 and median_cents < 50
