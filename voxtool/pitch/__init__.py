"""Pitch (f0) estimation as a library layer: RMVPE (a model) or WORLD harvest/dio (no model).

    from voxtool.pitch import estimate_f0
    times, f0, confidence = estimate_f0(audio, 16000, method="rmvpe", model="rmvpe.pt")
    times, f0, voiced = estimate_f0(audio, 16000, method="harvest")

Tasks that need f0 (the rmvpe task, Soft-VC's explicit-pitch variant, DiffVC's analysis) import this layer, never
the rmvpe task. Modules (imported lazily, this package itself imports neither torch nor numpy):

    settings.py      RmvpeArch (network size) and published_mel_config(): torch-free, for config modules
    rmvpe_model.py   E2E0 with the module names of the published checkpoints
    checkpoint.py    load_state_dict_any: published layouts (RVC rmvpe.pt, yxlllc model.pt, DDP) loaded strictly
    decode.py        cents <-> bins, Gaussian targets, local-average and Viterbi decoding, f0 resampling
    runtime.py       load_model, TorchPitchModel / OnnxPitchModel
    rmvpe.py         chunked predict / predict_from_file -> PitchTrack
    world.py         world_f0 (harvest, dio), pitch_shift_world
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

METHODS = ("rmvpe", "harvest", "dio")


def estimate_f0(
    audio: np.ndarray,
    sr: int,
    method: str = "rmvpe",
    model: Any = None,
    hop_ms: float = 10.0,
    *,
    device: str = "cpu",
    f0_min: float = 50.0,
    f0_max: float = 1100.0,
    **rmvpe_options: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mono audio (N,) at `sr` -> (times (T,) s, f0 (T,) Hz with 0 = unvoiced, confidence_or_voicing (T,)).

    Frame i is at i * hop_ms / 1000 s. `method`:
    - "rmvpe": `model` is a path (voxtool run / model.pt, published rmvpe.pt, exported .onnx) loaded on
      `device`, or a model `voxtool.pitch.runtime.load_model` returned (load once for many calls). The third
      array is the peak salience (0..1); `rmvpe_options` go to `voxtool.pitch.rmvpe.predict` (threshold,
      chunk_frames, context_frames, batch_size, decoder). The model's 10 ms track is resampled to `hop_ms` by
      log-f0 interpolation inside voiced runs. `f0_min`/`f0_max` do not apply (the model covers 31.7-2005 Hz).
    - "harvest" (robust) or "dio" (fast): WORLD, no model; searches `f0_min`..`f0_max`. The third array is the
      voicing (1.0 voiced, 0.0 unvoiced).
    """
    import numpy as np

    if method not in METHODS:
        raise ValueError(f"unknown f0 method {method!r} (choose {', '.join(METHODS)})")
    if hop_ms <= 0:
        raise ValueError(f"hop_ms must be > 0, not {hop_ms}")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (N,), got shape {audio.shape}")
    if method != "rmvpe":
        from voxtool.pitch.world import world_f0

        if rmvpe_options:
            raise TypeError(f"options {sorted(rmvpe_options)} apply to method 'rmvpe' only")
        times, f0 = world_f0(audio, sr, hop_ms, f0_min, f0_max, method=method)
        return times, f0, (f0 > 0).astype(np.float32)
    from voxtool.pitch.rmvpe import predict
    from voxtool.pitch.runtime import load_model

    if model is None:
        raise ValueError("method 'rmvpe' needs a model (a path or a loaded model); 'harvest' needs none")
    if isinstance(model, (str, Path)):
        model = load_model(model, device=device)
    track = predict(audio, sr, model, **rmvpe_options).resampled(hop_ms / 1000.0)
    return track.times, track.f0, track.confidence
