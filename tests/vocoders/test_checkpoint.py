"""Published generator key layouts, written from the reference notes' key tables (not from our module), loaded
strictly; effective weights g * v / ||v|| recomputed here and compared with the loaded generator's."""

from __future__ import annotations

import functools

import pytest
import torch

from voxtool.errors import BadInput
from voxtool.vocoders.checkpoint import load_generator, load_generator_state
from voxtool.vocoders.hifigan import HIFIGAN_16K, HIFIGAN_22K, HIFIGAN_TINY, Generator


def published_keys(n_mels: int, ups_kernels: tuple[int, ...], res_kernels: tuple[int, ...], channels: int = 512,
                   resblock: str = "1") -> dict[str, tuple[int, ...]]:
    """Key -> shape with old-style weight norm (weight_g (out, 1, 1), weight_v, bias), as the notes list them."""
    keys: dict[str, tuple[int, ...]] = {}

    def conv(name: str, weight: tuple[int, ...], out: int) -> None:
        keys.update({f"{name}.weight_g": (weight[0], 1, 1), f"{name}.weight_v": weight, f"{name}.bias": (out,)})

    conv("conv_pre", (channels, n_mels, 7), channels)
    for i, k in enumerate(ups_kernels):  # ConvTranspose1d weight is (in, out, k); g follows dim 0 = in
        conv(f"ups.{i}", (channels >> i, channels >> (i + 1), k), channels >> (i + 1))
    for i in range(len(ups_kernels)):
        c = channels >> (i + 1)
        for j, k in enumerate(res_kernels):
            block = f"resblocks.{i * len(res_kernels) + j}"
            names = [f"{block}.convs1.{m}" for m in range(3)] + [f"{block}.convs2.{m}" for m in range(3)] \
                if resblock == "1" else [f"{block}.convs.{m}" for m in range(2)]
            for name in names:
                conv(name, (c, c, k), c)
    conv("conv_post", (1, channels >> len(ups_kernels), 7), 1)
    return keys


@functools.lru_cache(maxsize=4)
def random_state(table: tuple[tuple[str, tuple[int, ...]], ...], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.05 for k, shape in table}


