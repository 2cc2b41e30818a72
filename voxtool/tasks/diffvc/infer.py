"""Voice conversion with DiffVC: source speech + a reference voice -> the source's words in the reference voice.

Layers (torchcrepe style): `load_model(model, vocoder)` -> `Converter`; `predict(audio, sr, reference, converter)`
-> (wav, sr); `predict_from_file(path, reference, converter)`; `predict_from_files_to_files(jobs, reference,
converter)`; `evaluate_dataset(model, data, split)` -> `voxtool.evaluation.EvalResult`.

`model`: a voxtool model.pt / run folder of `train diffvc` (the whole DiffVC and its config), or a published
`vc_libritts_wodyn.pt` / `vc_vctk_wodyn.pt` (a plain state dict; sizes from `preset`, default `diffvc`).
`vocoder`: anything `voxtool.vocoders.loading.load_vocoder` takes with the HiFi-GAN 22.05 kHz mel (a `train
hifigan` model.pt on 22.05 kHz mels, jik876's UNIVERSAL_V1 / DiffVC's `generator`, or "griffinlim").

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voxtool.errors import BadInput
from voxtool.vocoders.settings import MelSettings

SAMPLERS = ("ml", "em", "pf")
DEFAULT_STEPS = 6
MAX_STEPS = 1000
DEFAULT_CHUNK_FRAMES = 512  # ~5.9 s per chunk at hop 256 / 22.05 kHz
OVERLAP_FRAMES = 32  # cross-fade between chunks (~0.37 s)
DEFAULT_BATCH_CHUNKS = 4
MAX_REF_FRAMES = 1024  # ~11.9 s of reference mel at most (the reference block runs at full resolution)
MIN_FRAMES = 4  # shorter inputs (< ~46 ms) are refused
# a converted log-mel is clipped to what a real one can hold before vocoding: below, the mel's own floor ln(1e-5);
# above, ln(100) (a full-scale sine gives about ln(20) in its loudest bin), so a badly trained or undertrained decoder
# cannot overflow the vocoder
MEL_CEILING = math.log(100.0)


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


@dataclass
class Reference:
    mel: np.ndarray  # (80, F_ref) log-mel for the reference block
    embed: np.ndarray  # (256,) L2-normalised GE2E d-vector


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


# ------------------------------------------------------------------------------------------------- reference

def make_reference(wavs: list[tuple[np.ndarray, int]], converter: Converter, embed: np.ndarray | None = None,
                   max_frames: int = MAX_REF_FRAMES) -> Reference:
    """One speaker's utterances [(wav, sr), ...] -> Reference: the averaged d-vector (or `embed` when given) and a
    middle slice of each utterance's mel (max_frames // len(wavs) frames each), concatenated."""
    from voxtool.audio.io import resample

    if not wavs:
        raise BadInput(None, "no reference audio")
    share = max(max_frames // len(wavs), 32)
    mels = []
    for wav, sr in wavs:
        mel = converter.log_mel(resample(np.asarray(wav, np.float32), sr, converter.sample_rate))
        if mel.shape[1] > share:
            start = (mel.shape[1] - share) // 2
            mel = mel[:, start:start + share]
        mels.append(mel)
    mel = np.concatenate(mels, axis=1)[:, :max_frames]
    if mel.shape[1] < MIN_FRAMES:
        raise BadInput(None, "reference audio is too short")
    if embed is None:
        embed = converter.ge2e().embed_speaker(list(wavs))
    return Reference(mel.astype(np.float32), np.asarray(embed, np.float32))


def reference_files(ref: str | Path) -> list[Path]:
    """`--ref`: an audio file, or a folder of one speaker's audio files (searched recursively)."""
    from voxtool.audio.io import is_audio_file

    ref = Path(ref)
    if ref.is_dir():
        files = sorted(p for p in ref.rglob("*") if p.is_file() and is_audio_file(p))
        if not files:
            raise BadInput(ref, "reference folder holds no audio files")
        return files
    if not ref.is_file():
        raise BadInput(ref, "reference not found")
    return [ref]


def reference_from_paths(ref: str | Path, converter: Converter) -> Reference:
    from voxtool.audio.io import load_audio_channels

    wavs = []
    for path in reference_files(ref):
        data, sr = load_audio_channels(path)
        wavs.append((data.mean(axis=1).astype(np.float32), sr))
    try:
        return make_reference(wavs, converter)
    except BadInput as exc:
        raise BadInput(exc.where or ref, exc.problem) from None


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
