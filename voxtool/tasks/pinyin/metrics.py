"""Error rates on pinyin tokens with jiwer (`wer` over space-joined units = corpus-level edit rate), and the
evaluation of a network on prepared items (validation during training, `voxtool eval pinyin`).

- ter: initial/final token error rate (`|` and blanks excluded)
- ser: syllable error rate, syllable = initial+final with tone (groups between `|`)
- ser_toneless: the same with tone digits removed
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from voxtool.tasks.pinyin.tokens import BLANK, SEP, Vocab, group_label, group_syllables, syllable_strings


def _rate(refs: list[list[str]], hyps: list[list[str]]) -> float:
    import jiwer

    pairs = [(" ".join(r), " ".join(h)) for r, h in zip(refs, hyps, strict=True) if r]
    if not pairs:
        return float("nan")
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def error_rates(refs: list[list[str]], hyps: list[list[str]]) -> dict[str, float]:
    """Reference and hypothesis token lists (with `|`) -> {"ter", "ser", "ser_toneless"}."""
    strip = [[t for t in r if t not in (SEP, BLANK)] for r in refs]
    strip_h = [[t for t in h if t not in (SEP, BLANK)] for h in hyps]
    return {
        "ter": _rate(strip, strip_h),
        "ser": _rate([syllable_strings(r) for r in refs], [syllable_strings(h) for h in hyps]),
        "ser_toneless": _rate([syllable_strings(r, toned=False) for r in refs],
                              [syllable_strings(h, toned=False) for h in hyps]),
    }


def _pinyin(tokens: list[str]) -> str:
    return " ".join(group_label(g) for g in group_syllables(tokens))


@torch.no_grad()
def evaluate_items(net: torch.nn.Module, items: list, vocab: Vocab, device, *, beam: int = 1, batch_size: int = 16,
                   advance: Callable[[int], Any] | None = None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Greedy (or prefix beam) decode of `items` (`data.Item`s, mel (F, T)) in batches of (B, F, T).

    -> (metrics {ter, ser, ser_toneless} over all items + mean CTC loss and the share of blank frames,
        one row per item in the given order: reference and hypothesis pinyin, its own ter/ser/ser_toneless
        and blank share). `advance(1)` after each item."""
    from voxtool.tasks.pinyin.data import collate
    from voxtool.tasks.pinyin.decode import greedy_decode, prefix_beam_search
    from voxtool.tasks.pinyin.losses import ctc_loss

    net.eval()
    # similar lengths batch together: less padding, and the results do not depend on it (masked model)
    order = sorted(range(len(items)), key=lambda i: items[i].mel.shape[1])
    refs: list[list[str]] = [[] for _ in items]
    hyps: list[list[str]] = [[] for _ in items]
    blank_shares = [0.0] * len(items)
    loss_sum, blank_frames, frames = 0.0, 0, 0
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        chunk = [items[i] for i in idx]
        feats, lens, targets, tlens = collate(chunk)
        log_probs, out_lens = net(feats.to(device), lens.to(device))
        log_probs = log_probs.float()
        loss_sum += float(ctc_loss(log_probs, out_lens, targets.to(device), tlens.to(device), vocab.blank)) * len(chunk)
        lp = log_probs.cpu().numpy()
        for b, (i, it) in enumerate(zip(idx, chunk, strict=True)):
            row = lp[b, : int(out_lens[b])]
            ids = greedy_decode(row, vocab.blank) if beam <= 1 else prefix_beam_search(row, beam, vocab.blank)
            n_blank = int((row.argmax(-1) == vocab.blank).sum())
            blank_frames += n_blank
            frames += row.shape[0]
            blank_shares[i] = n_blank / max(1, row.shape[0])
            refs[i] = vocab.decode(it.tokens)
            hyps[i] = vocab.decode(ids)
            if advance:
                advance(1)
    metrics = error_rates(refs, hyps)
    metrics["loss"] = loss_sum / max(1, len(items))
    metrics["blank_share"] = blank_frames / max(1, frames)
    rows = [{"reference": _pinyin(r), "hypothesis": _pinyin(h), **error_rates([r], [h]), "blank_share": bs}
            for r, h, bs in zip(refs, hyps, blank_shares, strict=True)]
    return metrics, rows
