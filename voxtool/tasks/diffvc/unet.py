"""DiffVC's score network `GradLogPEstimator`: a 2-D U-Net over (mel bins x frames) as in Grad-TTS, conditioned on
the diffusion time, the target speaker's d-vector and (`use_ref_t`, the released 'wodyn' models) the reference mel.

Module and parameter names are the original's (huawei-noah/Speech-Backbones DiffVC `model/diffusion.py`,
`model/modules.py`), so the `decoder.estimator.*` half of `vc_*_wodyn.pt` loads strictly. Published widths:
dec_dim 256 -> levels 256 / 512 / 1024, spk_dim 128, d-vector 256.

Conditioning: the time t in [0, 1] becomes a sinusoid of size dec_dim on 1000 t, and an MLP makes the time vector
that every ResnetBlock adds after its first block. `ref_block` reads the reference mel diffused to the current t and
pools it to spk_dim values; [time sinusoid, ref vector, d-vector] -> `cond_block` -> spk_dim values broadcast over
the whole grid and stacked with [prior mean, x_t]: the U-Net input has 2 + spk_dim channels.

Shapes: x_t, mean [B, n_feats, F] with F a multiple of 2^(levels-1) (the caller pads, see
`diffusion.pad_frames`); mask [B, 1, F]; ref [B, 1, n_feats, F_ref] and ref_mask [B, 1, F_ref] (no padding rule);
c [B, spk_embed_dim]; t [B]. Output: the score estimate [B, n_feats, F], zero on padded frames.

Mixed precision: the time sinusoid, the reference pooling and the masks' sums run in float32; GroupNorm and
InstanceNorm run in float32 under autocast by themselves.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from voxtool.tasks.diffvc.model_config import GROUPS, DecoderSection

ATTENTION_HEADS = 4  # the U-Net's linear attention: 4 heads of 32 channels at every level (fixed in the original)
ATTENTION_HEAD_DIM = 32


class Block(nn.Module):
    """Conv2d(3x3) -> GroupNorm(8) -> Mish, masked in and out."""

    def __init__(self, dim: int, dim_out: int):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim_out, 3, padding=1), nn.GroupNorm(GROUPS, dim_out), nn.Mish())

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.block(x * mask) * mask


class ResnetBlock(nn.Module):
    """block1 -> + time projection (`mlp`) -> block2, plus a skip (1x1 `res_conv` when the width changes)."""

    def __init__(self, dim: int, dim_out: int, time_emb_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(time_emb_dim, dim_out))
        self.block1 = Block(dim, dim_out)
        self.block2 = Block(dim_out, dim_out)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor, time_emb: Tensor) -> Tensor:
        h = self.block1(x, mask) + self.mlp(time_emb)[:, :, None, None]
        return self.block2(h, mask) + self.res_conv(x * mask)


class LinearAttention(nn.Module):
    """Linear attention over all grid positions: keys softmaxed over positions, context = k v^T, out = context^T q.
    Cost is linear in the number of positions (80 x F at the top level)."""

    def __init__(self, dim: int, heads: int = ATTENTION_HEADS, dim_head: int = ATTENTION_HEAD_DIM):
        super().__init__()
        self.heads = heads
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        # [B, 3 * heads * d, H, W] -> three [B, heads, d, H * W]
        q, k, v = self.to_qkv(x).reshape(b, 3, self.heads, -1, h * w).unbind(1)
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(out.reshape(b, -1, h, w))


class Rezero(nn.Module):
    """fn(x) * g with a learnt scalar gate `g` that starts at 0 (the attention starts switched off)."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn
        self.g = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) * self.g


