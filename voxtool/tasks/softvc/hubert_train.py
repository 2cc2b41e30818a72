"""Training task of `voxtool train hubert-soft`: HuBERT-Soft's soft head against discrete targets.

Per step (bshall/hubert train.py): B random crops of `crop_frames` unit frames (audio padded 40 samples per side),
masked spans drawn with the step's seeded rng (bshall `_compute_mask`: mask_prob * frames / mask_length + U(0,1)
span starts, at least `min_masks`, masked frames replaced by the learned `masked_spec_embed`), logits =
cosine(proj(x), label_embedding) / 0.1, loss = alpha * CE(masked) + (1 - alpha) * CE(unmasked) (alpha 1: masked
frames only; without masking CE on every frame). Validation (eval mode, no masking): CE and target accuracy on the
held-out items, with the majority-label baseline beside them.

The targets are computed once at the start (targets.py) and kept in `targets.file` (the CLI: RUN/targets.npz) so a
resumed run reads exactly the labels it started with. `--init` (config `init`) starts from a published or voxtool
HuBERT; its architecture wins, and a label embedding whose size differs from the label count starts fresh.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from voxtool import console, distributed
from voxtool.encoders.hubert import PAD, HubertSoft, compute_mask
from voxtool.encoders.hubert_checkpoint import TASK, read_hubert_state
from voxtool.encoders.hubert_settings import HOP
from voxtool.errors import BadInput
from voxtool.tasks.softvc.bins import PitchDynStats
from voxtool.tasks.softvc.data import open_dataset, read_item
from voxtool.tasks.softvc.hubert_config import HubertSoftConfig, parse_kind
from voxtool.tasks.softvc.targets import Targets, compute_targets, majority_accuracy
from voxtool.training.modelfile import load_weights
from voxtool.training.task import RunEnv, StepContext, TrainTask

IGNORE = -100  # label of padding frames (no loss)


class HubertItems:
    """A split's items: audio (T,) float32 with T a multiple of 320, f0 (N,), rms (N,); kept once read."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if i not in self._cache:
            item = read_item(self.paths[i])
            for key in ("audio", "f0", "rms"):
                if key not in item:
                    raise BadInput(self.paths[i], f"prepared item has no '{key}' array (re-run voxtool prep softvc)")
            frames = len(item["audio"]) // HOP
            self._cache[i] = {"audio": item["audio"][: frames * HOP].astype(np.float32),
                              "f0": item["f0"][:frames].astype(np.float32), "rms": item["rms"][:frames]}
        return self._cache[i]

    def frames(self, i: int) -> int:
        return len(self[i]["audio"]) // HOP


