"""`pinyin` task commands: prep aishell|aidatatang|stcmds|primewords|aishell3|tsv, train, transcribe, eval.

Thin wrappers: the work is in corpora.py, prep.py, train.py and infer.py. No heavy imports at module level.
"""

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import (
    MAX_COUNT,
    MAX_SEED,
    MAX_WORKERS,
    FailFast,
    InferPrecision,
    TrainOptions,
    common_flags,
    train_command,
)
from voxtool.plugins import TaskPlugin

CORPUS_HELP = {
    "aishell": "AISHELL-1 (data_aishell/: transcript/ + wav/{train,dev,test}/S####/*.wav)",
    "aidatatang": "aidatatang_200zh (transcript/ + corpus/{train,dev,test}/G####/*.wav)",
    "stcmds": "ST-CMDS (flat *.wav + same-name *.txt)",
    "primewords": "Primewords set 1 (set1_transcript.json + audio_files/)",
    "aishell3": "AISHELL-3 ({train,test}/content.txt + wav/; uses its pinyin)",
    "tsv": "any audio listed in a TSV: path<TAB>text[<TAB>speaker] (text: Hanzi or tone-numbered pinyin)",
}


def _prep_command(corpus: str):
    @common_flags
    def prep(
        paths: Annotated[list[Path], typer.Argument(help="Corpus folder(s) (or TSV file(s)), then the OUT folder.")],
        add: Annotated[bool, typer.Option("--add", help="Merge into an existing prepared dataset OUT.")] = False,
        workers: Annotated[int, typer.Option(min=1, max=MAX_WORKERS, help="Utterances processed in parallel.")] = 1,
        preset: Annotated[str, typer.Option(help="Preset whose [features] and [text] to use.")] = "pinyin",
        set_: Annotated[list[str] | None, typer.Option("--set", help="Override a preset field (repeatable).")] = None,
        split: Annotated[str, typer.Option(help="auto | official | speakers (seeded, speaker-disjoint).")] = "auto",
        valid_frac: Annotated[float, typer.Option(min=0, max=0.5, help="Speaker share for valid.")] = 0.05,
        test_frac: Annotated[float, typer.Option(min=0, max=0.5, help="Speaker share for test.")] = 0.05,
        seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the speaker split.")] = 0,
        max_seconds: Annotated[float, typer.Option(min=0, max=3600,
                                                   help="Skip longer utterances (0 = keep all).")] = 16.7,
        limit: Annotated[int, typer.Option(min=0, max=MAX_COUNT,
                                           help="Only the first N utterances per source (0 = all).")] = 0,
        json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    ) -> None:
        from voxtool.batch import prep_progress
        from voxtool.console import emit_json, print_table
        from voxtool.errors import BadInput
        from voxtool.inputs import check_dataset_out
        from voxtool.presets import load_config
        from voxtool.tasks.pinyin.config import PinyinConfig  # no torch: a bad preset fails fast
        from voxtool.tasks.pinyin.prep import prepare

        if len(paths) < 2:
            raise BadInput(None, "give at least one corpus path and the OUT folder")
        check_dataset_out(paths[-1], paths[:-1])
        cfg = load_config(PinyinConfig, preset, list(set_ or []), task="pinyin")
        then = ("its lists are unchanged: run the same command again" if add else
                "it has no dataset.json yet: delete it and run again")
        with prep_progress(None, f"prep {corpus}", out=paths[-1], unit="utterances", then=then) as advance:
            result = prepare(corpus, paths[:-1], paths[-1], feat=cfg.features, text_cfg=cfg.text,
                             stride=cfg.model.stride, add=add, workers=workers, seed=seed, split=split,
                             valid_frac=valid_frac, test_frac=test_frac, max_seconds=max_seconds, limit=limit,
                             advance=advance)
        if json_out:
            emit_json({"out": str(result.out),
                       "splits": [{"corpus": c, "split": s, "utterances": v["utterances"],
                                   "speakers": len(v["speakers"]), "hours": v["seconds"] / 3600}
                                  for (c, s), v in sorted(result.counts.items())],
                       "skipped": dict(result.skipped)})
            return
        print_table(f"prep {corpus} -> {result.out}", ["corpus", "split", "utterances", "speakers", "hours"],
                    result.table_rows())

    prep.__doc__ = f"{CORPUS_HELP[corpus]} -> a prepared pinyin dataset (16 kHz, trimmed, 64 log-mels, tokens)."
    prep.__name__ = f"prep_{corpus}"
    return prep


