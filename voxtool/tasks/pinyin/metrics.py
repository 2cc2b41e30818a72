"""Error rates on pinyin tokens with jiwer (`wer` over space-joined units = corpus-level edit rate).

- ter: initial/final token error rate (`|` and blanks excluded)
- ser: syllable error rate, syllable = initial+final with tone (groups between `|`)
- ser_toneless: the same with tone digits removed
"""

from __future__ import annotations

from voxtool.tasks.pinyin.tokens import BLANK, SEP, syllable_strings


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
