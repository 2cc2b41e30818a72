"""hifigan plugin: prep hifigan (optionally GTA mels), train hifigan, infer hifigan (mel .npy -> wav, streamed;
also Griffin-Lim), eval hifigan (copy synthesis: mel L1, MCD, PESQ, STOI, f0 RMSE), export hifigan (ONNX).

Thin: the logic lives in the task modules, imported inside the commands (`voxtool --help` stays fast). No
`from __future__ import annotations`: the option wrappers of voxtool.options resolve annotations here.
"""

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import MAX_SEED, FailFast, TrainOptions, common_flags, train_command
from voxtool.plugins import TaskPlugin

PresetOpt = Annotated[str, typer.Option("--preset", help="Vocoder preset: hifigan-16k | hifigan-22k | hifigan-tiny "
                                                         "(or a TOML path).")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="model.pt, run folder, a published generator "
                                                             "checkpoint (bshall, jik876, DiffVC), or 'griffinlim' "
                                                             "(no model; mel settings from --preset).")]
ChunkOpt = Annotated[int, typer.Option("--chunk-frames", min=0, max=100_000,
                                       help="Synthesise long mels in chunks of N frames, cross-faded (memory flat "
                                            "in duration); 0 = whole input at once.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="32 | 16 | bf16: autocast of the generator "
                                                               "(16/bf16 for accelerators).")]
Device = Annotated[str, typer.Option("--device", help="auto|cpu|cuda[:N]|mps|xpu|npu|sdaa[:N]")]


def _set_options(preset: str, overrides: list[str]):
    from voxtool.presets import load_config
    from voxtool.tasks.hifigan.config import HifiganConfig

    return load_config(HifiganConfig, preset, overrides, task="hifigan")


# ------------------------------------------------------------------------------------------------- prep

@common_flags
def prep(
    inputs: Annotated[list[Path], typer.Argument(help="Audio files or folders (searched recursively).")],
    out: Annotated[Path, typer.Argument(help="Output dataset folder.")],
    preset: PresetOpt = "hifigan-16k",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a preset field, e.g. "
                                                                  "data.normalize=rms (repeatable).")] = None,
    valid_fraction: Annotated[float, typer.Option("--valid-fraction", min=0.0, max=0.9,
                                                  help="Seeded fraction of items held out for validation.")] = 0.05,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the split.")] = 0,
    mels_from: Annotated[Path | None, typer.Option("--mels-from", help="Ground-truth-aligned fine-tuning: take each "
                                                   "item's mel from DIR/<relative path>.npy (n_mels, frames), "
                                                   "e.g. an acoustic model's predictions, instead of computing "
                                                   "it.")] = None,
    json_out: JsonOut = False,
) -> None:
    """Audio -> vocoder dataset: wav at the vocoder's rate (loudness-normalised) and its mel, one .npz per item."""
    from voxtool.batch import prep_progress
    from voxtool.console import emit_json, log, print_table
    from voxtool.errors import BadInput
    from voxtool.fileio import check_output_dir
    from voxtool.inputs import check_dataset_out
    from voxtool.tasks.hifigan import data

    config = _set_options(preset, list(set_ or []))
    check_dataset_out(out, list(inputs))
    check_output_dir(out)
    if out.exists() and any(out.iterdir()) and not (out / "dataset.json").is_file():
        raise BadInput(out, "output folder exists and is not a hifigan dataset; choose an empty folder")
    if mels_from is not None and not mels_from.is_dir():
        raise BadInput(mels_from, "--mels-from must be a folder of .npy mels")
    sources = data.collect_audio(list(inputs))
    with prep_progress(len(sources), "prep hifigan", out=out, unit="items",
                       then=f"{out} is unfinished: run it again") as advance:
        report = data.write_dataset(sources, out, config, valid_fraction, seed, advance, mels_from=mels_from)
    if json_out:
        emit_json({"out": str(out), "items": report.written, "mel": config.mel.describe(),
                   "minutes": {k: round(v / 60, 3) for k, v in report.seconds.items()},
                   "skipped": [{"input": p, "reason": r} for p, r in report.skipped]})
        return
    for path, reason in report.skipped:
        log(f"skipped {path}: {reason}")
    print_table(f"prep hifigan -> {out}", ["split", "items", "minutes"], report.rows())


