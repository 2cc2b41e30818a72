"""Semi-supervised training on labeled takes plus unlabeled vocals (`voxtool ssl mouth`): Mean Teacher + R-Drop.

- Teacher: the Trainer's EMA copy of the student (`train.ema_decay`, 0.999 in the preset). It sees the clean
  unlabeled crop in eval mode (no dropout). Validation, `best.pt` and `model.pt` use the teacher.
- Student: on labeled crops, two dropout passes (R-Drop): supervised Huber on both + `loss.r_drop_weight` x Huber
  between them; on unlabeled crops, two independently augmented views (volume, background noise, small time and
  frequency masks), each pulled towards the teacher by Huber.
- Loss = supervised + r_drop_weight x R-Drop + w(step) x consistency, with the original's sigmoid ramp-up
  w = w_max * exp(-5 (1 - min(1, step / ramp))^2) (evaluated per step here; the original evaluated it per epoch).
- Every step draws one labeled and one unlabeled batch. Crops are drawn at random with replacement (files weighted
  by length) from each source, so neither source runs out and the shorter one is effectively cycled.
- All four student inputs (two labeled passes, two unlabeled views) go through one forward over the concatenated
  batch: independent dropout masks per sample, one forward per backward under DDP.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxtool.errors import BadInput
from voxtool.tasks.mouth.config import MouthSSLConfig, SSLSection
from voxtool.tasks.mouth.data import CropSampler, MouthDataset, augment_volume
from voxtool.tasks.mouth.train import MouthTrainTask, masked_loss
from voxtool.training.task import RunEnv, StepContext


def consistency_ramp(step: int, w_max: float, ramp: int) -> float:
    """The sigmoid ramp-up of Laine & Aila / Mean Teacher: w_max * exp(-5 (1 - min(1, step/ramp))^2)."""
    if ramp <= 0:
        return w_max
    t = min(1.0, max(0.0, step / ramp))
    return w_max * math.exp(-5.0 * (1.0 - t) ** 2)


_MEL_HZ: dict[int, np.ndarray] = {}


def mel_bin_hz(n_mels: int, f_max: float = 8000.0) -> np.ndarray:
    """Centre frequencies (Hz) of Slaney mel bins 0..f_max (librosa's layout)."""
    if n_mels not in _MEL_HZ:
        import librosa

        _MEL_HZ[n_mels] = librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=f_max)[1:-1]
    return _MEL_HZ[n_mels]


def warp_formants(mel: np.ndarray, alpha: float) -> np.ndarray:
    """(F, T) log-mel as if the vocal tract were scaled by `alpha` (every frequency x alpha): vocal-tract-length
    perturbation on the mel axis, by linear interpolation between bin centres."""
    hz = mel_bin_hz(mel.shape[0])
    pos = np.interp(hz / alpha, hz, np.arange(len(hz)))  # fractional source bin of each output bin
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(hz) - 1)
    frac = (pos - lo).astype(np.float32)[:, None]
    return mel[lo] * (1 - frac) + mel[hi] * frac


def student_view(mel: np.ndarray, rng: np.random.Generator, s: SSLSection, floor: float) -> np.ndarray:
    """One augmented copy of unlabeled crops (B, F, T): volume, linear-mel background noise, time/freq masks,
    optional formant-scale warp."""
    out = augment_volume(mel, rng, s.view_volume_p, s.view_volume_shift, floor)
    b, f, t = out.shape
    for i in range(b):
        if s.view_freq_warp > 0:
            out[i] = warp_formants(out[i], float(rng.uniform(1 - s.view_freq_warp, 1 + s.view_freq_warp)))
        if rng.random() < s.view_noise_p and s.view_noise_level > 0:
            level = rng.uniform(0, s.view_noise_level)
            out[i] = np.log(np.exp(out[i]) + level * np.abs(rng.standard_normal((f, t)))).astype(np.float32)
        if rng.random() < s.view_mask_p:
            if s.view_time_mask > 0:
                w = int(rng.integers(1, s.view_time_mask + 1))
                a = int(rng.integers(0, max(1, t - w)))
                out[i, :, a : a + w] = floor
            if s.view_freq_mask > 0:
                w = int(rng.integers(1, s.view_freq_mask + 1))
                a = int(rng.integers(0, max(1, f - w)))
                out[i, a : a + w] = floor
    return np.maximum(out, floor)


