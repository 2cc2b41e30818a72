"""DiffVC's networks at tiny sizes: the relative-position attention against its formula, masking, the time
embedding, the diffusion loss against its definition, `convert` (batched chunks, shared reference, lengths), mixed
precision, and the size checks of the config sections."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import seeded
from voxtool.tasks.diffvc.diffusion import VPSDE
from voxtool.tasks.diffvc.encoder import FwdDiffusion, MultiHeadAttention, masked_mse, sequence_mask
from voxtool.tasks.diffvc.model_config import DecoderSection, EncoderSection
from voxtool.tasks.diffvc.unet import time_sinusoid
from voxtool.tasks.diffvc.vc import DiffVC

ENC = EncoderSection(n_feats=16, channels=32, filters=64, heads=2, layers=2, enc_dim=8)
DEC = DecoderSection(dec_dim=16, spk_dim=16, spk_embed_dim=8)


def tiny_vc(seed: int = 0) -> DiffVC:
    torch.manual_seed(seeded(seed))
    return DiffVC(ENC, DEC)


@pytest.mark.parametrize("length,window", [(7, 2), (5, 4), (3, 4)])
def test_relative_attention_matches_its_formula(length, window):
    """logit(i, j) = (q_i . k_j + q_i . rel_k[j - i]) / sqrt(d) for |j - i| <= w (no term outside the window);
    out_i = sum_j p_ij (v_j + rel_v[j - i]); computed here with plain loops in float64."""
    torch.manual_seed(seeded(1))
    attn = MultiHeadAttention(8, 2, window).double().eval()
    x = torch.randn(2, 8, length, dtype=torch.float64)
    mask = torch.ones(2, 1, length, dtype=torch.float64)
    mask[1, :, length - 1:] = 0
    got = attn(x, mask.unsqueeze(2) * mask.unsqueeze(-1))
    d = 4
    q, k, v = (conv(x).view(2, 2, d, length) for conv in (attn.conv_q, attn.conv_k, attn.conv_v))
    rel_k, rel_v = attn.emb_rel_k[0], attn.emb_rel_v[0]
    out = torch.zeros(2, 2, d, length, dtype=torch.float64)
    for b in range(2):
        real = int(mask[b].sum())
        for h in range(2):
            for i in range(length):
                logits = torch.full((length,), -1e4, dtype=torch.float64)
                for j in range(length):
                    if i < real and j < real:
                        rel = rel_k[j - i + window] if abs(j - i) <= window else torch.zeros(d, dtype=torch.float64)
                        logits[j] = (q[b, h, :, i] @ k[b, h, :, j] + q[b, h, :, i] @ rel) / math.sqrt(d)
                p = torch.softmax(logits, 0)
                for j in range(length):
                    rel = rel_v[j - i + window] if abs(j - i) <= window else torch.zeros(d, dtype=torch.float64)
                    out[b, h, :, i] += p[j] * (v[b, h, :, j] + rel)
    want = attn.conv_o(out.reshape(2, 8, length))
    assert torch.allclose(got, want, atol=1e-10)


def test_encoder_ignores_what_the_padding_holds():
    """Padded frames' contents never reach real frames (eval mode). The transformer part is also independent of
    how much padding there is; the PostNet is not, as in the original: its GroupNorm statistics run over the whole
    (bins x frames) image, zeros of the padding included."""
    torch.manual_seed(seeded(2))
    enc = FwdDiffusion(ENC).eval()
    x = torch.randn(1, 16, 21)
    mask = sequence_mask(torch.tensor([21]), 32).unsqueeze(1).float()
    padded = [torch.cat([x, 5 * torch.randn(1, 16, 11)], -1) for _ in range(2)]  # garbage in the padding
    assert torch.allclose(enc(padded[0], mask), enc(padded[1], mask), atol=1e-5)
    alone = enc.encoder(x, torch.ones(1, 1, 21))
    assert torch.allclose(enc.encoder(padded[0], mask)[..., :21], alone, atol=1e-5)
    assert enc(x, torch.ones(1, 1, 21)).shape == (1, 16, 21)


def test_time_sinusoid_formula():
    t = torch.tensor([0.0, 0.37, 1.0])
    emb = time_sinusoid(t, 256)
    i = torch.arange(128, dtype=torch.float64)
    angles = 1000 * t.double()[:, None] * torch.exp(-math.log(1e4) * i / 127)[None]
    assert emb.dtype == torch.float32 and emb.shape == (3, 256)
    assert torch.allclose(emb.double(), torch.cat([angles.sin(), angles.cos()], 1), atol=1e-4)


def test_diffusion_loss_is_the_noise_weighted_score_matching_loss():
    """loss_t = sum((s * sqrt(1 - gamma^2) + z)^2) / (sum(mask) n_feats) with x_t = gamma x0 + (1 - gamma) mean +
    sqrt(1 - gamma^2) z, recomputed here with the same noise draw."""
    vc = tiny_vc(3).eval()
    dec, sde = vc.decoder, VPSDE(0.05, 20.0)
    x0, mean, x_ref, mean_ref = (torch.randn(2, 16, 12) for _ in range(4))
    mask = sequence_mask(torch.tensor([12, 9]), 12).unsqueeze(1).float()
    c, t = torch.randn(2, 8), torch.tensor([0.2, 0.9])
    torch.manual_seed(5)
    loss = dec.loss_t(x0, mask, mean, x_ref, mask, mean_ref, c, t)
    torch.manual_seed(5)
    z = torch.randn(2, 16, 12) * mask
    g = torch.tensor([sde.gamma(0, 0.2), sde.gamma(0, 0.9)])[:, None, None]
    xt = (g * x0 + (1 - g) * mean) * mask + (1 - g ** 2).sqrt() * z
    ref_t = ((g * x_ref + (1 - g) * mean_ref) * mask).unsqueeze(1)
    score = dec.estimator(xt, mask, mean, ref_t, mask, c, t)
    want = ((score * (1 - g ** 2).sqrt() + z) ** 2).sum() / (mask.sum() * 16)
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert score[1, :, 9:].abs().max() == 0  # the U-Net's output is zero on padded frames


def test_loss_weight_cap_weighs_each_item_by_its_clipped_inverse_snr():
    """With loss_weight_cap > 1 each item's noise-prediction error is weighted by clip((1 - gamma^2) / gamma^2, 1,
    cap), i.e. its clean-mel error where 1/SNR lies in [1, cap]; the network and its output are untouched, so the
    same weights with cap 1 (the default, the published loss) give the published loss."""
    from voxtool.tasks.diffvc.diffusion import loss_weights

    sde = VPSDE(0.05, 20.0)
    t = torch.tensor([0.02, 0.3, 0.6, 0.95])
    g2 = torch.tensor([sde.gamma(0, float(v), 2.0) for v in t])
    w = loss_weights(g2, 100.0)
    inverse_snr = (1 - g2) / g2
    assert inverse_snr[0] < 1 and w[0] == 1.0  # small t: the noise loss as published
    assert w[1] == pytest.approx(inverse_snr[1].item()) and 1 < w[1] < 100  # mid t: the clean-mel loss
    assert inverse_snr[3] > 100 and w[3] == 100.0  # large t: capped
    x0, mean, x_ref, mean_ref = (torch.randn(4, 16, 12) for _ in range(4))
    mask, c = torch.ones(4, 1, 12), torch.randn(4, 8)
    published = tiny_vc(3).eval()
    weighted = DiffVC(ENC, DEC.model_copy(update={"loss_weight_cap": 100.0})).eval()
    weighted.load_state_dict(published.state_dict())
    torch.manual_seed(7)
    plain = published.decoder.loss_t(x0, mask, mean, x_ref, mask, mean_ref, c, t)
    torch.manual_seed(7)
    got = weighted.decoder.loss_t(x0, mask, mean, x_ref, mask, mean_ref, c, t)
    torch.manual_seed(7)
    z = torch.randn(4, 16, 12)
    g = g2.sqrt()[:, None, None]
    xt = g * x0 + (1 - g) * mean + (1 - g ** 2).sqrt() * z
    ref_t = (g * x_ref + (1 - g) * mean_ref).unsqueeze(1)
    with torch.no_grad():
        score = published.decoder.estimator(xt, mask, mean, ref_t, mask, c, t)
    errors = ((score * (1 - g ** 2).sqrt() + z) ** 2).sum((1, 2)) / (12 * 16)
    assert got.item() == pytest.approx((errors * w).sum().item() / 4, rel=1e-4)
    assert plain.item() == pytest.approx(errors.mean().item(), rel=1e-4)


class _Oracle(torch.nn.Module):
    """An estimator returning a fixed tensor whatever it is asked."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, *args) -> torch.Tensor:
        return self.out


