"""`voxtool prep diffvc DIR OUT`: the command function (mounted by the diffvc plugin in cli.py).

Thin: the work is in prep.py. No `from __future__ import annotations` (typer reads the annotations).
"""

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import MAX_SEED, MAX_WORKERS, common_flags


@common_flags
def prep_diffvc(
    corpus: Annotated[Path, typer.Argument(help="Corpus folder: one sub-folder per speaker (any depth below), "
                                                "LibriTTS or VCTK.")],
    out: Annotated[Path, typer.Argument(help="Output dataset folder.")],
    alignments: Annotated[Path | None, typer.Option(
        "--alignments", help="Folder of TextGrids with a phones tier (Montreal Forced Aligner, or `voxtool "
                             "transcribe pinyin ... --format textgrid`), matched by speaker/relative path or "
                             "stem: phone average-voice targets.")] = None,
    avg_units: Annotated[str | None, typer.Option(
        "--avg-units", help="phones (needs --alignments) | kmeans (no aligner: clusters of speaker-normalised "
                            "MFCCs). Default: phones.")] = None,
    clusters: Annotated[int, typer.Option("--clusters", min=2, max=4096,
                                          help="Number of k-means units (with --avg-units kmeans).")] = 64,
    speaker_units: Annotated[bool, typer.Option(
        "--keep-speaker-units", help="Keep k-means units one speaker dominates (by default they are dropped and "
                                     "their frames go to the nearest shared unit: their average voice would be that "
                                     "speaker's).")] = False,
    vtln_on: Annotated[bool, typer.Option(
        "--vtln/--no-vtln", help="k-means: cluster the MFCCs of vocal-tract-length-normalised mels (one warp "
                                 "factor per speaker, from its long-term average spectrum).")] = True,
    tier: Annotated[str, typer.Option("--tier", help="Name of the TextGrid phone tier.")] = "phones",
    unseen: Annotated[str | None, typer.Option(
        "--unseen", help="Comma-separated speakers held out as unseen test speakers.")] = None,
    unseen_fraction: Annotated[float, typer.Option(
        "--unseen-fraction", min=0.0, max=0.9, help="Seeded fraction of speakers held out (instead of "
                                                    "--unseen).")] = 0.0,
    valid_fraction: Annotated[float, typer.Option(
        "--valid-fraction", min=0.0, max=0.9, help="Seeded fraction of the seen speakers' items for "
                                                   "validation.")] = 0.05,
    mic: Annotated[str, typer.Option("--mic", help="VCTK 0.92: microphone kept (mic1 | mic2; DiffVC used "
                                                   "mic2).")] = "mic2",
    workers: Annotated[int, typer.Option("--workers", min=1, max=MAX_WORKERS,
                                         help="Utterances processed in parallel (threads).")] = 1,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the splits and the "
                                                                          "clustering.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Speaker folders -> DiffVC dataset: HiFi-GAN 22.05 kHz mels, GE2E d-vectors and average-voice targets
    (per-phone or per-unit corpus modes), with train / valid / unseen-speaker lists."""
    from voxtool.batch import prep_progress
    from voxtool.console import emit_json, log, print_table
    from voxtool.errors import BadInput
    from voxtool.fileio import check_output_dir
    from voxtool.inputs import check_dataset_out
    from voxtool.tasks.diffvc.corpus import discover
    from voxtool.tasks.diffvc.prep import DATASET_FORMAT, PrepOptions, prepare

    units = (avg_units or "phones").lower()
    if units not in ("phones", "kmeans"):
        raise BadInput(None, f"--avg-units {avg_units!r}: choose phones or kmeans")
    if units == "kmeans" and alignments is not None:
        raise BadInput(None, "--alignments and --avg-units kmeans exclude each other (kmeans needs no alignments)")
    if unseen and unseen_fraction > 0:
        raise BadInput(None, "--unseen and --unseen-fraction exclude each other")
    if mic not in ("mic1", "mic2"):
        raise BadInput(None, f"--mic {mic!r}: choose mic1 or mic2")
    check_dataset_out(out, [corpus, alignments])
    check_output_dir(out)
    if out.is_dir() and any(out.iterdir()):
        from voxtool.datasets import read_json

        meta = out / "dataset.json"
        doc = read_json(meta) if meta.is_file() else None
        # a finished diffvc dataset, or an unfinished run of this command (items only, no dataset.json yet)
        ours = doc.get("format") == DATASET_FORMAT if isinstance(doc, dict) else (
            doc is None and {p.name for p in out.iterdir()} <= {"items", "train.txt", "valid.txt", "unseen.txt"})
        if not ours:
            raise BadInput(out, "output folder exists and is not a diffvc dataset; choose an empty folder")
    names = [s.strip() for s in unseen.split(",") if s.strip()] if unseen else None
    opts = PrepOptions(alignments=alignments, avg_units=units, clusters=clusters, shared_units=not speaker_units,
                       vtln=vtln_on,
                       tier=tier, unseen=names,
                       unseen_fraction=unseen_fraction, valid_fraction=valid_fraction, workers=workers, seed=seed,
                       mic=mic)
    n = len(discover(corpus, mic).utterances)  # a quick scan, so the bar knows its length
    passes = 4 if units == "kmeans" else 2
    with prep_progress(n * passes, "prep diffvc", out=out, unit="steps",
                       then=f"{out} is unfinished: run the same command again") as advance:
        summary = prepare(corpus, out, opts, advance=advance)
    if json_out:
        emit_json({"out": str(out), "layout": summary.layout, "avg_units": summary.avg_units, "units": summary.units,
                   "splits": summary.splits, "speakers": summary.speakers, "vtln": summary.vtln,
                   "hours": round(summary.seconds / 3600, 4),
                   "skipped": [{"input": p, "reason": r} for p, r in summary.skipped]})
        return
    for path, reason in summary.skipped:
        log(f"skipped {path}: {reason}")
    rows = [["layout", summary.layout], ["speakers", len(summary.speakers)],
            ["unseen speakers", sum(1 for s in summary.speakers.values() if s["split"] == "unseen")],
            *[[f"{k} items", v] for k, v in summary.splits.items()], ["hours", round(summary.seconds / 3600, 3)],
            [f"{summary.avg_units} units", len(summary.units)], ["skipped", len(summary.skipped)]]
    if summary.vtln:
        rows.insert(-1, ["VTLN factors", f"{min(summary.vtln.values()):.3f} - {max(summary.vtln.values()):.3f}"])
    print_table(f"prep diffvc -> {out}", ["", "value"], rows)