class Residual(nn.Module):
    """fn(x) + x."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x


class Downsample(nn.Module):
    """Conv2d(3x3, stride 2): halves both axes."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """ConvTranspose2d(4x4, stride 2, pad 1): doubles both axes."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(dim, dim, 4, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def time_sinusoid(t: Tensor, dim: int) -> Tensor:
    """t [B] in [0, 1] -> float32 [B, dim] = [sin(1000 t f_i) | cos(1000 t f_i)], f_i = 10^(-4 i / (dim/2 - 1)).

    Always float32: in bf16, 1000 t would keep only ~3 significant digits of t."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
    angles = 1000.0 * t.float().unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class RefBlock(nn.Module):
    """Reference mel [B, 1, n_feats, F_ref] (diffused to the current t) -> speaker vector [B, out_dim].

    Six full-resolution Conv2d(3x3) + InstanceNorm2d(affine) + GLU stages (widths out/4, out/4, out/2, out/2,
    out, out after the GLU), the time vector added after stages 2 and 4, a 1x1 conv, then the mean over real
    frames and all bins.
    """

    def __init__(self, out_dim: int, time_emb_dim: int):
        super().__init__()
        base = out_dim // 4
        self.mlp1 = nn.Sequential(nn.Mish(), nn.Linear(time_emb_dim, base))
        self.mlp2 = nn.Sequential(nn.Mish(), nn.Linear(time_emb_dim, 2 * base))

        def stage(dim_in: int, dim_out: int) -> nn.Sequential:
            # GLU halves the channels: the conv makes 2 * dim_out
            return nn.Sequential(nn.Conv2d(dim_in, 2 * dim_out, 3, 1, 1),
                                 nn.InstanceNorm2d(2 * dim_out, affine=True), nn.GLU(dim=1))

        self.block11 = stage(1, base)
        self.block12 = stage(base, base)
        self.block21 = stage(base, 2 * base)
        self.block22 = stage(2 * base, 2 * base)
        self.block31 = stage(2 * base, 4 * base)
        self.block32 = stage(4 * base, 4 * base)
        self.final_conv = nn.Conv2d(4 * base, out_dim, 1)

    def forward(self, x: Tensor, mask: Tensor, time_emb: Tensor) -> Tensor:
        """x [B, 1, n_feats, F_ref], mask [B, 1, 1, F_ref], time_emb [B, time_emb_dim] -> [B, out_dim] float32."""
        y = self.block12(self.block11(x * mask) * mask)
        y = y + self.mlp1(time_emb)[:, :, None, None]
        y = self.block22(self.block21(y * mask) * mask)
        y = y + self.mlp2(time_emb)[:, :, None, None]
        y = self.block32(self.block31(y * mask) * mask)
        y = self.final_conv(y * mask)
        mask = mask.float()
        return (y.float() * mask).sum((2, 3)) / (mask.sum((2, 3)) * x.shape[2])


class GradLogPEstimator(nn.Module):
    """The U-Net score network (see the module docstring). `forward(x, mask, mean, ref, ref_mask, c, t)`."""

    def __init__(self, cfg: DecoderSection):
        super().__init__()
        dim_base, dim_cond = cfg.dec_dim, cfg.spk_dim
        self.dim_base = dim_base
        self.use_ref_t = cfg.use_ref_t
        dims = [2 + dim_cond, *(dim_base * m for m in cfg.dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))

        self.mlp = nn.Sequential(nn.Linear(dim_base, 4 * dim_base), nn.Mish(), nn.Linear(4 * dim_base, dim_base))
        cond_in = dim_base + cfg.spk_embed_dim
        if cfg.use_ref_t:
            self.ref_block = RefBlock(out_dim=dim_cond, time_emb_dim=dim_base)
            cond_in += dim_cond
        self.cond_block = nn.Sequential(nn.Linear(cond_in, 4 * dim_cond), nn.Mish(), nn.Linear(4 * dim_cond, dim_cond))

        self.downs = nn.ModuleList()
        for level, (dim_in, dim_out) in enumerate(in_out):
            last = level == len(in_out) - 1
            self.downs.append(nn.ModuleList([
                ResnetBlock(dim_in, dim_out, dim_base),
                ResnetBlock(dim_out, dim_out, dim_base),
                Residual(Rezero(LinearAttention(dim_out))),
                nn.Identity() if last else Downsample(dim_out)]))
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, dim_base)
        self.mid_attn = Residual(Rezero(LinearAttention(mid)))
        self.mid_block2 = ResnetBlock(mid, mid, dim_base)
        # no up level for the input width: the first down level's skip joins the last up level's output
        self.ups = nn.ModuleList()
        for dim_in, dim_out in reversed(in_out[1:]):
            self.ups.append(nn.ModuleList([
                ResnetBlock(2 * dim_out, dim_in, dim_base),
                ResnetBlock(dim_in, dim_in, dim_base),
                Residual(Rezero(LinearAttention(dim_in))),
                Upsample(dim_in)]))
        self.final_block = Block(dim_base, dim_base)
        self.final_conv = nn.Conv2d(dim_base, 1, 1)

    def forward(self, x: Tensor, mask: Tensor, mean: Tensor, ref: Tensor, ref_mask: Tensor, c: Tensor,
                t: Tensor) -> Tensor:
        """x, mean [B, n_feats, F]; mask [B, 1, F]; ref [B, 1, n_feats, F_ref]; ref_mask [B, 1, F_ref];
        c [B, spk_embed_dim]; t [B] -> score [B, n_feats, F] (x's dtype outside autocast)."""
        sinusoid = time_sinusoid(t, self.dim_base)
        time_emb = self.mlp(sinusoid)
        grid_mask = mask.unsqueeze(1).to(x.dtype)  # [B, 1, 1, F]: masks act along time only
        parts = [sinusoid]
        if self.use_ref_t:
            parts.append(self.ref_block(ref, ref_mask.unsqueeze(1).to(ref.dtype), time_emb))
        parts.append(c.float())
        cond = self.cond_block(torch.cat(parts, 1))  # [B, spk_dim]
        h = torch.cat([torch.stack([mean, x], 1),
                       cond[:, :, None, None].to(x.dtype).expand(-1, -1, x.shape[1], x.shape[2])], 1)

        skips, masks = [], [grid_mask]
        for resnet1, resnet2, attn, downsample in self.downs:
            m = masks[-1]
            h = attn(resnet2(resnet1(h, m, time_emb), m, time_emb))
            skips.append(h)
            h = downsample(h * m)
            masks.append(m[:, :, :, ::2])
        masks.pop()  # the last level does not downsample: it keeps its input's mask
        m = masks[-1]
        h = self.mid_block2(self.mid_attn(self.mid_block1(h, m, time_emb)), m, time_emb)
        for resnet1, resnet2, attn, upsample in self.ups:
            m = masks.pop()
            h = torch.cat((h, skips.pop()), dim=1)
            h = upsample(attn(resnet2(resnet1(h, m, time_emb), m, time_emb)) * m)
        h = self.final_block(h, grid_mask)
        return (self.final_conv(h * grid_mask) * grid_mask).squeeze(1)
