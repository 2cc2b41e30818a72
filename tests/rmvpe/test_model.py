"""E2E0 sizes and the three published checkpoint layouts, built from the module-name table of the notes."""

from __future__ import annotations

import functools

import pytest
import torch

from voxtool.pitch.checkpoint import infer_arch, load_state_dict_any
from voxtool.pitch.rmvpe_model import E2E0
from voxtool.pitch.settings import RmvpeArch

ENC = [16, 32, 64, 128, 256]
ENC_IN = [1, 16, 32, 64, 128]


def _bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _block(prefix: str, cin: int, cout: int) -> dict:
    keys = {f"{prefix}.conv.0.weight": (cout, cin, 3, 3), **_bn(f"{prefix}.conv.1", cout),
            f"{prefix}.conv.3.weight": (cout, cout, 3, 3), **_bn(f"{prefix}.conv.4", cout)}
    if cin != cout:
        keys.update({f"{prefix}.shortcut.weight": (cout, cin, 1, 1), f"{prefix}.shortcut.bias": (cout,)})
    return keys


def published_key_table(with_tf: bool) -> dict[str, tuple]:
    """Key -> shape of the published 128-mel E2E0, written from the notes' table (not from our module)."""
    keys = dict(_bn("unet.encoder.bn", 1))
    for i in range(5):
        for j in range(4):
            keys.update(_block(f"unet.encoder.layers.{i}.conv.{j}", ENC_IN[i] if j == 0 else ENC[i], ENC[i]))
    for i in range(4):
        for j in range(4):
            keys.update(_block(f"unet.intermediate.layers.{i}.conv.{j}", 256 if i == j == 0 else 512, 512))
    if with_tf:
        for i in range(5):
            keys.update(_block(f"unet.tf.layers.{i}", ENC[i], ENC[i]))
    dec = [(512, 256), (256, 128), (128, 64), (64, 32), (32, 16)]
    for i, (cin, cout) in enumerate(dec):
        keys[f"unet.decoder.layers.{i}.conv1.0.weight"] = (cin, cout, 3, 3)
        keys.update(_bn(f"unet.decoder.layers.{i}.conv1.1", cout))
        for j in range(4):
            keys.update(_block(f"unet.decoder.layers.{i}.conv2.{j}", 2 * cout if j == 0 else cout, cout))
    keys.update({"cnn.weight": (3, 16, 3, 3), "cnn.bias": (3,)})
    for suffix in ("", "_reverse"):
        keys.update({f"fc.0.gru.weight_ih_l0{suffix}": (768, 384), f"fc.0.gru.weight_hh_l0{suffix}": (768, 256),
                     f"fc.0.gru.bias_ih_l0{suffix}": (768,), f"fc.0.gru.bias_hh_l0{suffix}": (768,)})
    keys.update({"fc.1.weight": (360, 512), "fc.1.bias": (360,)})
    return keys


@functools.lru_cache(maxsize=1)
def _random_tensors() -> dict[str, torch.Tensor]:
    """One fp32 tensor per key of the with-tf table (random, generated once: ~92 M values)."""
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, shape in published_key_table(with_tf=True).items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[k] = 0.05 * torch.randn(shape, generator=g)
    return sd


def make_state_dict(with_tf: bool, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """A fresh dict in the layout of the table (fp16 like RVC's rmvpe.pt when asked)."""
    pool = _random_tensors()
    return {
        k: (pool[k].to(dtype) if pool[k].is_floating_point() else pool[k].clone())
        for k in published_key_table(with_tf)
    }


def test_published_sizes_and_key_counts():
    table = published_key_table(with_tf=False)
    assert len(table) == 741 and len(published_key_table(with_tf=True)) == 801
    model = E2E0()
    assert sum(p.numel() for p in model.parameters()) == 90_423_165
    assert sum(p.numel() for p in E2E0(RmvpeArch(with_tf=True)).parameters()) == 91_996_477
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == table


@pytest.mark.parametrize(
    "layout",
    ["rvc_fp16_plain", "yxlllc_model_wrapper_tf", "ddp_module_prefix", "ddp_module_prefix_fp16_no_tf"],
)
def test_published_layouts_load_strictly(layout):
    with_tf = layout in ("yxlllc_model_wrapper_tf", "ddp_module_prefix")
    dtype = torch.float16 if "fp16" in layout else torch.float32
    sd = make_state_dict(with_tf, dtype)
    if layout.startswith("ddp"):
        obj = {"model": {f"module.{k}": v for k, v in sd.items()}}
    elif layout.startswith("yxlllc"):
        obj = {"model": sd}
    else:
        obj = sd
    model, description = load_state_dict_any(obj)
    assert model.arch == RmvpeArch(with_tf=with_tf)
    loaded = model.state_dict()
    assert set(loaded) == set(sd)
    for key in ("unet.encoder.layers.3.conv.0.shortcut.weight", "fc.0.gru.weight_hh_l0_reverse", "cnn.bias"):
        assert loaded[key].dtype == torch.float32
        assert torch.equal(loaded[key], sd[key].float())
    assert ("fp16" in description) == (dtype == torch.float16)
    assert ("with tf" in description) == with_tf
    assert ("'module.' prefix" in description) == layout.startswith("ddp")


def test_wrong_checkpoint_gets_a_key_report():
    sd = make_state_dict(with_tf=False)
    del sd["fc.1.bias"]
    sd["unet.decoder.layers.0.conv1.0.weight_extra"] = torch.zeros(1)
    with pytest.raises(ValueError) as err:
        load_state_dict_any(sd)
    text = str(err.value)
    assert "1 missing keys (e.g. fc.1.bias)" in text
    assert "1 unexpected keys (e.g. unet.decoder.layers.0.conv1.0.weight_extra)" in text
    with pytest.raises(ValueError, match="not an RMVPE|keys do not match"):
        load_state_dict_any({"encoder.weight": torch.zeros(3)})


def test_tiny_roundtrip_and_shapes():
    arch = RmvpeArch(n_blocks=1, n_levels=3, n_inter=1, base_channels=4, gru_hidden=8)
    model = E2E0(arch).eval()
    assert infer_arch(model.state_dict()) == arch
    clone, _ = load_state_dict_any({"module." + k: v for k, v in model.state_dict().items()})
    mel = torch.randn(2, 128, 16)
    with torch.no_grad():
        out = model(mel)
        assert out.shape == (2, 16, 360) and float(out.min()) > 0 and float(out.max()) < 1
        assert torch.equal(clone.eval()(mel), out)
        assert torch.allclose(torch.sigmoid(model(mel, logits=True)), out)
