"""Torch-free architecture settings of HuBERT-Soft (`HubertArch`), the `[arch]` section of a hubert-soft preset.

Defaults are the published network (bshall/hubert `HubertSoft`, a fairseq HuBERT-Base re-implementation,
94,594,176 parameters): 7-layer conv feature extractor (512 channels, strides 5,2,2,2,2,2,2: hop 320, receptive
field 400 samples at 16 kHz), 768-d 12-layer post-LN transformer (12 heads, FFN 3072), `proj` 768 -> 256, a
100-entry label embedding. The conv kernels and strides are fixed (they define the 50 Hz frame grid); the widths
and depths are free, so a tiny network keeps the same frames.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from voxtool.presets import StrictModel

SAMPLE_RATE = 16000
HOP = 320  # samples per unit frame (product of CONV_STRIDES): 50 Hz
RECEPTIVE_FIELD = 400  # samples seen by one frame; units() pads (400 - 320) / 2 = 40 per side as bshall
CONV_KERNELS = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDES = (5, 2, 2, 2, 2, 2, 2)


class HubertArch(StrictModel):
    """Sizes of a HuBERT-Soft network (published values by default)."""

    conv_channels: int = Field(512, ge=1, le=4096, description="channels of the conv feature extractor")
    hidden: int = Field(768, ge=1, le=8192, description="transformer width")
    layers: int = Field(12, ge=1, le=96, description="transformer layers")
    heads: int = Field(12, ge=1, le=128, description="attention heads (must divide hidden)")
    ffn: int = Field(3072, ge=1, le=65536, description="feed-forward width of each layer")
    pos_conv_kernel: int = Field(128, ge=2, le=1024, description="positional conv kernel (even)")
    pos_conv_groups: int = Field(16, ge=1, le=1024, description="positional conv groups (divide hidden)")
    unit_dim: int = Field(256, ge=1, le=8192, description="soft unit width (`proj` output)")
    labels: int = Field(100, ge=2, le=100_000, description="entries of the label embedding (discrete targets)")
    dropout: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _consistent(self) -> HubertArch:
        if self.hidden % self.heads:
            raise ValueError(f"heads {self.heads} must divide hidden {self.hidden}")
        if self.hidden % self.pos_conv_groups:
            raise ValueError(f"pos_conv_groups {self.pos_conv_groups} must divide hidden {self.hidden}")
        if self.pos_conv_kernel % 2:
            raise ValueError(f"pos_conv_kernel {self.pos_conv_kernel} must be even (the conv drops its last frame)")
        return self


PUBLISHED = HubertArch()
TINY = HubertArch(conv_channels=32, hidden=64, layers=2, heads=4, ffn=128, pos_conv_kernel=16, pos_conv_groups=4,
                  unit_dim=32, labels=100, dropout=0.0)
