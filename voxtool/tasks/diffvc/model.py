"""The diffvc task's networks (the names the rest of the task uses).

- `DiffVC` (vc.py): the whole model, `encoder` + `decoder`, key layout of the published `vc_*_wodyn.pt`;
  `compute_loss(x, x_lengths, x_ref, c)` for decoder training, `convert(...)` for conversion.
- `FwdDiffusion` (encoder.py): the average-voice encoder, key layout of the published `enc.pt`.
- `Diffusion`, `VPSDE`, `reverse_sde` (diffusion.py): the decoder's VP-SDE and its ml / em / pf samplers.
- `GradLogPEstimator` (unet.py): the U-Net score network.
- `EncoderSection`, `DecoderSection` (model_config.py, torch-free): their sizes.
- `load_vc_state`, `load_encoder_state` (checkpoint.py): published and voxtool checkpoints, strictly checked.
"""

from __future__ import annotations

from voxtool.tasks.diffvc.checkpoint import load_encoder_state, load_vc_state
from voxtool.tasks.diffvc.diffusion import SAMPLERS, VPSDE, Diffusion, reverse_sde
from voxtool.tasks.diffvc.encoder import FwdDiffusion, masked_mse, sequence_mask
from voxtool.tasks.diffvc.model_config import DecoderSection, EncoderSection
from voxtool.tasks.diffvc.unet import GradLogPEstimator
from voxtool.tasks.diffvc.vc import LOG_MEL_FLOOR, DiffVC

__all__ = ["LOG_MEL_FLOOR", "SAMPLERS", "VPSDE", "DecoderSection", "DiffVC", "Diffusion", "EncoderSection",
           "FwdDiffusion", "GradLogPEstimator", "load_encoder_state", "load_vc_state", "masked_mse", "reverse_sde",
           "sequence_mask"]
