"""Discriminator layouts and output shapes; LSGAN, feature-matching and mel losses on hand-checkable inputs."""

from __future__ import annotations

import math

import pytest
import torch

from voxtool.vocoders.discriminators import (
    DiscriminatorOutputs,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from voxtool.vocoders.hifigan import HIFIGAN_TINY, Generator
from voxtool.vocoders.losses import (
    discriminator_step_loss,
    feature_matching_loss,
    generator_step_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    mel_l1_loss,
)
from voxtool.vocoders.mel import MEL_16K_BSHALL, VocoderLogMel

TINY = 1 / 16


def _conv_len(n: int, kernel: int, stride: int, pad: int) -> int:
    return (n + 2 * pad - kernel) // stride + 1


def test_period_discriminator_shapes() -> None:
    mpd = MultiPeriodDiscriminator(width=TINY)
    n = 1000
    out = mpd(torch.randn(2, 1, n), torch.randn(2, 1, n))
    assert len(out.real_scores) == len(out.fake_features) == 5
    for period, score, features in zip((2, 3, 5, 7, 11), out.fake_scores, out.fake_features):
        rows = math.ceil(n / period)
        for _ in range(4):
            rows = _conv_len(rows, 5, 3, 2)
        assert score.shape == (2, rows * period)
        assert len(features) == 6 and features[0].shape[-1] == period


def test_scale_discriminator_shapes_and_pooling() -> None:
    msd = MultiScaleDiscriminator(width=TINY)
    n = 1000
    out = msd(torch.randn(2, 1, n), torch.randn(2, 1, n))
    assert len(out.real_scores) == 3
    length = n
    for i, score in enumerate(out.real_scores):
        if i:
            length = _conv_len(length, 4, 2, 2)  # AvgPool1d(4, 2, padding=2)
        s = length
        # (kernel, stride, padding) of jik876's DiscriminatorS convs and conv_post
        for kernel, stride, pad in [(15, 1, 7), (41, 2, 20), (41, 2, 20), (41, 4, 20), (41, 4, 20), (41, 1, 20),
                                    (5, 1, 2), (3, 1, 1)]:
            s = _conv_len(s, kernel, stride, pad)
        assert score.shape == (2, s)
        assert len(out.real_features[i]) == 8


def test_published_discriminator_module_names() -> None:
    with torch.device("meta"):
        mpd, msd = MultiPeriodDiscriminator(), MultiScaleDiscriminator()
    mpd_keys, msd_keys = set(mpd.state_dict()), set(msd.state_dict())
    assert "discriminators.4.convs.4.parametrizations.weight.original1" in mpd_keys
    assert mpd.state_dict()["discriminators.0.convs.3.parametrizations.weight.original1"].shape == (1024, 512, 5, 1)
    # first scale spectral-normed, the others weight-normed; meanpools carry no weights
    assert "discriminators.0.conv_post.parametrizations.weight.original" in msd_keys
    assert "discriminators.1.conv_post.parametrizations.weight.original0" in msd_keys
    assert msd.state_dict()["discriminators.1.convs.2.parametrizations.weight.original1"].shape == (256, 8, 41)
    assert {"meanpools.0", "meanpools.1"} <= dict(msd.named_modules()).keys()


def test_lsgan_losses_by_hand() -> None:
    real = [torch.tensor([[1.0, 0.5]]), torch.tensor([[0.0]])]
    fake = [torch.tensor([[0.0, 0.5]]), torch.tensor([[1.0]])]
    total, real_terms, fake_terms = lsgan_discriminator_loss(real, fake)
    # real: mean(0, 0.25) = 0.125 and 1; fake: mean(0, 0.25) = 0.125 and 1
    assert [t.item() for t in real_terms] == [0.125, 1.0] and [t.item() for t in fake_terms] == [0.125, 1.0]
    assert total.item() == pytest.approx(2.25)
    g_total, g_terms = lsgan_generator_loss(fake)
    assert [t.item() for t in g_terms] == [0.625, 0.0] and g_total.item() == pytest.approx(0.625)


def test_feature_matching_and_mel_by_hand() -> None:
    real = [[torch.tensor([1.0, 2.0]), torch.tensor([[0.0]])], [torch.tensor([3.0])]]
    fake = [[torch.tensor([1.0, 4.0]), torch.tensor([[-1.0]])], [torch.tensor([2.5])]]
    assert feature_matching_loss(real, fake).item() == pytest.approx(1.0 + 1.0 + 0.5)
    assert mel_l1_loss(torch.zeros(1, 2, 2), torch.tensor([[[1.0, -1.0], [0.0, 2.0]]])).item() == pytest.approx(1.0)


def _fixed_discriminator(score_real: float, score_fake: float, feature_gap: float):
    def disc(real: torch.Tensor, fake: torch.Tensor) -> DiscriminatorOutputs:
        return DiscriminatorOutputs([torch.full((1, 1), score_real)], [fake.sum() * 0 + torch.full((1, 1), score_fake)],
                                    [[torch.zeros(3)]], [[torch.full((3,), feature_gap)]])
    return disc


def test_generator_total_weights_fm_by_2_and_mel_by_45() -> None:
    fake = torch.zeros(1, 1, 4, requires_grad=True)
    discs = [_fixed_discriminator(1.0, 0.5, 0.1), _fixed_discriminator(1.0, 0.0, 0.2)]
    loss = generator_step_loss(discs, torch.zeros(1, 1, 4), fake, torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.01))
    assert loss.adversarial.item() == pytest.approx(0.25 + 1.0)
    assert loss.feature_matching.item() == pytest.approx(0.3)
    assert loss.mel.item() == pytest.approx(0.01)
    assert loss.total.item() == pytest.approx(1.25 + 2 * 0.3 + 45 * 0.01)
    assert set(loss.as_dict()) == {"loss", "adv", "fm", "mel"}
    assert discriminator_step_loss(discs, torch.zeros(1, 1, 4), fake).item() == pytest.approx(0.25 + 0.0)


def test_one_tiny_gan_step_reaches_every_parameter() -> None:
    """Discriminator loss leaves the generator untouched (fake detached); the generator loss reaches all of it."""
    torch.manual_seed(0)
    generator = Generator(HIFIGAN_TINY)
    discs = [MultiPeriodDiscriminator(width=TINY), MultiScaleDiscriminator(width=TINY)]
    mel_fn = VocoderLogMel(MEL_16K_BSHALL.for_loss())
    real = torch.randn(2, 1, 1600).clamp(-1, 1) * 0.5
    fake = generator(VocoderLogMel(MEL_16K_BSHALL)(real.squeeze(1)))
    assert fake.shape == real.shape
    discriminator_step_loss(discs, real, fake).backward()
    assert all(p.grad is None for p in generator.parameters())
    assert all(p.grad is not None for d in discs for p in d.parameters())
    loss = generator_step_loss(discs, real, fake, mel_fn(real.squeeze(1)), mel_fn(fake.squeeze(1)))
    loss.total.backward()
    assert torch.isfinite(loss.total) and all(p.grad is not None for p in generator.parameters())
