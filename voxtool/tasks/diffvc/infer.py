"""Voice conversion with DiffVC: source speech + a reference voice -> the source's words in the reference voice.

Layers (torchcrepe style): `load_model(model, vocoder)` -> `Converter`; `predict(audio, sr, reference, converter)`
-> (wav, sr); `predict_from_file(path, reference, converter)`; `predict_from_files_to_files(jobs, reference,
converter)`; `evaluate_dataset(model, data, split)` -> `voxtool.evaluation.EvalResult`.

`model`: a voxtool model.pt / run folder of `train diffvc` (the whole DiffVC and its config), or a published
`vc_libritts_wodyn.pt` / `vc_vctk_wodyn.pt` (a plain state dict; sizes from `preset`, default `diffvc`).
`vocoder`: anything `voxtool.vocoders.loading.load_vocoder` takes with the HiFi-GAN 22.05 kHz mel (a `train
hifigan` model.pt on 22.05 kHz mels, jik876's UNIVERSAL_V1 / DiffVC's `generator`, or "griffinlim").

`runtime.py` holds `Converter` and `load_model`, `reference.py` the `Reference` helpers; both are re-exported here.

The reference (`make_reference`): a d-vector (GE2E, `voxtool.encoders.ge2e`; several files of one speaker are
averaged and re-normalised) and a reference mel for the decoder's reference block (several files: a slice of each,
concatenated, at most `MAX_REF_FRAMES`).

Conversion (`convert_mel`): the source mel is cut into chunks of `chunk_frames` overlapping by `OVERLAP_FRAMES`;
the chunks go through the encoder and the reverse diffusion in batches of `batch_chunks` (memory stays flat in the
input's length) and are cross-faded back. Sampling starts from the source's average-voice mean diffused to t=1
plus N(0, I), seeded per input (`seed`) so a conversion repeats exactly. `--denoise` is `denoise.py`'s spectral
subtraction with the silence located on the source. On accelerators `precision` "16"/"bf16" runs the networks
under autocast.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from voxtool.errors import BadInput
from voxtool.tasks.diffvc.reference import (  # noqa: F401  (part of this module's API)
    MAX_REF_FRAMES,
    MIN_FRAMES,
    Reference,
    make_reference,
    reference_files,
    reference_from_paths,
)
from voxtool.tasks.diffvc.runtime import (  # noqa: F401  (part of this module's API)
    DEFAULT_BATCH_CHUNKS,
    DEFAULT_CHUNK_FRAMES,
    OVERLAP_FRAMES,
    Converter,
    build_vc,
    load_model,
)

SAMPLERS = ("ml", "em", "pf")
DEFAULT_STEPS = 6
MAX_STEPS = 1000
# a converted log-mel is clipped to what a real one can hold before vocoding: below, the mel's own floor ln(1e-5);
# above, ln(100) (a full-scale sine gives about ln(20) in its loudest bin), so a badly trained or undertrained decoder
# cannot overflow the vocoder
MEL_CEILING = math.log(100.0)


# ------------------------------------------------------------------------------------------------- conversion

def chunk_spans(frames: int, chunk: int, overlap: int = OVERLAP_FRAMES) -> list[tuple[int, int]]:
    """[start, end) spans of at most `chunk` frames covering `frames`, neighbours overlapping by >= `overlap`."""
    if frames <= chunk:
        return [(0, frames)]
    hop = chunk - overlap
    return [(s, min(s + chunk, frames)) for s in range(0, frames - overlap, hop)]


def _fade_weights(start: int, end: int, frames: int, overlap: int) -> np.ndarray:
    w = np.ones(end - start, np.float32)
    ramp = np.linspace(0.0, 1.0, overlap + 2, dtype=np.float32)[1:-1]  # strictly positive
    if start > 0:
        n = min(overlap, len(w))
        w[:n] = ramp[:n]
    if end < frames:
        n = min(overlap, len(w))
        w[-n:] = np.minimum(w[-n:], ramp[::-1][-n:])
    return w


def convert_mel(mel: np.ndarray, reference: Reference, converter: Converter, steps: int = DEFAULT_STEPS,
                sampler: str = "ml", seed: int = 0, return_prior: bool = False, temperature: float = 1.0):
    """Source log-mel (80, F) -> converted log-mel (80, F) (and, with `return_prior`, the diffused average-voice
    mean (80, F) the sampler started from). Chunked and batched as the module doc says. `temperature` > 1 shrinks
    the start noise (N(0, I) / temperature; Grad-TTS samples with 1.5); 1 is DiffVC's own."""
    from voxtool.devices import autocast

    if sampler not in SAMPLERS:
        raise BadInput(None, f"sampler '{sampler}': choose {', '.join(SAMPLERS)}")
    if not 1 <= steps <= MAX_STEPS:
        raise BadInput(None, f"steps {steps}: choose 1 to {MAX_STEPS}")
    if not 0.1 <= temperature <= 10:
        raise BadInput(None, f"temperature {temperature}: choose 0.1 to 10")
    frames = mel.shape[1]
    if frames < MIN_FRAMES:
        raise BadInput(None, f"input too short ({frames} mel frames; at least {MIN_FRAMES})")
    dev = converter.device.torch
    spans = chunk_spans(frames, converter.chunk_frames)
    out = np.zeros_like(mel, dtype=np.float32)
    prior = np.zeros_like(out)
    weight = np.zeros(frames, np.float32)
    ref = torch.from_numpy(reference.mel).to(dev)[None]  # one reference for every chunk (encoded once)
    ref_lengths = torch.tensor([ref.shape[-1]], device=dev)
    embed = torch.from_numpy(reference.embed).to(dev)[None]
    for lo in range(0, len(spans), converter.batch_chunks):
        group = spans[lo:lo + converter.batch_chunks]
        width = max(e - s for s, e in group)
        x = torch.zeros(len(group), mel.shape[0], width)
        for i, (s, e) in enumerate(group):
            x[i, :, :e - s] = torch.from_numpy(mel[:, s:e])
        lengths = torch.tensor([e - s for s, e in group])
        generator = torch.Generator(device=dev).manual_seed(seed * 100_003 + lo)  # repeatable per input and chunk
        with torch.inference_mode(), autocast(converter.device, converter.precision):
            mean, y = converter.vc.convert(x.to(dev), lengths.to(dev), ref, ref_lengths, embed, n_timesteps=steps,
                                           sampler=sampler, temperature=temperature, generator=generator)
        y, mean = y.float().cpu().numpy(), mean.float().cpu().numpy()
        for i, (s, e) in enumerate(group):
            w = _fade_weights(s, e, frames, OVERLAP_FRAMES)
            out[:, s:e] += y[i, :, :e - s] * w
            prior[:, s:e] += mean[i, :, :e - s] * w
            weight[s:e] += w
    out /= weight
    prior /= weight
    return (out, prior) if return_prior else out