def state_for(keys: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return dict(random_state(tuple(keys.items())))


def effective(state: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """g * v / ||v||, the norm over every dim but 0, computed without torch's weight-norm code."""
    g, v = state[f"{name}.weight_g"].double(), state[f"{name}.weight_v"].double()
    norm = v.pow(2).sum(dim=tuple(range(1, v.dim())), keepdim=True).sqrt()
    return (g * v / norm).float()


def assert_weights_match(generator: Generator, source: dict[str, torch.Tensor]) -> None:
    """Every weight and bias of the (weight-norm-removed) generator equals the source's effective value."""
    ours = generator.state_dict()
    assert len(ours) == sum(1 for k in source if not k.endswith("weight_g"))
    for key, value in source.items():
        if key.endswith("weight_v"):
            name = key[: -len(".weight_v")]
            torch.testing.assert_close(ours[f"{name}.weight"], effective(source, name), rtol=1e-5, atol=1e-7)
        elif key.endswith("bias"):
            assert torch.equal(ours[key], value)


def test_22k_jik876_generator_file_has_234_tensors_and_loads(tmp_path) -> None:
    keys = published_keys(80, (16, 16, 4, 4), (3, 7, 11))
    assert len(keys) == 234
    assert keys["ups.0.weight_v"] == (512, 256, 16) and keys["conv_post.weight_v"] == (1, 32, 7)
    source = state_for(keys)
    path = tmp_path / "generator"
    torch.save({"generator": source}, path)
    loaded = load_generator_state(path)  # config inferred
    assert loaded.config == HIFIGAN_22K
    generator = loaded.build()
    assert not generator.has_weight_norm()
    assert_weights_match(generator, source)


def test_16k_bshall_bare_state_with_module_prefix() -> None:
    source = state_for(published_keys(128, (20, 8, 4, 4), (3, 7, 11)))
    assert len(source) == 234
    generator = load_generator({f"module.{k}": v for k, v in source.items()})
    assert generator.config == HIFIGAN_16K
    assert_weights_match(generator, source)


def test_bshall_training_checkpoint_nesting() -> None:
    source = state_for(published_keys(128, (20, 8, 4, 4), (3, 7, 11)))
    ckpt = {"generator": {"model": {f"module.{k}": v for k, v in source.items()}, "optimizer": {"state": {}}},
            "discriminator": {"model": {}}, "step": 10, "loss": 1.0}
    assert load_generator_state(ckpt).config == HIFIGAN_16K


def test_parametrization_keys_and_plain_weights_round_trip() -> None:
    torch.manual_seed(0)
    source = Generator(HIFIGAN_TINY).eval()
    state = source.state_dict()
    assert "conv_pre.parametrizations.weight.original0" in state and "resblocks.0.convs.1.bias" in state
    mel = torch.randn(2, 128, 6)
    with torch.no_grad():
        expected = source(mel)
        loaded = load_generator_state(state)
        assert loaded.config == HIFIGAN_TINY
        assert torch.equal(loaded.build(remove_weight_norm=False)(mel), expected)
        plain = source.remove_weight_norm().state_dict()
        assert "conv_pre.weight" in plain
        again = load_generator(plain, HIFIGAN_TINY)
        torch.testing.assert_close(again(mel), expected, rtol=0, atol=1e-6)


def test_n_mels_and_width_inferred_from_shapes() -> None:
    keys = published_keys(80, (20, 8, 4, 4), (3, 7, 11), channels=64)
    loaded = load_generator_state(state_for(keys))
    assert (loaded.config.n_mels, loaded.config.upsample_initial_channel, loaded.config.upsample_rates) == \
        (80, 64, (10, 4, 2, 2))


def test_wrong_file_reports_missing_and_unexpected() -> None:
    state = Generator(HIFIGAN_TINY).state_dict()
    for key in [k for k in state if k.startswith("conv_post.")]:
        del state[key]
    state["speaker_embedding.weight_x"] = torch.zeros(3)
    with pytest.raises(BadInput) as err:
        load_generator_state(state, HIFIGAN_TINY, where="g.pt")
    text = str(err.value)
    assert text.startswith("g.pt: ") and "3 missing (conv_post." in text and "1 unexpected (speaker_embedding" in text
    assert "\n" not in text
    # a checkpoint of another model entirely (an acoustic model) and a non-dict
    with pytest.raises(BadInput, match="not a HiFi-GAN generator checkpoint \\(holds keys acoustic-model, step\\)"):
        load_generator_state({"acoustic-model": {"encoder.prenet.net.0.weight": torch.zeros(256, 256)}, "step": 1})
    with pytest.raises(BadInput, match="no conv_pre"):
        load_generator_state({"encoder.prenet.net.0.weight": torch.zeros(256, 256)})
    with pytest.raises(BadInput, match="not a HiFi-GAN generator checkpoint"):
        load_generator_state([torch.zeros(1)])
    with pytest.raises(BadInput, match="not a HiFi-GAN generator state dict: 1 of 2 entries is not a tensor"):
        load_generator_state({"conv_pre.weight": torch.zeros(1, 1, 1), "step": 3})


def test_many_missing_keys_are_summarised() -> None:
    source = state_for(published_keys(80, (16, 16, 4, 4), (3, 7, 11)))
    partial = {k: v for k, v in source.items() if not k.startswith("resblocks.1")}
    with pytest.raises(BadInput) as err:
        load_generator_state({"generator": partial})
    assert "54 missing (" in str(err.value) and "(54 in all)" in str(err.value)


def test_shapes_that_do_not_fit_the_config_are_one_line() -> None:
    source = state_for(published_keys(80, (16, 16, 4, 4), (3, 7, 11)))
    with pytest.raises(BadInput) as err:
        load_generator_state({"generator": source}, HIFIGAN_16K, where="generator_v1")
    text = str(err.value)
    assert "conv_pre.parametrizations.weight.original1 is (512, 80, 7), expected (512, 128, 7)" in text
    assert "more" in text and "\n" not in text


def test_plain_and_weight_normed_copies_together_are_refused() -> None:
    state = Generator(HIFIGAN_TINY).state_dict()
    state["conv_pre.weight"] = torch.zeros(32, 128, 7)
    with pytest.raises(BadInput, match="duplicates"):
        load_generator_state(state)


def test_shared_key_report() -> None:
    from voxtool.training.modelfile import key_report

    assert key_report(["a", "b"], {"b": 0, "a": 1}) is None
    assert key_report(["a"], ["a", "tf.x"], ignore_unexpected=("tf.",)) is None
    many = [f"k{i}" for i in range(5)]
    assert key_report([*many, "z"], ["z", "extra"]) == "5 missing (k0, k1, k2, ... (5 in all)); 1 unexpected (extra)"
    assert key_report(["a"], [], template="{count} {kind} keys (e.g. {names})") == "1 missing keys (e.g. a)"