def test_v_prediction_loss_and_score_follow_their_definitions():
    """prediction "v": the target is v = gamma z - sigma (x0 - mean); an estimator that returns exactly that v has
    zero loss, and the score derived from it is the true score -z / sigma at x_t (what every sampler uses); an
    estimator returning zeros costs mean(v^2). Masked frames contribute nothing. Also: a cap with v is refused."""
    vc = DiffVC(ENC, DEC.model_copy(update={"prediction": "v"})).eval()
    dec = vc.decoder
    t = torch.tensor([1e-3, 0.3, 0.7, 0.97])
    x0, mean, x_ref, mean_ref = (torch.randn(4, 16, 12) for _ in range(4))
    mask, c = torch.ones(4, 1, 12), torch.randn(4, 8)
    mask[2, :, 9:] = 0
    x0, mean = x0 * mask, mean * mask
    torch.manual_seed(11)
    z = torch.randn(4, 16, 12) * mask
    g = torch.tensor([dec.sde.gamma(0, float(v)) for v in t])[:, None, None]
    sigma = (1 - g**2).sqrt()
    xt = (g * x0 + (1 - g) * mean) * mask + sigma * z
    v = (g * z - sigma * (x0 - mean)) * mask
    ref_t = (g * x_ref + (1 - g) * mean_ref).unsqueeze(1)
    dec.estimator = _Oracle(v)
    torch.manual_seed(11)  # forward_diffusion draws the same z
    assert dec.loss_t(x0, mask, mean, x_ref, mask, mean_ref, c, t).item() == pytest.approx(0.0, abs=1e-10)
    score = dec.score(xt, mask, mean, ref_t, mask, c, t)
    torch.testing.assert_close(score * sigma, -z, atol=2e-5, rtol=0)
    dec.estimator = _Oracle(torch.zeros_like(v))
    torch.manual_seed(11)
    zero = dec.loss_t(x0, mask, mean, x_ref, mask, mean_ref, c, t).item()
    assert zero == pytest.approx(((v**2).sum() / (mask.sum() * 16)).item(), rel=1e-5)
    with pytest.raises(ValueError, match="loss_weight_cap"):
        DecoderSection(prediction="v", loss_weight_cap=100.0)


