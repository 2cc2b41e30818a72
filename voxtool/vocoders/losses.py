"""HiFi-GAN losses as in jik876/hifi-gan (`models.py`, `train.py`) and bshall/hifigan.

- Discriminator (LSGAN): sum over sub-discriminators of mean((1 - D(real))^2) + mean(D(fake)^2).
- Generator: adversarial sum of mean((1 - D(fake))^2) + 2 * feature matching + 45 * L1(mel(real), mel(fake)),
  summed over the multi-period and multi-scale discriminators.
- Feature matching: sum over every feature map of mean |real - fake|. As in jik876 the real maps are not
  detached: the gradient they carry lands only on the discriminators, whose gradients are zeroed before their step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from voxtool.vocoders.discriminators import DiscriminatorOutputs

FEATURE_MATCHING_WEIGHT = 2.0
MEL_WEIGHT = 45.0


def lsgan_discriminator_loss(real_scores: list[torch.Tensor], fake_scores: list[torch.Tensor]
                             ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """(total, per-discriminator real terms, fake terms); real pushed to 1, fake to 0."""
    real_terms = [torch.mean((1 - real) ** 2) for real in real_scores]
    fake_terms = [torch.mean(fake**2) for fake in fake_scores]
    return sum(real_terms) + sum(fake_terms), real_terms, fake_terms


def lsgan_generator_loss(fake_scores: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(total, per-discriminator terms); fake pushed to 1."""
    terms = [torch.mean((1 - fake) ** 2) for fake in fake_scores]
    return sum(terms), terms


def feature_matching_loss(real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]
                          ) -> torch.Tensor:
    """Sum over discriminators and layers of mean |real - fake| (unweighted; the total uses x2)."""
    return sum(torch.mean(torch.abs(real - fake))
               for real_maps, fake_maps in zip(real_features, fake_features)
               for real, fake in zip(real_maps, fake_maps))


def mel_l1_loss(real_mel: torch.Tensor, fake_mel: torch.Tensor) -> torch.Tensor:
    """Mean |real - fake| over (B, n_mels, T) log-mels (unweighted; the total uses x45)."""
    return F.l1_loss(fake_mel, real_mel)


@dataclass
class GeneratorLoss:
    """The generator's total loss and its unweighted parts (for logging)."""

    total: torch.Tensor
    adversarial: torch.Tensor
    feature_matching: torch.Tensor
    mel: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {"loss": self.total, "adv": self.adversarial, "fm": self.feature_matching, "mel": self.mel}


def discriminator_step_loss(discriminators: list[Callable[..., DiscriminatorOutputs]], real: torch.Tensor,
                            fake: torch.Tensor) -> torch.Tensor:
    """LSGAN loss of all discriminators (e.g. [mpd, msd]) on real (B, 1, N) and detached fake (B, 1, N) audio."""
    total = real.new_zeros(())
    for disc in discriminators:
        out = disc(real, fake.detach())
        total = total + lsgan_discriminator_loss(out.real_scores, out.fake_scores)[0]
    return total


def generator_step_loss(discriminators: list[Callable[..., DiscriminatorOutputs]], real: torch.Tensor,
                        fake: torch.Tensor, real_mel: torch.Tensor, fake_mel: torch.Tensor) -> GeneratorLoss:
    """adversarial + 2 * feature matching + 45 * mel L1 over all discriminators; fake (B, 1, N) keeps its graph.

    real_mel / fake_mel are the loss mels (B, n_mels, T) of the real and generated audio (jik876: full band,
    `MelSettings.for_loss()`)."""
    adversarial = real.new_zeros(())
    matching = real.new_zeros(())
    for disc in discriminators:
        out = disc(real, fake)
        adversarial = adversarial + lsgan_generator_loss(out.fake_scores)[0]
        matching = matching + feature_matching_loss(out.real_features, out.fake_features)
    mel = mel_l1_loss(real_mel, fake_mel)
    total = adversarial + FEATURE_MATCHING_WEIGHT * matching + MEL_WEIGHT * mel
    return GeneratorLoss(total, adversarial, matching, mel)
