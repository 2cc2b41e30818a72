"""The whole config of the pinyin task (presets/pinyin.toml, pinyin-5x5.toml, pinyin-tiny.toml).

Imports no torch and no model: `voxtool prep aishell|...` and `voxtool presets show` read the preset cheaply.
Sections: [features] and [text] act at prep time (the dataset records them; training and `--add` check them),
[model], [blank_loss] and [augment] at training time, [train] is the shared `TrainConfig`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from voxtool.audio.mel_config import MelConfig
from voxtool.presets import StrictModel
from voxtool.training.config import TrainConfig


def default_mel() -> MelConfig:
    """QuartzNet's front-end as the issue fixes it: 16 kHz, 25 ms Hann window, 10 ms hop, n_fft 512, 64 mels."""
    return MelConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64,
                     power=2.0, log_floor=1e-6)


class FeaturesSection(StrictModel):
    mel: MelConfig = Field(default_factory=default_mel)
    trim_db: float = Field(60.0, gt=0, le=200)  # librosa.effects.trim top_db (leading/trailing only), as NeMo


class TextSection(StrictModel):
    latin: Literal["error", "spell"] = "error"  # Latin letters: skip the utterance, or read letter names
    tone_sandhi: bool = True  # surface tones (你好 -> ni2 hao3) match the audio better


def _odd(kernel: int) -> int:
    if kernel % 2 == 0:
        raise ValueError(f"kernel {kernel} must be odd: 'same' padding keeps the length only for odd kernels")
    return kernel


OddKernel = Annotated[int, Field(gt=0, le=1023), AfterValidator(_odd)]


class BlockSection(StrictModel):
    """One `[[model.blocks]]` entry: a kind of QuartzNet block."""

    filters: int = Field(gt=0, le=8192)
    kernel: OddKernel


class ModelSection(StrictModel):
    """QuartzNet BxR: B = len(blocks) * block_repeat blocks of R separable sub-blocks (NeMo layout)."""

    c1_filters: int = Field(256, gt=0, le=8192)
    c1_kernel: OddKernel = 33
    stride: int = Field(2, ge=1, le=16)
    blocks: list[BlockSection] = Field(default_factory=lambda: [
        BlockSection(filters=256, kernel=33), BlockSection(filters=256, kernel=39),
        BlockSection(filters=512, kernel=51), BlockSection(filters=512, kernel=63),
        BlockSection(filters=512, kernel=75)])
    block_repeat: int = Field(3, ge=1, le=64)  # 15x5 = each of the 5 block kinds 3 times
    sub_blocks: int = Field(5, ge=1, le=64)  # R
    c2_filters: int = Field(512, gt=0, le=8192)
    c2_kernel: OddKernel = 87
    c2_dilation: int = Field(2, ge=1, le=64)
    c3_filters: int = Field(1024, gt=0, le=8192)
    dropout: float = Field(0.0, ge=0, lt=1)


class BlankLossSection(StrictModel):
    """The log's blank loss: per utterance drop the largest `drop_fraction` of blank scores, hinge the rest."""

    weight: float = Field(0.0, ge=0, le=1000)  # 0 = off (the default; measured on and off in benchmarks/pinyin.py)
    margin: float = Field(0.5, ge=-100, le=100)  # in the units of `score` (a probability, or a log-probability <= 0)
    drop_fraction: float = Field(0.2, ge=0, lt=1)
    score: Literal["prob", "logprob"] = "prob"


class AugmentSection(StrictModel):
    """SpecAugment masks on the normalised features (training only)."""

    freq_masks: int = Field(2, ge=0, le=100)
    freq_width: int = Field(15, ge=0, le=1024)  # max mel bins per mask
    time_masks: int = Field(2, ge=0, le=100)
    time_width: float = Field(0.05, ge=0, le=1)  # max fraction of the utterance per mask
    blank_pad_frames: int = Field(0, ge=0, le=100_000)  # silence frames padded at both ends ...
    blank_pad_epochs: float = Field(0.0, ge=0, le=1_000_000)  # ... during the first K epochs (the log's advice)


def default_train() -> TrainConfig:
    return TrainConfig(lr=0.01, optimizer="adamw", betas=(0.8, 0.5), weight_decay=0.001, schedule="cosine",
                       warmup_steps=1000, batch_size=32, steps=100000, grad_clip=1.0, valid_every=2000,
                       best_metric="valid/ser", best_mode="min")


class PinyinConfig(StrictModel):
    features: FeaturesSection = Field(default_factory=FeaturesSection)
    text: TextSection = Field(default_factory=TextSection)
    model: ModelSection = Field(default_factory=ModelSection)
    blank_loss: BlankLossSection = Field(default_factory=BlankLossSection)
    augment: AugmentSection = Field(default_factory=AugmentSection)
    novograd: bool = True  # NovoGrad (NeMo's choice for QuartzNet, lr 0.01); false = train.optimizer
    valid_max_items: int = Field(1000, ge=1, le=10_000_000)
    train: TrainConfig = Field(default_factory=default_train)

    @model_validator(mode="after")
    def _optimizer_is_used(self) -> PinyinConfig:
        if not self.novograd:
            return self
        if self.train.optimizer != "adamw":  # adamw: the placeholder NovoGrad stands in for
            raise ValueError(f"train.optimizer = {self.train.optimizer!r} is not used while novograd = true; "
                             "set novograd = false to train with it")
        over = self.train.optimizers.get("model")
        if over is not None and over.optimizer is not None:
            raise ValueError(f"train.optimizers.model.optimizer = {over.optimizer!r} is not used while novograd = "
                             "true; set novograd = false to train with it")
        return self