class MouthSSLTask(MouthTrainTask):
    name = "mouth"

    def __init__(self, config: MouthSSLConfig, data: Path, env: RunEnv):
        if config.model.conv_dropout <= 0:
            raise BadInput(None, "model.conv_dropout must be > 0 for ssl: the input-stack dropout is what makes the "
                                 "two student passes (R-Drop) and the two unlabeled views differ; with 0 the R-Drop "
                                 "term vanishes and the views differ only by augmentation")  # fmt: skip
        if config.train.ema_decay <= 0:
            raise BadInput(None, "train.ema_decay must be > 0 for ssl: the teacher is the EMA of the student")
        if not config.ssl.unlabeled:
            raise BadInput(None, "give the unlabeled dataset with --unlabeled (from `voxtool prep unlabeled`)")
        if config.loss.variant != "r-drop":  # it used to be switched silently; the supervised part is R-Drop
            raise BadInput(None, f"loss.variant = {config.loss.variant!r} does not apply to ssl, which trains "
                                 "Mean Teacher + R-Drop: use a mouth-ssl preset or --set loss.variant=r-drop")
        super().__init__(config, data, env)
        unl_path = Path(config.ssl.unlabeled)
        unl = MouthDataset(unl_path)
        if unl.kind != "unlabeled":
            raise BadInput(unl_path, "--unlabeled must be a dataset from `voxtool prep unlabeled`")
        if unl.meta.get("mel") != self.dataset.meta.get("mel"):
            raise BadInput(unl_path, "mel settings differ from the labeled dataset's (prepare it with --like DATA)")
        items = unl.load_split("train")
        if not items:
            raise BadInput(unl_path, "no unlabeled items")
        self.unlabeled_sampler = CropSampler(
            [it.mel for it in items], None, config.data.crop_frames, pad_value=config.data.mel_floor
        )
        self.unlabeled_frames = int(sum(it.mel.shape[1] for it in items))

    def sample_batch(self, step: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        batch = super().sample_batch(step, rng)
        s, floor = self.config.ssl, self.config.data.mel_floor
        unl = self.unlabeled_sampler.sample(rng, s.unlabeled_batch_size)
        clean = np.maximum(unl["mel"], floor)
        dev = self.env.device
        batch["u_clean"] = torch.from_numpy(clean).to(dev)
        batch["u_view1"] = torch.from_numpy(student_view(clean, rng, s, floor)).to(dev)
        batch["u_view2"] = torch.from_numpy(student_view(clean, rng, s, floor)).to(dev)
        batch["u_mask"] = torch.from_numpy(unl["mask"]).to(dev)
        return batch

    def training_step(self, batch: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        cfg = self.config
        mel, target, mask = batch["mel"], self.model.normalize(batch["curve"]), batch["mask"]
        n_lab, n_unl = mel.shape[0], batch["u_view1"].shape[0]
        out = ctx.model(torch.cat([mel, mel, batch["u_view1"], batch["u_view2"]])).float()
        p1, p2, s1, s2 = torch.split(out, [n_lab, n_lab, n_unl, n_unl])
        p1, p2 = self.with_gain(p1, batch), self.with_gain(p2, batch)  # labeled crops only: unlabeled have no singer
        delta = cfg.loss.huber_delta  # every Huber term (supervised, R-Drop, consistency) uses the configured delta
        supervised = 0.5 * (masked_loss(p1, target, mask, "huber", delta)
                            + masked_loss(p2, target, mask, "huber", delta))
        r_drop = masked_loss(p1, p2, mask, "huber", delta)
        teacher = ctx.ema
        teacher.eval()  # no dropout in the teacher
        with torch.no_grad():
            t = teacher(batch["u_clean"]).float()
        u_mask = batch["u_mask"]
        consistency = 0.5 * (masked_loss(s1, t, u_mask, "huber", delta) + masked_loss(s2, t, u_mask, "huber", delta))
        w = consistency_ramp(ctx.step, cfg.ssl.consistency_weight, cfg.ssl.rampup_steps)
        loss = supervised + cfg.loss.r_drop_weight * r_drop + w * consistency
        return {"loss": loss, "supervised": supervised, "r_drop": r_drop, "consistency": consistency,
                "consistency_w": w}  # fmt: skip

    def deployable(self, model: torch.nn.Module) -> dict[str, Any]:
        meta = super().deployable(model)
        meta["teacher"] = True  # model.pt holds the EMA teacher's weights
        return meta


def unlabeled_override(path: Path) -> str:
    """`--set`-style override carrying the unlabeled dataset's absolute path (kept in config.toml for resume)."""
    return f"ssl.unlabeled={json.dumps(str(Path(path).resolve()))}"
