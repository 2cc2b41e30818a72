"""DiffVC checkpoints -> state dicts that load strictly into `DiffVC` / `FwdDiffusion`.

Accepted inputs (a path, or the object `torch.load` returned):
- the published `vc_libritts_wodyn.pt` / `vc_vctk_wodyn.pt`: a plain `DiffVC.state_dict()` (346 tensors, keys
  `encoder.*` and `decoder.*`), and the decoder training's `vc_<epoch>.pt` (same layout);
- the published encoder `enc.pt` (`logs_enc/enc.pt`): a plain `FwdDiffusion.state_dict()` (keys `encoder.*` and
  `postnet.*`, i.e. the first layout without its leading `encoder.`);
- the same nested in a wrapper dict (`state_dict`, `model`, `model_state`; voxtool training checkpoints'
  `modules` -> `model`; the talkingface toolkit's `{"state_dict": ...}`), with or without DDP `module.` prefixes.

The sizes need not be given: they are read from the weights' shapes (`infer_encoder_section`,
`infer_decoder_section`), so a tiny voxtool model checks as well as a published file. The keys must then be exactly
those of the module of those sizes, and every shape must fit; anything else is a one-line BadInput naming the file
and the first offending keys. Values are not touched (a strict `load_state_dict` copies them in).
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from voxtool.errors import BadInput
from voxtool.fileio import few, nested_state_dict
from voxtool.tasks.diffvc.model_config import DecoderSection, EncoderSection
from voxtool.training.modelfile import key_report

_WRAPPERS = ("state_dict", "model", "model_state", "modules")  # keys under which checkpoints nest a state dict
_ESTIMATOR = "decoder.estimator."


def unwrap_state(obj: Any, where: Any = None) -> dict[str, torch.Tensor]:
    """Follow wrapper keys down to a flat {name: tensor} dict and strip `module.` prefixes."""
    obj = nested_state_dict(obj, _WRAPPERS, "DiffVC", where)
    while obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _shape(state: dict[str, torch.Tensor], key: str, dims: int, where: Any, what: str) -> tuple[int, ...]:
    value = state.get(key)
    if value is None or value.dim() != dims:
        raise BadInput(where, f"not a DiffVC {what}: no {dims}-D '{key}' (keys: {few(sorted(state))})")
    return tuple(value.shape)


def _levels(state: dict[str, torch.Tensor], pattern: str) -> int:
    """1 + the largest index matched by `pattern` (a regex with one group) over the keys; 0 when none."""
    found = [int(m.group(1)) for k in state if (m := re.match(pattern, k))]
    return max(found) + 1 if found else 0


def _section(cls: type, values: dict, where: Any, what: str):
    try:
        return cls(**values)
    except ValueError as exc:
        raise BadInput(where, f"{what} shapes give invalid sizes: {str(exc).splitlines()[-1].strip()}") from None


def infer_encoder_section(state: dict[str, torch.Tensor], where: Any = None) -> EncoderSection:
    """The EncoderSection whose FwdDiffusion has these shapes (state in FwdDiffusion layout; dropout as published,
    it leaves no trace in weights)."""
    channels, n_feats, _ = _shape(state, "encoder.init_proj.weight", 3, where, "encoder")
    filters, _, kernel = _shape(state, "encoder.encoder.ffn_layers.0.conv_1.weight", 3, where, "encoder")
    _, window, k_channels = _shape(state, "encoder.encoder.attn_layers.0.emb_rel_k", 3, where, "encoder")
    enc_dim = _shape(state, "postnet.init_conv.weight", 4, where, "encoder")[0]
    layers = _levels(state, r"encoder\.encoder\.attn_layers\.(\d+)\.")
    return _section(EncoderSection, dict(n_feats=n_feats, channels=channels, filters=filters,
                                         heads=max(channels // max(k_channels, 1), 1), layers=layers, kernel=kernel,
                                         window_size=(window - 1) // 2, enc_dim=enc_dim), where, "encoder")


def infer_decoder_section(state: dict[str, torch.Tensor], where: Any = None) -> DecoderSection:
    """The DecoderSection whose Diffusion has these shapes (state in DiffVC layout, `decoder.estimator.*`; the beta
    range is not stored in weights and stays published)."""
    p = _ESTIMATOR
    dec_dim = _shape(state, p + "mlp.0.weight", 2, where, "decoder")[1]
    spk_dim = _shape(state, p + "cond_block.2.weight", 2, where, "decoder")[0]
    cond_in = _shape(state, p + "cond_block.0.weight", 2, where, "decoder")[1]
    use_ref_t = any(k.startswith(p + "ref_block.") for k in state)
    n_levels = _levels(state, re.escape(p) + r"downs\.(\d+)\.")
    widths = [_shape(state, f"{p}downs.{i}.0.block1.block.0.weight", 4, where, "decoder")[0]
              for i in range(n_levels)]
    if any(w % dec_dim for w in widths):
        raise BadInput(where, f"U-Net widths {widths} are not multiples of the base width {dec_dim}")
    return _section(DecoderSection, dict(dec_dim=dec_dim, spk_dim=spk_dim, use_ref_t=use_ref_t,
                                         spk_embed_dim=cond_in - dec_dim - (spk_dim if use_ref_t else 0),
                                         dim_mults=tuple(w // dec_dim for w in widths)), where, "decoder")


def expected_shapes(module: type, *sections) -> dict[str, tuple[int, ...]]:
    """Key -> shape of `module(*sections)`'s state dict, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        built = module(*sections)
    return {k: tuple(v.shape) for k, v in built.state_dict().items()}


