"""R^3-MOE's own files: a bare state dict with config.yaml beside it, its ONNX signature, and parity with the
original's inference computed here from its published formulas."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from voxtool.cli import main

DEFAULT_CONFIG = {"sample_rate": 16000, "win_size": 1024, "hop_size": 320, "mel_bins": 80, "f_min": 0, "f_max": None}
HIFI_CONFIG = {"sample_rate": 44100, "win_size": 2048, "hop_size": 512, "mel_bins": 128, "f_min": 40, "f_max": 16000}


def original_state_dict(mels: int, conv: int, hidden: int, layers: int, speakers: int, seed: int) -> dict:
    """Seeded weights under the key names and shapes of the original's lib/nets.py (HEAD), built from its layout
    (not from voxtool's model)."""
    g = torch.Generator().manual_seed(seed)

    def w(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    sd = {"input_stack.0.weight": w(conv, mels, 3, scale=0.05), "input_stack.1.weight": 1 + w(conv),
          "input_stack.1.bias": w(conv), "input_stack.4.weight": w(conv, conv, 3, scale=0.05)}  # fmt: skip
    for layer in range(layers):
        width = conv if layer == 0 else 2 * hidden
        for suffix in ("", "_reverse"):
            sd[f"rnn.weight_ih_l{layer}{suffix}"] = w(4 * hidden, width)
            sd[f"rnn.weight_hh_l{layer}{suffix}"] = w(4 * hidden, hidden)
            sd[f"rnn.bias_ih_l{layer}{suffix}"] = w(4 * hidden)
            sd[f"rnn.bias_hh_l{layer}{suffix}"] = w(4 * hidden)
    sd.update({"output_proj.0.weight": w(hidden, 2 * hidden), "output_proj.0.bias": w(hidden),
               "output_proj.2.weight": w(1, hidden), "output_proj.2.bias": w(1),
               "k_filter.weight": w(speakers, 1, scale=1.0)})  # fmt: skip
    return sd


def write_original(folder, dataset_args, conv=32, hidden=16, layers=2, speakers=3, vmin=-0.15, vmax=1.0, seed=0,
                   speaker_names=None):  # fmt: skip
    """experiments/<exp>/{ema_model_8.pt, config.yaml[, spk_mapping.json]} as the original's training writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    sd = original_state_dict(dataset_args["mel_bins"], conv, hidden, layers, speakers, seed)
    torch.save(sd, folder / "ema_model_8.pt")
    lines = ["dataset_args:"] + [f"  {k}: {'null' if v is None else v}" for k, v in sorted(dataset_args.items())]
    model_args = {"conv_dims": conv, "conv_dropout": 0.2, "hidden_dims": hidden, "in_dims": dataset_args["mel_bins"],
                  "n_layers": layers, "num_speakers": speakers, "vmax": vmax, "vmin": vmin}  # fmt: skip
    lines += ["model_args:"] + [f"  {k}: {v}" for k, v in sorted(model_args.items())]
    (folder / "config.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if speaker_names:
        import json

        (folder / "spk_mapping.json").write_text(json.dumps({n: i for i, n in enumerate(speaker_names)}))
    return folder / "ema_model_8.pt", sd


def original_inference(audio: np.ndarray, sd: dict, d: dict, vmin: float, vmax: float, layers: int) -> np.ndarray:
    """The original's eval path from its published formulas: reflect pad (win-hop)//2 left and (win-hop+1)//2
    right, centred reflect STFT (Hann, n_fft = win), magnitude, librosa Slaney mel, ln clamp 1e-5, then
    Conv-GroupNorm(4)-LeakyReLU-Conv, BiLSTM, Linear-ReLU-Linear-sigmoid, denormalised. (1, N) -> (T,)."""
    import librosa

    win, hop = d["win_size"], d["hop_size"]
    y = torch.from_numpy(audio.astype(np.float32))[None]
    y = torch.nn.functional.pad(y[:, None], ((win - hop) // 2, (win - hop + 1) // 2), mode="reflect")[:, 0]
    spec = torch.stft(y, win, hop_length=hop, win_length=win, window=torch.hann_window(win), center=True,
                      pad_mode="reflect", return_complex=True).abs()  # fmt: skip
    basis = librosa.filters.mel(sr=d["sample_rate"], n_fft=win, n_mels=d["mel_bins"], fmin=d["f_min"], fmax=d["f_max"])
    mel = torch.log(torch.clamp(torch.from_numpy(basis) @ spec, min=1e-5))  # (1, F, T)
    h = torch.nn.functional.conv1d(mel, sd["input_stack.0.weight"], padding=1)
    h = torch.nn.functional.group_norm(h, 4, sd["input_stack.1.weight"], sd["input_stack.1.bias"])
    h = torch.nn.functional.conv1d(torch.nn.functional.leaky_relu(h), sd["input_stack.4.weight"], padding=1)
    hidden = sd["rnn.weight_hh_l0"].shape[1]
    rnn = torch.nn.LSTM(h.shape[1], hidden, num_layers=layers, bidirectional=True, batch_first=True)
    rnn.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("rnn.")})
    h, _ = rnn(h.transpose(1, 2))
    h = torch.relu(h @ sd["output_proj.0.weight"].T + sd["output_proj.0.bias"])
    y = torch.sigmoid(h @ sd["output_proj.2.weight"].T + sd["output_proj.2.bias"])[0, :, 0]
    return (y * (vmax - vmin) + vmin).detach().numpy()


def sung_audio(sr: int, seconds: float = 3.0, seed: int = 5) -> np.ndarray:
    from voxtool.audio.io import resample
    from voxtool.tasks.mouth.synth import TRAIN_SINGERS, synth_take

    return resample(synth_take(TRAIN_SINGERS[1], seconds, seed=seed).audio, 16000, sr)


# ----------------------------------------------------------------------------------------------- state dicts


def test_original_key_layout_loads_strictly_and_tensor_for_tensor(tmp_path):
    from voxtool.tasks.mouth.infer import MouthModel, load_model

    pt, sd = write_original(tmp_path / "1212s2k", DEFAULT_CONFIG, speaker_names=["s1", "s2", "A"])
    model = load_model(pt)
    assert isinstance(model, MouthModel)
    own = model.model.state_dict()
    assert set(own) == set(sd)  # every original key, nothing else (k_filter kept for --speaker)
    for key, value in sd.items():
        torch.testing.assert_close(own[key], value, rtol=0, atol=0)
    assert model.mel_cfg.pad == 352 and model.fps == 50 and model.speakers == {"s1": 0, "s2": 1, "A": 2}
    assert model.model.value_range.tolist() == pytest.approx([-0.15, 1.0])


@pytest.mark.parametrize("dataset_args", [DEFAULT_CONFIG, HIFI_CONFIG], ids=["16k-80", "44k-128"])
def test_parity_with_the_original_inference(tmp_path, dataset_args):
    from voxtool.tasks.mouth.infer import load_model, predict

    pt, sd = write_original(tmp_path / "exp", dataset_args, seed=3)
    model = load_model(pt)
    assert model.mel_cfg.sample_rate == dataset_args["sample_rate"] and model.mel_cfg.n_mels == dataset_args["mel_bins"]
    sr = dataset_args["sample_rate"]
    audio = sung_audio(sr)
    expected = original_inference(audio, sd, dataset_args, -0.15, 1.0, layers=2)
    got = predict(audio, sr, model).curve
    print(f"mouth original parity {sr} Hz: {len(got)} frames, max |voxtool - original| {np.abs(got - expected).max():.2e}")
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_missing_and_contradicting_config_are_one_line_each(tmp_path, capsys):
    from tests.mouth.test_formats import write_wav

    wav = write_wav(tmp_path / "song.wav", sung_audio(16000, 2.0), 16000)
    pt, _ = write_original(tmp_path / "a", DEFAULT_CONFIG)
    (tmp_path / "a" / "config.yaml").unlink()
    capsys.readouterr()
    assert main(["infer", "mouth", str(wav), "--model", str(pt), "--out", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.yaml" in err[0] and err[0].startswith("error:")

    pt, _ = write_original(tmp_path / "b", DEFAULT_CONFIG)
    text = (tmp_path / "b" / "config.yaml").read_text().replace("mel_bins: 80", "mel_bins: 128")
    (tmp_path / "b" / "config.yaml").write_text(text.replace("in_dims: 80", "in_dims: 128"))
    assert main(["infer", "mouth", str(wav), "--model", str(pt), "--out", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "contradicts the weights" in err[0] and "mel_bins is 128" in err[0], err
    assert not (tmp_path / "c.csv").exists()


def test_config_yaml_without_pyyaml_parses_the_same(tmp_path):
    from voxtool.tasks.mouth.original import parse_simple_yaml

    write_original(tmp_path, HIFI_CONFIG)
    text = (tmp_path / "config.yaml").read_text()
    parsed = parse_simple_yaml(text)
    assert parsed["dataset_args"] == HIFI_CONFIG
    assert parsed["model_args"] == {"conv_dims": 32, "conv_dropout": 0.2, "hidden_dims": 16, "in_dims": 128,
                                    "n_layers": 2, "num_speakers": 3, "vmax": 1.0, "vmin": -0.15}  # fmt: skip
    assert parse_simple_yaml(text.replace("f_max: 16000", "f_max: null"))["dataset_args"]["f_max"] is None
    try:
        import yaml
    except ImportError:
        return
    assert parsed == yaml.safe_load(text)


def test_old_voxtool_files_with_lstm_names_still_load(tmp_path):
    from voxtool.tasks.mouth.config import ModelSection, default_mel
    from voxtool.tasks.mouth.infer import load_model
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator
    from voxtool.training.modelfile import save_model_file

    torch.manual_seed(0)
    cfg = ModelSection(conv_dims=16, hidden_dims=8, n_layers=1)
    old = {k.replace("rnn.", "lstm.", 1): v for k, v in BiLSTMCurveEstimator(cfg, 0, 1).state_dict().items()}
    save_model_file(tmp_path / "model.pt", "mouth", {"model": cfg.model_dump()}, old,
                    {"mel": default_mel().model_dump(), "value_range": [0.0, 1.0]})  # fmt: skip
    loaded = load_model(tmp_path / "model.pt").model.state_dict()
    for key, value in old.items():
        torch.testing.assert_close(loaded[key.replace("lstm.", "rnn.", 1)], value, rtol=0, atol=0)
    fresh = BiLSTMCurveEstimator(cfg, 0, 1)
    fresh.load_state_dict(old)  # training checkpoints (resume) go through the module's load hook
    torch.testing.assert_close(fresh.rnn.weight_ih_l0, old["lstm.weight_ih_l0"])


def test_speaker_applies_that_singers_gain(tmp_path, capsys):
    from tests.mouth.test_formats import write_wav

    pt, sd = write_original(tmp_path / "exp", DEFAULT_CONFIG, speaker_names=["s1", "s2", "A"], seed=4)
    wav = write_wav(tmp_path / "song.wav", sung_audio(16000, 2.0), 16000)
    plain, gained = tmp_path / "plain.npy", tmp_path / "s2.npy"
    assert main(["infer", "mouth", str(wav), "--model", str(pt), "--out", str(plain)]) == 0
    assert main(["infer", "mouth", str(wav), "--model", str(pt), "--out", str(gained), "--speaker", "s2"]) == 0
    vmin, vmax = -0.15, 1.0
    p0 = -vmin / (vmax - vmin)
    k = min(2.5, max(0.3, 0.5 + 1.5 / (1 + math.exp(-float(sd["k_filter.weight"][1, 0])))))
    y = (np.load(plain) - vmin) / (vmax - vmin)
    np.testing.assert_allclose(np.load(gained), ((y - p0) * k + p0) * (vmax - vmin) + vmin, atol=1e-5)
    assert abs(k - 1.0) > 0.05 and not np.allclose(np.load(gained), np.load(plain), atol=1e-3)
    # --average-gain: the mean k of the training singers (every row of an original's k_filter)
    average = tmp_path / "avg.npy"
    assert main(["infer", "mouth", str(wav), "--model", str(pt), "--out", str(average), "--average-gain"]) == 0
    k_mean = float(np.mean(np.clip(0.5 + 1.5 / (1 + np.exp(-sd["k_filter.weight"][:, 0].numpy())), 0.3, 2.5)))
    np.testing.assert_allclose(np.load(average), ((y - p0) * k_mean + p0) * (vmax - vmin) + vmin, atol=1e-5)
    capsys.readouterr()
    assert main(["infer", "mouth", str(wav), "--model", str(pt), "--speaker", "s1", "--average-gain"]) == 2
    assert main(["infer", "mouth", str(wav), "--model", str(pt), "--speaker", "nobody"]) == 2
    assert "not a training singer" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("rate", [44100, 16000])
def test_the_originals_onnx_runs_by_its_signature(tmp_path, rate):
    """A graph exported the way the original's export_onnx.py does (44.1 kHz in with the resampler inside, or at
    the model's 16 kHz; no voxtool metadata) is recognised by its input/output names, its input rate found, and
    it runs under infer."""
    import onnx

    from tests.mouth.test_formats import write_wav
    from voxtool.tasks.mouth.export import WaveformToCurve
    from voxtool.tasks.mouth.infer import load_model

    pt, _ = write_original(tmp_path / "exp", DEFAULT_CONFIG, seed=6)
    wrapper = WaveformToCurve(load_model(pt).model, load_model(pt).mel_cfg, rate, lowpass_width=128).eval()
    onnx_path = tmp_path / "bare" / f"ema_model_4_{rate}hz.onnx"  # no config.yaml beside it: the defaults
    onnx_path.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on RNNs and shape arithmetic
        torch.onnx.export(wrapper, (torch.zeros(1, rate),), str(onnx_path), input_names=["waveform"],
                          output_names=["curve"], opset_version=17, dynamo=False,
                          dynamic_axes={"waveform": {0: "batch_size", 1: "time"},
                                        "curve": {0: "batch_size", 1: "frames"}})  # fmt: skip
    assert not onnx.load(str(onnx_path)).metadata_props
    model = load_model(onnx_path)
    assert model.kind == "original" and model.sample_rate == rate and model.fps == 50
    audio = sung_audio(rate, 2.5)
    with torch.no_grad():
        expected = wrapper(torch.from_numpy(audio)[None])[0].numpy()
    np.testing.assert_allclose(model.run(audio), expected, atol=1e-4)
    wav = write_wav(tmp_path / "song.wav", audio, rate)
    assert main(["infer", "mouth", str(wav), "--model", str(onnx_path), "--out", str(tmp_path / "c.csv"),
                 "--quiet"]) == 0  # fmt: skip
    rows = np.loadtxt(tmp_path / "c.csv", delimiter=",", skiprows=1)
    assert rows.shape == (int(2.5 * 50) + 1, 2)


def test_export_like_original_writes_that_signature(tmp_path):
    import onnx

    from voxtool.tasks.mouth.infer import load_model

    pt, _ = write_original(tmp_path / "exp", DEFAULT_CONFIG, seed=7)
    out = tmp_path / "like.onnx"
    assert main(["export", "mouth", "--model", str(pt), "--out", str(out), "--like-original", "--quiet"]) == 0
    graph = onnx.load(str(out)).graph
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert [i.name for i in graph.input] == ["waveform"] and dims(graph.input[0]) == ["batch_size", "time"]
    assert [o.name for o in graph.output] == ["curve"] and dims(graph.output[0]) == ["batch_size", "frames"]
    model = load_model(out)
    assert model.sample_rate == 44100 and model.resampler_width == 128
    # the same curve as the torch model on the same audio (the graph resamples inside; soxr outside)
    from voxtool.tasks.mouth.infer import predict

    audio = sung_audio(44100, 3.0)
    a, b = predict(audio, 44100, model).curve, predict(audio, 44100, load_model(pt)).curve
    assert a.shape == b.shape and np.abs(a - b)[5:-5].max() < 0.02


def test_sinc_resampler_at_the_originals_width_keeps_a_tone():
    from voxtool.tasks.mouth.export import SincResampler

    t = np.arange(44100) / 44100
    x = torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32))[None]
    y = SincResampler(44100, 16000, lowpass_width=128)(x)[0].numpy()
    ref = np.sin(2 * np.pi * 1000 * np.arange(len(y)) / 16000)
    assert len(y) == 16000 and np.abs(y - ref)[1000:-1000].max() < 2e-3
