"""Speaker-similarity measures and the conversion evaluation of `eval diffvc` (`evaluate_conversion`).

- `cosine(a, b)`: GE2E d-vector cosine (the d-vectors are L2-normalised; DiffVC is conditioned on them, so a
  converted voice scoring high here is partly by construction).
- Mel-cepstral statistics, a measure DiffVC is NOT conditioned on: per frame, the DCT-II (orthonormal) of the
  log-mel, coefficients 1..`n_ceps` (c0, the loudness, is left out); a voice is summarised by the mean and standard
  deviation of those coefficients over its non-silent frames (frames within `active_db` of the loudest), and
  two summaries are compared by the Euclidean distance of the means plus that of the standard deviations.
  The spectral envelope (formants, vocal-tract length) and its variability show in these statistics; the
  linguistic content averages out over a few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

N_CEPS = 24
ACTIVE_DB = 40.0


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else 0.0


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis (n_out, n_in), as scipy.fft.dct(type=2, norm='ortho') rows."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis


def mel_cepstra(mel: np.ndarray, n_ceps: int = N_CEPS, active_db: float = ACTIVE_DB) -> np.ndarray:
    """Log-mel (n_mels, F) (natural log of amplitude) -> cepstra (F_active, n_ceps) of its non-silent frames."""
    mel = np.asarray(mel, np.float64)
    ceps = (dct_matrix(mel.shape[0], n_ceps + 1) @ mel).T[:, 1:]  # (F, n_ceps), c0 dropped
    loudness_db = 20.0 / np.log(10.0) * np.log(np.exp(mel).mean(axis=0) + 1e-10)  # (F,)
    active = loudness_db >= loudness_db.max() - active_db
    return ceps[active]


class CepstralStats(NamedTuple):
    mean: np.ndarray  # (n_ceps,)
    std: np.ndarray  # (n_ceps,)
    frames: int


def cepstral_stats(mels: list[np.ndarray], n_ceps: int = N_CEPS) -> CepstralStats:
    """Pooled statistics of one voice over one or more log-mels (each (n_mels, F))."""
    ceps = np.concatenate([mel_cepstra(m, n_ceps) for m in mels], axis=0)
    return CepstralStats(ceps.mean(axis=0), ceps.std(axis=0), len(ceps))


def stats_distance(a: CepstralStats, b: CepstralStats) -> float:
    """|mean_a - mean_b| + |std_a - std_b| (Euclidean); 0 for identical statistics."""
    return float(np.linalg.norm(a.mean - b.mean) + np.linalg.norm(a.std - b.std))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


def evaluate_conversion(converter, data: str | Path, split: str = "unseen", *, limit: int = 0, advance=None,
                        steps: int = 6, sampler: str = "ml", seed: int = 0):
    """Any-to-any conversion between the speakers of a prepared split -> `voxtool.evaluation.EvalResult`.

    Item k of speaker S is converted to the next speaker T (sorted names, cyclic), one-shot: T's reference is one
    of T's items (its mel and its d-vector). The converted mel is vocoded and scored against both voices, each
    voice described by all of its items in the split:
    - `target_cos` / `source_cos`: GE2E cosine of the converted speech's d-vector to T's / S's mean d-vector;
    - `cep_target` / `cep_source`: mel-cepstral statistics distance (`stats_distance`) of the vocoded speech to
      T's / S's (lower is closer; DiffVC is not conditioned on it);
    - `target_wins`: 1 when the converted speech is closer to T than to S on both measures, else 0.
    Needs a split with at least two speakers (`unseen`: the held-out speakers of `prep diffvc`).
    """
    from voxtool.errors import BadInput
    from voxtool.evaluation import EvalResult
    from voxtool.tasks.diffvc.data import DiffvcItems
    from voxtool.tasks.diffvc.infer import Reference, convert_mel, vocode

    items = DiffvcItems(data, split, converter.mel.n_mels, with_avg=False, required=True)
    by_speaker: dict[str, list[int]] = {}
    loaded = [items[i] for i in range(len(items))]
    for i, item in enumerate(loaded):
        by_speaker.setdefault(item.speaker, []).append(i)
    names = sorted(by_speaker)
    if len(names) < 2:
        raise BadInput(Path(data) / f"{split}.txt", f"needs items of at least two speakers ({len(names)} found)")
    voice_embed = {s: _unit(np.mean([loaded[i].embed for i in by_speaker[s]], axis=0)) for s in names}
    voice_stats = {s: cepstral_stats([loaded[i].mel for i in by_speaker[s]]) for s in names}
    ge2e = converter.ge2e()
    sr = converter.sample_rate
    rows = []
    order = [i for k in range(max(len(v) for v in by_speaker.values())) for s in names
             if k < len(by_speaker[s]) for i in [by_speaker[s][k]]]  # speakers interleaved
    for n, i in enumerate(order[: limit or None]):
        src = loaded[i]
        target = names[(names.index(src.speaker) + 1) % len(names)]
        ref_item = loaded[by_speaker[target][n % len(by_speaker[target])]]
        converted = convert_mel(src.mel, Reference(ref_item.mel, ref_item.embed), converter, steps, sampler,
                                seed + n)
        wav = vocode(converted, converter)
        embed = ge2e.embed_utterance(wav, sr)
        stats = cepstral_stats([converter.log_mel(wav)])
        row = {"name": items.paths[i].stem, "source": src.speaker, "target": target,
               "target_cos": cosine(embed, voice_embed[target]), "source_cos": cosine(embed, voice_embed[src.speaker]),
               "cep_target": stats_distance(stats, voice_stats[target]),
               "cep_source": stats_distance(stats, voice_stats[src.speaker]), "seconds": len(wav) / sr}
        row["target_wins"] = float(row["target_cos"] > row["source_cos"] and row["cep_target"] < row["cep_source"])
        rows.append(row)
        if advance:
            advance(1)
    keys = ("target_cos", "source_cos", "cep_target", "cep_source", "target_wins")
    return EvalResult({k: float(np.mean([r[k] for r in rows])) for k in keys}, rows)
