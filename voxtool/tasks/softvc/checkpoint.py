"""Acoustic-model files -> a strictly loaded `AcousticModel` plus what conversion needs to feed it.

Accepted (a path; a run folder means its model.pt):
- a voxtool `model.pt` written by `voxtool train softvc` (config, dataset statistics and mel settings inside);
- bshall/acoustic-model and hubert-pitdyn checkpoints `{"acoustic-model": state_dict, "optimizer", "step", ...}`
  (hub files `hubert-soft-0321fd7e.pt`; pd's `model-best.pt`), DDP `module.` prefixes included;
- a bare state dict in the same layout.
Published files carry no config: the sizes are read from the weights' shapes and the conditioning from the input
width (256 -> none, 768 -> pitdyn, 259 -> explicit). Every problem is one BadInput line naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from voxtool.errors import BadInput
from voxtool.fileio import load_torch
from voxtool.tasks.softvc.config import EXPLICIT_FEATURES, AcousticSection, SoftvcConfig
from voxtool.tasks.softvc.model import AcousticModel
from voxtool.training.modelfile import is_model_file, load_model_file, load_weights, resolve_model_path
from voxtool.vocoders.settings import MEL_16K_BSHALL, MelSettings

TASK = "softvc"
PUBLISHED_KEY = "acoustic-model"
PREFIX = "module."


@dataclass
class AcousticMeta:
    """What came with the weights: the model's section, its mel, the dataset statistics (None for published files:
    explicit conditioning then needs them from elsewhere), and the rest of a voxtool file's meta."""

    section: AcousticSection
    mel: MelSettings = field(default_factory=lambda: MEL_16K_BSHALL)
    stats: dict[str, Any] | None = None
    source: str = "published"  # "voxtool" | "published"
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def conditioning(self) -> str:
        return self.section.conditioning


def strip_prefix(state_dict: dict[str, Any], prefix: str = PREFIX) -> dict[str, Any]:
    """DDP's `module.` prefix removed when every key has it (as torch's consume_prefix_in_state_dict_if_present)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def published_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """`{"acoustic-model": sd, ...}` or a bare state dict -> a flat state dict without `module.`."""
    if isinstance(obj, dict) and isinstance(obj.get(PUBLISHED_KEY), dict):
        obj = obj[PUBLISHED_KEY]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BadInput(path, "not an acoustic-model checkpoint (expected {'acoustic-model': state_dict}, a state "
                             "dict or a voxtool softvc model.pt)")
    return strip_prefix(obj)


def section_from_weights(sd: dict[str, torch.Tensor], path: Path, unit_dim: int = 256) -> tuple[AcousticSection, int]:
    """The sizes of a published state dict (and its n_mels), read from the shapes of bshall's key layout."""
    if "encoder.embedding.weight" in sd:
        raise BadInput(path, "a discrete-unit acoustic model (encoder.embedding); softvc uses soft units "
                             "(bshall's hubert-soft-0321fd7e.pt)")
    need = ("encoder.prenet.net.0.weight", "encoder.convs.0.weight", "decoder.prenet.net.0.weight",
            "decoder.lstm1.weight_hh_l0")
    missing = [k for k in need if k not in sd]
    if missing:
        raise BadInput(path, f"not bshall's acoustic-model layout (no {', '.join(missing[:2])})")
    prenet_width, in_dim = sd["encoder.prenet.net.0.weight"].shape
    by_width = {unit_dim: "none", 3 * unit_dim: "pitdyn", unit_dim + EXPLICIT_FEATURES: "explicit"}
    if in_dim not in by_width:
        raise BadInput(path, f"input width {in_dim} is none of {unit_dim} (units), {3 * unit_dim} (pitdyn), "
                             f"{unit_dim + EXPLICIT_FEATURES} (explicit)")
    dec_width, n_mels = sd["decoder.prenet.net.0.weight"].shape
    if "decoder.harmonic.weight" in sd:
        raise BadInput(path, "an explicit model with a harmonic prior needs its voxtool model.pt (the f0 range it was "
                             "trained on), not its bare weights")
    # published files have no side layers; a voxtool pitdyn model's bare weights may (model.side_path)
    section = AcousticSection(conditioning=by_width[in_dim], unit_dim=unit_dim, pitdyn_dim=unit_dim,
                              prenet_width=prenet_width, encoder_width=sd["encoder.convs.0.weight"].shape[0],
                              decoder_prenet_width=dec_width, lstm_width=sd["decoder.lstm1.weight_hh_l0"].shape[1],
                              side_path="encoder.side.weight" in sd, harmonic_prior=False)
    return section, int(n_mels)


def load_acoustic(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[AcousticModel, AcousticMeta]:
    """A trained or published acoustic model, loaded strictly, in eval mode on `device`, with its meta."""
    p = resolve_model_path(path)
    obj = load_torch(p)
    if is_model_file(obj):
        mf = load_model_file(p, task=TASK)
        try:
            config = SoftvcConfig.model_validate(mf.config)
        except ValueError as e:
            raise BadInput(p, f"garbled softvc config ({str(e).splitlines()[0][:160]})") from None
        meta = AcousticMeta(config.model, config.mel, mf.meta.get("stats"), "voxtool", p, dict(mf.meta))
        state_dict, n_mels = mf.state_dict, config.mel.n_mels
    else:
        state_dict = published_state_dict(obj, p)
        section, n_mels = section_from_weights(state_dict, p)
        meta = AcousticMeta(section, MEL_16K_BSHALL, None, "published", p)
        if n_mels != MEL_16K_BSHALL.n_mels:
            raise BadInput(p, f"the model makes {n_mels} mel bins; bshall's vocoder mel has {MEL_16K_BSHALL.n_mels}")
    model = AcousticModel(meta.section, n_mels, meta.mel)
    load_weights(model, state_dict, p)
    return model.to(device).eval(), meta
