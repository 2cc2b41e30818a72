"""`voxtool convert softvc` and the inference ladder on an untrained tiny chain (a random tiny HuBERT, random tiny
acoustic models, Griffin-Lim): lengths, the batch rules, key-shift refusal (chunk boundaries: test_chunking.py;
a trained chain: test_e2e.py, the key shift: test_keyshift.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import run_voxtool, seeded
from voxtool.errors import BadInput
from voxtool.tasks.softvc import synth


def tiny_chain(root, conditioning: str, stats: dict | None = None, seed: int = 0):
    """A random tiny HuBERT (hubert.pt) and a random softvc-tiny acoustic model (`<conditioning>.pt`) as the train
    commands write them (voxtool model files)."""
    from voxtool.encoders.hubert import HubertSoft
    from voxtool.encoders.hubert_checkpoint import TASK
    from voxtool.encoders.hubert_settings import TINY
    from voxtool.presets import load_config
    from voxtool.tasks.softvc.config import SoftvcConfig
    from voxtool.tasks.softvc.model import AcousticModel
    from voxtool.training.modelfile import save_model_file

    torch.manual_seed(seed)
    if not (root / "hubert.pt").exists():
        save_model_file(root / "hubert.pt", TASK, {"arch": TINY.model_dump()}, HubertSoft(TINY).state_dict())
    # explicit's harmonic prior turns the log-f0 back into Hz over the range training recorded (train fills it in)
    f0_range = [f"model.f0_range_hz=[{stats['f0_min_hz']}, {stats['f0_max_hz']}]"] if conditioning == "explicit" else []
    cfg = load_config(SoftvcConfig, "softvc-tiny", [f"model.unit_dim={TINY.unit_dim}", f"model.pitdyn_dim={TINY.unit_dim}",
                                                    f'model.conditioning="{conditioning}"', *f0_range], task="softvc")
    save_model_file(root / f"{conditioning}.pt", "softvc", cfg.model_dump(mode="json"),
                    AcousticModel(cfg.model).state_dict(), {"stats": stats})
    return root / "hubert.pt", root / f"{conditioning}.pt"


STATS = {"f0_min_hz": 100.0, "f0_max_hz": 400.0, "rms_min": 0.0, "rms_max": 0.3, "dynamics_bins": 32,
         "f0_method": "harvest"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    hubert, none = tiny_chain(root, "none")
    _, explicit = tiny_chain(root, "explicit", STATS)
    wavs = root / "src"
    (wavs / "sub").mkdir(parents=True)
    seed = seeded(70)
    for i, (name, sr, secs) in enumerate((("a.wav", 16000, 1.0), ("sub/b.wav", 22050, 0.77))):
        phones, melody = synth.corpus_item(seed, i, secs)
        wav = synth.render(phones, melody, synth.voice(1), noise_seed=i)
        if sr != 16000:
            from voxtool.audio.io import resample

            wav = resample(wav, 16000, sr)
        sf.write(wavs / name, wav, sr)
    return {"hubert": hubert, "none": none, "explicit": explicit, "src": wavs}


def fast(converter, iterations: int = 4):
    converter.vocoder.generator.n_iter = iterations  # Griffin-Lim: fewer iterations, same interface
    return converter


def test_predict_keeps_the_length_and_the_ladder_agrees(chain):
    from voxtool.tasks.softvc.infer import load_model, predict, predict_from_file

    conv = fast(load_model(chain["explicit"], chain["hubert"], "griffinlim", device="cpu"))
    x, sr = sf.read(chain["src"] / "sub/b.wav", dtype="float32")
    y, out_sr = predict(x, sr, conv, key=2)
    from voxtool.audio.io import resample

    assert out_sr == 16000 and len(y) == len(resample(x, sr, 16000)) and np.abs(y).max() <= 1.0
    assert np.isfinite(y).all() and np.abs(y).max() > 1e-4
    z, _ = predict_from_file(chain["src"] / "sub/b.wav", conv, key=2)
    np.testing.assert_allclose(y, z, atol=1e-6)
    assert all(v > 0 for v in conv.timings.values())  # content, f0, acoustic and vocoder all ran


def test_key_needs_a_pitch_input(chain):
    from voxtool.tasks.softvc.infer import check_key, load_model, predict

    conv = fast(load_model(chain["none"], chain["hubert"], "griffinlim", device="cpu"))
    with pytest.raises(BadInput, match="conditioning is 'none'"):
        predict(np.zeros(16000, np.float32), 16000, conv, key=3)
    with pytest.raises(BadInput, match="-24 to 24"):
        check_key(25, "explicit")


def test_pitdyn_key_shifts_what_the_pitch_hubert_hears(chain, tmp_path):
    """pitdyn: --key N feeds the pitch HuBERT the source shifted by N semitones (WORLD); the content and dynamics
    streams hear the source unchanged. Without the two stream HuBERTs the model is refused."""
    from voxtool.encoders.hubert import content_units, load_content_encoder
    from voxtool.pitch.world import pitch_shift_world
    from voxtool.tasks.softvc.infer import load_model, model_input

    hubert, pitdyn = tiny_chain(tmp_path, "pitdyn")
    with pytest.raises(BadInput, match="--pitch-units"):
        load_model(pitdyn, hubert, "griffinlim", device="cpu")
    conv = load_model(pitdyn, hubert, "griffinlim", pitch_units=hubert, dynamics_units=hubert, device="cpu")
    x, _ = sf.read(chain["src"] / "a.wav", dtype="float32")
    x = x[: len(x) // 320 * 320]
    plain, shifted = model_input(x, conv, 0), model_input(x, conv, 5)
    d = shifted.shape[1] // 3
    np.testing.assert_array_equal(plain[:, :d], shifted[:, :d])  # content units
    np.testing.assert_array_equal(plain[:, 2 * d :], shifted[:, 2 * d :])  # dynamics units
    expected = content_units(load_content_encoder(hubert), pitch_shift_world(x.astype(np.float64), 16000, 5))
    np.testing.assert_allclose(shifted[:, d : 2 * d], expected[: len(plain)], atol=1e-5)
    assert np.abs(shifted[:, d : 2 * d] - plain[:, d : 2 * d]).mean() > 1e-3


def test_a_mismatched_content_encoder_is_refused(chain, tmp_path):
    from voxtool.encoders.hubert import HubertSoft
    from voxtool.encoders.hubert_checkpoint import TASK
    from voxtool.encoders.hubert_settings import TINY
    from voxtool.tasks.softvc.infer import load_model
    from voxtool.training.modelfile import save_model_file

    wide = TINY.model_copy(update={"unit_dim": 48})
    save_model_file(tmp_path / "h48.pt", TASK, {"arch": wide.model_dump()}, HubertSoft(wide).state_dict())
    with pytest.raises(BadInput, match="48-d units"):
        load_model(chain["none"], tmp_path / "h48.pt", "griffinlim", device="cpu")


def test_cli_convert_folder_rates_and_batch_rules(chain, tmp_path):
    src, out = chain["src"], tmp_path / "out"
    (src.parent / "broken").mkdir(exist_ok=True)
    bad = src.parent / "broken" / "bad.wav"
    bad.write_bytes(b"RIFF....")
    base = ["--model", str(chain["explicit"]), "--content", str(chain["hubert"]), "--vocoder", "griffinlim",
            "--device", "cpu"]
    r = run_voxtool("convert", "softvc", str(src), "--out", str(out), "--sample-rate", "22050", "--json", *base)
    assert r.returncode == 0, r.stderr
    rows = {json.loads(r.stdout)[i]["output"] for i in range(2)}
    assert rows == {str(out / "a.wav"), str(out / "sub" / "b.wav")}  # mirrored
    for name, secs_in in (("a.wav", 1.0), ("sub/b.wav", None)):
        info = sf.info(out / name)
        n16 = int(secs_in * 16000) if secs_in else len(sf.read(src / name)[0]) * 16000 // 22050
        assert info.samplerate == 22050 and abs(info.frames - round(n16 * 22050 / 16000)) <= 1
    # a bad file among done ones: one error line, exit 2; --skip-existing leaves the existing outputs alone
    before = (out / "a.wav").stat().st_mtime_ns
    r = run_voxtool("convert", "softvc", str(src), str(bad), "--out", str(out), "--skip-existing", *base)
    assert r.returncode == 2 and r.stderr.count("error:") == 1 and "bad.wav" in r.stderr
    assert (out / "a.wav").stat().st_mtime_ns == before and not (out / "bad.wav").exists()
    # never over an input (nor the model: protected the same way); --key with a units-only model
    r = run_voxtool("convert", "softvc", str(src / "a.wav"), "--out", str(src / "a.wav"), *base)
    assert r.returncode == 2 and "would overwrite the input" in r.stderr
    from voxtool.inputs import expand_inputs, protected_paths

    with pytest.raises(BadInput, match="would overwrite the model"):
        expand_inputs([str(src / "a.wav")], chain["explicit"], ".wav", protect=protected_paths(chain["explicit"]))
    none = ["--model", str(chain["none"]), *base[2:]]
    r = run_voxtool("convert", "softvc", str(src / "a.wav"), "--out", str(tmp_path / "k.wav"), "--key", "2", *none)
    assert r.returncode == 2 and "conditioning is 'none'" in r.stderr and not (tmp_path / "k.wav").exists()
