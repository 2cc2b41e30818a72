"""The multi-optimiser path of the Trainer with a toy GAN: learning, exact resume, 2-rank DDP, frozen parts,
per-optimiser settings, parameter groups, loss scaling, and model files with several components."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TRAIN_SEED, fit_until_interrupted, run_voxtool, seeded
from voxtool.errors import BadInput
from voxtool.fileio import load_torch
from voxtool.presets import load_config
from voxtool.training.modelfile import load_model_file
from voxtool.training.task import RunEnv
from voxtool.training.trainer import Trainer


def make_gan(tmp_path, *overrides, seed=1234, precision="32"):
    from voxtool_toy.gan import GanConfig, ToyGanTask
    from voxtool_toy.plugin import GAN_PRESET

    cfg = load_config(GanConfig, GAN_PRESET, [f"train.seed={seed}", *overrides], task="toygan")
    env = RunEnv(device=torch.device("cpu"), seed=seed, precision=precision)
    tmp_path.mkdir(parents=True, exist_ok=True)
    return Trainer(ToyGanTask(cfg, tmp_path, env), cfg.train, env, tmp_path, cfg.model_dump(mode="json"))


def state(trainer):
    return {f"{name}.{k}": v.clone() for name, m in trainer.modules.items() for k, v in m.state_dict().items()}


def test_gan_learns_the_target_distribution_and_frozen_part_never_moves(toy_on_path, tmp_path):
    trainer = make_gan(tmp_path, seed=seeded(TRAIN_SEED))
    task = trainer.task
    w1_init = task.validate(task.model)["valid/w1"]
    project = {k: v.clone() for k, v in task.model.project.state_dict().items()}
    head = {k: v.clone() for k, v in task.model.head.state_dict().items()}
    head_at = {}

    def watch_head(ctx):  # model.head is frozen for steps 0..19 and trains from step 20 on
        if ctx.step + 1 == 20:
            head_at[20] = {k: v.clone() for k, v in task.model.head.state_dict().items()}

    task.after_optimizer_step = watch_head
    summary = trainer.fit()
    w1_end = task.validate(task.model)["valid/w1"]
    print(f"toy GAN: W1 untrained {w1_init:.4f} -> end {w1_end:.4f}, best {summary['best']['value']:.4f}")
    # at initialisation the generator is ~2 away from N(2, 0.5²) in W1; not learning stays near that. Over
    # VOXTOOL_TEST_SEED 0-13 the best validation W1 was 0.02-0.18 of it, the last step's (GANs oscillate) 0.02-0.40
    assert summary["best"]["value"] < 0.5 * w1_init, (w1_init, summary["best"])
    assert w1_end < 0.75 * w1_init, (w1_init, w1_end)
    assert all(torch.equal(v, task.model.project.state_dict()[k]) for k, v in project.items())
    assert all(torch.equal(v, head_at[20][k]) for k, v in head.items())  # untouched while frozen
    assert not torch.equal(head["weight"], task.model.head.weight)  # then trained
    assert not any(task.autocast_seen)  # fp32: no autocast
    # model.pt deploys only the generator
    mf = load_model_file(tmp_path / "model.pt", task="toygan")
    assert set(mf.state_dict) == set(task.model.state_dict()) and not mf.components


def test_gan_resumes_exactly_after_an_interruption(toy_on_path, tmp_path):
    overrides = ["train.steps=60", "train.valid_every=25", "train.decay_steps=10", "train.freeze={'model.project' = -1, 'model.head' = 30}"]
    straight = make_gan(tmp_path / "a", *overrides)
    straight.fit()
    first = make_gan(tmp_path / "b", *overrides)

    fit_until_interrupted(first, 17)
    assert load_torch(tmp_path / "b" / "last.pt")["step"] == 17
    resumed = make_gan(tmp_path / "b", *overrides)
    resumed.fit(resume=True)
    a, b = state(straight), state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("generator", "discriminator"):
        sa, sb = straight.optimizers[name].state_dict(), resumed.optimizers[name].state_dict()
        for i, per_param in sa["state"].items():
            assert all(torch.equal(per_param[k], sb["state"][i][k]) for k in per_param if torch.is_tensor(per_param[k]))
        assert straight.schedulers[name].get_last_lr() == resumed.schedulers[name].get_last_lr()


def test_each_optimiser_has_its_own_schedule_and_clip(toy_on_path, tmp_path, monkeypatch):
    trainer = make_gan(tmp_path, "train.steps=25", "train.valid_every=25", "train.decay_steps=10")
    clips = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(params, max_norm, *a, **k):
        params = list(params)
        clips.append((len(params), max_norm))
        return real_clip(params, max_norm, *a, **k)

    params = {name: trainer._params(name) for name in trainer.optimizers}
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    trainer.fit()
    # generator: lr 2e-3, decay 0.9 per 10 steps, no clip; discriminator: lr 1e-3, decay 0.8, clip 1.0
    assert trainer.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(2e-3 * 0.9 ** 2)
    assert trainer.optimizers["discriminator"].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.8 ** 2)
    assert clips and all(m == 1.0 and n == len(params["discriminator"]) for n, m in clips)
    assert len(clips) == 25  # once per step, the discriminator's parameters only


def test_generator_gradients_do_not_leak_into_the_next_discriminator_step(toy_on_path, tmp_path):
    trainer = make_gan(tmp_path, "train.optimizers.discriminator.optimizer='sgd'", "train.momentum=0",
                       "train.optimizers.discriminator.grad_clip=0", "train.optimizers.discriminator.lr=0.5")
    disc = trainer.task.disc
    x = torch.randn(16, 1)
    (disc(x).sum() * 100).backward()  # what a generator step leaves on the discriminator
    before = {k: v.clone() for k, v in disc.named_parameters()}
    loss = (disc(x) ** 2).mean()
    grads = torch.autograd.grad(loss, list(disc.parameters()), retain_graph=True)
    trainer.optimize(loss, "discriminator")
    for (k, p), g in zip(disc.named_parameters(), grads):
        assert torch.allclose(p, before[k] - 0.5 * g, atol=1e-7), k  # the leftover gradient played no part


def test_manual_path_checks_the_loss_and_runs_under_autocast(toy_on_path, tmp_path, monkeypatch):
    trainer = make_gan(tmp_path, "train.steps=3", "train.valid_every=3", precision="bf16")
    updates = []
    real_update = trainer.scaler.update
    monkeypatch.setattr(trainer.scaler, "update", lambda *a: (updates.append(trainer.step), real_update(*a)))
    trainer.fit()
    assert trainer.task.autocast_seen == [True, True, True]
    assert updates == [0, 1, 2]  # one scaler update per iteration, not one per optimiser
    with pytest.raises(FloatingPointError, match="discriminator loss is nan"):
        trainer.optimize(torch.tensor(float("nan"), requires_grad=True), "discriminator")


def test_fp16_on_cpu_scales_the_loss(toy_on_path, tmp_path):
    trainer = make_gan(tmp_path, "train.steps=2", "train.valid_every=2", precision="16")
    assert trainer.scaler.is_enabled()
    trainer.fit()
    assert trainer.scaler.get_scale() > 1  # it was used (and updated) by both optimisers' steps
    assert all(torch.isfinite(p).all() for p in trainer.task.model.parameters())


def test_config_names_must_exist(toy_on_path, tmp_path):
    with pytest.raises(BadInput, match="train.optimizers.critic: no such optimiser"):
        make_gan(tmp_path, "train.optimizers.critic.lr=0.1")
    with pytest.raises(BadInput, match="train.freeze 'model.encoder'"):
        make_gan(tmp_path, "train.freeze={'model.encoder' = -1}")
    with pytest.raises(BadInput, match="lr_scale 'model.nothing'"):
        make_gan(tmp_path, "train.optimizers.generator.lr_scale={'model.nothing' = 0.1}")


def test_parameter_groups_train_a_pretrained_part_slower(toy_on_path, tmp_path):
    trainer = make_gan(tmp_path, "train.optimizers.generator.lr_scale={'model.body' = 0.1, 'model.body.2' = 0.5}",
                       "train.freeze={}")
    groups = trainer.optimizers["generator"].param_groups
    by_lr = {round(g["lr"], 8): {id(p) for p in g["params"]} for g in groups}
    body = trainer.task.model.body
    assert by_lr[2e-4] == {id(body[0].weight), id(body[0].bias)}
    assert by_lr[1e-3] == {id(body[2].weight), id(body[2].bias)}
    assert by_lr[2e-3] == {id(p) for m in (trainer.task.model.project, trainer.task.model.head) for p in m.parameters()}


def test_model_file_holds_named_components(toy_on_path, tmp_path):
    trainer = make_gan(tmp_path, "train.steps=2", "train.valid_every=2")
    trainer.task.deploy_components = lambda model: {"critic": (trainer.task.disc, {"hidden": 32})}
    trainer.fit()
    mf = load_model_file(tmp_path / "model.pt", task="toygan")
    critic = mf.component("critic")
    assert critic.config == {"hidden": 32}
    assert all(torch.equal(v, trainer.task.disc.state_dict()[k]) for k, v in critic.state_dict.items())
    with pytest.raises(BadInput, match="no 'encoder' component"):
        mf.component("encoder")


@pytest.mark.slow
def test_gan_two_rank_ddp_keeps_ranks_identical(toy_site, toy_on_path, tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    out = run_voxtool("train", "toygan", "--runs-dir", str(tmp_path), "--exp", "ddp", "--steps", "30",
                      "--set", "train.valid_every=30", "--nproc-per-node", "2", "--device", "cpu",
                      env={"VOXTOOL_TOY_DUMP": str(dump)}, extra_path=[toy_site], timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    r0 = torch.load(dump / "rank0.pt", weights_only=True)
    r1 = torch.load(dump / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # both optimisers' gradients were all-reduced
    saved = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert all(torch.equal(saved["modules"]["disc"][k], r0[f"disc.{k}"]) for k in saved["modules"]["disc"])
    # the frozen projection is the initial one on both ranks
    from voxtool_toy.gan import Generator

    torch.manual_seed(1234)
    initial = Generator(32).project.state_dict()
    assert all(torch.equal(initial[k], r0[f"model.project.{k}"]) for k in initial)

