"""`DiffVC`: the average-voice encoder (`encoder`, FwdDiffusion) and the diffusion decoder (`decoder`, Diffusion),
with the key layout of the published `vc_libritts_wodyn.pt` / `vc_vctk_wodyn.pt` (346 tensors: 140 `encoder.*`,
206 `decoder.*`; 126,259,128 parameters at the published sizes).

Mels: the HiFi-GAN 22.05 kHz log-mels as they are (natural log of the amplitude mel clamped at 1e-5, about
-11.5 ... 2). The original applies no mean/variance normalisation anywhere, so there are no normalisation
constants; `LOG_MEL_FLOOR` is the value of digital silence. Masked (padded) frames may hold anything: every layer
masks them (the original collates with zeros).

Training the decoder (`compute_loss`): the target x and the reference x_ref are two crops of one utterance and c is
that utterance's d-vector; the encoder runs without gradients (freeze its parameters too: the decoder's TrainTask
lists `model.encoder` in `train.freeze`). Conversion (`convert`): the source's average voice is the prior mean; the
reference mel and d-vector of the target speaker condition the decoder.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from voxtool.tasks.diffvc.diffusion import SAMPLERS, Diffusion, pad_frames
from voxtool.tasks.diffvc.encoder import FwdDiffusion, masked_mse, sequence_mask
from voxtool.tasks.diffvc.model_config import DecoderSection, EncoderSection, check_sizes

LOG_MEL_FLOOR = math.log(1e-5)  # ln of the mel clamp: a silent frame's value in every bin
PUBLISHED_TENSORS = 346  # entries of vc_*_wodyn.pt's state dict
PUBLISHED_PARAMETERS = 126_259_128


@contextmanager
def _mode(module: nn.Module, training: bool):
    """Run with `module` in train/eval mode, restoring its previous mode afterwards."""
    previous = module.training
    module.train(training)
    try:
        yield
    finally:
        module.train(previous)


def _batch_to(value: Tensor, batch: int, name: str) -> Tensor:
    """A reference input with batch 1 expands to `batch` (one reference for many chunks); else it must match."""
    if value.shape[0] == batch:
        return value
    if value.shape[0] == 1:
        return value.expand(batch, *value.shape[1:])
    raise ValueError(f"{name} has batch {value.shape[0]}; expected 1 or {batch}")


class DiffVC(nn.Module):
    """`encoder` (FwdDiffusion) + `decoder` (Diffusion, whose `estimator` is the U-Net)."""

    def __init__(self, encoder: EncoderSection = EncoderSection(), decoder: DecoderSection = DecoderSection()):
        super().__init__()
        check_sizes(encoder, decoder)
        self.encoder_cfg = encoder
        self.decoder_cfg = decoder
        self.n_feats = encoder.n_feats
        self.encoder = FwdDiffusion(encoder)
        self.decoder = Diffusion(encoder.n_feats, decoder)

    def average_voice(self, x: Tensor, mask: Tensor) -> Tensor:
        """The encoder's prior mean for mel x [B, n_feats, F] (mask [B, 1, F]), float32, without gradients."""
        with torch.no_grad():
            return self.encoder(x, mask).float() * mask

    def compute_loss(self, x: Tensor, x_lengths: Tensor, x_ref: Tensor, c: Tensor,
                     x_ref_lengths: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The decoder's diffusion loss for one batch (float32 scalar) and details to log.

        x [B, n_feats, F] target crops and x_lengths [B] their real frames; x_ref [B, n_feats, F_ref] reference
        crops of the same utterances, with x_ref_lengths [B] (default: x_lengths, so F_ref = F, as the original's
        equal crops); c [B, spk_embed_dim] d-vectors. Any F works (padded to the U-Net's multiple inside).
        Details: `prior_mse`, the masked MSE of the average voice to the target (what the decoder has to add).
        """
        mask = sequence_mask(x_lengths.to(x.device), x.shape[-1]).unsqueeze(1).to(x.dtype)
        if x_ref_lengths is None:
            if x_ref.shape[-1] != x.shape[-1]:
                raise ValueError(f"x_ref has {x_ref.shape[-1]} frames and x {x.shape[-1]}: give x_ref_lengths")
            ref_mask = mask
        else:
            ref_mask = sequence_mask(x_ref_lengths.to(x_ref.device), x_ref.shape[-1]).unsqueeze(1).to(x_ref.dtype)
        # the original leaves the frozen encoder's dropout on in decoder training (DecoderSection.prior_dropout)
        with _mode(self.encoder, self.training and self.decoder_cfg.prior_dropout):
            mean = self.average_voice(x, mask)
            mean_ref = self.average_voice(x_ref, ref_mask)
        loss = self.decoder.compute_loss(x.float(), mask.float(), mean, x_ref.float(), ref_mask.float(), mean_ref,
                                         c.float())
        return loss, {"prior_mse": masked_mse(mean, x, mask).detach()}

    @torch.no_grad()
    def convert(self, x: Tensor, x_lengths: Tensor, x_ref: Tensor, x_ref_lengths: Tensor, c: Tensor,
                n_timesteps: int = 6, sampler: str = "ml", temperature: float = 1.0,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Convert source mels to the reference speaker's voice; runs in eval mode (restored afterwards).

        x [B, n_feats, F] source mels (e.g. B equal-length chunks of one long input) with x_lengths [B];
        x_ref [B or 1, n_feats, F_ref] reference mels with x_ref_lengths [B or 1]; c [B or 1, spk_embed_dim]
        target d-vectors (batch 1 is shared by every source). `n_timesteps` reverse steps of `sampler`
        ("ml" | "em" | "pf"); the start noise is N(0, I) / temperature around the source's diffused average voice;
        `generator` makes the noise reproducible (on x's device).

        Returns (prior [B, n_feats, F]: the diffused average-voice mean gamma(0,1) x + (1 - gamma(0,1)) enc(x) the
        sampler starts from, as the original returns; mel [B, n_feats, F]: the converted log-mel), float32, zero
        beyond each length. Works under torch.autocast (bf16/fp16): the sampler state stays float32.
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        batch, _, frames = x.shape
        x_ref = _batch_to(x_ref, batch, "x_ref")
        x_ref_lengths = _batch_to(x_ref_lengths.reshape(-1), batch, "x_ref_lengths")
        c = _batch_to(c, batch, "c")
        with _mode(self, False):
            mask = sequence_mask(x_lengths.to(x.device), frames).unsqueeze(1).float()
            ref_mask = sequence_mask(x_ref_lengths.to(x.device), x_ref.shape[-1]).unsqueeze(1).float()
            x = x.float()
            mean = self.average_voice(x, mask)
            # one reference shared by all chunks: encode it once
            shared_ref = x_ref.stride(0) == 0 and batch > 1
            mean_ref = self.average_voice(x_ref[:1] if shared_ref else x_ref, ref_mask[:1] if shared_ref else ref_mask)
            mean_ref = _batch_to(mean_ref, batch, "mean_ref")
            prior = self.decoder.diffused_mean(x, mask, mean, 1.0)
            multiple = self.decoder_cfg.time_multiple
            mask_p, mean_p, prior_p = (pad_frames(v, multiple) for v in (mask, mean, prior))
            noise = torch.randn(prior_p.shape, generator=generator, device=x.device, dtype=prior_p.dtype)
            z = prior_p + noise / temperature
            mel = self.decoder.sample(z, mask_p, mean_p, x_ref.float(), ref_mask, mean_ref, c.float(), n_timesteps,
                                      sampler, generator)
        return prior, mel[:, :, :frames] * mask
