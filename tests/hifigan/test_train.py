"""Training: learning on synthetic tones, exact resume through the GAN path, 2-rank DDP, --init, mel mismatch."""

from __future__ import annotations

import copy
import json
import textwrap

import pytest
import torch

from tests.conftest import TRAIN_SEED, fit_until_interrupted, run_voxtool, seeded
from voxtool.errors import BadInput
from voxtool.fileio import load_torch
from voxtool.presets import load_config
from voxtool.tasks.hifigan.config import HifiganConfig
from voxtool.tasks.hifigan.train import HifiganTrainTask, mel_l1
from voxtool.training.modelfile import load_model_file
from voxtool.training.task import RunEnv
from voxtool.training.trainer import Trainer

LEARN_STEPS = 60


def make_trainer(data, run_dir, *overrides, seed=None):
    seed = seeded(TRAIN_SEED) if seed is None else seed
    cfg = load_config(HifiganConfig, "hifigan-tiny", [f"train.seed={seed}", *overrides], task="hifigan")
    env = RunEnv(device=torch.device("cpu"), seed=seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(HifiganTrainTask(cfg, data, env), cfg.train, env, run_dir, cfg.model_dump(mode="json"))


def all_weights(trainer) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.clone() for name, m in trainer.modules.items() for k, v in m.state_dict().items()}


def test_tiny_vocoder_learns_held_out_mels(tiny_data, tmp_path):
    """hifigan-tiny after LEARN_STEPS steps (~15 s on one CPU thread) beats its untrained self on the mel L1 of
    held-out clips. Measured ratios 0.16-0.29 at 50-100 steps over three seeds and 1-2 threads; 0.6 means
    "did not learn" (an untrained generator gives near silence, whose mel is far from a tone's)."""
    trainer = make_trainer(tiny_data, tmp_path, f"train.steps={LEARN_STEPS}", f"train.valid_every={LEARN_STEPS}")
    task = trainer.task
    untrained = mel_l1(copy.deepcopy(task.model).eval(), task.valid_set, task.loss_mel, task.env.device)
    summary = trainer.fit()
    trained = mel_l1(task.model.eval(), task.valid_set, task.loss_mel, task.env.device)
    print(f"hifigan-tiny mel L1 on held-out clips: untrained {untrained:.3f}, after {LEARN_STEPS} steps "
          f"{trained:.3f} (ratio {trained / untrained:.3f})")
    assert len(task.valid_set) >= 2
    assert trained < 0.6 * untrained, (untrained, trained)
    assert summary["best"]["metric"] == "valid/mel_l1" and summary["best"]["value"] == pytest.approx(trained, rel=1e-4)
    # model.pt deploys only the generator, with its generator and mel settings
    mf = load_model_file(tmp_path / "model.pt", task="hifigan")
    assert set(mf.state_dict) == set(task.model.state_dict()) and not mf.components
    assert mf.config["mel"]["n_mels"] == mf.meta["n_mels"] == 128 and mf.meta["hop_length"] == 160
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = set().union(*rows)
    assert {"train/loss", "train/loss_d", "train/mel_l1", "train/fm", "train/adv", "valid/mel_l1",
            "train/lr/generator", "train/lr/discriminator"} <= logged
    # a held-out clip, vocoded and original, to listen to in TensorBoard
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path), size_guidance={"audio": 0})
    events.Reload()
    assert {"valid/vocoded_0", "valid/original_0"} <= set(events.Tags()["audio"])
    clip = events.Audio("valid/vocoded_0")[-1]
    assert clip.sample_rate == 16000 and clip.length_frames % 160 == 0 and clip.length_frames > 0


def test_resume_is_exact_through_both_optimisers(tiny_data, tmp_path):
    overrides = ["train.steps=6", "train.valid_every=4", "train.batch_size=2", "train.decay_steps=2",
                 "data.valid_items=1", "data.valid_max_seconds=0.3"]
    straight = make_trainer(tiny_data, tmp_path / "a", *overrides)
    straight.fit()
    first = make_trainer(tiny_data, tmp_path / "b", *overrides)

    fit_until_interrupted(first, 3)
    assert load_torch(tmp_path / "b" / "last.pt")["step"] == 3
    resumed = make_trainer(tiny_data, tmp_path / "b", *overrides)
    resumed.fit(resume=True)
    a, b = all_weights(straight), all_weights(resumed)
    assert {k.split(".")[0] for k in a} == {"model", "mpd", "msd"}
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    for name in ("generator", "discriminator"):
        assert straight.schedulers[name].get_last_lr() == resumed.schedulers[name].get_last_lr()
        assert straight.schedulers[name].get_last_lr()[0] == pytest.approx(2e-3 * 0.999**3)


