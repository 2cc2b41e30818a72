"""ARKit and LipsSync curve exports, the spectral centroid, noise blocks, speaker ids and the per-singer gain."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import seeded
from voxtool.cli import main


def write_wav(path, audio, sr):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """An untrained tiny voxtool model file (the formats only need a curve) and a 3-s sung take."""
    from voxtool.tasks.mouth.config import ModelSection, default_mel
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator
    from voxtool.tasks.mouth.synth import TRAIN_SINGERS, synth_take
    from voxtool.training.modelfile import save_model_file

    root = tmp_path_factory.mktemp("formats")
    torch.manual_seed(0)
    cfg = ModelSection(conv_dims=16, hidden_dims=8, n_layers=1)
    net = BiLSTMCurveEstimator(cfg, -0.15, 1.0)
    save_model_file(root / "model.pt", "mouth", {"model": cfg.model_dump()}, net.state_dict(),
                    {"mel": default_mel().model_dump(), "value_range": [-0.15, 1.0], "target": "jaw-minus-close"})
    wav = write_wav(root / "song.wav", synth_take(TRAIN_SINGERS[2], 3.0, seed=1).audio, 16000)
    return root / "model.pt", wav


def test_arkit_export_header_frames_and_ranges(small_model, tmp_path):
    model, wav = small_model
    assert main(["infer", "mouth", str(wav), "--model", str(model), "--out", str(tmp_path / "a.csv"),
                 "--format", "arkit", "--fps", "30", "--quiet"]) == 0  # fmt: skip
    assert main(["infer", "mouth", str(wav), "--model", str(model), "--out", str(tmp_path / "plain.csv"),
                 "--fps", "30", "--quiet"]) == 0  # fmt: skip
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "Frame,Time(s),jawOpen,mouthFunnel,mouthPucker,mouthStretchLeft,mouthStretchRight,mouthShrugUpper"
    rows = np.loadtxt(tmp_path / "a.csv", delimiter=",", skiprows=1)
    n = int(np.floor(3.0 * 30)) + 1
    assert rows.shape == (n, 8)
    np.testing.assert_array_equal(rows[:, 0], np.arange(n))
    np.testing.assert_allclose(rows[:, 1], np.arange(n) / 30, atol=6e-5)
    assert rows[:, 2:].min() >= 0 and rows[:, 2:].max() <= 1
    np.testing.assert_array_equal(rows[:, 5], rows[:, 6])  # stretch left = right
    plain = np.loadtxt(tmp_path / "plain.csv", delimiter=",", skiprows=1)[:, 1]
    np.testing.assert_allclose(rows[:, 2], np.clip(plain, 0, 1), atol=2e-6)  # jawOpen is the clipped curve
    assert rows[:, 3].max() > 0  # the funnel follows the opening


def test_arkit_channel_formulas():
    from voxtool.tasks.mouth.formats import arkit_channels

    jaw = np.array([0.0, 0.1, 0.5, 0.9, 1.4])
    bright = np.array([0.2, 0.5, 0.0, 1.0, 0.5])
    ch = arkit_channels(jaw, bright, fps=10)
    np.testing.assert_allclose(ch["jawOpen"], [0, 0.1, 0.5, 0.9, 1.0], atol=1e-6)
    np.testing.assert_allclose(ch["mouthFunnel"], [0, 0.075, 0.75, 0.0, 0.75], atol=1e-6)
    np.testing.assert_allclose(ch["mouthPucker"], [0, 3 * 0.1 * 0.5, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(ch["mouthStretchLeft"], [0, 0.05, 0, 0.9, 0.5], atol=1e-6)
    velocity = np.gradient(np.clip(jaw, 0, 1)) * 10
    np.testing.assert_allclose(ch["mouthShrugUpper"], 0.5 * np.clip(0.1 * velocity, 0, 1), atol=1e-6)


def test_spectral_centroid_of_a_tone_and_of_noise():
    from voxtool.audio.framing import log_mel
    from voxtool.tasks.mouth.config import default_mel
    from voxtool.tasks.mouth.formats import spectral_centroid

    cfg = default_mel()
    t = np.arange(32000) / 16000
    for f in (700.0, 2500.0):
        c = spectral_centroid(log_mel((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), cfg), cfg)
        assert abs(np.median(c) - f) < 0.06 * f, (f, np.median(c))
    noise = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    c = spectral_centroid(log_mel(noise, cfg), cfg)  # flat magnitude spectrum over 0-8 kHz
    assert abs(np.median(c) - 4000) < 300, np.median(c)


def test_lipssync_export_reads_back_as_the_curve(small_model, tmp_path):
    from voxtool.tasks.mouth.data import read_capture

    model, wav = small_model
    take = tmp_path / "take"
    assert main(["infer", "mouth", str(wav), "--model", str(model), "--out", str(take / "mouth_data.csv"),
                 "--format", "lipssync", "--quiet"]) == 0  # fmt: skip
    assert main(["infer", "mouth", str(wav), "--model", str(model), "--out", str(tmp_path / "c.npy"), "--quiet"]) == 0
    header = (take / "mouth_data.csv").read_text().splitlines()[0]
    assert header == "TimeStamp,jawOpen,mouthClose,LipsDistance"
    cap = read_capture(take / "mouth_data.csv")  # the schema LipsSync's consumers (and prep lipsync) read
    curve = np.load(tmp_path / "c.npy")
    assert len(cap.times) == len(curve) == int(np.floor(3.0 * 50)) + 1
    np.testing.assert_allclose(cap.times, np.arange(len(curve)) / 50, atol=1e-6)
    assert cap.jaw.min() >= 0 and cap.close.min() >= 0 and cap.jaw.max() <= 1 and cap.close.max() <= 1
    np.testing.assert_allclose(cap.jaw - cap.close, curve, atol=2e-6)


def test_noise_blocks_add_energy_in_small_rectangles():
    from voxtool.tasks.mouth.train import augment_noise_blocks

    rng = np.random.default_rng(0)
    mel = np.full((4, 80, 128), -8.0, np.float32)  # (B, n_mels, T)
    np.testing.assert_array_equal(augment_noise_blocks(mel, rng, 0.0, 5, 0.1, 0.3, 0.05), mel)
    out = augment_noise_blocks(mel, rng, 1.0, 1, 0.1, 0.3, 0.05)
    for b in range(4):
        changed = out[b] > mel[b] + 1e-6
        assert (out[b] >= mel[b] - 1e-6).all() and changed.any()
        bins, frames = np.nonzero(changed)
        assert bins.max() - bins.min() + 1 <= 4 and frames.max() - frames.min() + 1 <= int(0.3 * 128)


def test_speaker_map_and_spk_mapping_json(tmp_path, capsys):
    from voxtool.tasks.mouth.synth import TRAIN_SINGERS, synth_take, write_take

    src = tmp_path / "src"
    for i in range(3):  # the README's flat layout: <take>/ directly under the folder
        write_take(src / f"2025-02-0{i + 1}_22-01-52", synth_take(TRAIN_SINGERS[i % 2], 3.0, seed=i), seed=i)
    (tmp_path / "map.json").write_text(json.dumps({"2025-02-01_22-01-52": "ann", "2025-02-02_22-01-52": "bo",
                                                   "2025-02-03_22-01-52/audio.wav": "ann"}))  # fmt: skip
    out = tmp_path / "data"
    assert main(["prep", "lipsync", str(src), str(out), "--speaker-map", str(tmp_path / "map.json"), "--quiet"]) == 0
    mapping = json.loads((out / "spk_mapping.json").read_text())
    assert mapping == {"ann": 0, "bo": 1} == json.loads((out / "speakers.json").read_text())
    items = json.loads((out / "dataset.json").read_text())["items"]
    assert sorted(v["speaker"] for v in items.values()) == ["ann", "ann", "bo"]
    (tmp_path / "bad.json").write_text(json.dumps({"no-such-take": "x"}))
    capsys.readouterr()
    assert main(["prep", "lipsync", str(src), str(tmp_path / "d2"), "--speaker-map", str(tmp_path / "bad.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_gain_math():
    from voxtool.tasks.mouth.config import ModelSection
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator

    net = BiLSTMCurveEstimator(ModelSection(conv_dims=8, hidden_dims=4, n_layers=1, speaker_gain=True,
                                            num_speakers=2), -0.15, 1.0)  # fmt: skip
    assert net.k_filter.weight.abs().max() == 0  # initialised at 0: k = 1.25
    p0 = 0.15 / 1.15
    y = torch.tensor([[0.0, p0, 1.0]] * 2)
    np.testing.assert_allclose(net.apply_gain(y, torch.tensor([0, 1])).detach().numpy()[0], [p0 - 1.25 * p0, p0,
                                                                                    p0 + 1.25 * (1 - p0)], atol=1e-6)
    with torch.no_grad():
        net.k_filter.weight[1] = 50.0  # sigmoid -> 1: k = 2 (the clamp at 2.5 is never reached from above)
    assert net.speaker_gain(torch.tensor([1])).item() == pytest.approx(2.0)


def test_speaker_gain_training_keeps_gains_and_names(corpus, tmp_path):
    runs = tmp_path / "runs"
    assert main(["train", "mouth", str(corpus.data), "--preset", "mouth-tiny", "--exp", "g", "--runs-dir", str(runs),
                 "--device", "cpu", "--steps", "4", "--quiet", "--set", "model.speaker_gain=true",
                 "--set", "train.valid_every=4", "--set", "train.batch_size=4"]) == 0  # fmt: skip
    mf = torch.load(runs / "g" / "model.pt", weights_only=True)
    names = json.loads((corpus.data / "spk_mapping.json").read_text())
    assert mf["meta"]["speakers"] == names and mf["config"]["model"]["num_speakers"] == len(names) == 6
    assert mf["state_dict"]["k_filter.weight"].shape == (6, 1)
    assert mf["meta"]["train_speakers"] == ["alto", "baritone", "bass", "soprano", "tenor"]  # not mezzo (unseen)
    assert mf["state_dict"]["k_filter.weight"].abs().max() > 0  # trained away from its initial 0
    wav = str(corpus.unseen_wav)
    assert main(["infer", "mouth", wav, "--model", str(runs / "g"), "--speaker", "tenor", "--out",
                 str(tmp_path / "t.npy"), "--quiet"]) == 0  # fmt: skip
    assert main(["infer", "mouth", wav, "--model", str(runs / "g"), "--out", str(tmp_path / "p.npy"), "--quiet"]) == 0
    assert not np.allclose(np.load(tmp_path / "t.npy"), np.load(tmp_path / "p.npy"))


def test_gains_recover_known_face_scales():
    """Targets made from a fixed network's curve with known gains 0.7 and 1.8 (faces the sound cannot tell apart):
    fitting only the gain embedding recovers both from its initial 1.25 (a learning test of the
    parametrisation k = clamp(0.5 + 1.5 sigmoid(e), 0.3, 2.5) around p0)."""
    from voxtool.tasks.mouth.config import ModelSection
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator

    torch.manual_seed(seeded(0))
    net = BiLSTMCurveEstimator(ModelSection(conv_dims=16, hidden_dims=8, n_layers=1, speaker_gain=True,
                                            num_speakers=2), -0.15, 1.0).eval()  # fmt: skip
    mel = torch.randn(2, 80, 60)
    speakers = torch.tensor([0, 1])
    true_k = torch.tensor([0.7, 1.8])
    with torch.no_grad():
        y = net(mel)
        target = (y - net.p0) * true_k[:, None] + net.p0
    opt = torch.optim.Adam([net.k_filter.weight], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        loss = ((net(mel, speaker=speakers) - target) ** 2).mean()
        loss.backward()
        opt.step()
    k = net.speaker_gain(speakers).detach()
    assert torch.allclose(k, true_k, atol=0.02), k  # the initial 1.25 is 0.55 off each
