"""Sizes of DiffVC's two networks, as torch-free pydantic sections (`[encoder]` and `[decoder]` of the diffvc
presets). The defaults are the published ones (huawei-noah/Speech-Backbones DiffVC `params.py`), which the released
checkpoints `vc_libritts_wodyn.pt` / `vc_vctk_wodyn.pt` and `enc.pt` need; field names follow `params.py` so its
values carry over.

- `EncoderSection`: the "average voice" encoder `FwdDiffusion` = MelEncoder (Grad-TTS text-encoder transformer run
  on mel frames) + PostNet (a 2-D residual block). 8,464,529 parameters at these sizes.
- `DecoderSection`: the diffusion decoder, a 2-D U-Net score network over (mel bins x frames) conditioned on the
  time, a GE2E d-vector and (with `use_ref_t`) the reference mel, plus the VP-SDE's beta range.
  117,794,599 parameters at these sizes.

Tiny sizes for tests and CI (a few steps per second on a CPU) keep every constraint below, e.g. encoder
channels 32, filters 64, layers 2, enc_dim 16; decoder dec_dim 32, spk_dim 32.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from voxtool.presets import StrictModel

GROUPS = 8  # GroupNorm groups in the PostNet and U-Net blocks (fixed in the original)


class EncoderSection(StrictModel):
    """FwdDiffusion: mel [B, n_feats, F] -> average-voice mel [B, n_feats, F]."""

    n_feats: int = Field(80, ge=4, le=512)  # mel bins (HiFi-GAN 22.05 kHz: 80)
    channels: int = Field(192, ge=2, le=4096)  # transformer width
    filters: int = Field(768, ge=1, le=16384)  # FFN hidden width
    heads: int = Field(2, ge=1, le=64)  # attention heads (channels must divide by it)
    layers: int = Field(6, ge=1, le=64)  # transformer blocks
    kernel: int = Field(3, ge=1, le=31)  # FFN convolution kernel (odd: 'same' padding)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # transformer dropout (the prenet's 0.5 is fixed, as published)
    window_size: int = Field(4, ge=1, le=512)  # relative-position window of the self-attention (2w+1 embeddings)
    enc_dim: int = Field(128, ge=GROUPS, le=4096)  # PostNet width (a multiple of 8: GroupNorm(8))

    @model_validator(mode="after")
    def _consistent(self) -> EncoderSection:
        if self.channels % self.heads:
            raise ValueError(f"channels ({self.channels}) must be a multiple of heads ({self.heads})")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel ({self.kernel}) must be odd (the convolutions pad kernel // 2 per side)")
        if self.enc_dim % GROUPS:
            raise ValueError(f"enc_dim ({self.enc_dim}) must be a multiple of {GROUPS} (GroupNorm groups)")
        return self


class DecoderSection(StrictModel):
    """Diffusion decoder: U-Net score network s(x_t, mean, ref, d-vector, t) and the VP-SDE.

    U-Net widths are `dec_dim * m` for m in `dim_mults` (published 256/512/1024); frequency and time are halved
    between levels, so n_feats must be a multiple of 2^(levels-1) and the time axis is padded to that multiple.
    """

    dec_dim: int = Field(256, ge=GROUPS, le=4096)  # U-Net base width and time-embedding size (multiple of 8)
    dim_mults: tuple[int, ...] = (1, 2, 4)  # width multipliers, one per U-Net level
    spk_dim: int = Field(128, ge=4, le=4096)  # width of the speaker condition broadcast over the grid
    spk_embed_dim: int = Field(256, ge=1, le=4096)  # d-vector size (GE2E: 256)
    use_ref_t: bool = True  # the reference mel, diffused to the current t, conditions too ('wodyn'); False: d-only
    beta_min: float = Field(0.05, gt=0.0, le=100.0)  # beta_t = beta_min + (beta_max - beta_min) t, t in [0, 1]
    beta_max: float = Field(20.0, gt=0.0, le=1000.0)
    # The original trains the decoder under model.train(), so the frozen encoder's dropout stays on and the prior
    # mean is noisy in training; False runs the encoder in eval mode for the decoder's loss.
    prior_dropout: bool = True
    # Training-loss weight per item, w(t) = clip((1 - gamma^2) / gamma^2, 1, loss_weight_cap) on the published
    # noise-prediction loss (gamma = gamma(0, t)). 1 is the published loss, in which an error in the clean mel
    # counts with gamma^2 / (1 - gamma^2): under 0.003 for t >= 0.8, so where x_t hides the speaker nothing asks the
    # decoder to supply it. A cap > 1 weighs the clean-mel error 1 wherever 1 <= (1 - gamma^2) / gamma^2 <= cap
    # (an x0 loss there), the noise loss below. Only the weights change: the network still outputs the score, so
    # the samplers are the same for every cap. `prediction = "v"` is the stronger remedy for a new model; the cap is
    # for fine-tuning a score-predicting (published) decoder.
    loss_weight_cap: float = Field(1.0, ge=1.0, le=1e6)
    # What the U-Net's output means. "score" (published; every released checkpoint): the score itself, trained by
    # noise prediction. "v": the velocity v = gamma z - sqrt(1 - gamma^2) (x0 - mean) of the centred x_t, trained
    # with a plain MSE on v: an error in it is a clean-mel error near t = 1 and a noise error near t = 0, so the
    # output stays O(1) at every t, where a score must be exact to 1 % near t = 1 to place the clean mel within a
    # nat (docs/diffvc.md, "Measured"). The samplers see a score either way (Diffusion.score converts).
    prediction: Literal["score", "v"] = "score"

    @model_validator(mode="after")
    def _consistent(self) -> DecoderSection:
        if not 1 <= len(self.dim_mults) <= 6 or any(not 1 <= m <= 64 for m in self.dim_mults):
            raise ValueError(f"dim_mults {self.dim_mults}: 1 to 6 levels, each multiplier in 1..64")
        if self.dec_dim % GROUPS:
            raise ValueError(f"dec_dim ({self.dec_dim}) must be a multiple of {GROUPS} (GroupNorm groups)")
        if self.use_ref_t and self.spk_dim % 4:
            raise ValueError(f"spk_dim ({self.spk_dim}) must be a multiple of 4 (the reference block's widths "
                             "are spk_dim / 4 ... spk_dim)")
        if self.prediction == "v" and self.loss_weight_cap != 1.0:
            raise ValueError("loss_weight_cap weighs the score's noise-prediction loss: leave it at 1 with "
                             "prediction = \"v\"")
        if self.beta_max <= self.beta_min:
            raise ValueError(f"beta_max ({self.beta_max:g}) must exceed beta_min ({self.beta_min:g})")
        return self

    @property
    def time_multiple(self) -> int:
        """Frames and mel bins must be multiples of this (2 per downsampling)."""
        return 2 ** (len(self.dim_mults) - 1)


def check_sizes(encoder: EncoderSection, decoder: DecoderSection) -> None:
    """ValueError when the two sections cannot form one DiffVC (the U-Net halves the mel axis per level)."""
    if encoder.n_feats % decoder.time_multiple:
        raise ValueError(f"encoder.n_feats ({encoder.n_feats}) must be a multiple of {decoder.time_multiple} for a "
                         f"{len(decoder.dim_mults)}-level U-Net")
