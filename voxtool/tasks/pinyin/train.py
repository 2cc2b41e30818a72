"""`voxtool train pinyin DATA`: QuartzNet + CTC (+ optional blank loss) on a prepared dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxtool.console import log
from voxtool.errors import BadInput
from voxtool.tasks.pinyin.config import FeaturesSection, PinyinConfig, TextSection
from voxtool.tasks.pinyin.data import PinyinDataset, collate
from voxtool.tasks.pinyin.losses import NovoGrad, blank_loss, ctc_loss, spec_augment
from voxtool.tasks.pinyin.metrics import evaluate_items
from voxtool.tasks.pinyin.model import build_model
from voxtool.training.task import RunEnv, StepContext, TrainTask


class PinyinTrainTask(TrainTask):
    name = "pinyin"

    def __init__(self, config: PinyinConfig, data: Path, env: RunEnv):
        super().__init__(config, data, env)
        self.train_set = PinyinDataset(data, "train")
        if len(self.train_set) == 0:
            raise BadInput(data, "the train split is empty")
        # [features] and [text] act at prep time: the dataset's must be the preset's, or the run's config.toml and
        # model.pt (whose [text] inference reads) would describe settings the model never saw
        header = self.train_set.header
        header_feat = FeaturesSection.model_validate(header["features"])
        if header_feat.mel != config.features.mel:
            raise BadInput(data, "dataset features differ from the preset's [features.mel]; re-run prep with it")
        if header_feat.trim_db != config.features.trim_db:
            raise BadInput(data, f"dataset was trimmed at features.trim_db = {header_feat.trim_db:g}, the preset says "
                                 f"{config.features.trim_db:g}; re-run prep with the preset or set it to match")
        if "text" in header:
            header_text = TextSection.model_validate(header["text"])
            for key in TextSection.model_fields:
                if getattr(header_text, key) != getattr(config.text, key):
                    raise BadInput(data, f"dataset was prepared with text.{key} = {getattr(header_text, key)!r}, "
                                         f"the preset says {getattr(config.text, key)!r}; re-run prep with the "
                                         "preset or set it to match")
        self.valid_set = PinyinDataset(data, "valid")
        if len(self.valid_set) == 0:
            self.valid_set = PinyinDataset(data, "test")
        if len(self.valid_set) == 0:
            log("no valid/test split: validating on (up to 50) training utterances")
            self.valid_set = self.train_set
        self.vocab = self.train_set.vocab
        torch.manual_seed(env.seed)
        self.model = build_model(config, self.vocab).to(env.device)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if not self.config.novograd:
            return super().configure_optimizers()
        from voxtool.training.schedules import named_parameters, param_groups

        # [train] with [train.optimizers.model] applied, lr_scale groups included, as the default path does
        t = self.config.train.for_optimizer("model")
        over = self.config.train.optimizers.get("model")
        groups = param_groups(named_parameters(self.modules()), t.lr, over.lr_scale if over else {})
        return {"model": NovoGrad(groups, lr=t.lr, betas=t.betas, eps=t.eps, weight_decay=t.weight_decay)}

    def epoch_of(self, step: int) -> float:
        return step * self.config.train.batch_size * self.env.world_size / max(1, len(self.train_set))

    def sample_batch(self, step: int, rng: np.random.Generator) -> Any:
        idx = rng.integers(0, len(self.train_set), self.config.train.batch_size)
        aug = self.config.augment
        pad = aug.blank_pad_frames if self.epoch_of(step) < aug.blank_pad_epochs else 0
        feats, lens, targets, tlens = collate([self.train_set[int(i)] for i in idx], pad_frames=pad)
        feats = spec_augment(feats, lens, aug, rng)
        return feats, lens, targets, tlens

    def training_step(self, batch, ctx: StepContext) -> dict[str, Any]:
        dev = self.env.device
        feats, lens, targets, tlens = (t.to(dev) for t in batch)
        with ctx.autocast():
            log_probs, out_lens = ctx.model(feats, lens)
        log_probs = log_probs.float()
        ctc = ctc_loss(log_probs, out_lens, targets, tlens, self.vocab.blank)
        out: dict[str, Any] = {"ctc": float(ctc.detach())}
        loss = ctc
        bl_cfg = self.config.blank_loss
        if bl_cfg.weight > 0:
            bl = blank_loss(log_probs, out_lens, bl_cfg, self.vocab.blank)
            loss = loss + bl_cfg.weight * bl
            out["blank_loss"] = float(bl.detach())
        with torch.no_grad():
            valid = torch.arange(log_probs.shape[1], device=dev)[None, :] < out_lens[:, None]
            out["blank_share"] = float(((log_probs.argmax(-1) == self.vocab.blank) & valid).sum() / valid.sum())
        out["loss"] = loss
        return out

    @torch.no_grad()
    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        n = min(len(self.valid_set), self.config.valid_max_items if self.valid_set is not self.train_set else 50)
        metrics, _ = evaluate_items(model, [self.valid_set[i] for i in range(n)], self.vocab, self.env.device)
        return {f"valid/{k}": v for k, v in metrics.items()}

    def deployable(self, model: torch.nn.Module) -> dict[str, Any]:
        return {"vocab": self.vocab.to_dict()}
