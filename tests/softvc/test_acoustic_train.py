"""softvc acoustic model: input features, config/presets, dataset crops, training through the Trainer, refine."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from voxtool.errors import BadInput
from voxtool.presets import load_config
from voxtool.tasks.softvc import synthdata
from voxtool.tasks.softvc.bins import PitchDynStats
from voxtool.tasks.softvc.config import SoftvcConfig
from voxtool.tasks.softvc.model import conditioning_features

STATS = PitchDynStats(f0_min_hz=100.0, f0_max_hz=400.0, rms_min=0.0, rms_max=0.5)


def item(n=6, dim=4):
    rng = np.random.default_rng(0)
    f0 = np.array([0, 100, 200, 0, 400, 150], np.float32)[:n]
    return {"units": rng.standard_normal((n, dim)).astype(np.float32), "f0": f0,
            "rms": np.array([0.0, 0.5, 0.05, 0.001, 0.2, 0.3], np.float32)[:n],
            "pitch_units": np.ones((n, 3), np.float32), "dynamics_units": np.zeros((n, 3), np.float32)}


def test_conditioning_features_shapes_and_values():
    it = item()
    assert conditioning_features(it, "none").shape == (6, 4)
    pd = conditioning_features(it, "pitdyn")
    assert pd.shape == (6, 10) and np.array_equal(pd[:, 4:7], it["pitch_units"])
    ex = conditioning_features(it, "explicit", STATS)
    assert ex.shape == (6, 7) and np.array_equal(ex[:, :4], it["units"])
    log_f0, voiced, loud = ex[:, 4], ex[:, 5], ex[:, 6]
    np.testing.assert_allclose(log_f0, [0, 0, 0.5, 0, 1, math.log(1.5) / math.log(4)], atol=1e-6)  # f0_min->0, max->1
    assert voiced.tolist() == [0, 1, 1, 0, 1, 1]
    np.testing.assert_allclose(loud[[1, 2]], [1.0, 1 - 20 / 60], atol=1e-6)  # rms_max -> 1, -20 dB -> 2/3
    assert loud[3] == pytest.approx(1 + 20 * math.log10(0.001 / 0.5) / 60, abs=1e-6)  # -54 dB -> 0.1
    assert loud[0] == 0  # silence (60 dB or more below the loudest frame) is clipped at 0
    assert conditioning_features(item(), "explicit", STATS.to_dict()).tolist() == ex.tolist()  # the dataset.json dict


@pytest.mark.parametrize("shift", [-5.0, 3.0, 7.0])
def test_key_shift_moves_voiced_log_f0_by_semitones(shift):
    base = conditioning_features(item(), "explicit", STATS)
    moved = conditioning_features(item(), "explicit", STATS, key_shift=shift)
    voiced = item()["f0"] > 0
    step = shift / 12 * math.log(2) / math.log(4)  # the shift in normalised log-f0 units (range of 2 octaves)
    np.testing.assert_allclose(moved[voiced, 4] - base[voiced, 4], step, atol=1e-6)
    assert np.array_equal(moved[~voiced], base[~voiced])  # unvoiced frames and every other column unchanged
    assert np.array_equal(np.delete(moved, 4, axis=1), np.delete(base, 4, axis=1))


def test_conditioning_features_refusals():
    with pytest.raises(ValueError, match="key shift needs explicit"):
        conditioning_features(item(), "none", key_shift=2)
    with pytest.raises(ValueError, match="key shift needs explicit"):
        conditioning_features(item(), "pitdyn", key_shift=2)
    with pytest.raises(ValueError, match="no pitch_units"):
        conditioning_features({"units": item()["units"]}, "pitdyn")
    with pytest.raises(ValueError, match="statistics"):
        conditioning_features(item(), "explicit")
    with pytest.raises(ValueError, match="no content units"):
        conditioning_features({"f0": item()["f0"]}, "none")
    bad = {**item(), "f0": np.zeros(5, np.float32)}
    with pytest.raises(ValueError, match="f0 has shape"):
        conditioning_features(bad, "explicit", STATS)


def test_presets_and_refine_config():
    published = load_config(SoftvcConfig, "softvc", task="softvc")
    t = published.train
    assert (t.optimizer, t.lr, t.betas, t.weight_decay, t.batch_size, t.steps) == ("adamw", 4e-4, (0.8, 0.99), 1e-5,
                                                                                  32, 80_000)
    assert published.model.in_dim == 256 and published.mel.n_mels == 128
    tiny = load_config(SoftvcConfig, "softvc-tiny", ["model.conditioning=pitdyn"], task="softvc")
    assert tiny.model.in_dim == 768 and tiny.train.betas == (0.8, 0.99)
    refine = load_config(SoftvcConfig, "softvc", ["init=base.pt", "refine.enabled=true"], task="softvc")
    assert refine.train.lr == 1e-5
    with pytest.raises(BadInput, match="refine.enabled needs init"):
        load_config(SoftvcConfig, "softvc", ["refine.enabled=true"], task="softvc")
    with pytest.raises(BadInput, match="model.conditioning"):
        load_config(SoftvcConfig, "softvc", ["model.conditioning=pitch"], task="softvc")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    bench = synthdata
    items = bench.synthetic_items(bench.synth.voice(1), 6, seed=5, seconds=(1.0, 1.4), f0="known")
    return bench.write_dataset(tmp_path_factory.mktemp("softvc") / "data", items, n_valid=2)


def test_random_crops_are_aligned(tiny_dataset):
    from voxtool.tasks.softvc.data import SoftvcItems, random_crops

    items = SoftvcItems(tiny_dataset, "train", "explicit", 128)
    feats, prev, target = random_crops(items, 3, 20, np.random.default_rng(0))
    assert feats.shape == (3, 20, 16 + 3) and target.shape == prev.shape == (3, 40, 128)
    assert np.all(prev[:, 0] == 0) and np.array_equal(prev[:, 1:], target[:, :-1])  # zero go frame, shifted by one
    # each crop is a window of one item: find it back and check the mel window starts at twice the unit offset
    for f, m in zip(feats, target):
        found = False
        for full_f, full_m in (items[i] for i in range(len(items))):
            for s in range(full_f.shape[0] - 20 + 1):
                if np.array_equal(full_f[s:s + 20], f):
                    found = found or np.array_equal(full_m[2 * s:2 * s + 40], m)
        assert found


def test_train_then_refine_resets_steps_and_uses_refine_lr(tiny_dataset, tmp_path):
    from voxtool.tasks.softvc.checkpoint import load_acoustic
    from voxtool.tasks.softvc.train import SoftvcTask
    from voxtool.training.modelfile import load_model_file
    from voxtool.training.task import RunEnv
    from voxtool.training.trainer import Trainer

    bench = synthdata
    base = bench.train(tiny_dataset, tmp_path, "base", "explicit", 4, 1234, ("data.crop_units=16", "train.batch_size=2"))
    mf = load_model_file(base / "model.pt", task="softvc")
    assert mf.meta["step"] == 4 and mf.meta["conditioning"] == "explicit" and mf.meta["stats"]["f0_min_hz"] > 0
    assert set(mf.meta["metrics"]) == {"valid/mel_l1", "valid/tf_l1"}

    overrides = [*bench.tiny_overrides("explicit"), f'init="{base.as_posix()}"', "refine.enabled=true",
                 "data.crop_units=16", "train.batch_size=2", "train.steps=3", "train.valid_every=3"]
    config = load_config(SoftvcConfig, "softvc-tiny", overrides, task="softvc")
    task = SoftvcTask(config, tiny_dataset, RunEnv(device=torch.device("cpu")))
    base_model, _ = load_acoustic(base)
    for k, v in base_model.state_dict().items():  # starts from the base weights
        assert torch.equal(task.model.state_dict()[k], v), k
    (tmp_path / "refine").mkdir()
    trainer = Trainer(task, config.train, task.env, tmp_path / "refine", config.model_dump(mode="json"))
    assert trainer.step == 0
    assert [g["lr"] for g in trainer.optimizers["model"].param_groups] == [1e-5]
    assert not trainer.optimizers["model"].state  # a fresh optimiser: nothing carried over from the base run
    summary = trainer.fit()
    assert summary["step"] == 3  # counted from 0, not from the base run's 4
    refined = load_model_file(tmp_path / "refine" / "model.pt", task="softvc")
    assert refined.meta["step"] == 3 and refined.config["train"]["lr"] == 1e-5
    moved = max((refined.state_dict[k] - v).abs().max().item() for k, v in base_model.state_dict().items())
    assert 0 < moved < 1e-3  # three AdamW steps at 1e-5 move each weight by at most about 3e-5


def test_refining_a_pitdyn_base_without_side_path_keeps_its_layout(tiny_dataset, tmp_path):
    """A pitdyn base without `encoder.side` (as every published hubert-pitdyn file) refines in its own layout
    (strict load, side_path false recorded), unless the run sets side_path itself."""
    from voxtool.tasks.softvc.checkpoint import load_acoustic

    small = ("data.crop_units=16", "train.batch_size=2")
    base = synthdata.train(tiny_dataset, tmp_path, "base", "pitdyn", 1, 1234, (*small, "model.side_path=false"))
    refined = synthdata.train(tiny_dataset, tmp_path, "refined", "pitdyn", 1, 1234,
                              (*small, f'init="{base.as_posix()}"', "refine.enabled=true"))
    model, meta = load_acoustic(refined)
    assert not meta.section.side_path and not hasattr(model.encoder, "side")
    with pytest.raises(BadInput, match="encoder.side"):  # insisting on the side path: the base lacks its weights
        synthdata.train(tiny_dataset, tmp_path, "insist", "pitdyn", 1, 1234,
                        (*small, f'init="{base.as_posix()}"', "model.side_path=true"))


def test_init_with_other_conditioning_is_refused(tiny_dataset, tmp_path):
    bench = synthdata
    base = bench.train(tiny_dataset, tmp_path, "base", "none", 1, 1234, ("data.crop_units=16", "train.batch_size=2"))
    with pytest.raises(BadInput, match="conditioning 'none'"):
        bench.train(tiny_dataset, tmp_path, "next", "explicit", 1, 1234, (f'init="{base.as_posix()}"',))


def test_dataset_errors_name_the_file(tiny_dataset, tmp_path):
    from voxtool.tasks.softvc.train import SoftvcTask
    from voxtool.training.task import RunEnv

    config = load_config(SoftvcConfig, "softvc-tiny", synthdata.tiny_overrides("none"), task="softvc")
    with pytest.raises(BadInput, match="not a prepared softvc dataset"):
        SoftvcTask(config, tmp_path, RunEnv(device=torch.device("cpu")))
    wide = load_config(SoftvcConfig, "softvc-tiny", ["model.unit_dim=256"], task="softvc")  # insists on 256-d
    with pytest.raises(BadInput, match="units are 16-d"):
        SoftvcTask(wide, tiny_dataset, RunEnv(device=torch.device("cpu")))


def test_unit_widths_come_from_dataset_json_when_unset(tiny_dataset):
    """Neither the preset nor --set names unit_dim / pitdyn_dim: the task takes them from dataset.json (content and
    pitch_units `unit_dim`, 16 and 64 here), and model.pt's config records them."""
    from voxtool.tasks.softvc.train import SoftvcTask
    from voxtool.training.task import RunEnv

    config = load_config(SoftvcConfig, "softvc-tiny", ['model.conditioning="pitdyn"'], task="softvc")
    assert "unit_dim" not in config.model.model_fields_set and config.model.unit_dim == 256
    task = SoftvcTask(config, tiny_dataset, RunEnv(device=torch.device("cpu")))
    assert (task.config.model.unit_dim, task.config.model.pitdyn_dim) == (synthdata.UNIT_DIM, synthdata.PITDYN_DIM)
    assert task.model.in_dim == synthdata.UNIT_DIM + 2 * synthdata.PITDYN_DIM
    assert task.config.model_dump()["model"]["unit_dim"] == synthdata.UNIT_DIM
