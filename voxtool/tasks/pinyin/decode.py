"""CTC decoding and forced alignment on one utterance's log-probabilities (numpy, no torchaudio).

- `greedy_decode`: argmax per frame, merge repeats, drop blanks.
- `prefix_beam_search`: CTC prefix beam search (blank / non-blank prefix probabilities, no LM).
- `forced_align`: Viterbi over the blank-extended target (2L+1 states) -> the state of every frame.
- `token_spans`: frame path -> first/last frame of every target token, with the trailing blank frames given to
  the token before them (the end of a token is where the next one starts), which is what gives long sung
  vowels their real length after CTC's one-frame spikes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NEG_INF = float("-inf")


class AlignmentError(ValueError):
    """The targets cannot be aligned (too few frames for the tokens plus the blanks between repeats)."""


def greedy_decode(log_probs: np.ndarray, blank: int = 0) -> list[int]:
    """(T, C) log-probabilities -> token ids (repeats merged, blanks removed)."""
    best = np.asarray(log_probs).argmax(axis=-1)
    out: list[int] = []
    prev = -1
    for k in best.tolist():
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return out


def _logadd(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


def _slot(table: dict[tuple[int, ...], list[float]], prefix: tuple[int, ...]) -> list[float]:
    """[log P(prefix ending in blank), log P(prefix ending in a label)] for the next frame, created at -inf."""
    s = table.get(prefix)
    if s is None:
        s = table[prefix] = [NEG_INF, NEG_INF]
    return s


def prefix_beam_search(log_probs: np.ndarray, beam: int = 8, blank: int = 0, prune: float = 12.0) -> list[int]:
    """(T, C) log-probabilities -> most probable label sequence under CTC (prefix beam search, no LM).

    Each prefix keeps log P(prefix, ends in blank) and log P(prefix, ends in a label). Per frame only tokens
    within `prune` nats of the frame's best (at most `beam` of them) are expanded."""
    lp = np.asarray(log_probs, dtype=np.float64)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for t in range(lp.shape[0]):
        row = lp[t]
        order = np.argsort(-row)[: beam + 1]
        cands = [int(k) for k in order if row[k] >= row[order[0]] - prune and k != blank][:beam]
        nxt: dict[tuple[int, ...], list[float]] = {}
        p_blank = float(row[blank])
        for prefix, (pb, pnb) in beams.items():
            total = _logadd(pb, pnb)
            s = _slot(nxt, prefix)
            s[0] = _logadd(s[0], total + p_blank)
            last = prefix[-1] if prefix else -1
            for c in cands:
                pc = float(row[c])
                ext = _slot(nxt, prefix + (c,))
                if c == last:  # a repeat needs a blank in between; without one it extends the same label
                    ext[1] = _logadd(ext[1], pb + pc)
                    s[1] = _logadd(s[1], pnb + pc)
                else:
                    ext[1] = _logadd(ext[1], total + pc)
        ranked = sorted(nxt.items(), key=lambda kv: _logadd(kv[1][0], kv[1][1]), reverse=True)[:beam]
        beams = {p: (v[0], v[1]) for p, v in ranked}
    best = max(beams.items(), key=lambda kv: _logadd(kv[1][0], kv[1][1]))
    return list(best[0])


def min_frames(targets: list[int]) -> int:
    """Frames CTC needs for `targets`: one per token plus one blank between identical neighbours."""
    return len(targets) + sum(1 for a, b in zip(targets, targets[1:], strict=False) if a == b)