def test_compute_loss_and_masked_mse():
    vc = tiny_vc(4).train()
    x, x_ref, c = torch.randn(3, 16, 30), torch.randn(3, 16, 22), torch.randn(3, 8)
    loss, details = vc.compute_loss(x, torch.tensor([30, 25, 17]), x_ref, c, torch.tensor([22, 22, 10]))
    assert loss.ndim == 0 and torch.isfinite(loss) and set(details) == {"prior_mse"}
    loss.backward()
    assert all(p.grad is None for p in vc.encoder.parameters())  # the encoder is a fixed prior here
    assert vc.decoder.estimator.final_conv.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="x_ref_lengths"):
        vc.compute_loss(x, torch.tensor([30, 25, 17]), x_ref, c)
    y, mask = torch.randn(2, 4, 5), sequence_mask(torch.tensor([5, 2]), 5).unsqueeze(1).float()
    want = ((x[:2, :4, :5] - y) ** 2 * mask).sum() / (7 * 4)
    assert masked_mse(x[:2, :4, :5], y, mask).item() == pytest.approx(want.item(), rel=1e-6)


def test_convert_batches_chunks_with_one_shared_reference():
    vc = tiny_vc(5).train()
    x = torch.randn(3, 16, 30)  # three chunks of a long input, the last one shorter (zero-padded)
    lengths = torch.tensor([30, 30, 13])
    ref, ref_len, c = torch.randn(1, 16, 26), torch.tensor([26]), torch.randn(1, 8)
    prior, mel = vc.convert(x, lengths, ref, ref_len, c, 4, "ml", generator=torch.Generator().manual_seed(1))
    assert vc.training  # the mode is restored
    assert prior.shape == mel.shape == (3, 16, 30) and mel.dtype == torch.float32
    assert mel[2, :, 13:].abs().max() == 0 and prior[2, :, 13:].abs().max() == 0
    assert torch.isfinite(mel).all()
    repeated = vc.convert(x, lengths, ref.expand(3, -1, -1).clone(), ref_len.repeat(3), c.repeat(3, 1), 4, "ml",
                          generator=torch.Generator().manual_seed(1))[1]
    assert torch.allclose(mel, repeated, rtol=1e-4, atol=1e-3)  # an untrained net: values in the 100s
    # the start is the diffused average voice: gamma(0, 1) x + (1 - gamma(0, 1)) enc(x)
    vc.eval()
    mask = sequence_mask(lengths, 30).unsqueeze(1).float()
    g = VPSDE().gamma(0, 1)
    assert torch.allclose(prior, (g * x + (1 - g) * vc.encoder(x, mask)) * mask, atol=1e-5)
    for sampler in ("em", "pf"):
        out = vc.convert(x, lengths, ref, ref_len, c, 2, sampler)[1]
        assert out.shape == (3, 16, 30) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="sampler"):
        vc.convert(x, lengths, ref, ref_len, c, 2, "dpm")
    with pytest.raises(ValueError, match="x_ref has batch 2"):
        vc.convert(x, lengths, torch.randn(2, 16, 8), torch.tensor([8, 8]), c, 2)


