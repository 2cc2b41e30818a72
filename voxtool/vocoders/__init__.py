"""HiFi-GAN vocoders shared by the voice-conversion tasks (library layer: tasks import it, it imports no task).

Modules (this package itself imports no torch, so CLI modules may import it cheaply):
- `settings` (no torch, no numpy: task configs use these models as their sections): `MelSettings` (the published
  vocoder mels `MEL_16K_BSHALL`, `MEL_22K_JIK876`), `check_mel_settings`, `GeneratorConfig` (`HIFIGAN_16K`,
  `HIFIGAN_22K`, `HIFIGAN_TINY`), `VocoderConfig` (generator + mel: `VOCODER_16K`, `VOCODER_22K`, `VOCODER_TINY`).
The others import torch:
- `mel`: `VocoderLogMel`, `check_mel_tensor` (and re-exports the mel settings).
- `hifigan`: `Generator` (and re-exports the generator configs).
- `checkpoint`: `load_generator_state`, `load_generator` for bshall, jik876 and voxtool generator files.
- `discriminators`: `MultiPeriodDiscriminator`, `MultiScaleDiscriminator`.
- `losses`: LSGAN, feature matching, mel L1, and the weighted per-step totals.
- `loading`: `load_vocoder` (a voxtool model file, a published checkpoint or "griffinlim" -> a ready `Vocoder`),
  what every mel -> waveform command uses.

The names above are also reachable as `voxtool.vocoders.<name>` (imported on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "settings": ("MelSettings", "MEL_16K_BSHALL", "MEL_22K_JIK876", "check_mel_settings", "GeneratorConfig",
                 "HIFIGAN_16K", "HIFIGAN_22K", "HIFIGAN_TINY", "VocoderConfig", "VOCODER_16K", "VOCODER_22K",
                 "VOCODER_TINY"),
    "mel": ("VocoderLogMel", "check_mel_tensor"),
    "hifigan": ("Generator",),
    "checkpoint": ("LoadedGenerator", "load_generator_state", "load_generator"),
    "discriminators": ("MultiPeriodDiscriminator", "MultiScaleDiscriminator", "DiscriminatorOutputs"),
    "losses": ("GeneratorLoss", "discriminator_step_loss", "generator_step_loss"),
    "loading": ("Vocoder", "load_vocoder"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
