"""Supervised training of the mouth-opening estimator (`voxtool train mouth`).

Variants (`loss.variant`, `--variant`): `huber` (the original's default, delta 1), `mse`, `r-drop` (two dropout
passes, the supervised loss on both plus `r_drop_weight` x Huber between them). Each step draws `batch_size`
random `crop_frames` crops (files weighted by length), with volume augmentation on the log-mel and, when
`data.noise_block_p` > 0, the original's noise blocks (`augment_noise_blocks`).

`model.speaker_gain`: the normalised predictions of each crop get its singer's learned gain before the loss
(`BiLSTMCurveEstimator.apply_gain`; singer ids from the dataset's `spk_mapping.json`). Validation and the
deployed curve are without gain, as the original's inference.

The pieces an SSL (Mean Teacher) task needs are separate and reusable: `CropSampler` (labeled or not),
`augment_volume`, `masked_loss`, `evaluate_items`, and the Trainer's EMA copy can serve as the teacher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxtool.errors import BadInput
from voxtool.tasks.mouth.config import MouthConfig
from voxtool.tasks.mouth.data import CropSampler, Item, MouthDataset, augment_volume
from voxtool.tasks.mouth.metrics import curve_metrics
from voxtool.tasks.mouth.model import BiLSTMCurveEstimator, build_model
from voxtool.training.task import RunEnv, StepContext, TrainTask


def augment_noise_blocks(
    mel: np.ndarray, rng: np.random.Generator, p: float, count: int, std: float, max_time: float, max_freq: float,
    eps: float = 1e-5,
) -> np.ndarray:
    """The original's time_frequency_noise_block on log-mels (B, F, T): with probability p per crop, `count`
    rectangles (height up to max_freq x F bins, width up to max_time x T frames, at least 1 each) get
    |N(0, 1)| x std added in the linear-mel domain; back to log with the floor `eps`. (The original passed (T, F)
    items to a function written for (F, T), so its blocks were tall in time and narrow in frequency the wrong way.)
    """
    out = mel.copy()
    b, f, t = mel.shape
    for i in range(b):
        if p <= 0 or rng.random() >= p:
            continue
        lin = np.exp(out[i].astype(np.float64))
        for _ in range(count):
            h = max(1, int(max_freq * f * rng.random()))
            w = max(1, int(max_time * t * rng.random()))
            f0, t0 = int(rng.integers(0, f - h + 1)), int(rng.integers(0, t - w + 1))
            lin[f0 : f0 + h, t0 : t0 + w] += np.abs(rng.standard_normal((h, w))) * std
        out[i] = np.log(np.maximum(lin, eps)).astype(np.float32)
    return out


def masked_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str, delta: float):
    """Mean over valid frames of Huber(delta) or squared error (delta unused). pred, target, mask (B, T).
    `delta` has no default on purpose: every Huber term must pass the configured `loss.huber_delta`."""
    if kind == "mse":
        per = (pred - target) ** 2
    else:
        per = torch.nn.functional.huber_loss(pred, target, reduction="none", delta=delta)
    return (per * mask).sum() / mask.sum().clamp_min(1.0)


@torch.no_grad()
def predict_items(model: BiLSTMCurveEstimator, items: list[Item], device, max_frames: int = 0) -> list[np.ndarray]:
    """Whole-file predictions (T_i,) in target units, one file at a time (as the original validates)."""
    out = []
    for item in items:
        mel = item.mel[:, :max_frames] if max_frames else item.mel
        x = torch.from_numpy(mel).to(device)[None]
        out.append(model.infer(x)[0].float().cpu().numpy())
    return out


def evaluate_items(model: BiLSTMCurveEstimator, items: list[Item], device, max_frames: int = 0) -> dict[str, float]:
    preds = predict_items(model, items, device, max_frames)
    targets = [(it.curve[:max_frames] if max_frames else it.curve) for it in items]
    lo, hi = (float(v) for v in model.value_range.tolist())
    return curve_metrics(preds, targets, lo, hi)


class MouthTrainTask(TrainTask):
    name = "mouth"

    def __init__(self, config: MouthConfig, data: Path, env: RunEnv):
        super().__init__(config, data, env)
        if data is None:
            raise BadInput(None, "give the prepared dataset folder (from `voxtool prep lipsync`)")
        self.dataset = MouthDataset(data)
        if self.dataset.kind != "lipsync":
            raise BadInput(data, f"is a {self.dataset.kind} dataset; training needs a labeled one (prep lipsync)")
        if self.dataset.mel_cfg != config.mel:
            raise BadInput(data, "dataset features differ from the preset's [mel] (it was prepared with "
                                 f"{_mel_difference(self.dataset.mel_cfg, config.mel)})")
        if config.loss.variant == "r-drop" and config.model.conv_dropout <= 0:
            raise BadInput(None, "--variant r-drop needs model.conv_dropout > 0: the dropout is what makes the "
                                 "two passes differ")  # fmt: skip
        if config.model.conv_dims % config.model.n_groups:
            raise BadInput(None, "model.conv_dims must be divisible by model.n_groups")
        vmin, vmax = self.dataset.norm_range
        if config.model.vmin is None:
            config.model.vmin = vmin
        if config.model.vmax is None:
            config.model.vmax = vmax
        if not config.model.vmax > config.model.vmin:
            raise BadInput(None, "model.vmax must be greater than model.vmin")
        train_items = self.dataset.load_split("train")
        if not train_items:
            raise BadInput(data, "train split is empty")
        self.valid_items = self.dataset.load_split("valid") if env.is_rank0 else []
        self.unseen_items = self.dataset.load_split("unseen") if env.is_rank0 else []
        self.has_unseen = bool(self.dataset.meta.get("counts", {}).get("unseen", 0))
        self.has_valid = bool(self.dataset.meta.get("counts", {}).get("valid", 0))
        self.sampler = CropSampler(
            [it.mel for it in train_items], [it.curve for it in train_items], config.data.crop_frames,
            pad_value=config.data.mel_floor,
        )  # fmt: skip
        self.train_speakers = np.array([it.speaker for it in train_items], dtype=np.int64)
        names = {i: n for n, i in self.dataset.speakers.items()}
        self.train_speaker_names = sorted({names[i] for i in self.train_speakers.tolist() if i in names})
        if config.model.speaker_gain:
            n = len(self.dataset.speakers)
            if config.model.num_speakers == 0:
                config.model.num_speakers = max(n, int(self.train_speakers.max()) + 1)
            if self.train_speakers.max() >= config.model.num_speakers:
                raise BadInput(None, f"model.num_speakers {config.model.num_speakers} is below the dataset's "
                                     f"singer count {n}")  # fmt: skip
        with torch.random.fork_rng(devices=[]):  # the initial weights are a function of the seed alone
            torch.manual_seed(config.train.seed)
            self.model = build_model(config.model, config.model.vmin, config.model.vmax)
        self.model.to(env.device)

    # -------------------------------------------------------------------------------- training
    def sample_batch(self, step: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        d = self.config.data
        batch = self.sampler.sample(rng, self.config.train.batch_size)
        mel = batch["mel"]
        if d.noise_block_p > 0:
            mel = augment_noise_blocks(mel, rng, d.noise_block_p, d.noise_block_count, d.noise_block_std,
                                       d.noise_block_time, d.noise_block_freq)  # fmt: skip
        mel = augment_volume(mel, rng, d.volume_p, d.volume_shift, d.mel_floor)
        dev = self.env.device
        return {
            "mel": torch.from_numpy(mel).to(dev),
            "curve": torch.from_numpy(batch["curve"]).to(dev),
            "mask": torch.from_numpy(batch["mask"]).to(dev),
            "speaker": torch.from_numpy(self.train_speakers[batch["index"]]).to(dev),
        }

    def with_gain(self, pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Normalised predictions (B, T) of the labeled crops -> with each crop's singer gain when
        `model.speaker_gain` is on (unchanged otherwise)."""
        return self.model.apply_gain(pred, batch["speaker"]) if self.model.k_filter is not None else pred

    def training_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        loss_cfg = self.config.loss
        target = self.model.normalize(batch["curve"])
        mask = batch["mask"]
        kind, delta = ("mse" if loss_cfg.variant == "mse" else "huber"), loss_cfg.huber_delta
        if loss_cfg.variant != "r-drop":
            pred = self.with_gain(ctx.model(batch["mel"]).float(), batch)
            loss = masked_loss(pred, target, mask, kind, delta)
            return {"loss": loss}
        # R-Drop: both dropout passes in one forward (a doubled batch draws independent dropout masks and keeps
        # DDP to one forward per backward)
        both = ctx.model(torch.cat([batch["mel"], batch["mel"]])).float()
        p1, p2 = (self.with_gain(p, batch) for p in both.chunk(2))
        sup = 0.5 * (masked_loss(p1, target, mask, kind, delta) + masked_loss(p2, target, mask, kind, delta))
        consistency = masked_loss(p1, p2, mask, "huber", delta)
        return {"loss": sup + loss_cfg.r_drop_weight * consistency, "supervised": sup, "r_drop": consistency}

    # -------------------------------------------------------------------------------- validation
    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        cap = self.config.data.valid_max_frames
        metrics: dict[str, float] = {}
        if self.valid_items:
            metrics.update({f"valid/{k}": v for k, v in evaluate_items(model, self.valid_items, self.env.device,
                                                                       cap).items()})  # fmt: skip
        if self.unseen_items:
            metrics.update({f"unseen/{k}": v for k, v in evaluate_items(model, self.unseen_items, self.env.device,
                                                                        cap).items()})  # fmt: skip
        return metrics

    def best_metric(self) -> tuple[str, str]:
        """`train.best_metric`/`best_mode`, except that valid/pearson (the preset's) means unseen-singer Pearson r
        when there is an unseen split (what generalisation means here). The configured mode always holds."""
        configured, mode = self.config.train.best_metric, self.config.train.best_mode
        if configured == "valid/pearson" and self.has_unseen:
            return "unseen/pearson", mode
        return configured, mode

    def deployable(self, model: torch.nn.Module) -> dict[str, Any]:
        mel = self.config.mel
        return {
            "value_range": [float(self.config.model.vmin), float(self.config.model.vmax)],
            "mel": mel.model_dump(),
            "target": self.dataset.meta.get("target"),
            "fps": mel.sample_rate / mel.hop_length,
            "speakers": self.dataset.speakers,  # singer name -> id of the per-singer gains (`--speaker`)
            "train_speakers": self.train_speaker_names,  # whose gains were trained (`--average-gain`)
        }


def _mel_difference(theirs, ours) -> str:
    """`hop_length = 160 (the preset says 320), ...` for the fields in which two MelConfigs differ."""
    a, b = theirs.model_dump(), ours.model_dump()
    return ", ".join(f"{k} = {v!r} (the preset says {b[k]!r})" for k, v in a.items() if b[k] != v)
