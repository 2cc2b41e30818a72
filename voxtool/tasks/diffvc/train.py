"""The two training tasks of DiffVC (huawei-noah/Speech-Backbones DiffVC `train_enc.py`, `train_dec.py`).

`DiffvcEncoderTask` (`voxtool train diffvc-encoder DATA`): the average-voice encoder `FwdDiffusion` alone; per step
a batch of random 128-frame windows, the same window of each item's `mel` (input) and `avg_mel` (target), masked
MSE sum((y_hat - y)^2 mask) / (sum(mask) n_mels). Validation: that loss over held-out items (whole, up to
`data.valid_max_frames`). model.pt holds the FwdDiffusion weights (the layout of the published `enc.pt`).

`DiffvcTask` (`voxtool train diffvc DATA --encoder ENC`): the whole `DiffVC` module is the trained model, its
encoder loaded from ENC and frozen for the whole run through the Trainer's `train.freeze` ({"model.encoder": -1});
the optimiser moves only the decoder (the original's Adam over `model.decoder.parameters()`). Per step two random
windows of each utterance (target, reference) and the utterance's d-vector give the diffusion score loss of
`DiffVC.compute_loss`. The encoder keeps its dropout in training as the original (`decoder.prior_dropout`).
model.pt's state dict is the whole DiffVC in the published `vc_*_wodyn.pt` key layout (encoder.* + decoder.*), so
one loader reads both; `deploy_components` adds nothing (the encoder is already inside).

The training forward of both modules is the loss (`_EncoderLoss`, `_DecoderLoss`: subclasses with the same keys
whose `forward` is `compute_loss`), so DDP sees a forward call and synchronises gradients.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from voxtool import console
from voxtool.errors import BadInput
from voxtool.tasks.diffvc.config import FROZEN_ENCODER, DiffvcConfig, DiffvcEncoderConfig
from voxtool.tasks.diffvc.data import DiffvcItems, decoder_batch, encoder_batch
from voxtool.tasks.diffvc.encoder import FwdDiffusion, masked_mse
from voxtool.tasks.diffvc.vc import DiffVC
from voxtool.training.task import RunEnv, StepContext, TrainTask
from voxtool.vocoders.mel import check_mel_settings

ENCODER_TASK = "diffvc-encoder"


class _EncoderLoss(FwdDiffusion):
    """FwdDiffusion whose forward is the training loss: (x, y, mask) -> masked MSE (same state-dict keys)."""

    def forward(self, x, y, mask):  # noqa: D102
        return masked_mse(FwdDiffusion.forward(self, x, mask), y, mask)


class _DecoderLoss(DiffVC):
    """DiffVC whose forward is the decoder's training loss: (x, x_lengths, x_ref, c) -> (loss, details)."""

    def forward(self, x, x_lengths, x_ref, c):  # noqa: D102
        return self.compute_loss(x, x_lengths, x_ref, c)


def length_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(B,) lengths -> (B, 1, frames) float mask."""
    return (torch.arange(frames, device=lengths.device)[None] < lengths[:, None]).float()[:, None]


def _check_dataset(meta: dict, mel, root: Path) -> None:
    try:
        check_mel_settings(mel, meta.get("mel"), where=Path(root) / "dataset.json")
    except (ValueError, TypeError) as exc:
        raise BadInput(Path(root) / "dataset.json", f"invalid mel settings ({str(exc).splitlines()[0]})") from None


def _splits(data: Path, n_mels: int, with_avg: bool) -> tuple[DiffvcItems, DiffvcItems]:
    if data is None:
        raise BadInput(None, "no dataset given")
    train = DiffvcItems(data, "train", n_mels, with_avg, required=True)
    if not len(train):
        raise BadInput(Path(data) / "train.txt", "lists no items")
    return train, DiffvcItems(data, "valid", n_mels, with_avg)


class DiffvcEncoderTask(TrainTask):
    name = ENCODER_TASK

    def __init__(self, config: DiffvcEncoderConfig, data: Path, env: RunEnv):
        super().__init__(config, data, env)
        self.train_set, self.valid_set = _splits(data, config.mel.n_mels, with_avg=True)
        _check_dataset(self.train_set.meta, config.mel, data)
        torch.manual_seed(env.seed)  # the same initial weights on every rank and in every repeat of a run
        self.model = _EncoderLoss(config.encoder).to(env.device)

    def sample_batch(self, step: int, rng: np.random.Generator):
        """-> (mel (B, 80, frames), avg_mel (B, 80, frames), lengths (B,)) as tensors."""
        picks = rng.integers(0, len(self.train_set), self.config.train.batch_size)
        batch = encoder_batch([self.train_set[int(i)] for i in picks], self.config.data.crop_frames, rng)
        return tuple(torch.from_numpy(a) for a in batch)

    def training_step(self, batch, ctx: StepContext) -> dict:
        x, y, lengths = (t.to(self.env.device) for t in batch)
        with ctx.autocast():
            loss = ctx.model(x, y, length_mask(lengths, x.shape[-1]))
        return {"loss": loss.float()}

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        n = len(self.valid_set) if not self.config.data.valid_items else min(self.config.data.valid_items,
                                                                             len(self.valid_set))
        if not n:
            return {}
        total, weight = 0.0, 0
        for i in range(n):
            item = self.valid_set[i]
            frames = min(item.mel.shape[1], self.config.data.valid_max_frames)
            x = torch.from_numpy(item.mel[None, :, :frames]).to(self.env.device)
            y = torch.from_numpy(item.avg_mel[None, :, :frames]).to(self.env.device)
            mask = torch.ones(1, 1, frames, device=self.env.device)
            total += float(masked_mse(FwdDiffusion.forward(model, x, mask), y, mask)) * frames
            weight += frames
        return {"valid/loss": total / weight}

    def deployable(self, model: torch.nn.Module) -> dict:
        return {"sample_rate": self.config.mel.sample_rate, "avg_units": self.train_set.meta.get("avg_units")}


def load_encoder_weights(path: str | Path) -> tuple[dict, dict]:
    """`--encoder` -> (FwdDiffusion state dict, its [encoder] section as a dict): a `train diffvc-encoder` (or
    `train diffvc`) model.pt / run folder brings its section; the published enc.pt or a vc_*.pt is sized from its
    weights' shapes (dropout, which no weight shows, stays the published 0.1)."""
    from voxtool.fileio import load_torch
    from voxtool.tasks.diffvc.checkpoint import infer_encoder_section, load_encoder_state
    from voxtool.training.modelfile import is_model_file, load_model_file, resolve_model_path

    path = resolve_model_path(path)
    obj = load_torch(path)
    if is_model_file(obj):
        mf = load_model_file(path)
        if mf.task not in (ENCODER_TASK, "diffvc"):
            raise BadInput(path, f"model is for task '{mf.task}', not a DiffVC encoder")
        state = load_encoder_state(mf.state_dict, path)
        section = mf.config.get("encoder")
        if not isinstance(section, dict):
            raise BadInput(path, "model file has no [encoder] section")
        return state, section
    state = load_encoder_state(obj, path)
    return state, infer_encoder_section(state, path).model_dump(mode="json")


