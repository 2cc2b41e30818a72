"""A ready vocoder from a path: voxtool model files, published generator checkpoints, or Griffin-Lim.

The one loader every mel -> waveform step uses (the `hifigan` task's `infer`, and the voice-conversion tasks'
`convert`), so a conversion command accepts exactly what `voxtool infer hifigan` accepts:

    vocoder = load_vocoder("runs/voc/model.pt")                         # voxtool `train hifigan` output
    vocoder = load_vocoder("g_02500000", mel=MEL_22K_JIK876)            # published generator, mel given
    vocoder = load_vocoder("hifigan-hubert-soft-0d54a1f4.pt")           # published, mel found from the layout
    vocoder = load_vocoder("griffinlim", mel=MEL_16K_BSHALL)            # no weights at all
    wav = vocoder.synthesize(mel)                                       # (B, n_mels, F) -> (B, F * hop)

A published checkpoint carries no settings: its generator layout is read from the weights (or given as
`generator`), and its mel is `mel` when given, else the one published mel with the generator's n_mels and hop.
A voxtool model file carries both; a `mel` that contradicts the file's is a BadInput (a vocoder only sounds right
on its own features). Weight norm is removed; the generator runs under `torch.inference_mode`; long mels are
synthesised in overlapping chunks (`chunk_frames`; `voxtool.vocoders.streaming`) so memory stays flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from voxtool.errors import BadInput
from voxtool.vocoders.hifigan import Generator, GeneratorConfig
from voxtool.vocoders.mel import PUBLISHED_MELS, MelSettings
from voxtool.vocoders.streaming import DEFAULT_CHUNK_FRAMES, DEFAULT_FADE_FRAMES, synthesize_chunked

GRIFFINLIM = "griffinlim"
MAX_CHUNK_FRAMES = 100_000


@dataclass
class Vocoder:
    """A ready generator (eval, weight norm removed) on a device with the mel settings it expects."""

    generator: Generator  # or a `voxtool.vocoders.griffinlim.GriffinLim`
    mel: MelSettings
    device: torch.device
    description: str = ""
    chunk_frames: int = DEFAULT_CHUNK_FRAMES  # 0 = whole input in one pass
    context_frames: int | None = None  # None = the generator's receptive field + 2 (streaming.py)
    precision: str = "32"  # "32" | "16" | "bf16": autocast of the generator

    @property
    def is_griffinlim(self) -> bool:
        return not isinstance(self.generator, Generator)

    def synthesize(self, mel: torch.Tensor) -> np.ndarray:
        """(B, n_mels, F) on any device -> float32 numpy (B, F * hop), not clamped; under inference_mode."""
        from voxtool.devices import autocast

        mel = mel.to(self.device)
        with torch.inference_mode():
            if self.is_griffinlim:
                return self.generator(mel)[:, 0].cpu().numpy()
            with autocast(self.device, self.precision):
                return synthesize_chunked(self.generator, mel, self.chunk_frames, self.context_frames,
                                          DEFAULT_FADE_FRAMES, self.hop_length)

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    @property
    def hop_length(self) -> int:
        return self.mel.hop_length


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1].strip()[:160] if text else type(exc).__name__


def is_griffinlim(spec: str | Path) -> bool:
    """True for the word "griffinlim" (any case) unless a file of that name exists."""
    return str(spec).lower() == GRIFFINLIM and not Path(spec).exists()


def load_vocoder(spec: str | Path, mel: MelSettings | None = None, generator: GeneratorConfig | None = None,
                 device: str = "cpu", chunk_frames: int = DEFAULT_CHUNK_FRAMES, precision: str = "32") -> Vocoder:
    """A voxtool hifigan model.pt / run folder, a published generator checkpoint, or "griffinlim" (module doc).

    `mel`: the features the caller will feed (required for "griffinlim"; checked against a model file's; names the
    mel of a published checkpoint). `generator`: a published checkpoint's layout (default: read from its weights).
    """
    from voxtool.devices import normalise_precision, resolve_device

    if not 0 <= chunk_frames <= MAX_CHUNK_FRAMES:
        raise BadInput(None, f"chunk_frames {chunk_frames}: choose 0 (whole input) to {MAX_CHUNK_FRAMES}")
    vocoder = _load(spec, mel, generator, resolve_device(device).torch)
    vocoder.chunk_frames, vocoder.precision = chunk_frames, normalise_precision(precision)
    return vocoder


def _load(spec: str | Path, mel: MelSettings | None, gen_cfg: GeneratorConfig | None, dev: torch.device) -> Vocoder:
    from voxtool.fileio import load_torch
    from voxtool.training.modelfile import is_model_file, load_model_file, resolve_model_path
    from voxtool.vocoders.checkpoint import load_generator_state

    if is_griffinlim(spec):
        from voxtool.vocoders.griffinlim import DEFAULT_ITERATIONS, GriffinLim

        if mel is None:
            raise BadInput(None, "Griffin-Lim needs the mel settings it inverts")
        return Vocoder(GriffinLim(mel), mel, torch.device("cpu"),
                       f"Griffin-Lim, {DEFAULT_ITERATIONS} iterations ({mel.describe()})")
    path = resolve_model_path(spec)
    obj = load_torch(path)
    if is_model_file(obj):
        mf = load_model_file(path, task="hifigan")
        try:
            file_gen = GeneratorConfig.model_validate(mf.config["generator"])
            file_mel = MelSettings.model_validate(mf.config["mel"])
        except Exception as exc:  # KeyError, ValidationError, TypeError of a garbled config
            raise BadInput(path, f"model file lacks valid hifigan settings ({_first_line(exc)})") from None
        if mel is not None and mel != file_mel:
            raise BadInput(path, f"this vocoder was trained on {file_mel.describe()}, not on {mel.describe()}")
        loaded = load_generator_state(mf.state_dict, file_gen, where=path)
        mel, description = file_mel, f"voxtool hifigan model (step {mf.meta.get('step', '?')})"
    else:
        loaded = load_generator_state(obj, gen_cfg, where=path)
        layout = loaded.config
        if mel is None:
            fits = [m for m in PUBLISHED_MELS.values()
                    if m.n_mels == layout.n_mels and m.hop_length == layout.hop_length]
            if not fits:
                raise BadInput(path, f"no published mel has {layout.n_mels} mels at hop {layout.hop_length}; "
                                     "name its config with --preset")
            mel = fits[0]
            description = f"published generator ({mel.describe()})"
        else:
            if (mel.n_mels, mel.hop_length) != (layout.n_mels, layout.hop_length):
                raise BadInput(path, f"generator takes {layout.n_mels} mels at hop {layout.hop_length}, "
                                     f"not {mel.describe()}")
            description = f"published generator ({mel.describe()})"
    generator = loaded.build(remove_weight_norm=True).to(dev)
    return Vocoder(generator, mel, dev, description)