@train_command
def train(
    data: Annotated[Path, typer.Argument(help="Prepared dataset (from `voxtool prep aishell|...|tsv`).")],
    blank_loss: Annotated[float | None, typer.Option(min=0.0, max=100.0,
                                                     help="Blank-loss weight (0 = off; preset default).")] = None,
    *,
    opts: TrainOptions,
) -> None:
    """Train the QuartzNet pinyin CTC model (presets pinyin = 15x5, pinyin-5x5, pinyin-tiny)."""
    from voxtool.tasks.pinyin.config import PinyinConfig
    from voxtool.tasks.pinyin.train import PinyinTrainTask
    from voxtool.training.run import train_from_options

    overrides = [] if blank_loss is None else [f"blank_loss.weight={blank_loss}"]
    train_from_options(PinyinTrainTask, PinyinConfig, data, opts, default_preset="pinyin", overrides=overrides)


@common_flags
def transcribe(
    inputs: Annotated[list[str], typer.Argument(help="Audio files, folders (mirrored) or globs.")],
    model: Annotated[str, typer.Option("--model", "-m", help="model.pt or a run folder.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (one input) or folder.")] = None,
    text: Annotated[Path | None, typer.Option(
        "--text", help="Lyrics: a text file (one input) or a folder mirroring the inputs (<stem>.txt); "
        "switches to forced alignment with per-character and per-phone times.")] = None,
    beam: Annotated[int, typer.Option(min=1, max=256, help="Prefix beam width (1 = greedy).")] = 1,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="csv | json | textgrid (default: from --out, else csv).")] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda[:N]|mps|xpu|npu|sdaa[:N]")] = "cpu",
    boundaries: Annotated[str, typer.Option(
        help="posterior (blank-free re-segmentation, default) | ctc (Viterbi CTC spans).")] = "posterior",
    precision: InferPrecision = "auto",
    skip_existing: Annotated[bool, typer.Option(help="Skip inputs whose output exists.")] = False,
    fail_fast: FailFast = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print what was written as JSON on stdout.")] = False,
) -> None:
    """Speech or singing -> pinyin syllables with times (start,end,pinyin), or lyrics -> character times."""
    from voxtool.console import emit_json, log, progress
    from voxtool.devices import resolve_device
    from voxtool.tasks.pinyin.infer import predict_from_files_to_files

    dev = resolve_device(device).torch
    with progress(None, "transcribe pinyin") as advance:
        results = predict_from_files_to_files(model, inputs, out=out, text=text, beam=beam, fmt=fmt, device=dev,
                                              skip_existing=skip_existing, boundaries=boundaries, advance=advance,
                                              fail_fast=fail_fast, precision=precision)
    if json_out:
        emit_json(results)
    else:
        for r in results.ok:
            log(f"{r['input']} -> {r['output']}: {r['pinyin']}")
    results.raise_if_failed()


@common_flags
def evaluate(
    data: Annotated[Path, typer.Argument(help="Prepared dataset.")],
    model: Annotated[str, typer.Option("--model", "-m", help="model.pt or a run folder.")],
    split: Annotated[str, typer.Option(help="test | valid | train")] = "test",
    beam: Annotated[int, typer.Option(min=1, max=256, help="Prefix beam width (1 = greedy).")] = 1,
    limit: Annotated[int, typer.Option(min=0, max=MAX_COUNT, help="Only the first N utterances (0 = all).")] = 0,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda[:N]|...")] = "cpu",
    json_out: Annotated[bool, typer.Option("--json", help="Metrics as JSON on stdout.")] = False,
) -> None:
    """Token error rate, syllable error rate (toned, toneless) and blank share of a model on a split."""
    from voxtool.console import emit_json, print_table
    from voxtool.devices import resolve_device
    from voxtool.tasks.pinyin.infer import evaluate_dataset

    metrics = evaluate_dataset(model, data, split, beam=beam, limit=limit, device=resolve_device(device).torch).metrics
    if json_out:
        emit_json({"split": split, **metrics})
    else:
        print_table(f"pinyin eval ({split})", ["metric", "value"], [[k, v] for k, v in metrics.items()])


plugin = TaskPlugin(
    name="pinyin",
    summary="Mandarin pinyin CTC recognition and character alignment (QuartzNet, initial/final tokens)",
    commands={
        "prep": {c: _prep_command(c) for c in CORPUS_HELP},
        "train": {"pinyin": train},
        "transcribe": {"pinyin": transcribe},
        "eval": {"pinyin": evaluate},
    },
    config="voxtool.tasks.pinyin.config:PinyinConfig",
)