class DiffvcTask(TrainTask):
    name = "diffvc"

    def __init__(self, config: DiffvcConfig, data: Path, env: RunEnv):
        super().__init__(config, data, env)
        self.train_set, self.valid_set = _splits(data, config.mel.n_mels, with_avg=False)
        _check_dataset(self.train_set.meta, config.mel, data)
        state = None
        if config.encoder_init:
            state, section = load_encoder_weights(config.encoder_init)
            if section != config.encoder.model_dump(mode="json"):
                try:  # validated assignment: the encoder file's own sizes win over the preset's
                    config.encoder = section
                except ValueError as exc:
                    raise BadInput(config.encoder_init, f"encoder sizes do not fit the decoder ({exc})") from None
                console.log(f"[encoder] sizes taken from {config.encoder_init}")
        else:
            console.log("warning: no --encoder: the encoder stays at its random initialisation (tests only)")
        if FROZEN_ENCODER not in config.train.freeze:
            console.log(f"note: train.freeze has no '{FROZEN_ENCODER}': the encoder trains too")
        torch.manual_seed(env.seed)
        self.model = _DecoderLoss(config.encoder, config.decoder)
        if state is not None:
            from voxtool.training.modelfile import load_weights

            load_weights(self.model.encoder, state, config.encoder_init)
        self.model.to(env.device)

    def sample_batch(self, step: int, rng: np.random.Generator):
        """-> (mel (B, 80, frames), lengths (B,), ref (B, 80, frames), embed (B, 256)) as tensors."""
        picks = rng.integers(0, len(self.train_set), self.config.train.batch_size)
        batch = decoder_batch([self.train_set[int(i)] for i in picks], self.config.data.crop_frames, rng)
        return tuple(torch.from_numpy(a) for a in batch)

    def training_step(self, batch, ctx: StepContext) -> dict:
        x, lengths, ref, c = (t.to(self.env.device) for t in batch)
        with ctx.autocast():
            loss, details = ctx.model(x, lengths, ref, c)
        return {"loss": loss.float(), **{k: v for k, v in (details or {}).items() if _is_scalar(v)}}

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """The diffusion loss on held-out utterances (their own reference), with fixed noise and times."""
        n = len(self.valid_set) if not self.config.data.valid_items else min(self.config.data.valid_items,
                                                                             len(self.valid_set))
        if not n:
            return {}
        total = 0.0
        with torch.random.fork_rng(devices=[] if self.env.device.type == "cpu" else None):
            torch.manual_seed(0)
            for i in range(n):
                item = self.valid_set[i]
                frames = min(item.mel.shape[1], self.config.data.valid_max_frames)
                x = torch.from_numpy(item.mel[None, :, :frames]).to(self.env.device)
                c = torch.from_numpy(item.embed[None]).to(self.env.device)
                lengths = torch.tensor([frames], device=self.env.device)
                loss, _ = model.compute_loss(x, lengths, x, c)
                total += float(loss)
        return {"valid/loss": total / n}

    def deployable(self, model: torch.nn.Module) -> dict:
        return {"sample_rate": self.config.mel.sample_rate, "encoder_init": self.config.encoder_init}


def _is_scalar(v) -> bool:
    return isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)
