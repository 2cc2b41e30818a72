"""HuBERT-Soft network (voxtool.encoders.hubert): frame grid, head, positional conv, span masks, long audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from voxtool.encoders.hubert import HubertSoft, compute_mask, content_units
from voxtool.encoders.hubert_settings import PUBLISHED, TINY, HubertArch


@pytest.fixture(scope="module")
def tiny() -> HubertSoft:
    torch.manual_seed(0)
    return HubertSoft(TINY).eval()


@pytest.mark.parametrize("samples", [320, 16000, 48123, 16319])
def test_units_give_one_frame_per_320_samples(tiny, samples):
    # bshall's padding of 40 samples per side: 16000 -> 50 frames, 48123 -> 150 (the reference note's figures)
    with torch.no_grad():
        u = tiny.units(torch.randn(2, samples))
    assert u.shape == (2, samples // 320, TINY.unit_dim)


def test_published_size_parameter_count():
    # the reference note's count for bshall's HubertSoft (weight-normed positional conv counted with g and v)
    model = HubertSoft(PUBLISHED)
    assert sum(p.numel() for p in model.parameters()) == 94_594_176
    assert model.unit_dim == 256 and model.hop == 320 and model.sample_rate == 16000


def test_positional_conv_applies_gelu_once(tiny):
    """hubert-pitdyn's copy applied GELU twice; bshall (and we) once, after dropping the last frame."""
    pos = tiny.positional_embedding
    x = torch.randn(1, 30, TINY.hidden)
    with torch.no_grad():
        conv = pos.conv(x.transpose(1, 2))  # weight-normed conv, (1, hidden, 31)
        once = F.gelu(conv[:, :, :-1]).transpose(1, 2)
        got = pos(x)
    assert conv.shape[-1] == 31
    torch.testing.assert_close(got, once)
    assert not torch.allclose(got, F.gelu(once), atol=1e-3)


def test_logits_are_cosine_similarity_over_temperature(tiny):
    units = torch.randn(2, 5, TINY.unit_dim)
    with torch.no_grad():
        logits = tiny.logits(units)
    emb = tiny.label_embedding.weight
    manual = (F.normalize(units, dim=-1) @ F.normalize(emb, dim=-1).T) / 0.1
    torch.testing.assert_close(logits, manual, atol=1e-5, rtol=1e-5)
    assert logits.shape == (2, 5, TINY.labels) and logits.abs().max() <= 10 + 1e-4


def test_masked_frames_take_the_learned_embedding(tiny):
    """What the positional conv receives: `masked_spec_embed` at masked frames, the projected audio elsewhere."""
    wav = HubertSoft.pad(torch.randn(1, 3200))
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[0, 3:6] = True
    seen = {}
    hook = tiny.positional_embedding.register_forward_hook(lambda m, inp, out: seen.setdefault("x", inp[0]))
    try:
        with torch.no_grad():
            tiny.encode(wav, mask=mask)
    finally:
        hook.remove()
    x = seen["x"][0]
    assert torch.equal(x[3], tiny.masked_spec_embed) and torch.equal(x[5], tiny.masked_spec_embed)
    assert not torch.allclose(x[2], tiny.masked_spec_embed)


def test_span_mask_follows_bshall():
    rng = np.random.default_rng(0)
    mask = compute_mask(rng, 4, 50, prob=0.4, length=5, min_masks=2)
    assert mask.shape == (4, 50) and mask.dtype == bool
    for row in mask:
        # runs of masked frames are whole spans of 5 (overlapping spans make longer runs)
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0])))[::2]
        assert runs.min() >= 5
        assert 5 <= row.sum() <= 5 * 5  # int(0.4 * 50 / 5 + U) = 4 or 5 spans, possibly overlapping
    short = compute_mask(rng, 2, 7, prob=0.8, length=10, min_masks=2)
    assert not short.any()  # a crop shorter than one span gets none
    many = compute_mask(rng, 1, 20, prob=0.01, length=5, min_masks=2)
    assert many.sum() >= 5  # min_masks


def test_content_units_in_pieces_match_their_windows(tiny):
    rng = np.random.default_rng(1)
    short = rng.standard_normal(16000).astype(np.float32)
    with torch.no_grad():
        whole = tiny.units(torch.from_numpy(short)[None])[0].numpy()
    np.testing.assert_array_equal(content_units(tiny, short), whole)
    # 6 s in 1 s pieces with 0.5 s context: piece k is the units of its window, context frames dropped
    long = rng.standard_normal(6 * 16000 + 100).astype(np.float32)
    got = content_units(tiny, long, piece_seconds=1.0, context_seconds=0.5)
    assert got.shape == (300, TINY.unit_dim) and got.dtype == np.float32
    with torch.no_grad():
        window = tiny.units(torch.from_numpy(long[(100 - 25) * 320:(150 + 25) * 320])[None])[0].numpy()
    np.testing.assert_allclose(got[100:150], window[25:75], atol=1e-5)


def test_arch_validation():
    with pytest.raises(ValueError):
        HubertArch(hidden=100, heads=12)
    with pytest.raises(ValueError):
        HubertArch(pos_conv_kernel=15)