@pytest.mark.parametrize("prediction", ["score", "v"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_stays_close_to_float32(dtype, prediction):
    """Under CPU autocast the networks run in bf16 / fp16 while the sampler state and the loss stay float32:
    outputs are float32, finite and close to the float32 run (same noise), for either prediction. Measured relative
    differences of the converted mel: ~0.6 % (bf16), ~0.1 % (fp16)."""
    torch.manual_seed(seeded(6))
    vc = DiffVC(ENC, DEC.model_copy(update={"prediction": prediction}))
    x, lengths = torch.randn(2, 16, 24), torch.tensor([24, 20])
    ref, ref_len, c = torch.randn(2, 16, 16), torch.tensor([16, 12]), torch.randn(2, 8)
    outs = {}
    for name, enabled in (("fp32", False), ("autocast", True)):
        with torch.autocast("cpu", dtype=dtype, enabled=enabled):
            outs[name] = vc.convert(x, lengths, ref, ref_len, c, 3, generator=torch.Generator().manual_seed(2))[1]
            torch.manual_seed(3)
            outs[name + "_loss"] = vc.train().compute_loss(x, lengths, x, c)[0]
    assert outs["autocast"].dtype == torch.float32 and torch.isfinite(outs["autocast"]).all()
    assert (outs["autocast"] - outs["fp32"]).abs().mean() < 0.03 * outs["fp32"].abs().mean()
    assert outs["autocast_loss"].dtype == torch.float32
    assert outs["autocast_loss"].item() == pytest.approx(outs["fp32_loss"].item(), rel=0.05)


def test_section_checks():
    with pytest.raises(ValueError, match="multiple of heads"):
        EncoderSection(channels=30, heads=4)
    with pytest.raises(ValueError, match="odd"):
        EncoderSection(kernel=4)
    with pytest.raises(ValueError, match="multiple of 8"):
        DecoderSection(dec_dim=20)
    with pytest.raises(ValueError, match="beta_max"):
        DecoderSection(beta_min=5, beta_max=1)
    with pytest.raises(ValueError):
        DecoderSection(beta_max=float("inf"))
    with pytest.raises(ValueError, match="multiple of 4"):
        DiffVC(EncoderSection(n_feats=18, channels=32, filters=64, layers=1, enc_dim=8), DEC)
    assert DecoderSection(dim_mults=(1, 2, 4, 8)).time_multiple == 8
