"""`voxtool train softvc`: bshall's acoustic model on a prepared softvc dataset, through the shared Trainer.

Per step: B random aligned crops (features (B, L, in_dim), mels (B, 2L, 128)); teacher forcing with the mel shifted
one frame behind a zero go frame; L1 against the next frame (bshall's loss: with equal-length crops its
per-utterance sum / (128 x length), averaged, is the plain mean). Validation: mel L1 of free-running `generate` on
held-out items (`valid/mel_l1`, the best-model metric) and bshall's teacher-forced L1 (`valid/tf_l1`).

`model.pt` carries the config (conditioning included) and in its meta what conversion needs to build the same
inputs: the dataset statistics (f0 and loudness ranges, bins), the mel settings and which encoders made the units.
`init` loads acoustic weights strictly (voxtool or published); `refine.enabled` (hubert-pitdyn's step 3) trains them
at `refine.lr` with a fresh optimiser and a step counter from 0 (a new run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from voxtool import console
from voxtool.errors import BadInput
from voxtool.tasks.softvc.checkpoint import load_acoustic
from voxtool.tasks.softvc.config import AcousticSection, SoftvcConfig
from voxtool.tasks.softvc.data import SoftvcItems, open_dataset, random_crops
from voxtool.tasks.softvc.model import AcousticModel
from voxtool.training.modelfile import load_weights
from voxtool.training.task import RunEnv, StepContext, TrainTask
from voxtool.vocoders.settings import check_mel_settings

__all__ = ["SoftvcConfig", "SoftvcTask", "generated_mel_l1"]


def generated_mel_l1(model: AcousticModel, items: SoftvcItems, device: torch.device, limit: int = 0,
                     max_units: int = 0) -> tuple[float, float]:
    """(free-running mel L1, teacher-forced mel L1), each the mean over items of the per-item mean |error|."""
    n = min(limit, len(items)) if limit else len(items)
    free, forced = [], []
    for i in range(n):
        feats, mel = items[i]
        if max_units:
            feats, mel = feats[:max_units], mel[: 2 * max_units]
        x = torch.from_numpy(feats).unsqueeze(0).to(device)
        target = torch.from_numpy(mel).unsqueeze(0).to(device)
        prev = F.pad(target[:, :-1], (0, 0, 1, 0))
        free.append(F.l1_loss(model.generate(x), target).item())
        forced.append(F.l1_loss(model(x, prev), target).item())
    return float(np.mean(free)), float(np.mean(forced))


class SoftvcTask(TrainTask):
    name = "softvc"

    def __init__(self, config: SoftvcConfig, data: Path, env: RunEnv):
        super().__init__(config, data, env)
        if data is None:
            raise BadInput(None, "no dataset given")
        section = config.model
        self.dataset = ds = open_dataset(data)
        try:
            check_mel_settings(config.mel, ds.meta.get("mel"), where=ds.meta_path)
        except (ValueError, TypeError) as exc:
            raise BadInput(ds.meta_path, f"invalid mel settings ({str(exc).splitlines()[0]})") from None
        content = ds.meta.get("content")
        if not isinstance(content, dict):
            raise BadInput(ds.meta_path, "the dataset has no content units; prepare it with --content HUBERT")
        section = config.model = self._sizes_from_dataset(section, ds.meta)
        if int(content.get("unit_dim", section.unit_dim)) != section.unit_dim:
            raise BadInput(ds.meta_path, f"units are {content.get('unit_dim')}-d; model.unit_dim is "
                                         f"{section.unit_dim}")
        if section.conditioning == "pitdyn" and not (ds.meta.get("pitch_units") and ds.meta.get("dynamics_units")):
            raise BadInput(ds.meta_path, "pitdyn needs pitch and dynamics units (prep --pitch-units P "
                                         "--dynamics-units D)")
        n_mels, cache = config.mel.n_mels, config.data.cache_mb
        self.train_set = SoftvcItems(data, "train", section.conditioning, n_mels, cache, ds)
        if not len(self.train_set):
            raise BadInput(ds.list_path("train"), "lists no items")
        self.valid_set = SoftvcItems(data, "valid", section.conditioning, n_mels, cache, ds)
        stats = ds.meta.get("stats") or {}
        if section.conditioning == "explicit" and section.harmonic_prior and section.f0_range_hz is None:
            # the model turns its normalised log-f0 back into Hz with the range it was normalised over; config.model
            # is what model.pt carries, so conversion rebuilds the same model
            config.model = section = section.model_copy(update={"f0_range_hz": (float(stats["f0_min_hz"]),
                                                                                float(stats["f0_max_hz"]))})
        torch.manual_seed(env.seed)  # the same initial weights on every rank and in every repeat of a run
        self.model = AcousticModel(section, n_mels, config.mel)
        if config.init:
            self._load_init(Path(config.init))
        self.model.to(env.device)

    @staticmethod
    def _sizes_from_dataset(section: AcousticSection, meta: dict) -> AcousticSection:
        """unit_dim (and pitdyn_dim) from dataset.json's `content` (`pitch_units`) when neither the preset nor
        --set gave them, so a hubert-tiny chain (32-d units) needs no `--set model.unit_dim=32`."""
        update = {}
        for field, key in (("unit_dim", "content"), ("pitdyn_dim", "pitch_units")):
            info = meta.get(key)
            if field not in section.model_fields_set and isinstance(info, dict) and info.get("unit_dim"):
                update[field] = int(info["unit_dim"])
        return section.model_copy(update=update) if update else section

    def _load_init(self, path: Path) -> None:
        loaded, meta = load_acoustic(path)
        if meta.section.in_dim != self.model.in_dim or meta.conditioning != self.config.model.conditioning:
            raise BadInput(path, f"--init model has conditioning '{meta.conditioning}' ({meta.section.in_dim}-d "
                                 f"input); this run trains '{self.config.model.conditioning}' "
                                 f"({self.model.in_dim}-d)")
        section = self.config.model
        if (section.conditioning == "pitdyn" and meta.section.side_path != section.side_path
                and "side_path" not in section.model_fields_set):
            # a published hubert-pitdyn base has no side layer: refine it in its own layout (and the reverse)
            self.config.model = section.model_copy(update={"side_path": meta.section.side_path})
            torch.manual_seed(self.env.seed)
            self.model = AcousticModel(self.config.model, self.config.mel.n_mels, self.config.mel)
        load_weights(self.model, loaded.state_dict(), path)  # other sizes than [model]: BadInput naming a shape
        how = f"refining at lr {self.config.refine.lr:g}, steps from 0" if self.config.refine.enabled else "warm start"
        console.log(f"acoustic model initialised from {path} ({how})")

    def sample_batch(self, step: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """-> (features (B, L, in_dim), previous mels (B, 2L, n_mels), target mels (B, 2L, n_mels))."""
        arrays = random_crops(self.train_set, self.config.train.batch_size, self.config.data.crop_units, rng)
        return tuple(torch.from_numpy(a) for a in arrays)

    def training_step(self, batch, ctx: StepContext) -> dict:
        x, prev, target = (t.to(self.env.device) for t in batch)
        with ctx.autocast():
            pred = ctx.model(x, prev)
        loss = F.l1_loss(pred.float(), target)
        return {"loss": loss}

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        if not len(self.valid_set):
            return {}
        d = self.config.data
        free, forced = generated_mel_l1(model, self.valid_set, self.env.device, d.valid_items, d.valid_max_units)
        return {"valid/mel_l1": free, "valid/tf_l1": forced}

    def deployable(self, model: torch.nn.Module) -> dict:
        meta = self.dataset.meta
        return {"conditioning": self.config.model.conditioning, "in_dim": self.model.in_dim,
                "stats": meta.get("stats"), "mel": self.config.mel.model_dump(mode="json"),
                "sample_rate": 16000, "unit_hop": 320, "content": meta.get("content"),
                "pitch_units": meta.get("pitch_units"), "dynamics_units": meta.get("dynamics_units")}
