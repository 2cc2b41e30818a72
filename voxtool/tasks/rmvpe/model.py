"""The rmvpe task's network: the pitch layer's E2E0 (`voxtool.pitch.rmvpe_model`) built from the `[model]` section,
with the training-only choices (output bias, fine-tuning start, frozen timbre filter).

Shapes: mel (B, n_mels, T) (T a multiple of `2 ** n_levels`) -> salience (B, T, 360).
"""

from __future__ import annotations

from pathlib import Path

import torch

from voxtool.errors import BadInput
from voxtool.pitch.checkpoint import load_state_dict_any
from voxtool.pitch.rmvpe_model import E2E0
from voxtool.tasks.rmvpe.config import ModelSection


def init_from_checkpoint(model: E2E0, path: Path) -> str:
    """Fine-tuning start: load a published checkpoint / model file into `model` (sizes must match); its layout."""
    from voxtool.fileio import load_torch

    obj = load_torch(path)
    try:
        loaded, layout = load_state_dict_any(obj, model.arch)
    except ValueError as exc:
        raise BadInput(path, str(exc)) from None
    except Exception as exc:  # odd objects inside a readable file
        raise BadInput(path, f"not an RMVPE checkpoint ({type(exc).__name__})") from None
    own = model.state_dict()
    missing = [k for k in own if k not in loaded.state_dict()]
    state = {k: v for k, v in loaded.state_dict().items() if k in own}
    for k in missing:  # the checkpoint lacks the unused tf filter: keep its fresh weights
        state[k] = own[k]
    model.load_state_dict(state)
    return layout


def build_model(section: ModelSection, log=None) -> E2E0:
    """A trainable E2E0 of `section`'s size (on the CPU); `log(text)` hears where its weights came from."""
    model = E2E0(section.arch())
    if section.output_bias_init is not None:
        # Start near the base rate of a positive bin (about 3 of 360 are 'on'): no slow descent from 0.5.
        torch.nn.init.constant_(model.fc[-3].bias, section.output_bias_init)
    if section.init:
        layout = init_from_checkpoint(model, Path(section.init))
        if log:
            log(f"initialised from {section.init} ({layout})")
    if section.with_tf:
        # E2E0 never applies the tf filter; frozen so DDP does not wait for gradients it never gets.
        for p in model.unet.tf.parameters():
            p.requires_grad_(False)
    return model
