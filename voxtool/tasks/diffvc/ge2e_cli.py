"""`voxtool infer ge2e` (audio -> GE2E d-vector .npy) and `voxtool eval ge2e` (speaker-similarity matrix), the
command functions mounted by the diffvc plugin, plus the scoring they use (`similarity_report`, `equal_error_rate`).

No `from __future__ import annotations` (typer reads the annotations); heavy imports inside the commands.
"""

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from voxtool.options import FailFast, common_flags

Device = Annotated[str, typer.Option("--device", help="auto|cpu|cuda[:N]|mps|xpu|npu|sdaa[:N]")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")]


def _embed_file(encoder, path: Path) -> np.ndarray:
    """Audio file -> float32 [256] d-vector; a file without speech is a BadInput naming it."""
    from voxtool.audio.io import load_audio_channels
    from voxtool.errors import BadInput

    data, sr = load_audio_channels(path)
    try:
        return encoder.embed_utterance(np.ascontiguousarray(data.mean(axis=1)), sr)
    except BadInput as e:
        raise BadInput(path, e.problem) from None


@common_flags
def infer_ge2e(
    inputs: Annotated[list[str], typer.Argument(help="Audio files, folders (mirrored into --out) or globs.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output .npy (one input) or folder; default: "
                                                                 "next to each input.")] = None,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output exists.")] = False,
    device: Device = "cpu",
    fail_fast: FailFast = False,
    json_out: JsonOut = False,
) -> None:
    """Audio -> GE2E speaker d-vectors (float32 [256], L2-normalised; DiffVC's `get_embed`), one .npy per file."""
    from voxtool.batch import run_jobs
    from voxtool.console import log, progress
    from voxtool.devices import resolve_device
    from voxtool.encoders.ge2e import load_ge2e
    from voxtool.inputs import expand_inputs
    from voxtool.outputs import write_npy

    jobs = expand_inputs(inputs, out, ".npy", skip_existing=skip_existing)
    if not jobs:
        log("nothing to do (every output exists)")
        return
    encoder = load_ge2e(resolve_device(device).torch)

    def work(job) -> dict:
        embed = _embed_file(encoder, job.src)
        write_npy(job.dst, embed)
        return {"input": str(job.src), "output": str(job.dst)}

    with progress(len(jobs), "infer ge2e") as advance:
        results = run_jobs(jobs, work, fail_fast=fail_fast, advance=advance, out=out)
    results.report("infer ge2e", ("input", "output"), json_out=json_out)


# ------------------------------------------------------------------------------------------------ eval

def equal_error_rate(same: np.ndarray, different: np.ndarray) -> tuple[float, float]:
    """Cosines of same-speaker and different-speaker pairs -> (EER, threshold): the rate where accepting
    scores >= threshold wrongly rejects as many same pairs as it wrongly accepts different ones."""
    scores = np.unique(np.concatenate([same, different]))
    frr = np.searchsorted(np.sort(same), scores, side="left") / len(same)  # same pairs below the threshold
    far = 1 - np.searchsorted(np.sort(different), scores, side="left") / len(different)  # different at/above it
    k = int(np.argmin(np.abs(far - frr)))
    return float((far[k] + frr[k]) / 2), float(scores[k])


def similarity_report(embeds: dict[str, np.ndarray]) -> dict:
    """speaker -> [n, 256] unit d-vectors -> {"speakers", "utterances", "matrix" (mean cosine between the
    speakers' utterances; the diagonal over distinct pairs, NaN with one utterance), "same_mean",
    "different_mean", "eer", "threshold"}."""
    names = sorted(embeds)
    n = len(names)
    matrix = np.full((n, n), np.nan)
    same, different = [], []
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if j < i:
                continue
            cos = embeds[a] @ embeds[b].T
            if i == j:
                pairs = cos[np.triu_indices(len(cos), k=1)]
                same.append(pairs)
            else:
                pairs = cos.ravel()
                different.append(pairs)
            if len(pairs):
                matrix[i, j] = matrix[j, i] = float(pairs.mean())
    same_all = np.concatenate(same) if same else np.zeros(0)
    diff_all = np.concatenate(different) if different else np.zeros(0)
    report = {"speakers": names, "utterances": {k: int(len(embeds[k])) for k in names}, "matrix": matrix.tolist(),
              "same_mean": float(same_all.mean()) if len(same_all) else None,
              "different_mean": float(diff_all.mean()) if len(diff_all) else None, "eer": None, "threshold": None}
    if len(same_all) and len(diff_all):
        report["eer"], report["threshold"] = equal_error_rate(same_all, diff_all)
    return report


def _speaker_files(folder: Path) -> dict[str, list[Path]]:
    """folder/<speaker>/**: audio files, or .npy d-vectors (as `infer ge2e` writes them), per speaker."""
    from voxtool.audio.io import is_audio_file
    from voxtool.errors import BadInput

    if not folder.is_dir():
        raise BadInput(folder, "not a folder (expected one sub-folder per speaker)")
    out = {}
    for spk in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = [f for f in sorted(spk.rglob("*")) if f.is_file() and (is_audio_file(f) or f.suffix == ".npy")]
        if files:
            out[spk.name] = files
    if len(out) < 2:
        raise BadInput(folder, f"needs at least two speaker sub-folders with audio or .npy d-vectors "
                               f"(found {len(out)})")
    return out


@common_flags
def eval_ge2e(
    folder: Annotated[Path, typer.Argument(help="Folder of speaker sub-folders holding audio (or .npy d-vectors "
                                                "from `voxtool infer ge2e`).")],
    max_per_speaker: Annotated[int, typer.Option("--max-per-speaker", min=0, max=1_000_000,
                                                 help="Use at most N files per speaker (0 = all).")] = 0,
    device: Device = "cpu",
    fail_fast: FailFast = False,
    json_out: JsonOut = False,
) -> None:
    """Speaker-similarity matrix (mean GE2E cosine between speakers' utterances) and the same / different-speaker
    separation (mean cosines and the equal error rate)."""
    from voxtool.batch import run_jobs
    from voxtool.console import emit_json, log, print_table, progress
    from voxtool.devices import resolve_device
    from voxtool.encoders.ge2e import EMBED_DIM, load_ge2e
    from voxtool.errors import BadInput
    from voxtool.inputs import Job

    files = _speaker_files(folder)
    jobs = [Job(f, f) for spk in files for f in (files[spk][:max_per_speaker] if max_per_speaker else files[spk])]
    speaker_of = {f: spk for spk in files for f in files[spk]}
    encoder = load_ge2e(resolve_device(device).torch) if any(j.src.suffix != ".npy" for j in jobs) else None

    def work(job) -> dict:
        if job.src.suffix == ".npy":
            vec = np.load(job.src, allow_pickle=False).astype(np.float32).ravel()
            if vec.shape != (EMBED_DIM,) or not np.isfinite(vec).all() or np.linalg.norm(vec) == 0:
                raise BadInput(job.src, f"not a d-vector (expected {EMBED_DIM} finite values, not all zero)")
            vec = vec / np.linalg.norm(vec)
        else:
            vec = _embed_file(encoder, job.src)
        return {"input": str(job.src), "speaker": speaker_of[job.src], "embed": vec}

    with progress(len(jobs), "eval ge2e") as advance:
        results = run_jobs(jobs, work, fail_fast=fail_fast, advance=advance)
    embeds: dict[str, list] = {}
    for r in results.ok:
        embeds.setdefault(r["speaker"], []).append(r["embed"])
    report = similarity_report({k: np.stack(v) for k, v in embeds.items()})
    if json_out:
        emit_json(report)
    else:
        names = report["speakers"]

        def cell(v):
            return "-" if v is None or v != v else round(v, 3)

        print_table(f"eval ge2e: mean cosine between speakers ({folder})", ["speaker", *names],
                    [[f"{a} ({report['utterances'][a]})", *[cell(v) for v in row]]
                     for a, row in zip(names, report["matrix"], strict=True)])
        print_table("same vs different speaker", ["", "value"],
                    [["same-speaker mean cosine", cell(report["same_mean"])],
                     ["different-speaker mean cosine", cell(report["different_mean"])],
                     ["equal error rate", cell(report["eer"])], ["EER threshold", cell(report["threshold"])]])
        if report["eer"] is None:
            log("no speaker has two utterances: the EER needs same-speaker pairs")
    results.raise_if_failed()
