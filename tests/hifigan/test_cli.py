"""End-to-end CLI: prep -> train -> infer -> export (onnxruntime parity), bad inputs, mel-settings mismatch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import seeded

from .conftest import harmonic_clip, write_clips


@pytest.mark.slow
def test_prep_train_infer_export(tmp_path, voxtool_cli):
    wavs = write_clips(tmp_path / "wavs", 5, seeded(3), sr=22050)  # resampled to 16 kHz by prep
    (wavs / "broken.wav").write_bytes(b"not audio")
    sf.write(wavs / "short.wav", np.zeros(100, dtype=np.float32) + 0.1, 16000)
    data = tmp_path / "data"
    result = voxtool_cli("prep", "hifigan", str(wavs), str(data), "--preset", "hifigan-tiny", "--valid-fraction",
                         "0.4", "--json")
    assert result.returncode == 0, result.stderr
    prep = json.loads(result.stdout)
    assert prep["items"] == {"train": 3, "valid": 2}
    assert sorted(s["input"].rsplit("/", 1)[-1] for s in prep["skipped"]) == ["broken.wav", "short.wav"]
    assert (data / "skipped.tsv").read_text().count("\n") == 3
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["mel"]["n_mels"] == 128 and meta["mel"]["sample_rate"] == 16000 and meta["normalize"] == "peak"
    item = np.load(data / (data / "train.txt").read_text().split()[0])
    assert item["mel"].shape[0] == 128 and len(item["wav"]) == item["mel"].shape[1] * 160
    assert np.abs(item["wav"]).max() == np.float32(0.95) or abs(np.abs(item["wav"]).max() - 0.95) < 0.01

    run = tmp_path / "runs" / "e2e"
    result = voxtool_cli("train", "hifigan", str(data), "--preset", "hifigan-tiny", "--runs-dir",
                         str(tmp_path / "runs"), "--exp", "e2e", "--steps", "4", "--device", "cpu",
                         "--set", "train.valid_every=2", "--set", "train.batch_size=2")
    assert result.returncode == 0, result.stderr
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {m["step"] for m in metrics if "valid/mel_l1" in m} == {2, 4}
    result = voxtool_cli("eval", "hifigan", str(data), "--model", str(run), "--device", "cpu", "--json", "--per-file")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["items"] == 2 and len(scores["per_file"]) == 2
    assert scores["mel_l1"] == pytest.approx([m for m in metrics if "valid/mel_l1" in m][-1]["valid/mel_l1"], rel=1e-3)
    assert {"mcd", "pesq", "stoi", "f0_rmse_cents"} <= set(scores) <= set(scores["per_file"][0]) | {"items", "per_file"}
    assert scores["mcd"] > 0 and 1.0 <= scores["pesq"] <= 4.65 and -1 <= scores["stoi"] <= 1  # 4 steps: near silence
    result = voxtool_cli("eval", "hifigan", str(data), "--model", str(run), "--device", "cpu", "--per-file",
                         "--chunk-frames", "20")
    assert result.returncode == 0, result.stderr
    assert all(h in result.stdout for h in ("MCD dB", "PESQ", "STOI", "f0 RMSE c", "per file"))

    mels = tmp_path / "mels"
    (mels / "sub").mkdir(parents=True)
    frames = {"a": 37, "sub/b": 50}
    for name, n in frames.items():
        np.save(mels / f"{name}.npy", item["mel"][:, :n])
    out = tmp_path / "out"
    result = voxtool_cli("infer", "hifigan", str(mels), "--model", str(run), "--out", str(out), "--device", "cpu",
                         "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2
    for name, n in frames.items():
        wav, sr = sf.read(out / f"{name}.wav", dtype="float32")
        assert sr == 16000 and len(wav) == n * 160 and sf.info(out / f"{name}.wav").subtype == "PCM_16"
    result = voxtool_cli("infer", "hifigan", str(mels / "a.npy"), "--model", str(run / "model.pt"), "--out",
                         str(tmp_path / "a_float.wav"), "--sample-format", "float", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    wav, _ = sf.read(tmp_path / "a_float.wav", dtype="float32")
    assert sf.info(tmp_path / "a_float.wav").subtype == "FLOAT" and np.abs(wav).max() <= 1.0

    # a mel of the wrong n_mels (and a garbled file) next to a good one: one line each, the batch goes on, exit 2
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "good.npy", item["mel"][:, :10])
    np.save(bad / "wrong.npy", np.zeros((80, 10), dtype=np.float32))
    result = voxtool_cli("infer", "hifigan", str(bad / "wrong.npy"), "--model", str(run), "--out",
                         str(tmp_path / "w.wav"), "--device", "cpu")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "wrong.npy" in lines[0] and "n_mels=128" in lines[0]
    (bad / "garbled.npy").write_bytes(b"nope")
    result = voxtool_cli("infer", "hifigan", str(bad), "--model", str(run), "--out", str(tmp_path / "bad_out"),
                         "--device", "cpu")
    assert result.returncode == 2 and (tmp_path / "bad_out" / "good.wav").is_file()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and any("garbled.npy" in e for e in errors) and any("wrong.npy" in e for e in errors)

    onnx_path = tmp_path / "g.onnx"
    result = voxtool_cli("export", "hifigan", "--model", str(run), "--out", str(onnx_path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    print(f"hifigan-tiny ONNX vs torch: RMS {report['parity_rms']:.3g}")
    assert report["parity_rms"] < 1e-4
    import onnxruntime as ort

    from voxtool.tasks.hifigan.infer import load_model, predict

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = np.stack([item["mel"][:, :23], item["mel"][:, 5:28]])
    got = session.run(["waveform"], {"mel": batch})[0]
    want = predict(batch, load_model(run))
    assert got.shape == (2, 23 * 160) and float(np.sqrt(np.mean((got - want) ** 2))) < 1e-4
    assert json.loads(session.get_modelmeta().custom_metadata_map["mel"])["hop_length"] == 160


def test_train_refuses_a_dataset_of_other_mel_settings(tiny_data, tmp_path, voxtool_cli):
    result = voxtool_cli("train", "hifigan", str(tiny_data), "--preset", "hifigan-22k", "--runs-dir", str(tmp_path),
                         "--steps", "1", "--device", "cpu")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "dataset.json" in lines[0] and "do not fit the vocoder" in lines[0]
    assert "sample_rate 22050 vs 16000" in lines[0]


def test_prep_with_nothing_usable_exits_2(tmp_path, voxtool_cli):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.wav").write_bytes(b"junk")
    result = voxtool_cli("prep", "hifigan", str(tmp_path / "in"), str(tmp_path / "data"), "--preset", "hifigan-tiny")
    assert result.returncode == 2 and "no usable audio" in result.stderr
    assert "x.wav" in (tmp_path / "data" / "skipped.tsv").read_text()
    assert not (tmp_path / "data" / "dataset.json").exists()


def test_published_checkpoint_with_and_without_preset(tmp_path):
    """infer's loader takes a bshall-style bare state dict (old weight-norm names, `module.` prefixes); the
    config comes from --preset or from its layout; the output equals the source generator's."""
    from voxtool.tasks.hifigan.infer import load_model, predict
    from voxtool.vocoders.hifigan import HIFIGAN_TINY, Generator

    torch.manual_seed(seeded(2))
    source = Generator(HIFIGAN_TINY).eval()
    state = {}
    for k, v in source.state_dict().items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                 "weight_v")
        state[f"module.{k}"] = v
    torch.save(state, tmp_path / "hifigan-tiny.pt")
    mel = np.random.default_rng(0).normal(-5, 2, size=(128, 12)).astype(np.float32)
    with torch.no_grad():
        want = source(torch.from_numpy(mel)[None])[0, 0].clamp(-1, 1).numpy()
    for preset in ("hifigan-tiny", None):
        vocoder = load_model(tmp_path / "hifigan-tiny.pt", preset=preset)
        assert vocoder.mel.n_mels == 128 and not vocoder.generator.has_weight_norm()
        np.testing.assert_allclose(predict(mel, vocoder), want, atol=1e-5)