def check_state(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], where: Any,
                what: str) -> None:
    """BadInput unless `state` has exactly the expected keys, each of the expected shape."""
    report = key_report(expected, state)
    if report:
        raise BadInput(where, f"not a {what} state dict: {report}")
    wrong = [k for k, shape in expected.items() if tuple(state[k].shape) != shape]
    if wrong:
        first = wrong[0]
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise BadInput(where, f"{what} weight '{first}' is {tuple(state[first].shape)}, expected "
                              f"{expected[first]}{more}")


def load_vc_state(obj: Any, where: Any = None, encoder: EncoderSection | None = None,
                  decoder: DecoderSection | None = None) -> dict[str, torch.Tensor]:
    """A whole-model checkpoint (path or loaded object) -> state dict for `DiffVC(encoder, decoder)`, strict.

    Without sections the sizes are read from the shapes (`infer_*_section`); with them, the file must fit them.
    """
    from voxtool.tasks.diffvc.vc import DiffVC

    if isinstance(obj, (str, os.PathLike)):
        from voxtool.fileio import load_torch

        where = where if where is not None else obj
        obj = load_torch(obj)
    state = unwrap_state(obj, where)
    if not any(k.startswith(_ESTIMATOR) for k in state):
        hint = " (an encoder-only file such as enc.pt?)" if any(k.startswith("postnet.") for k in state) else ""
        raise BadInput(where, f"not a whole DiffVC model: no '{_ESTIMATOR}*' weights{hint}")
    encoder_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    encoder = encoder or infer_encoder_section(encoder_state, where)
    decoder = decoder or infer_decoder_section(state, where)
    try:
        expected = expected_shapes(DiffVC, encoder, decoder)
    except ValueError as exc:
        raise BadInput(where, f"encoder and decoder sizes do not fit together: {exc}") from None
    check_state(state, expected, where, "DiffVC")
    return state


def load_encoder_state(obj: Any, where: Any = None, encoder: EncoderSection | None = None) -> dict[str, torch.Tensor]:
    """An encoder checkpoint (`enc.pt`, a voxtool encoder model) or a whole-model one (`vc_*.pt`, whose encoder
    half is taken) -> state dict for `FwdDiffusion(encoder)`, strict (sizes read from the shapes when not given)."""
    from voxtool.tasks.diffvc.encoder import FwdDiffusion

    if isinstance(obj, (str, os.PathLike)):
        from voxtool.fileio import load_torch

        where = where if where is not None else obj
        obj = load_torch(obj)
    state = unwrap_state(obj, where)
    # DiffVC layout: 'encoder.encoder.*' + 'encoder.postnet.*' (+ 'decoder.*'); FwdDiffusion: 'encoder.*' + 'postnet.*'
    if not any(k.startswith("postnet.") for k in state) and any(
            k.startswith(("encoder.postnet.", "decoder.")) for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    encoder = encoder or infer_encoder_section(state, where)
    check_state(state, expected_shapes(FwdDiffusion, encoder), where, "DiffVC encoder")
    return state