class HubertSoftTask(TrainTask):
    name = TASK

    def __init__(self, config: HubertSoftConfig, data: Path, env: RunEnv):
        super().__init__(config, data, env)
        if data is None:
            raise BadInput(None, "no dataset given")
        dataset = open_dataset(data)
        self.train_set = HubertItems(dataset.paths("train", required=True))
        self.valid_set = HubertItems(dataset.paths("valid"))
        if not len(self.train_set):
            raise BadInput(Path(data) / "train.txt", "lists no items")
        stats = dataset.meta.get("stats")
        try:
            self.stats = PitchDynStats.from_dict(stats) if isinstance(stats, dict) else None
        except (TypeError, ValueError) as e:
            raise BadInput(dataset.meta_path, f"invalid 'stats' ({str(e).splitlines()[0]})") from None
        self.kind, _ = parse_kind(config.targets.kind)
        self.entries = dataset.entries("train") + dataset.entries("valid")

        init_state, arch = None, config.arch
        if config.init:
            init_state, init_arch, _ = read_hubert_state(config.init)
            arch = init_arch.model_copy(update={"dropout": config.arch.dropout})
            if init_arch.model_copy(update={"labels": 0, "dropout": 0}) != \
                    config.arch.model_copy(update={"labels": 0, "dropout": 0}):
                console.log(f"architecture taken from --init {config.init} (hidden {arch.hidden}, {arch.layers} "
                            f"layers), not from the preset's [arch]")
        self.targets = self._targets(init_state, arch)
        n_train = len(self.train_set)
        self.train_labels, self.valid_labels = self.targets.labels[:n_train], self.targets.labels[n_train:]
        self.baseline = majority_accuracy(Targets(self.train_labels, self.targets.n_labels, ""),
                                          Targets(self.valid_labels, self.targets.n_labels, ""))
        arch = arch.model_copy(update={"labels": self.targets.n_labels})
        config.arch = arch  # recorded in config.toml and model.pt: what was really trained
        torch.manual_seed(env.seed)  # the same initial weights on every rank and in every repeat of a run
        self.model = HubertSoft(arch)
        if init_state is not None:
            self._load_init(init_state)
        self.model.to(env.device)

    # ----------------------------------------------------------------- set-up
    def _fingerprint(self) -> str:
        t = self.config.targets
        init = Path(self.config.init)
        what = {"kind": t.kind, "seed": self.config.train.seed, "items": self.entries}
        if self.kind in ("mfcc", "layer"):
            what.update(clusters=t.clusters, fit_frames=t.fit_frames)
        if self.kind == "layer":
            what["init"] = [str(init.resolve()), init.stat().st_size if init.is_file() else None]
        if self.kind in ("pitch", "dynamics") and self.stats is not None:
            what["stats"] = self.stats.to_dict()
        return json.dumps(what, sort_keys=True)

    def _targets(self, init_state: dict | None, arch) -> Targets:
        """The saved targets when `targets.file` holds ones of the same recipe, else computed (and saved). With
        several ranks, rank 0 does this and the others read its file after a barrier (every rank passes it)."""
        fingerprint = self._fingerprint()
        path = Path(self.config.targets.file) if self.config.targets.file else None
        if path is None:
            return self._compute(init_state, arch, fingerprint)
        targets = None
        if self.env.is_rank0:
            if path.is_file():
                saved = Targets.load(path)
                if saved.fingerprint == fingerprint:
                    console.log(f"targets: {self.config.targets.kind} read from {path}")
                    targets = saved
            if targets is None:
                targets = self._compute(init_state, arch, fingerprint)
                path.parent.mkdir(parents=True, exist_ok=True)
                targets.save(path)
        distributed.barrier()
        return targets if targets is not None else Targets.load(path)

    def _compute(self, init_state: dict | None, arch, fingerprint: str) -> Targets:
        sets = [(self.train_set, i) for i in range(len(self.train_set))] + \
               [(self.valid_set, i) for i in range(len(self.valid_set))]
        layer_features = None
        if init_state is not None and self.kind == "layer":
            teacher = HubertSoft(arch)
            load_weights(teacher, init_state, self.config.init)
            teacher.to(self.env.device).eval()
            layer = parse_kind(self.config.targets.kind)[1]
            if layer > arch.layers:
                raise BadInput(self.config.init, f"--targets layer:{layer}: the model has {arch.layers} layers")

            @torch.inference_mode()
            def layer_features(audio: np.ndarray, n: int) -> np.ndarray:
                wav = torch.from_numpy(audio)[None].to(self.env.device)
                return teacher.features(wav, n)[0].float().cpu().numpy()

        t = self.config.targets
        console.log(f"targets: computing {t.kind} for {len(sets)} items")
        return compute_targets(t.kind, t.clusters, t.fit_frames, self.config.train.seed,
                               audio=lambda i: sets[i][0][sets[i][1]]["audio"],
                               arrays=lambda i: sets[i][0][sets[i][1]],
                               frame_counts=[s.frames(i) for s, i in sets], fit_items=len(self.train_set),
                               stats=self.stats, layer_features=layer_features, fingerprint=fingerprint,
                               progress=console.log)

    def _load_init(self, state: dict) -> None:
        own = self.model.state_dict()
        key = "label_embedding.weight"
        if key in state and tuple(state[key].shape) != tuple(own[key].shape):
            console.log(f"--init: label embedding {tuple(state[key].shape)} resized to {tuple(own[key].shape)} "
                        f"({self.targets.n_labels} {self.config.targets.kind} labels): it starts fresh")
            state = {**state, key: own[key]}
        load_weights(self.model, state, self.config.init)
        console.log(f"weights initialised from {self.config.init}")

    # ----------------------------------------------------------------- training
    def sample_batch(self, step: int, rng: np.random.Generator):
        """-> (wav (B, L*320 + 80), labels (B, L) int64 with IGNORE on padding, mask (B, L) bool or None)."""
        frames, batch = self.config.crop_frames, self.config.train.batch_size
        wavs = np.zeros((batch, frames * HOP + 2 * PAD), np.float32)
        labels = np.full((batch, frames), IGNORE, np.int64)
        for row, i in enumerate(rng.integers(0, len(self.train_set), batch)):
            audio, lab = self.train_set[int(i)]["audio"], self.train_labels[int(i)]
            n = len(lab)
            start = int(rng.integers(0, n - frames + 1)) if n > frames else 0
            take = min(frames, n)
            labels[row, :take] = lab[start:start + take]
            lo, hi = start * HOP - PAD, (start + take) * HOP + PAD  # 40 samples of context per side, as units()
            src_lo, src_hi = max(lo, 0), min(hi, len(audio))
            wavs[row, src_lo - lo:src_hi - lo] = audio[src_lo:src_hi]
        t = self.config.targets
        mask = compute_mask(rng, batch, frames, t.mask_prob, t.mask_length, t.min_masks) if t.mask else None
        return (torch.from_numpy(wavs), torch.from_numpy(labels),
                None if mask is None else torch.from_numpy(mask))

    def training_step(self, batch, ctx: StepContext) -> dict:
        wav, labels, mask = batch
        wav, labels = wav.to(self.env.device), labels.to(self.env.device)
        mask = None if mask is None else mask.to(self.env.device)
        logits = ctx.model(wav, mask).float()  # (B, L, K)
        n = min(logits.shape[1], labels.shape[1])
        logits, labels = logits[:, :n], labels[:, :n]
        if mask is None:
            loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE)
            scored = labels != IGNORE
        else:
            mask = mask[:, :n]
            alpha = self.config.targets.masked_weight
            loss = alpha * _masked_ce(logits, labels, mask)
            if alpha < 1:
                loss = loss + (1 - alpha) * _masked_ce(logits, labels, ~mask)
            scored = mask & (labels != IGNORE)
        accuracy = (logits.argmax(-1) == labels)[scored].float().mean() if scored.any() else torch.zeros(())
        return {"loss": loss, "accuracy": accuracy.detach()}

    @torch.no_grad()
    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        if not len(self.valid_set):
            return {}
        d = self.config.data
        count = len(self.valid_set) if d.valid_items == 0 else min(d.valid_items, len(self.valid_set))
        max_frames = int(d.valid_max_seconds * 50) if d.valid_max_seconds else None
        ce_sum, correct, near, total = 0.0, 0, 0, 0
        for i in range(count):
            labels = torch.from_numpy(self.valid_labels[i][:max_frames]).to(self.env.device)
            if not len(labels):
                continue
            wav = torch.from_numpy(self.valid_set[i]["audio"][: len(labels) * HOP]).to(self.env.device)
            logits = model(HubertSoft.pad(wav[None]))[0, : len(labels)].float()
            ce_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            pred = logits.argmax(-1)
            correct += int((pred == labels).sum())
            near += int(((pred - labels).abs() <= 1).sum())
            total += len(labels)
        if not total:
            return {}
        out = {"valid/ce": ce_sum / total, "valid/accuracy": correct / total,
               "valid/majority_accuracy": self.baseline}
        if self.kind in ("pitch", "dynamics"):
            out["valid/accuracy_within_1_bin"] = near / total
        return out

    def deployable(self, model: torch.nn.Module) -> dict:
        return {"sample_rate": HubertSoft.sample_rate, "hop": HOP, "unit_dim": self.config.arch.unit_dim,
                "targets": self.config.targets.kind, "labels": self.targets.n_labels}


def _masked_ce(logits: torch.Tensor, labels: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Mean CE over frames in `where` that have a label (0 when there are none, still part of the graph)."""
    keep = where & (labels != IGNORE)
    if not keep.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[keep], labels[keep])