def test_harmonic_clip_is_sane():
    wav = harmonic_clip(np.random.default_rng(0), 1.0)
    assert wav.shape == (16000,) and 0.05 < np.abs(wav).max() < 1.0


def test_infer_griffinlim_needs_no_model(tmp_path, voxtool_cli):
    """`--model griffinlim --preset hifigan-16k`: a tone's mel -> wav at 16 kHz with the tone's f0; export refuses."""
    import pyworld

    from voxtool.vocoders.mel import MEL_16K_BSHALL, VocoderLogMel

    t = np.arange(16000) / 16000
    wav = (0.3 * sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))).astype(np.float32)
    np.save(tmp_path / "tone.npy", VocoderLogMel(MEL_16K_BSHALL)(torch.from_numpy(wav)).numpy())
    result = voxtool_cli("infer", "hifigan", str(tmp_path / "tone.npy"), "--model", "griffinlim", "--preset",
                         "hifigan-16k", "--out", str(tmp_path / "tone.wav"), "--json")
    assert result.returncode == 0, result.stderr
    out, sr = sf.read(tmp_path / "tone.wav", dtype="float64")
    f0, _ = pyworld.harvest(out, sr)
    assert sr == 16000 and len(out) == 100 * 160
    assert abs(1200 * np.log2(np.median(f0[f0 > 0]) / 150)) < 50
    result = voxtool_cli("export", "hifigan", "--model", "griffinlim", "--out", str(tmp_path / "g.onnx"))
    assert result.returncode == 2 and "no network to export" in result.stderr
    result = voxtool_cli("infer", "hifigan", str(tmp_path / "tone.npy"), "--model", "griffinlim", "--out",
                         str(tmp_path / "x.wav"), "--chunk-frames", "-1")
    assert result.returncode == 2 and "--chunk-frames" in result.stderr


def test_files_to_files_fixes_the_mmap_threshold_and_loading_does_not(monkeypatch):
    import voxtool.runtime
    from voxtool.tasks.hifigan.infer import load_model, predict_from_files_to_files

    calls = []
    monkeypatch.setattr(voxtool.runtime, "limit_mmap_threshold", lambda: calls.append(1))
    vocoder = load_model("griffinlim", preset="hifigan-tiny")
    assert calls == []  # a process-wide allocator setting is never a side effect of loading
    predict_from_files_to_files([], vocoder)
    assert calls == [1]
    monkeypatch.undo()
    voxtool.runtime.limit_mmap_threshold()  # the real one: safe to call (again) anywhere