def vocode(mel: np.ndarray, converter: Converter) -> np.ndarray:
    """Converted log-mel (80, F) -> float32 waveform (F * hop,) in [-1, 1] (the mel clipped as MEL_CEILING says)."""
    mel = np.clip(mel, math.log(converter.mel.log_floor), MEL_CEILING)
    return np.clip(converter.vocoder.synthesize(torch.from_numpy(mel)[None])[0], -1.0, 1.0)


def predict(audio: np.ndarray, sr: int, reference: Reference | list[tuple[np.ndarray, int]], converter: Converter,
            steps: int = DEFAULT_STEPS, sampler: str = "ml", denoise: bool = False,
            seed: int = 0) -> tuple[np.ndarray, int]:
    """Mono waveform (N,) at `sr` -> (converted float32 waveform in [-1, 1] at the model's rate, that rate).

    The output is as long as the input resampled to the model's rate (the last partial hop is silence)."""
    from voxtool.audio.io import resample

    if not isinstance(reference, Reference):
        reference = make_reference(list(reference), converter)
    wav = resample(np.asarray(audio, np.float32), sr, converter.sample_rate)
    mel = converter.log_mel(wav)
    converted = convert_mel(mel, reference, converter, steps, sampler, seed)
    if denoise:
        from voxtool.tasks.diffvc.denoise import spectral_subtraction

        converted = spectral_subtraction(converted, mel)
    out = vocode(converted, converter)
    out = np.pad(out, (0, max(0, len(wav) - len(out))))[: len(wav)]
    return out.astype(np.float32), converter.sample_rate


def predict_from_file(path: str | Path, reference: Reference, converter: Converter, **options) -> tuple[np.ndarray,
                                                                                                        int]:
    """An audio file -> (converted waveform, sample rate); `options` as `predict`."""
    from voxtool.audio.io import load_audio_channels

    data, sr = load_audio_channels(path)
    try:
        return predict(data.mean(axis=1), sr, reference, converter, **options)
    except BadInput as exc:
        raise BadInput(exc.where or path, exc.problem) from None


def predict_from_files_to_files(jobs: list, reference: Reference, converter: Converter, *, steps: int = DEFAULT_STEPS,
                                sampler: str = "ml", denoise: bool = False, seed: int = 0, advance=None,
                                fail_fast: bool = False, out: Path | None = None):
    """Every `Job(src audio, dst .wav)` with one loaded model and reference -> `voxtool.batch.BatchResults` (a bad
    file is one `error: <file>: <problem>` line; the batch goes on unless `fail_fast`)."""
    from voxtool.audio.io import save_audio
    from voxtool.batch import run_jobs

    def work(job) -> dict:
        wav, sr = predict_from_file(job.src, reference, converter, steps=steps, sampler=sampler, denoise=denoise,
                                    seed=seed)
        save_audio(job.dst, wav, sr, subtype="PCM_16")
        return {"input": str(job.src), "output": str(job.dst), "samples": int(len(wav)),
                "seconds": round(len(wav) / sr, 4)}

    return run_jobs(jobs, work, fail_fast=fail_fast, advance=advance, out=out)


def evaluate_dataset(model, data: str | Path, split: str = "unseen", *, device: str = "cpu", limit: int = 0,
                     advance=None, vocoder: str | Path = "griffinlim", steps: int = DEFAULT_STEPS,
                     sampler: str = "ml", seed: int = 0, preset: str | None = None):
    """See `metrics.evaluate_conversion`: any-to-any conversion between the split's speakers."""
    from voxtool.tasks.diffvc.metrics import evaluate_conversion

    converter = model if isinstance(model, Converter) else load_model(model, vocoder, device=device, preset=preset)
    return evaluate_conversion(converter, data, split, limit=limit, advance=advance, steps=steps, sampler=sampler,
                               seed=seed)