# ------------------------------------------------------------------------------------------------- train

@train_command
def train(
    data: Annotated[Path, typer.Argument(help="Prepared dataset (voxtool prep hifigan).")],
    init: Annotated[Path | None, typer.Option("--init", help="Fine-tune from a generator checkpoint (bshall, "
                                                             "jik876, DiffVC or voxtool); discriminators start "
                                                             "fresh.")] = None,
    *,
    opts: TrainOptions,
) -> None:
    """Train a HiFi-GAN vocoder (generator + MPD/MSD) on a prepared dataset; model.pt holds the generator."""
    from voxtool.errors import BadInput
    from voxtool.tasks.hifigan.train import HifiganConfig, HifiganTrainTask
    from voxtool.training.run import train_from_options

    overrides = []
    if init is not None:
        if not init.is_file():
            raise BadInput(init, "checkpoint for --init not found")
        overrides.append(f'init="{init.resolve().as_posix()}"')
    train_from_options(HifiganTrainTask, HifiganConfig, data, opts, default_preset="hifigan-16k",
                       overrides=overrides)


# ------------------------------------------------------------------------------------------------- infer

@common_flags
def infer(
    inputs: Annotated[list[str], typer.Argument(help=".npy log-mels (n_mels, frames), folders or globs.")],
    model: ModelOpt,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output .wav (one input) or folder.")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Config of a published checkpoint (hifigan-16k | "
                                                                "hifigan-22k); default: from its layout.")] = None,
    sample_format: Annotated[str, typer.Option("--sample-format", help="pcm16 | float")] = "pcm16",
    chunk_frames: ChunkOpt = 500,
    precision: PrecisionOpt = "32",
    device: Device = "auto",
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output exists.")] = False,
    fail_fast: FailFast = False,
    json_out: JsonOut = False,
) -> None:
    """Vocode log-mels (.npy, the vocoder's exact mel settings) to wav at the vocoder's sample rate."""
    from voxtool.console import log, progress
    from voxtool.errors import BadInput
    from voxtool.inputs import expand_inputs, protected_paths
    from voxtool.tasks.hifigan.infer import SUBTYPES, load_model, predict_from_files_to_files

    if sample_format not in SUBTYPES:
        raise BadInput(None, f"--sample-format {sample_format}: choose {', '.join(SUBTYPES)}")
    jobs = expand_inputs(inputs, out, ".wav", skip_existing=skip_existing, protect=protected_paths(model),
                         accept=lambda p: p.suffix.lower() == ".npy")
    if not jobs:
        log("nothing to do (every output exists)")
        return
    vocoder = load_model(model, preset=preset, device=device, chunk_frames=chunk_frames, precision=precision)
    log(f"model: {model} ({vocoder.description})")
    with progress(len(jobs), "infer hifigan") as advance:
        results = predict_from_files_to_files(jobs, vocoder, sample_format, advance=advance, fail_fast=fail_fast,
                                              out=out)
    results.report("infer hifigan", json_out=json_out)


# ------------------------------------------------------------------------------------------------- eval