def forced_align(log_probs: np.ndarray, targets: list[int], blank: int = 0) -> np.ndarray:
    """Viterbi CTC alignment.  log_probs (T, C), targets (L,) without blanks -> state per frame (T,) where
    state 2j+1 means target j and even states are blanks (state 2j = blank before target j)."""
    lp = np.asarray(log_probs, dtype=np.float32)
    T = lp.shape[0]
    L = len(targets)
    if L == 0:
        raise AlignmentError("nothing to align")
    if T < min_frames(targets):
        raise AlignmentError(f"{T} frames are too few for {L} tokens")
    ext = np.full(2 * L + 1, blank, dtype=np.int64)
    ext[1::2] = targets
    S = ext.size
    emit = lp[:, ext]  # (T, S)
    skip_ok = np.zeros(S, dtype=bool)
    skip_ok[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    delta = np.full(S, NEG_INF, dtype=np.float32)
    delta[0] = emit[0, 0]
    delta[1] = emit[0, 1]
    back = np.zeros((T, S), dtype=np.int8)  # 0 = stay, 1 = from s-1, 2 = from s-2
    neg = np.full(S, NEG_INF, dtype=np.float32)
    for t in range(1, T):
        stay = delta
        step = np.concatenate(([NEG_INF], delta[:-1])).astype(np.float32)
        jump = np.where(skip_ok, np.concatenate(([NEG_INF, NEG_INF], delta[:-2])), neg).astype(np.float32)
        cand = np.stack([stay, step, jump])
        choice = cand.argmax(axis=0)
        delta = cand[choice, np.arange(S)] + emit[t]
        back[t] = choice
    end = S - 1 if delta[S - 1] >= delta[S - 2] else S - 2
    if not np.isfinite(delta[end]):
        raise AlignmentError("no valid alignment")
    path = np.empty(T, dtype=np.int64)
    s = end
    for t in range(T - 1, -1, -1):
        path[t] = s
        s -= int(back[t, s])
    return path


@dataclass(frozen=True)
class Span:
    """Target token `index` occupies frames [start, end) by its own label; [start, until) also counts the
    blank frames after it (until = start of the next token, or the end of the utterance)."""

    index: int
    start: int
    end: int
    until: int
    score: float  # mean log-probability of the token on its own frames


def token_spans(path: np.ndarray, log_probs: np.ndarray, targets: list[int]) -> list[Span]:
    """Frame states from `forced_align` -> one `Span` per target token, in order."""
    lp = np.asarray(log_probs)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    scores: dict[int, list[float]] = {}
    for t, s in enumerate(path.tolist()):
        if s % 2 == 1:
            j = s // 2
            first.setdefault(j, t)
            last[j] = t
            scores.setdefault(j, []).append(float(lp[t, targets[j]]))
    spans = []
    T = len(path)
    for j in range(len(targets)):
        until = first[j + 1] if j + 1 < len(targets) else T
        spans.append(Span(j, first[j], last[j] + 1, until, float(np.mean(scores[j]))))
    return spans


def greedy_spans(log_probs: np.ndarray, blank: int = 0) -> tuple[list[int], list[Span]]:
    """Greedy decode and the frame spans the argmax path gives each emitted token (no second alignment)."""
    best = np.asarray(log_probs).argmax(axis=-1).tolist()
    ids: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    prev = -1
    for t, k in enumerate(best):
        if k != blank and k != prev:
            ids.append(k)
            starts.append(t)
            ends.append(t + 1)
        elif k != blank and k == prev:
            ends[-1] = t + 1
        prev = k
    T = len(best)
    spans = []
    for j, k in enumerate(ids):
        until = starts[j + 1] if j + 1 < len(ids) else T
        sc = float(np.mean([log_probs[t, k] for t in range(starts[j], ends[j])]))
        spans.append(Span(j, starts[j], ends[j], until, sc))
    return ids, spans


def blank_free_starts(log_probs: np.ndarray, targets: list[int], blank: int = 0) -> list[int]:
    """First frame of every target token when each frame must belong to one token (no blanks).

    Scores are the log-probabilities renormalised without the blank, so a frame that CTC calls "blank" goes to
    whichever neighbouring token the model finds relatively more likely there. This re-segmentation moves
    boundaries off CTC's late spikes (on the synthetic test it halves the initial/final phone boundary error and
    cuts the 90th-percentile syllable-start error by a third). log_probs (T, C), targets (L,) -> (L,) frames."""
    lp = np.asarray(log_probs, dtype=np.float64).copy()
    T, L = lp.shape[0], len(targets)
    if L == 0 or T < L:
        raise AlignmentError(f"{T} frames are too few for {L} tokens")
    lp[:, blank] = -np.inf
    lp -= np.logaddexp.reduce(lp, axis=1, keepdims=True)
    emit = lp[:, targets]  # (T, L)
    delta = np.full(L, -np.inf)
    delta[0] = emit[0, 0]
    moved = np.zeros((T, L), dtype=bool)
    for t in range(1, T):
        step = np.concatenate(([-np.inf], delta[:-1]))
        moved[t] = step > delta
        delta = np.maximum(delta, step) + emit[t]
    starts = [0] * L
    s = L - 1
    for t in range(T - 1, 0, -1):
        if moved[t, s]:
            starts[s] = t
            s -= 1
            if s == 0:
                break
    return starts