DUMP_HOOK = textwrap.dedent('''
    """Test hook (on PYTHONPATH of the DDP test only): every rank saves all its weights after the last step."""
    import os

    if os.environ.get("VOXTOOL_HG_DUMP"):
        from pathlib import Path

        import torch

        from voxtool.tasks.hifigan.train import HifiganTrainTask

        def _dump(self, ctx):
            if ctx.step + 1 == self.config.train.steps:
                state = {f"{n}.{k}": v for n, m in self.modules().items() for k, v in m.state_dict().items()}
                torch.save(state, Path(os.environ["VOXTOOL_HG_DUMP"]) / f"rank{self.env.rank}.pt")

        HifiganTrainTask.after_optimizer_step = _dump
''')


@pytest.mark.slow
def test_two_rank_ddp_keeps_generator_and_discriminators_identical(tiny_data, tmp_path):
    site, dump = tmp_path / "site", tmp_path / "dump"
    site.mkdir()
    dump.mkdir()
    (site / "sitecustomize.py").write_text(DUMP_HOOK)
    out = run_voxtool("train", "hifigan", str(tiny_data), "--preset", "hifigan-tiny", "--runs-dir", str(tmp_path),
                      "--exp", "ddp", "--steps", "3", "--device", "cpu", "--nproc-per-node", "2",
                      "--set", "train.batch_size=2", "--set", "data.valid_items=1", "--set",
                      "data.valid_max_seconds=0.3", env={"VOXTOOL_HG_DUMP": str(dump)}, extra_path=[site],
                      timeout=300)
    assert out.returncode == 0, out.stderr + out.stdout
    r0 = torch.load(dump / "rank0.pt", weights_only=True)
    r1 = torch.load(dump / "rank1.pt", weights_only=True)
    assert r0.keys() == r1.keys() and all(torch.equal(r0[k], r1[k]) for k in r0)  # gradients were all-reduced
    saved = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert saved["step"] == 3
    for name in ("model", "mpd", "msd"):
        assert all(torch.equal(v, r0[f"{name}.{k}"]) for k, v in saved["modules"][name].items())
    fresh = make_trainer(tiny_data, tmp_path / "fresh", "train.steps=3").task.model.state_dict()
    assert any(not torch.equal(fresh[k], r0[f"model.{k}"]) for k in fresh)  # it trained


def test_init_from_a_published_layout_generator(tiny_data, tmp_path):
    """--init: an old-style weight-norm (weight_g/weight_v) jik876-like {'generator': ...} file seeds the
    generator; the effective weights match the source exactly at step 0."""
    from voxtool.vocoders.hifigan import HIFIGAN_TINY, Generator

    torch.manual_seed(5)
    source = Generator(HIFIGAN_TINY).remove_weight_norm()
    plain = {k: v.clone() for k, v in source.state_dict().items()}
    torch.save({"generator": plain}, tmp_path / "g.pt")
    trainer = make_trainer(tiny_data, tmp_path / "run", f'init="{(tmp_path / "g.pt").as_posix()}"')
    tuned = copy.deepcopy(trainer.task.model).remove_weight_norm().state_dict()
    assert tuned.keys() == plain.keys()
    assert all(torch.allclose(tuned[k], plain[k], atol=1e-6) for k in plain)


def test_dataset_with_other_mel_settings_is_refused(tiny_data, tmp_path):
    with pytest.raises(BadInput, match="mel settings do not fit the vocoder") as err:
        make_trainer(tiny_data, tmp_path, "mel.f_max=7600.0")
    assert "dataset.json" in str(err.value.where)


def test_evaluate_dataset_scores_the_split_like_validation(tiny_data, tmp_path):
    """`evaluate_dataset` (the template's scoring entry) gives validation's mel L1, one row per item, and refuses a
    vocoder of other mel settings; a bad dataset folder is one BadInput (the shared PreparedDataset reader)."""
    from voxtool.evaluation import EvalResult
    from voxtool.tasks.hifigan.infer import Vocoder, evaluate_dataset

    task = make_trainer(tiny_data, tmp_path / "run").task
    generator = copy.deepcopy(task.model).eval()
    vocoder = Vocoder(generator, task.mel, torch.device("cpu"))
    calls = []
    result = evaluate_dataset(vocoder, tiny_data, "valid", advance=calls.append)
    assert isinstance(result, EvalResult) and len(result.items) == len(task.valid_set) == len(calls) >= 2
    assert result.metrics["mel_l1"] == pytest.approx(mel_l1(generator, task.valid_set, task.loss_mel,
                                                            task.env.device), rel=1e-5)
    assert {r["name"] for r in result.items} == {p.stem for p in task.valid_set.paths}
    assert len(evaluate_dataset(vocoder, tiny_data, "train", limit=2).items) == 2
    other = Vocoder(generator, task.mel.model_copy(update={"f_max": 7600.0}), torch.device("cpu"))
    with pytest.raises(BadInput, match="mel settings do not fit the vocoder"):
        evaluate_dataset(other, tiny_data, "valid")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no dataset.json; run `voxtool prep hifigan` first"):
        evaluate_dataset(vocoder, tmp_path / "empty", "valid")
