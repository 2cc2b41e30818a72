"""softvc plugin: prep softvc, train hubert-soft, train softvc, convert softvc, eval softvc.

Thin: the logic lives in the task modules (prep.py, infer.py; hubert_cli.py and train_cli.py hold the two train
commands), imported inside the commands so `voxtool --help` stays fast. No `from __future__ import annotations`:
the option wrappers of voxtool.options resolve annotations here.
"""

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import MAX_COUNT, MAX_SEED, MAX_WORKERS, FailFast, common_flags
from voxtool.plugins import TaskPlugin
from voxtool.tasks.softvc.hubert_cli import train_hubert_soft
from voxtool.tasks.softvc.train_cli import train_softvc

JsonOut = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
Device = Annotated[str, typer.Option("--device", help="auto|cpu|cuda[:N]|mps|xpu|npu|sdaa[:N]")]
F0Opt = Annotated[str, typer.Option("--f0", help="harvest (WORLD, no model) | rmvpe (needs --f0-model).")]
F0ModelOpt = Annotated[Path | None, typer.Option("--f0-model", help="RMVPE checkpoint for --f0 rmvpe (voxtool "
                                                                    "model.pt / run folder, rmvpe.pt, .onnx).")]
PitchUnitsOpt = Annotated[Path | None, typer.Option("--pitch-units", help="HuBERT-Soft fine-tuned on pitch bins "
                                                                          "(train hubert-soft --targets pitch).")]
DynUnitsOpt = Annotated[Path | None, typer.Option("--dynamics-units", help="HuBERT-Soft fine-tuned on dynamics "
                                                                           "bins (--targets dynamics).")]


# ------------------------------------------------------------------------------------------------- prep

@common_flags
def prep(
    wavs: Annotated[list[str], typer.Argument(help="Audio files, folders (searched recursively) or globs.")],
    out: Annotated[Path, typer.Argument(help="Output dataset folder (new, empty, or an earlier softvc dataset).")],
    content: Annotated[Path | None, typer.Option("--content", help="Content HuBERT (published hubert-soft .pt or "
                                                                   "a train hubert-soft run): adds units, needed "
                                                                   "by train softvc.")] = None,
    pitch_units: PitchUnitsOpt = None,
    dynamics_units: DynUnitsOpt = None,
    f0: F0Opt = "harvest",
    f0_model: F0ModelOpt = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=MAX_WORKERS, help="Files in parallel.")] = 1,
    valid_fraction: Annotated[float, typer.Option("--valid-fraction", min=0.0, max=0.9,
                                                  help="Seeded fraction of items held out for validation.")] = 0.05,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the split.")] = 0,
    trim_db: Annotated[float, typer.Option("--trim-db", min=0.0, max=120.0, help="Trim leading/trailing audio "
                                                                                 "quieter than the loudest part "
                                                                                 "by this many dB (0 = off).")] = 50.0,
    device: Device = "cpu",
    json_out: JsonOut = False,
) -> None:
    """Audio -> softvc dataset: 16 kHz trimmed audio, the vocoder's mels, f0, RMS, units; statistics in dataset.json."""
    from voxtool.batch import prep_progress
    from voxtool.console import emit_json, print_table
    from voxtool.tasks.softvc import prep as p

    sources = p.collect_sources(wavs)
    p.check_prep_out(out, [*wavs, *(s.path for s in sources)])
    encoders = p.load_encoders(content, pitch_units, dynamics_units, f0, f0_model, device)
    with prep_progress(len(sources), "prep softvc", out=out, unit="items",
                       then=f"{out} is unfinished (no dataset.json): run it again") as advance:
        report = p.prep_softvc(wavs, out, f0=f0, workers=workers, valid_fraction=valid_fraction, seed=seed,
                               trim_db=trim_db, advance=advance, sources=sources, encoders=encoders)
    if json_out:
        emit_json({"out": str(out), "items": report.written,
                   "minutes": {k: round(v / 60, 3) for k, v in report.seconds.items()},
                   "skipped": [{"input": s, "reason": r} for s, r in report.skipped]})
        return
    print_table(f"prep softvc -> {out}", ["split", "items", "minutes"], report.rows())


# ------------------------------------------------------------------------------------------------- convert

