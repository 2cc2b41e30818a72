"""Key-layout tests: HuBERT-Soft state dicts built from the reference note's module table (bshall/hubert, §1) in
every published form load strictly into `HubertSoft` with every tensor where it belongs; broken files are one
BadInput line naming the file and the offending keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxtool.encoders.hubert import content_units, load_content_encoder
from voxtool.encoders.hubert_checkpoint import infer_arch, to_bshall_layout
from voxtool.encoders.hubert_settings import PUBLISHED, TINY
from voxtool.errors import BadInput
from voxtool.training.modelfile import save_model_file


def bshall_state(C=512, H=768, L=12, F=3072, U=256, K=100, k=128, g=16, seed=0) -> dict[str, torch.Tensor]:
    """The v0.1/v0.2 HubertSoft state dict of the reference table (old weight-norm g/v keys), random values."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {"masked_spec_embed": (H,), "feature_extractor.conv0.weight": (C, 1, 10),
              "feature_extractor.norm0.weight": (C,), "feature_extractor.norm0.bias": (C,)}
    shapes.update({f"feature_extractor.conv{i}.weight": (C, C, 3) for i in range(1, 5)})
    shapes.update({f"feature_extractor.conv{i}.weight": (C, C, 2) for i in (5, 6)})
    shapes.update({"feature_projection.norm.weight": (C,), "feature_projection.norm.bias": (C,),
                   "feature_projection.projection.weight": (H, C), "feature_projection.projection.bias": (H,),
                   "positional_embedding.conv.bias": (H,), "positional_embedding.conv.weight_g": (1, 1, k),
                   "positional_embedding.conv.weight_v": (H, H // g, k), "norm.weight": (H,), "norm.bias": (H,)})
    for i in range(L):
        p = f"encoder.layers.{i}."
        shapes.update({p + "self_attn.in_proj_weight": (3 * H, H), p + "self_attn.in_proj_bias": (3 * H,),
                       p + "self_attn.out_proj.weight": (H, H), p + "self_attn.out_proj.bias": (H,),
                       p + "linear1.weight": (F, H), p + "linear1.bias": (F,), p + "linear2.weight": (H, F),
                       p + "linear2.bias": (H,), p + "norm1.weight": (H,), p + "norm1.bias": (H,),
                       p + "norm2.weight": (H,), p + "norm2.bias": (H,)})
    shapes.update({"proj.weight": (U, H), "proj.bias": (U,), "label_embedding.weight": (K, U)})
    return {name: torch.randn(shape, generator=gen) * 0.05 for name, shape in shapes.items()}


TINY_SIZES = dict(C=TINY.conv_channels, H=TINY.hidden, L=TINY.layers, F=TINY.ffn, U=TINY.unit_dim, K=TINY.labels,
                  k=TINY.pos_conv_kernel, g=TINY.pos_conv_groups)
NEW = {"positional_embedding.conv.weight_g": "positional_embedding.conv.parametrizations.weight.original0",
       "positional_embedding.conv.weight_v": "positional_embedding.conv.parametrizations.weight.original1"}


def assert_loaded(model, state: dict[str, torch.Tensor]) -> None:
    """Every tensor of the (bshall-layout) `state` sits at its place in `model`, and nothing else is there."""
    own = to_bshall_layout(model.state_dict())
    assert own.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(own[key], value), key


def test_published_v01_bare_state_dict_loads_strictly(tmp_path):
    """hubert-soft-0d54a1f4.pt: a bare state dict at the published sizes (94.6M parameters)."""
    state = bshall_state()
    assert sum(v.numel() for v in state.values()) == 94_594_176
    path = tmp_path / "hubert-soft-0d54a1f4.pt"
    torch.save(state, path)
    model = load_content_encoder(path)
    assert not model.training and model.config == PUBLISHED
    assert_loaded(model, state)


@pytest.mark.parametrize("form", ["v0.2", "v0.2-ddp", "ddp-bare", "parametrized", "training-checkpoint"])
def test_published_forms_load_strictly(tmp_path, form):
    state = bshall_state(**TINY_SIZES, seed=1)
    obj = {
        "v0.2": {"hubert": state},
        "v0.2-ddp": {"hubert": {"module." + k: v for k, v in state.items()}},
        "ddp-bare": {"module." + k: v for k, v in state.items()},
        "parametrized": {NEW.get(k, k): v for k, v in state.items()},  # saved by new torch's weight_norm
        "training-checkpoint": {"hubert": {"module." + k: v for k, v in state.items()}, "optimizer": {"state": {}},
                                "scaler": {}, "step": 25000, "loss": 1.5},
    }[form]
    path = tmp_path / "model-best.pt"
    torch.save(obj, path)
    model = load_content_encoder(path)
    # heads are not stored in a state dict: read back as hidden // 64, as every published HuBERT
    assert model.config.model_copy(update={"dropout": 0.0, "heads": TINY.heads}) == TINY
    assert_loaded(model, state)


def test_weight_norm_is_applied_from_g_and_v(tmp_path):
    state = bshall_state(**TINY_SIZES, seed=2)
    path = tmp_path / "h.pt"
    torch.save(state, path)
    conv = load_content_encoder(path).positional_embedding.conv
    g, v = state["positional_embedding.conv.weight_g"], state["positional_embedding.conv.weight_v"]
    expected = g * v / v.norm(dim=(0, 1), keepdim=True)  # weight norm with dim=2: one norm per kernel tap
    torch.testing.assert_close(conv.weight, expected)


def test_discrete_head_size_is_read_from_the_file(tmp_path):
    """hubert-discrete's 504-entry label embedding: the architecture follows the file's shapes."""
    state = bshall_state(**{**TINY_SIZES, "K": 504}, seed=3)
    arch = infer_arch({NEW.get(k, k): v for k, v in state.items()}, tmp_path)
    assert arch.labels == 504 and arch.layers == TINY.layers and arch.heads == 1  # hidden 64 // 64


def test_missing_keys_are_named(tmp_path):
    state = bshall_state(**TINY_SIZES)
    for key in ("proj.bias", "norm.weight", "encoder.layers.1.linear2.bias"):
        del state[key]
    path = tmp_path / "cut.pt"
    torch.save(state, path)
    with pytest.raises(BadInput) as e:
        load_content_encoder(path)
    msg = str(e.value)
    assert "cut.pt" in msg and "3 missing" in msg
    assert "proj.bias" in msg and "norm.weight" in msg and "encoder.layers.1.linear2.bias" in msg


def test_wrong_shape_is_named(tmp_path):
    state = bshall_state(**TINY_SIZES)
    state["encoder.layers.0.norm2.weight"] = torch.zeros(TINY.hidden + 1)
    state["proj.bias"] = torch.zeros(3)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(BadInput) as e:
        load_content_encoder(path)
    msg = str(e.value)
    assert "bad.pt" in msg and "encoder.layers.0.norm2.weight (65,)" in msg and "proj.bias (3,)" in msg


@pytest.mark.parametrize("obj", [{"acoustic-model": {"x": torch.zeros(1)}}, [1, 2], {"hubert": {"a": 1}}])
def test_not_a_hubert_file(tmp_path, obj):
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    with pytest.raises(BadInput) as e:
        load_content_encoder(path)
    assert "other.pt" in str(e.value)


def test_voxtool_model_file_and_run_folder(tmp_path):
    from voxtool.encoders.hubert import HubertSoft

    torch.manual_seed(4)
    model = HubertSoft(TINY).eval()
    run = tmp_path / "run"
    run.mkdir()
    save_model_file(run / "model.pt", "hubert-soft", {"arch": TINY.model_dump(mode="json")}, model.state_dict())
    loaded = load_content_encoder(run)  # the run folder resolves to its model.pt
    audio = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    np.testing.assert_array_equal(content_units(loaded, audio), content_units(model, audio))
    save_model_file(tmp_path / "other.pt", "softvc", {}, model.state_dict())
    with pytest.raises(BadInput, match="task 'softvc'"):
        load_content_encoder(tmp_path / "other.pt")
