"""Generator sizes, output shape and hop of the three configs, weight-norm removal, and the published details."""

from __future__ import annotations

import pytest
import torch

from voxtool.vocoders.hifigan import (
    FINAL_LRELU_SLOPE,
    HIFIGAN_16K,
    HIFIGAN_22K,
    HIFIGAN_TINY,
    Generator,
    GeneratorConfig,
    count_parameters,
)

# parameter counts with weight norm (g and v) / after removing it; the published figures from the notes
SIZES = {"16k": (HIFIGAN_16K, 14_370_306, 14_360_193, 160),
         "22k": (HIFIGAN_22K, 13_936_130, 13_926_017, 256),
         "tiny": (HIFIGAN_TINY, 50_826, 50_553, 160)}


@pytest.mark.parametrize("name", list(SIZES))
def test_sizes_shapes_and_weight_norm_removal(name: str) -> None:
    config, with_norm, without_norm, hop = SIZES[name]
    torch.manual_seed(0)
    generator = Generator(config).eval()
    assert config.hop_length == generator.hop_length == hop
    assert count_parameters(generator) == with_norm
    mel = torch.randn(2, config.n_mels, 3)
    with torch.no_grad():
        normed = generator(mel)
        assert normed.shape == (2, 1, 3 * hop)
        assert normed.abs().max() <= 1.0
        generator.remove_weight_norm()
        assert not generator.has_weight_norm() and count_parameters(generator) == without_norm
        torch.testing.assert_close(generator(mel), normed, rtol=0, atol=1e-5)


def test_module_names_follow_the_published_layout() -> None:
    names = set(Generator(HIFIGAN_TINY, weight_norm=False).state_dict())
    assert {"conv_pre.weight", "ups.3.weight", "resblocks.11.convs.1.weight", "conv_post.bias"} <= names
    v1 = {k for k in Generator(HIFIGAN_22K).state_dict() if k.endswith("original0")}
    assert {"resblocks.0.convs1.2.parametrizations.weight.original0",
            "resblocks.11.convs2.0.parametrizations.weight.original0"} <= v1


def test_final_leaky_relu_uses_slope_0_01() -> None:
    """With every conv an identity tap, the output is tanh(conv_post(lrelu_0.01(x))): check that slope."""
    config = GeneratorConfig(n_mels=1, upsample_rates=(1,), upsample_kernel_sizes=(1,), upsample_initial_channel=2,
                             resblock="2", resblock_kernel_sizes=(1,), resblock_dilation_sizes=((1, 1),))
    generator = Generator(config, weight_norm=False)
    with torch.no_grad():
        for p in generator.parameters():
            p.zero_()
        generator.conv_pre.weight[0, 0, 3] = 1.0  # channel 0 = mel
        generator.ups[0].weight[0, 0, 0] = 1.0  # after lrelu 0.1
        generator.conv_post.weight[0, 0, 3] = 1.0
        out = generator(torch.tensor([[[-2.0, 3.0]]]))
    # resblock convs are zero, so they add nothing: x = lrelu(lrelu(mel, 0.1), 0.01)
    expected = torch.tanh(torch.tensor([-2.0 * 0.1 * FINAL_LRELU_SLOPE, 3.0]))
    torch.testing.assert_close(out[0, 0], expected)


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="does not fit rate"):
        GeneratorConfig.model_validate(HIFIGAN_TINY.model_dump() | {"upsample_kernel_sizes": (21, 8, 4, 4)})
    with pytest.raises(ValueError, match="same length"):
        GeneratorConfig.model_validate(HIFIGAN_TINY.model_dump() | {"upsample_rates": (10, 4, 4)})
    with pytest.raises(ValueError, match="2 positive dilations"):
        GeneratorConfig.model_validate(HIFIGAN_TINY.model_dump() | {"resblock_dilation_sizes": ((1,), (2,), (3,))})