@common_flags
def convert(
    inputs: Annotated[list[str], typer.Argument(help="Source audio files, folders (mirrored) or globs.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Acoustic model: train softvc run / model.pt, or a "
                                                              "published {'acoustic-model': ...} file.")],
    content: Annotated[Path, typer.Option("--content", help="Content HuBERT (the one the model was trained on).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .wav (one input) or folder.")],
    vocoder: Annotated[str, typer.Option("--vocoder", help="hifigan model.pt / run folder, a published 16 kHz "
                                                           "generator, or griffinlim (no weights).")] = "griffinlim",
    key: Annotated[int, typer.Option("--key", min=-24, max=24, help="Transpose by N semitones (explicit: the f0 "
                                                                     "input; pitdyn: the audio the pitch HuBERT "
                                                                     "hears, shifted with WORLD).")] = 0,
    f0: F0Opt = "harvest",
    f0_model: F0ModelOpt = None,
    pitch_units: PitchUnitsOpt = None,
    dynamics_units: DynUnitsOpt = None,
    sample_rate: Annotated[int, typer.Option("--sample-rate", min=8000, max=192_000,
                                             help="Output rate (soxr resampling; the chain runs at 16 kHz).")] = 16000,
    sample_format: Annotated[str, typer.Option("--sample-format", help="pcm16 | float")] = "pcm16",
    device: Device = "auto",
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output exists.")] = False,
    fail_fast: FailFast = False,
    json_out: JsonOut = False,
) -> None:
    """Convert recordings into the target voice (16 kHz wav; long inputs in pieces cut at pauses)."""
    from voxtool.console import log, progress
    from voxtool.errors import BadInput
    from voxtool.inputs import expand_inputs, protected_paths
    from voxtool.tasks.softvc.infer import SUBTYPES, load_model, predict_from_files_to_files

    if sample_format not in SUBTYPES:
        raise BadInput(None, f"--sample-format {sample_format}: choose {', '.join(SUBTYPES)}")
    protect = protected_paths(model, content, vocoder, pitch_units, dynamics_units, f0_model)
    jobs = expand_inputs(inputs, out, ".wav", skip_existing=skip_existing, protect=protect)
    if not jobs:
        log("nothing to do (every output exists)")
        return
    converter = load_model(model, content, vocoder, pitch_units, dynamics_units, device, f0, f0_model)
    log(f"model: {model} ({converter.description})")
    with progress(len(jobs), "convert softvc") as advance:
        results = predict_from_files_to_files(jobs, converter, key, sample_rate, sample_format, advance=advance,
                                              fail_fast=fail_fast, out=out)
    results.report("convert softvc", json_out=json_out)


# ------------------------------------------------------------------------------------------------- eval

@common_flags
def evaluate(
    data: Annotated[Path, typer.Argument(help="Prepared dataset with units (voxtool prep softvc --content).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Acoustic model (run folder / model.pt).")],
    vocoder: Annotated[str, typer.Option("--vocoder", help="Vocoder for the f0 check (hifigan model or "
                                                           "griffinlim).")] = "griffinlim",
    split: Annotated[str, typer.Option("--split", help="Split list to score (valid | train).")] = "valid",
    limit: Annotated[int, typer.Option("--limit", min=0, max=MAX_COUNT, help="Score at most N items (0 = all).")] = 0,
    max_units: Annotated[int, typer.Option("--max-units", min=0, max=1_000_000,
                                           help="Crop each item to N units of 20 ms (0 = whole items).")] = 500,
    f0_check: Annotated[bool, typer.Option("--f0-corr/--no-f0-corr", help="Also vocode and correlate the "
                                                                          "output's f0 with the source's.")] = True,
    device: Device = "auto",
    json_out: JsonOut = False,
) -> None:
    """Held-out mel L1 of the acoustic model (lower is better) and f0 correlation output vs source (higher)."""
    from voxtool.console import emit_json, print_table, progress
    from voxtool.tasks.softvc.evaluate import evaluate_dataset

    with progress(limit or None, "eval softvc") as advance:
        result = evaluate_dataset(model, data, split, device=device, limit=limit, advance=advance, vocoder=vocoder,
                                  max_units=max_units, f0_correlation=f0_check)
    if json_out:
        emit_json({"items": len(result.items), **result.metrics})
        return
    print_table(f"eval softvc ({len(result.items)} items, {split})", list(result.metrics),
                [[round(v, 4) for v in result.metrics.values()]])


plugin = TaskPlugin(
    name="softvc",
    summary="Soft-VC voice conversion: HuBERT-Soft units, acoustic model (none | pitdyn | explicit pitch), vocoder",
    commands={"prep": {"softvc": prep}, "train": {"hubert-soft": train_hubert_soft, "softvc": train_softvc},
              "convert": {"softvc": convert}, "eval": {"softvc": evaluate}},
    config="voxtool.tasks.softvc.config:SoftvcConfig",
    configs={"hubert-soft": "voxtool.tasks.softvc.config:HubertSoftConfig"},
)
