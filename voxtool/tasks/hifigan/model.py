"""The hifigan task's networks. They live in the shared vocoder library `voxtool.vocoders` (also used by other
vocoder-based tasks and by published checkpoints); this module names what the task uses."""

from __future__ import annotations

from voxtool.vocoders.checkpoint import load_generator_state
from voxtool.vocoders.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from voxtool.vocoders.hifigan import Generator, GeneratorConfig
from voxtool.vocoders.mel import MelSettings, VocoderLogMel

__all__ = ["Generator", "GeneratorConfig", "MelSettings", "MultiPeriodDiscriminator", "MultiScaleDiscriminator",
           "VocoderLogMel", "load_generator_state"]