@common_flags
def evaluate(
    data: Annotated[Path, typer.Argument(help="Prepared dataset (voxtool prep hifigan).")],
    model: ModelOpt,
    split: Annotated[str, typer.Option("--split", help="Split list to score (valid | train).")] = "valid",
    preset: Annotated[str | None, typer.Option("--preset", help="Config of a published checkpoint.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, max=10_000_000, help="Score at most N items (0 = all).")] = 0,
    max_seconds: Annotated[float, typer.Option("--max-seconds", min=0.0, max=86_400.0,
                                               help="Crop each item to this length (0 = whole items).")] = 0.0,
    per_file: Annotated[bool, typer.Option("--per-file", help="Also print every item's score.")] = False,
    quality: Annotated[bool, typer.Option("--quality/--no-quality", help="Also MCD (DTW), PESQ (wideband), STOI "
                                                                         "and f0 RMSE (needs voxtool[quality]); "
                                                                         "--no-quality: mel L1 only.")] = True,
    chunk_frames: ChunkOpt = 500,
    precision: PrecisionOpt = "32",
    device: Device = "auto",
    json_out: JsonOut = False,
) -> None:
    """Copy synthesis (wav -> mel -> vocoder -> wav) on a prepared split: mel L1 (lower is better) and MCD with DTW
    (dB, lower), wideband PESQ (higher), STOI (higher), f0 RMSE in cents on voiced frames (lower)."""
    import math

    from voxtool.console import emit_json, print_table, progress
    from voxtool.tasks.hifigan.data import VocoderDataset
    from voxtool.tasks.hifigan.infer import evaluate_dataset, load_model

    if quality:  # a missing extra fails here, before any work, naming `pip install 'voxtool[quality]'`
        import pesq  # noqa: F401
        import pystoi  # noqa: F401
    vocoder = load_model(model, preset=preset, device=device, chunk_frames=chunk_frames, precision=precision)
    total = len(VocoderDataset(data, split, vocoder.mel.n_mels, vocoder.hop_length))
    with progress(min(limit, total) if limit else total, "eval hifigan") as advance:
        result = evaluate_dataset(vocoder, data, split, limit=limit, advance=advance, max_seconds=max_seconds,
                                  quality=quality)

    def clean(value):  # NaN (a score undefined for an item) -> null / "-"
        return None if isinstance(value, float) and math.isnan(value) else value

    names = list(result.metrics)
    if json_out:
        emit_json({"items": len(result.items), **{k: clean(v) for k, v in result.metrics.items()},
                   **({"per_file": [{k: clean(v) for k, v in r.items()} for r in result.items]} if per_file else {})})
        return
    headers = {"mel_l1": "mel L1", "mcd": "MCD dB", "pesq": "PESQ", "stoi": "STOI", "f0_rmse_cents": "f0 RMSE c"}

    def cells(row):
        return ["-" if clean(row[k]) is None else round(row[k], 4) for k in names]

    if per_file:
        print_table("per file", ["item", *(headers[k] for k in names), "seconds"],
                    [[r["name"], *cells(r), round(r["seconds"], 2)] for r in result.items])
    print_table(f"eval hifigan ({len(result.items)} items, {split})", [headers[k] for k in names],
                [cells(result.metrics)])


# ------------------------------------------------------------------------------------------------- export

@common_flags
def export(
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .onnx file.")],
    preset: Annotated[str | None, typer.Option("--preset", help="Config of a published checkpoint.")] = None,
    opset: Annotated[int, typer.Option("--opset", min=13, max=20, help="ONNX opset (13-20).")] = 17,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Compare onnxruntime with torch.")] = True,
    json_out: JsonOut = False,
) -> None:
    """ONNX graph: mel (B, n_mels, frames) -> waveform (B, frames * hop), batch and frames dynamic."""
    from voxtool.console import emit_json, log
    from voxtool.errors import BadInput
    from voxtool.inputs import check_outputs, protected_paths
    from voxtool.tasks.hifigan.export import export_onnx, parity_check
    from voxtool.tasks.hifigan.infer import load_model

    check_outputs([out], protect=protected_paths(model))
    vocoder = load_model(model, preset=preset, device="cpu")
    if vocoder.is_griffinlim:
        raise BadInput(None, "--model griffinlim has no network to export")
    export_onnx(vocoder, out, opset=opset)
    log(f"wrote {out}")
    rms = parity_check(vocoder, out) if check else None
    if rms is not None:
        log(f"onnxruntime vs torch: RMS difference {rms:.3g}")
    if json_out:
        emit_json({"out": str(out), "parity_rms": rms, "sample_rate": vocoder.sample_rate,
                   "n_mels": vocoder.mel.n_mels, "hop_length": vocoder.hop_length})


plugin = TaskPlugin(
    name="hifigan",
    summary="HiFi-GAN vocoder: prep wav+mel, GAN training, mel->wav inference, published checkpoints, ONNX",
    commands={"prep": {"hifigan": prep}, "train": {"hifigan": train}, "infer": {"hifigan": infer},
              "eval": {"hifigan": evaluate}, "export": {"hifigan": export}},
    config="voxtool.tasks.hifigan.config:HifiganConfig",
)
