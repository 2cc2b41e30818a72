"""Reading HuBERT-Soft weights: published bshall/hubert files and voxtool model files.

Accepted layouts (all loaded strictly into `HubertSoft`; anything else is one BadInput line naming the file):
- v0.1 bare state dict (`hubert-soft-0d54a1f4.pt`, used by so-vits-svc and DDSP-SVC);
- v0.2 `{"hubert": state_dict, ...}` (`hubert-soft-35d9f29f.pt`, and the repo's training checkpoints with
  `optimizer`, `scaler`, `step`, `loss`; Kahsolt/hubert-pitdyn's `model-best.pt` too);
- DDP `module.` prefixes;
- the positional conv's weight norm as old `weight_g`/`weight_v` keys or as torch parametrizations
  (`parametrizations.weight.original0/1`, this module's own layout);
- a voxtool `model.pt` (or run folder) written by `voxtool train hubert-soft` (task "hubert-soft").

The architecture of a published file is read from its shapes (heads are not stored: hidden // 64, as every
published HuBERT), so hubert-discrete (504 labels) or a narrower re-trained network loads as well.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from voxtool.encoders.hubert import HubertSoft
from voxtool.encoders.hubert_settings import HubertArch
from voxtool.errors import BadInput
from voxtool.fileio import load_torch
from voxtool.training.modelfile import check_layout, is_model_file, load_weights, resolve_model_path

TASK = "hubert-soft"
PREFIX = "module."
WN_OLD = ("weight_g", "weight_v")
WN_NEW = ("parametrizations.weight.original0", "parametrizations.weight.original1")
POS_CONV = "positional_embedding.conv."


def strip_module_prefix(state_dict: dict[str, Any]) -> dict[str, Any]:
    """DDP's `module.` prefix removed when every key carries it (torch's consume_prefix_in_state_dict_if_present)."""
    if state_dict and all(k.startswith(PREFIX) for k in state_dict):
        return {k[len(PREFIX):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def to_parametrized_layout(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Old weight-norm keys (`...conv.weight_g/_v`) renamed to torch parametrizations (`...original0/1`)."""
    out = {}
    for k, v in state_dict.items():
        for old, new in zip(WN_OLD, WN_NEW):
            if k.endswith("." + old):
                k = k[: -len(old)] + new
                break
        out[k] = v
    return out


def to_bshall_layout(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `to_parametrized_layout`: a voxtool/new-torch state dict in bshall's published key layout."""
    out = {}
    for k, v in state_dict.items():
        for old, new in zip(WN_OLD, WN_NEW):
            if k.endswith("." + new):
                k = k[: -len(new)] + old
                break
        out[k] = v
    return out


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The HuBERT state dict inside a published file (bare or under "hubert")."""
    if isinstance(obj, dict) and "hubert" in obj:
        obj = obj["hubert"]
    if not isinstance(obj, dict) or not obj:
        raise BadInput(path, "not a HuBERT checkpoint (expected a state dict or a dict with a 'hubert' entry)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        keys = ", ".join(map(str, bad[:3]))
        raise BadInput(path, f"not a HuBERT checkpoint (entries that are not weights: {keys})")
    return to_parametrized_layout(strip_module_prefix(obj))


def _shape(sd: dict[str, torch.Tensor], key: str, path: Path) -> tuple[int, ...]:
    if key not in sd:
        shown = ", ".join(list(sd)[:3])
        raise BadInput(path, f"not a HuBERT-Soft checkpoint: no '{key}' (keys start: {shown})")
    return tuple(sd[key].shape)


def infer_arch(sd: dict[str, torch.Tensor], path: Path, dropout: float = 0.1) -> HubertArch:
    """Sizes of the network a (parametrized-layout) state dict holds, read from its shapes."""
    channels = _shape(sd, "feature_extractor.conv0.weight", path)[0]
    hidden, _ = _shape(sd, "feature_projection.projection.weight", path)
    ffn = _shape(sd, "encoder.layers.0.linear1.weight", path)[0]
    unit_dim = _shape(sd, "proj.weight", path)[0]
    labels = _shape(sd, "label_embedding.weight", path)[0]
    v = _shape(sd, POS_CONV + WN_NEW[1], path)
    layers = len({k.split(".")[2] for k in sd if k.startswith("encoder.layers.")})
    try:
        return HubertArch(conv_channels=channels, hidden=hidden, layers=layers, heads=max(1, hidden // 64), ffn=ffn,
                          pos_conv_kernel=v[2], pos_conv_groups=max(1, hidden // max(1, v[1])), unit_dim=unit_dim,
                          labels=labels, dropout=dropout)
    except ValueError as e:
        raise BadInput(path, f"not a HuBERT-Soft checkpoint (inconsistent shapes: {str(e).splitlines()[0]})") from None


def read_hubert_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], HubertArch, dict[str, Any]]:
    """(state dict in this module's layout, its architecture, model-file meta or {}) of any accepted file."""
    p = resolve_model_path(path)
    obj = load_torch(p)
    if is_model_file(obj):
        check_layout(p, obj)
        if obj["task"] != TASK:
            raise BadInput(p, f"model is for task '{obj['task']}', not a HuBERT-Soft content encoder ({TASK})")
        try:
            arch = HubertArch.model_validate(obj["config"].get("arch", {}))
        except ValueError as e:
            raise BadInput(p, f"garbled model file: bad [arch] ({str(e).splitlines()[0]})") from None
        return to_parametrized_layout(obj["state_dict"]), arch, obj.get("meta", {})
    sd = _unwrap(obj, p)
    return sd, infer_arch(sd, p), {}


def load_hubert(path: str | os.PathLike, device: str | torch.device = "cpu") -> HubertSoft:
    """HubertSoft (eval mode, on `device`) with the weights of `path`, loaded strictly."""
    p = resolve_model_path(path)
    sd, arch, _ = read_hubert_state(p)
    model = HubertSoft(arch)
    check_shapes(model, sd, p)
    load_weights(model, sd, p)
    return model.to(device).eval()


def check_shapes(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """BadInput naming the first three weights whose shape differs from the model's (keys both hold)."""
    own = model.state_dict()
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
           if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        shown = "; ".join(f"{k} {got} (model: {want})" for k, got, want in bad[:3])
        more = f" ... ({len(bad)} in all)" if len(bad) > 3 else ""
        raise BadInput(path, f"weights of the wrong shape: {shown}{more}")
