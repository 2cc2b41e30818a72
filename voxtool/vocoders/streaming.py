"""Streaming (chunked) HiFi-GAN synthesis: long mels in overlapping windows, cross-faded, with flat memory.

The generator is fully convolutional, so an output sample depends only on the mel frames within its receptive
field. `receptive_field_frames(config)` adds up, stage by stage, how far (in mel frames, each side) an output
sample can see: conv_pre (kernel 7), every transposed conv (ceil(kernel / rate) input steps), the widest
multi-receptive-field block of each stage (a ResBlock1 sees sum_d (k - 1) d / 2 + 3 (k - 1) / 2 samples, a
ResBlock2 sum_d (k - 1) d / 2) and conv_post (kernel 7): an upper bound of 13.9 frames for `HIFIGAN_16K`,
14.4 for `HIFIGAN_22K` and 11.8 for `HIFIGAN_TINY` (whose measured reach, perturbing one frame of a random
generator, is 6.9 frames). The default context is that bound rounded up plus 2 frames (16, 17, 14).

`synthesize_chunked` cuts the mel into cores of `chunk_frames` frames. Each window is its core plus
`fade_frames / 2` frames of cross-fade and `context_frames` frames of context on each side (clipped at the ends
of the input); the generator runs on one window at a time and only the core plus the fade region is kept.
Neighbouring windows overlap by `fade_frames` frames, where they are mixed with complementary linear ramps (the
weights sum to 1 sample by sample). With `context_frames` >= the receptive field the kept samples of a window are
the whole-input samples up to float rounding, so the cross-fade only hides rounding; shorter context trades
exactness for speed. Memory is set by the window (chunk + 2 x (fade/2 + context) frames), not by the duration:
only the float32 output array grows with the input.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from voxtool.vocoders.hifigan import GeneratorConfig

DEFAULT_CHUNK_FRAMES = 500
DEFAULT_FADE_FRAMES = 8


def receptive_field_frames(config: GeneratorConfig) -> float:
    """How many mel frames each side an output sample of a `Generator(config)` depends on (an upper bound)."""
    radius = 3.0  # conv_pre, kernel 7, in frames
    scale = 1  # samples per mel frame at the current stage's input
    for rate, kernel in zip(config.upsample_rates, config.upsample_kernel_sizes):
        radius += math.ceil(kernel / rate) / scale  # transposed conv: input steps each side
        scale *= rate
        widest = 0.0
        for k, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
            used = dilations[:3] if config.resblock == "1" else dilations[:2]
            reach = sum((k - 1) * d / 2 for d in used) + ((k - 1) / 2 * len(used) if config.resblock == "1" else 0)
            widest = max(widest, reach)
        radius += widest / scale
    return radius + 3.0 / scale  # conv_post, kernel 7, at the output rate


def default_context_frames(config: GeneratorConfig) -> int:
    """Context frames per side that cover the receptive field, plus 2 frames of margin."""
    return math.ceil(receptive_field_frames(config)) + 2


def _ramp(n: int) -> np.ndarray:
    """Linear fade-in weights of length n, strictly between 0 and 1 (the fade-out is 1 - ramp)."""
    return ((np.arange(n) + 0.5) / n).astype(np.float32)


def synthesize_chunked(generator: torch.nn.Module, mel: torch.Tensor, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                       context_frames: int | None = None, fade_frames: int = DEFAULT_FADE_FRAMES,
                       hop: int | None = None) -> np.ndarray:
    """Log-mel (B, n_mels, T) -> waveform float32 (B, T * hop), one window at a time (see the module doc).

    Runs the generator as it is (call under `torch.inference_mode()` / autocast as wanted); `chunk_frames` <= 0
    or T <= chunk_frames + fade_frames runs the whole input at once. The output is not clamped."""
    hop = hop or generator.hop_length
    batch, _, total = mel.shape
    if context_frames is None:
        context_frames = default_context_frames(generator.config)
    if chunk_frames <= 0 or total <= chunk_frames + fade_frames:
        return generator(mel)[:, 0].float().cpu().numpy()
    fade_frames = min(fade_frames - fade_frames % 2, chunk_frames)  # even, so it splits around each boundary
    half = fade_frames // 2
    out = np.zeros((batch, total * hop), dtype=np.float32)
    ramp = _ramp(fade_frames * hop)
    bounds = list(range(0, total, chunk_frames))
    if total - bounds[-1] < max(half, 1) and len(bounds) > 1:  # a tail shorter than half a fade joins the last core
        bounds.pop()
    bounds.append(total)
    for k in range(len(bounds) - 1):
        keep_lo, keep_hi = max(0, bounds[k] - half), min(total, bounds[k + 1] + half)
        lo, hi = max(0, keep_lo - context_frames), min(total, keep_hi + context_frames)
        wav = generator(mel[:, :, lo:hi])[:, 0].float().cpu().numpy()
        piece = wav[:, (keep_lo - lo) * hop:(keep_hi - lo) * hop].copy()
        if k > 0:  # fade in over [bound - half, bound + half)
            piece[:, : fade_frames * hop] *= ramp
        if k < len(bounds) - 2:  # fade out over the next boundary's fade region
            piece[:, -fade_frames * hop:] *= ramp[::-1]
        out[:, keep_lo * hop:keep_hi * hop] += piece
    return out
