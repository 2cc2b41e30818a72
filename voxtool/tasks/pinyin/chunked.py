"""Long files through QuartzNet in overlapping windows, equal to the whole-file pass.

Every output frame of the network depends on a bounded span of feature frames (its receptive field, computed from
the config by `context_frames`), except for one whole-utterance step: the per-feature mean/variance normalisation
at the network's input (`normalize_per_feature`). So the log-mel is computed for the whole file (in blocks, so the
STFT's temporaries stay small), normalised once with the whole file's statistics, and then the network's layers
after that step run on windows of `core + 2 * context` frames, keeping each window's core. A window that reaches the
file's start or end sees the same zero padding there as the whole-file pass; elsewhere the context is real audio, and
because it covers the receptive field the kept frames equal the whole-file pass up to float rounding.

Memory then holds the file's (F, T) features and the stitched (T_out, C) log-probabilities, both smaller than the
audio, plus one window's activations, whatever the duration.
"""

from __future__ import annotations

import torch

from voxtool.tasks.pinyin.config import ModelSection
from voxtool.tasks.pinyin.model import QuartzNet, normalize_per_feature
from voxtool.windows import Window, plan_windows

CHUNK_SECONDS = 120.0  # default core: shorter files (plus the context on both sides) go through in one piece


def receptive_field(cfg: ModelSection) -> int:
    """Feature frames on each side of an output frame's centre that it depends on.

    C1 (kernel k1, stride s) reaches (k1 - 1) / 2 feature frames; every layer after it (the blocks' separable
    convolutions, C2 with its dilation; the residuals, C3 and the decoder are 1x1) reaches dilation * (k - 1) / 2
    output frames, s feature frames each. Kernels are odd (the config checks), so these are whole numbers."""
    after_c1 = cfg.block_repeat * cfg.sub_blocks * sum((b.kernel - 1) // 2 for b in cfg.blocks)
    after_c1 += cfg.c2_dilation * (cfg.c2_kernel - 1) // 2
    return (cfg.c1_kernel - 1) // 2 + cfg.stride * after_c1


def context_frames(cfg: ModelSection) -> int:
    """The context each window needs on each side: the receptive field rounded up to a multiple of the stride (so
    windows start on an output frame)."""
    return -(-receptive_field(cfg) // cfg.stride) * cfg.stride


def plan(n_frames: int, cfg: ModelSection, core_frames: int) -> list[tuple[int, int, Window]]:
    """Feature frames -> [(window start, window stop, Window)]: cores from `plan_windows` (balanced, multiples of
    the stride), each window its core plus `context_frames` on each side, cut at the file's ends (no window there
    needs more, since the whole-file pass sees zero padding beyond them too). One entry covering everything when
    the file fits in one window (or `core_frames` is 0)."""
    ctx = context_frames(cfg)
    _, windows = plan_windows(n_frames, core_frames, ctx, multiple=cfg.stride, balance=True)
    return [(max(0, w.core_start - ctx), min(n_frames, w.core_stop + ctx), w) for w in windows]


def log_mel(mel: torch.nn.Module, wav: torch.Tensor, block: int) -> torch.Tensor:
    """`mel(wav)` (F, T) computed `block` frames at a time, for a centred STFT without extra padding (the pinyin
    front-end): each block's samples reach `margin` frames beyond it, so its frames never see the block's own
    reflect padding, and a block at the file's start or end uses the file's, as the whole-file call does."""
    cfg = mel.cfg
    n = wav.shape[-1]
    total = cfg.n_frames(n)
    if not cfg.center or cfg.pad or block <= 0 or total <= block:
        return mel(wav)
    hop = cfg.hop_length
    margin = -(-(cfg.n_fft // 2) // hop) + 1
    out = torch.empty(cfg.n_mels, total, device=wav.device)
    for a in range(0, total, block):
        b = min(a + block, total)
        s = max(0, a - margin)
        piece = mel(wav[s * hop : min(n, (b + margin) * hop)])
        out[:, a:b] = piece[:, a - s : b - s]
    return out


def chunked_emissions(net: QuartzNet, feats: torch.Tensor, windows: list[tuple[int, int, Window]],
                      autocast) -> torch.Tensor:
    """Raw log-mel (F, T) of the whole file -> log-probabilities (T_out, C) stitched from the windows' cores.

    `autocast()` is the precision context for the network (the normalisation runs outside it: fp32 either way)."""
    stride = net.stride
    total = feats.shape[-1]
    x = normalize_per_feature(feats[None], torch.tensor([total], device=feats.device))[0]  # whole-file statistics
    t_out = -(-total // stride)
    out: torch.Tensor | None = None
    for start, stop, w in windows:
        piece = x[None, :, start:stop]
        lens = torch.tensor([stop - start], device=x.device)
        with autocast():
            lp = net.forward_normalized(piece, lens)[0]  # (ceil((stop - start) / stride), C)
        if out is None:
            out = torch.empty(t_out, lp.shape[-1], dtype=torch.float32, device=lp.device)
        a, b = w.core_start // stride, -(-w.core_stop // stride)
        out[a:b] = lp[a - start // stride : b - start // stride]
    assert out is not None
    return out
