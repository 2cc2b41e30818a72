"""The pinyin TrainTask pieces: silence padding for the first K epochs, losses logged, validation metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxtool.errors import BadInput
from voxtool.presets import load_config
from voxtool.tasks.pinyin.config import PinyinConfig
from voxtool.tasks.pinyin.prep import prepare
from voxtool.tasks.pinyin.train import PinyinTrainTask
from voxtool.training.task import RunEnv, StepContext


@pytest.fixture
def dataset(corpus_tree, tmp_path):
    cfg = load_config(PinyinConfig, "pinyin-tiny", [], task="pinyin")
    prepare("tsv", [corpus_tree("tsv")], tmp_path / "ds", feat=cfg.features, text_cfg=cfg.text, valid_frac=0.34,
            test_frac=0.0)
    return tmp_path / "ds"


def make_task(data, *overrides):
    cfg = load_config(PinyinConfig, "pinyin-tiny", ["train.batch_size=4", *overrides], task="pinyin")
    return PinyinTrainTask(cfg, data, RunEnv(device=torch.device("cpu")))


def test_blank_padding_only_in_the_first_epochs(dataset):
    task = make_task(dataset, "augment.blank_pad_frames=10", "augment.blank_pad_epochs=1", "augment.freq_masks=0",
                     "augment.time_masks=0")
    n_train = len(task.train_set)
    early = task.sample_batch(0, np.random.default_rng(0))
    late = task.sample_batch(n_train, np.random.default_rng(0))  # step n_train * batch 4 = epoch 4
    assert task.epoch_of(0) == 0 and task.epoch_of(n_train) == pytest.approx(4.0)
    assert (early[1] - late[1]).tolist() == [20] * 4  # same items, 10 silence frames at each end
    assert torch.equal(early[0][:, :, 10:10 + int(late[1][0])][0], late[0][0, :, : int(late[1][0])])


def test_training_step_and_validation(dataset):
    task = make_task(dataset, "blank_loss.weight=0.5")
    batch = task.sample_batch(0, np.random.default_rng(0))
    ctx = StepContext(step=0, model=task.model, modules={"model": task.model}, ema=None, env=task.env)
    out = task.training_step(batch, ctx)
    assert {"loss", "ctc", "blank_loss", "blank_share"} <= set(out) and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None for p in task.model.parameters())
    metrics = task.validate(task.model)
    assert {"valid/ter", "valid/ser", "valid/ser_toneless", "valid/loss", "valid/blank_share"} == set(metrics)
    assert task.best_metric() == ("valid/ser", "min")
    assert task.deployable(task.model)["vocab"]["version"] == "pinyin-v1"


def test_features_must_match_the_preset(dataset):
    with pytest.raises(BadInput, match="features differ"):
        make_task(dataset, "features.mel.n_mels=80")


def test_prep_time_settings_must_match_the_dataset(dataset):
    """[text] and features.trim_db act at prep time; training used to ignore a preset that differed from the
    dataset's (and model.pt then carried a [text] the model never saw). Now that is refused, naming the key."""
    with pytest.raises(BadInput, match="text.tone_sandhi = True, the preset says False"):
        make_task(dataset, "text.tone_sandhi=false")
    with pytest.raises(BadInput, match="text.latin = 'error', the preset says 'spell'"):
        make_task(dataset, "text.latin=spell")
    with pytest.raises(BadInput, match="features.trim_db = 60"):
        make_task(dataset, "features.trim_db=40")


def test_optimizer_is_not_silently_replaced_by_novograd():
    with pytest.raises(BadInput, match="train.optimizer = 'sgd' is not used while novograd = true"):
        load_config(PinyinConfig, "pinyin-tiny", ["train.optimizer=sgd"], task="pinyin")
    cfg = load_config(PinyinConfig, "pinyin-tiny", ["train.optimizer=sgd", "novograd=false"], task="pinyin")
    assert cfg.train.optimizer == "sgd" and not cfg.novograd


def test_novograd_honours_per_optimizer_settings(dataset):
    """[train.optimizers.model] (lr, betas, lr_scale) reached the default optimiser but not NovoGrad."""
    from voxtool.tasks.pinyin.losses import NovoGrad

    task = make_task(dataset, "train.optimizers.model.lr=0.005", "train.optimizers.model.betas=[0.7, 0.4]",
                     'train.optimizers.model.lr_scale={"model.c1" = 0.1}')
    opt = task.configure_optimizers()["model"]
    assert isinstance(opt, NovoGrad)
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([0.0005, 0.005]) and all(g["betas"] == (0.7, 0.4) for g in opt.param_groups)
    c1 = {id(p) for p in task.model.c1.parameters()}
    small = next(g for g in opt.param_groups if g["lr"] < 0.001)
    assert {id(p) for p in small["params"]} == c1
    with pytest.raises(BadInput, match="optimizers.model.optimizer = 'sgd' is not used while novograd"):
        make_task(dataset, "train.optimizers.model.optimizer=sgd")


def test_resume_is_exact_with_novograd(dataset, tmp_path):
    """6 steps + resume to 10 == 10 steps straight (data order is a function of the step; NovoGrad state saved)."""
    from voxtool.fileio import load_torch
    from voxtool.options import TrainOptions
    from voxtool.training.run import train_from_options

    common = ["train.batch_size=4", "train.schedule=constant", "train.warmup_steps=0", "train.valid_every=100",
              "blank_loss.weight=0.5"]

    def run(exp, steps, resume=False):
        opts = TrainOptions(exp=exp, runs_dir=tmp_path / "runs", preset="pinyin-tiny", device="cpu", steps=steps,
                            resume=resume, set=common)
        train_from_options(PinyinTrainTask, PinyinConfig, dataset, opts, default_preset="pinyin-tiny")
        return load_torch(tmp_path / "runs" / exp / "last.pt")

    run("a", 6)
    resumed = run("a", 10, resume=True)
    straight = run("b", 10)
    assert resumed["step"] == straight["step"] == 10
    for k, v in straight["modules"]["model"].items():
        assert torch.equal(v, resumed["modules"]["model"][k]), k
