"""Decoding, forced alignment, losses, NovoGrad, QuartzNet shapes and the error-rate metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxtool.tasks.pinyin.config import BlankLossSection, ModelSection
from voxtool.tasks.pinyin.decode import (
    AlignmentError,
    forced_align,
    greedy_decode,
    greedy_spans,
    min_frames,
    prefix_beam_search,
    token_spans,
)
from voxtool.tasks.pinyin.losses import NovoGrad, blank_loss, ctc_loss
from voxtool.tasks.pinyin.metrics import error_rates
from voxtool.tasks.pinyin.model import QuartzNet, count_parameters


def onehot_path(path: list[int], n_classes: int, p: float = 0.9) -> np.ndarray:
    lp = np.full((len(path), n_classes), (1 - p) / (n_classes - 1))
    lp[np.arange(len(path)), path] = p
    return np.log(lp)


def test_greedy_merges_repeats_and_drops_blanks():
    lp = onehot_path([0, 3, 3, 0, 3, 2, 2, 0], 5)
    assert greedy_decode(lp) == [3, 3, 2]
    ids, spans = greedy_spans(lp)
    assert ids == [3, 3, 2] and [(s.start, s.end, s.until) for s in spans] == [(1, 3, 4), (4, 5, 5), (5, 7, 8)]


def test_prefix_beam_finds_the_sequence_greedy_misses():
    # per frame: blank 0.5 / a 0.4 / b 0.1 twice. Greedy says "" (blank, blank: p 0.25), but P("a") =
    # 0.4*0.4 + 0.4*0.5 + 0.5*0.4 = 0.56 is the most probable labelling.
    lp = np.log(np.array([[0.5, 0.4, 0.1], [0.5, 0.4, 0.1]]))
    assert greedy_decode(lp) == []
    assert prefix_beam_search(lp, beam=4) == [1]
    # with a clear path, beam search agrees with greedy
    lp2 = onehot_path([0, 1, 1, 0, 2, 0, 2], 4)
    assert prefix_beam_search(lp2, beam=8) == greedy_decode(lp2) == [1, 2, 2]


def test_forced_align_recovers_a_known_path():
    rng = np.random.default_rng(0)
    targets = [1, 4, 4, 2]
    path = [0, 0, 1, 1, 1, 0, 4, 4, 0, 0, 4, 2, 2, 0]
    lp = onehot_path(path, 6, p=0.6) + rng.normal(0, 0.01, (len(path), 6))
    states = forced_align(lp, targets)
    spans = token_spans(states, lp, targets)
    assert [(s.start, s.end) for s in spans] == [(2, 5), (6, 8), (10, 11), (11, 13)]
    assert spans[0].until == 6 and spans[-1].until == len(path)  # blanks after a token are given to it


def test_forced_align_needs_enough_frames():
    assert min_frames([1, 1, 2]) == 4
    with pytest.raises(AlignmentError):
        forced_align(onehot_path([1, 0, 1], 3), [1, 1, 2])
    states = forced_align(onehot_path([1, 0, 1, 2], 3), [1, 1, 2])
    assert states.tolist() == [1, 2, 3, 5]


def test_forced_align_matches_brute_force_best_path():
    """The Viterbi path score equals the best over all valid CTC paths (enumerated on a tiny case)."""
    import itertools

    rng = np.random.default_rng(1)
    T, C, targets = 5, 3, [1, 2]
    lp = np.log(rng.dirichlet(np.ones(C), T))

    def collapse(p):
        out, prev = [], -1
        for k in p:
            if k != prev and k != 0:
                out.append(k)
            prev = k
        return out

    best = max(sum(lp[t, k] for t, k in enumerate(p)) for p in itertools.product(range(C), repeat=T)
               if collapse(p) == targets)
    states = forced_align(lp, targets)
    ext = [0, 1, 0, 2, 0]
    assert sum(lp[t, ext[s]] for t, s in enumerate(states)) == pytest.approx(best, abs=1e-5)


def test_blank_loss_drops_the_largest_fifth_and_hinges_the_rest():
    # one utterance, 10 frames, blank probabilities 0.95 (x2), 0.9, 0.7, 0.3 (x6); margin 0.5, drop 20% = 2
    p = torch.tensor([0.95, 0.95, 0.9, 0.7, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
    lp = torch.log(torch.stack([p, 1 - p], dim=-1))[None]
    loss = blank_loss(lp, torch.tensor([10]), BlankLossSection(weight=1.0, margin=0.5))
    assert float(loss) == pytest.approx((0.4 + 0.2) / 8, abs=1e-6)
    # padded frames never count
    lp_pad = torch.cat([lp, torch.log(torch.tensor([[[0.99, 0.01]] * 5]))], dim=1)
    assert float(blank_loss(lp_pad, torch.tensor([10]), BlankLossSection(weight=1.0))) == pytest.approx(float(loss))


def test_ctc_loss_is_finite_when_an_item_cannot_align():
    lp = torch.log_softmax(torch.randn(2, 4, 5), -1)
    loss = ctc_loss(lp, torch.tensor([4, 4]), torch.tensor([[1, 2, 0, 0, 0, 0], [1, 2, 3, 4, 1, 2]]),
                    torch.tensor([2, 6]))
    assert torch.isfinite(loss)


def test_novograd_minimises_a_quadratic():
    w = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    opt = NovoGrad([w], lr=0.05, betas=(0.9, 0.5))
    for _ in range(300):
        opt.zero_grad()
        ((w - 1) ** 2).sum().backward()
        opt.step()
    assert torch.allclose(w, torch.tensor([1.0, 1.0]), atol=0.05)


def test_quartznet_shapes_stride_and_batch_independence():
    cfg = ModelSection(c1_filters=16, c1_kernel=5, blocks=[{"filters": 16, "kernel": 5}], block_repeat=1,
                      sub_blocks=2, c2_filters=16, c2_kernel=7, c3_filters=24)
    model = QuartzNet(cfg, 64, 10).eval()
    x = torch.randn(2, 64, 101)
    lp, out_lens = model(x, torch.tensor([101, 60]))
    assert lp.shape == (2, 51, 10) and out_lens.tolist() == [51, 30]
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2, 51), atol=1e-5)
    single, _ = model(x[1:, :, :60], torch.tensor([60]))
    assert torch.allclose(single[0], lp[1, :30], atol=1e-4)  # padding in the batch changes nothing


def test_published_sizes():
    assert 18.0e6 < count_parameters(QuartzNet(ModelSection(), 64, 223)) < 19.5e6  # 15x5 ~ 18.9 M
    assert 6.5e6 < count_parameters(QuartzNet(ModelSection(block_repeat=1), 64, 223)) < 7.2e6  # 5x5 ~ 6.7 M


def test_error_rates():
    ref = ["| n i3 | h ao3 |".split(), "| uo3 |".split()]
    hyp = ["| n i2 | h ao3 |".split(), "| uo3 |".split()]
    r = error_rates(ref, hyp)
    assert r["ter"] == pytest.approx(1 / 5) and r["ser"] == pytest.approx(1 / 3) and r["ser_toneless"] == 0
    assert error_rates(ref, [[], []])["ser"] == 1.0


def test_blank_padding_and_spec_augment():
    from voxtool.tasks.pinyin.config import AugmentSection
    from voxtool.tasks.pinyin.data import Item, collate
    from voxtool.tasks.pinyin.losses import spec_augment

    rng = np.random.default_rng(0)
    items = [Item(rng.normal(size=(64, 30)).astype(np.float32), np.array([1, 5, 1]), "", "", "s"),
             Item(rng.normal(size=(64, 20)).astype(np.float32), np.array([1, 6, 7, 1]), "", "", "s")]
    feats, lens, targets, tlens = collate(items, pad_frames=5)
    assert feats.shape == (2, 64, 40) and lens.tolist() == [40, 30] and tlens.tolist() == [3, 4]
    assert torch.allclose(feats[0, :, :5], torch.from_numpy(items[0].mel.min(axis=1, keepdims=True)).expand(64, 5))
    assert torch.equal(feats[0, :, 5:35], torch.from_numpy(items[0].mel))
    aug = spec_augment(feats, lens, AugmentSection(freq_masks=2, freq_width=10, time_masks=2, time_width=0.2), rng)
    changed = (aug != feats)
    assert changed.any() and not changed[1, :, 30:].any()  # padding is never touched
    assert torch.equal(spec_augment(feats, lens, AugmentSection(freq_masks=0, time_masks=0), rng), feats)


def test_blank_free_starts_move_boundaries_off_late_spikes():
    from voxtool.tasks.pinyin.decode import blank_free_starts

    # token 1 spikes at frame 1, token 2 only spikes at frame 5, but frames 3-4 (blank by argmax) already favour
    # token 2 over token 1: CTC puts the boundary at the spike (5), the blank-free pass at 3.
    p = np.array([
        # blank  tok1  tok2
        [0.10, 0.80, 0.10],
        [0.05, 0.90, 0.05],
        [0.80, 0.15, 0.05],
        [0.80, 0.05, 0.15],
        [0.80, 0.02, 0.18],
        [0.10, 0.05, 0.85],
    ])
    lp = np.log(p)
    states = forced_align(lp, [1, 2])
    assert [s.start for s in token_spans(states, lp, [1, 2])] == [0, 5]
    assert blank_free_starts(lp, [1, 2]) == [0, 3]
    with pytest.raises(AlignmentError):
        blank_free_starts(lp[:1], [1, 2])
