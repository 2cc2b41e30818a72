"""A loaded DiffVC ready to convert (`Converter`: the model, the vocoder and the GE2E encoder on one device) and
`load_model`, which builds it from a voxtool model.pt / run folder or a published `vc_*_wodyn.pt`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxtool.errors import BadInput
from voxtool.vocoders.settings import MelSettings

DEFAULT_CHUNK_FRAMES = 512  # ~5.9 s per chunk at hop 256 / 22.05 kHz
DEFAULT_BATCH_CHUNKS = 4
OVERLAP_FRAMES = 32  # cross-fade between chunks (~0.37 s)


@dataclass
class Converter:
    """A loaded DiffVC (eval) + vocoder + the GE2E encoder (loaded on first use) on one device."""

    vc: torch.nn.Module
    vocoder: Any  # voxtool.vocoders.loading.Vocoder
    mel: MelSettings
    device: Any  # voxtool.devices.Device
    description: str = ""
    precision: str = "32"
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    batch_chunks: int = DEFAULT_BATCH_CHUNKS
    _ge2e: Any = field(default=None, repr=False)
    _log_mel: Any = field(default=None, repr=False)

    @property
    def sample_rate(self) -> int:
        return self.mel.sample_rate

    def ge2e(self):
        if self._ge2e is None:
            from voxtool.encoders.ge2e import load_ge2e

            self._ge2e = load_ge2e(self.device.torch)
        return self._ge2e

    def log_mel(self, wav: np.ndarray) -> np.ndarray:
        """Mono float32 (N,) at the model's rate -> HiFi-GAN log-mel (80, N // hop)."""
        if self._log_mel is None:
            from voxtool.vocoders.mel import VocoderLogMel

            self._log_mel = VocoderLogMel(self.mel)
        hop = self.mel.hop_length
        wav = wav[: len(wav) // hop * hop]
        with torch.inference_mode():
            return self._log_mel(torch.from_numpy(np.ascontiguousarray(wav, np.float32))).numpy()



# ------------------------------------------------------------------------------------------------- loading

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1].strip()[:160] if text else type(exc).__name__


def build_vc(encoder_cfg, decoder_cfg, state: dict, where) -> torch.nn.Module:
    """DiffVC of the given sizes with `state` (published key layout) loaded strictly, in eval mode."""
    from voxtool.tasks.diffvc.vc import DiffVC
    from voxtool.training.modelfile import load_weights

    vc = DiffVC(encoder_cfg, decoder_cfg)
    load_weights(vc, state, where)
    return vc.eval()


def load_model(model: str | Path, vocoder: str | Path = "griffinlim", device: str = "cpu", preset: str | None = None,
               precision: str = "32", chunk_frames: int = DEFAULT_CHUNK_FRAMES,
               batch_chunks: int = DEFAULT_BATCH_CHUNKS) -> Converter:
    """The DiffVC model (see the module doc) and the vocoder, both on `device`."""
    from voxtool.devices import normalise_precision, resolve_device
    from voxtool.fileio import load_torch
    from voxtool.presets import load_config
    from voxtool.tasks.diffvc.checkpoint import load_vc_state
    from voxtool.tasks.diffvc.config import DiffvcConfig
    from voxtool.training.modelfile import is_model_file, load_model_file, resolve_model_path
    from voxtool.vocoders.loading import load_vocoder
    from voxtool.vocoders.mel import check_mel_settings

    if not OVERLAP_FRAMES * 4 <= chunk_frames <= 100_000 or chunk_frames % 4:
        raise BadInput(None, f"chunk_frames {chunk_frames}: a multiple of 4 from {OVERLAP_FRAMES * 4} to 100000")
    if not 1 <= batch_chunks <= 256:
        raise BadInput(None, f"batch_chunks {batch_chunks}: choose 1 to 256")
    dev = resolve_device(device)
    precision = normalise_precision(precision)
    path = resolve_model_path(model)
    obj = load_torch(path)
    if is_model_file(obj):
        mf = load_model_file(path, task="diffvc")
        try:
            config = DiffvcConfig.model_validate(mf.config)
        except Exception as exc:  # ValidationError / TypeError of a garbled config
            raise BadInput(path, f"model file lacks valid diffvc settings ({_first_line(exc)})") from None
        state = load_vc_state(mf.state_dict, path, config.encoder, config.decoder)
        description = f"voxtool diffvc model (step {mf.meta.get('step', '?')})"
    else:
        # a published checkpoint: sizes from `preset`, or read from its weights' shapes
        config = load_config(DiffvcConfig, preset or "diffvc", task="diffvc")
        if preset is None:
            from voxtool.tasks.diffvc.checkpoint import infer_decoder_section, infer_encoder_section, unwrap_state

            state = unwrap_state(obj, path)
            enc_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
            config = config.model_copy(update={"encoder": infer_encoder_section(enc_state, path),
                                               "decoder": infer_decoder_section(state, path)})
        state = load_vc_state(obj, path, config.encoder, config.decoder)
        description = f"published DiffVC checkpoint ({f'preset {preset}' if preset else 'sizes from its weights'})"
    vc = build_vc(config.encoder, config.decoder, state, path).to(dev.torch)
    voc = load_vocoder(vocoder, mel=config.mel, device=str(dev.torch), precision=precision)
    try:
        check_mel_settings(config.mel, voc.mel.model_dump(), where=vocoder)
    except ValueError as exc:
        raise BadInput(vocoder, f"the vocoder's mel differs from the model's ({_first_line(exc)})") from None
    return Converter(vc, voc, config.mel, dev, description, precision, chunk_frames, batch_chunks)
