"""diffvc plugin: prep diffvc (mels, d-vectors, average-voice targets), train diffvc-encoder, train diffvc (decoder
beside the frozen encoder), convert diffvc (any-to-any voice conversion), infer ge2e / eval ge2e (d-vectors and a
speaker-similarity matrix), eval diffvc (conversion scored by GE2E and mel-cepstral statistics).

Thin: the logic lives in the task modules, imported inside the commands (`voxtool --help` stays fast). No
`from __future__ import annotations`: the option wrappers of voxtool.options resolve annotations here.
"""

from pathlib import Path
from typing import Annotated

import typer

from voxtool.options import MAX_SEED, FailFast, common_flags
from voxtool.plugins import TaskPlugin
from voxtool.tasks.diffvc.ge2e_cli import eval_ge2e, infer_ge2e
from voxtool.tasks.diffvc.prep_cli import prep_diffvc
from voxtool.tasks.diffvc.train_cli import train_diffvc, train_diffvc_encoder

JsonOut = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="DiffVC: a `train diffvc` model.pt or run folder, or "
                                                             "a published vc_libritts_wodyn.pt / vc_vctk_wodyn.pt.")]
VocoderOpt = Annotated[str, typer.Option("--vocoder", help="HiFi-GAN 22.05 kHz: a `train hifigan` model.pt / run "
                                                           "folder, jik876 UNIVERSAL_V1 or DiffVC's generator, or "
                                                           "'griffinlim'.")]
PresetOpt = Annotated[str | None, typer.Option("--preset", help="Sizes of a published checkpoint (default diffvc).")]
StepsOpt = Annotated[int, typer.Option("--steps", min=1, max=1000, help="Reverse-diffusion steps (paper: 6 or 30).")]
SamplerOpt = Annotated[str, typer.Option("--sampler", help="ml (fast maximum-likelihood, default) | em "
                                                           "(Euler-Maruyama) | pf (probability flow).")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the sampling noise.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="32 | 16 | bf16: autocast (accelerators).")]
Device = Annotated[str, typer.Option("--device", help="auto|cpu|cuda[:N]|mps|xpu|npu|sdaa[:N]")]
ChunkOpt = Annotated[int, typer.Option("--chunk-frames", min=128, max=100_000,
                                       help="Convert long inputs in chunks of N mel frames (multiple of 4), "
                                            "cross-faded; memory stays flat in the duration.")]
BatchOpt = Annotated[int, typer.Option("--batch-chunks", min=1, max=256, help="Chunks sampled together.")]


SAMPLERS = ("ml", "em", "pf")  # as infer.SAMPLERS; checked here before torch is imported


def _check_sampler(sampler: str) -> None:
    from voxtool.errors import BadInput

    if sampler not in SAMPLERS:
        raise BadInput(None, f"--sampler {sampler}: choose {', '.join(SAMPLERS)}")


@common_flags
def convert(
    inputs: Annotated[list[str], typer.Argument(help="Source speech: audio files, folders (mirrored) or globs.")],
    ref: Annotated[Path, typer.Option("--ref", help="Target voice: an audio file, or a folder of one speaker's "
                                                    "files (their d-vectors are averaged).")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .wav (one input) or folder.")],
    vocoder: VocoderOpt,
    preset: PresetOpt = None,
    steps: StepsOpt = 6,
    sampler: SamplerOpt = "ml",
    denoise: Annotated[bool, typer.Option("--denoise", help="Spectral subtraction of the decoder's hiss (noise "
                                                            "measured in the source's quietest 5 frames).")] = False,
    seed: SeedOpt = 0,
    chunk_frames: ChunkOpt = 512,
    batch_chunks: BatchOpt = 4,
    precision: PrecisionOpt = "32",
    device: Device = "auto",
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose output exists.")] = False,
    fail_fast: FailFast = False,
    json_out: JsonOut = False,
) -> None:
    """Any-to-any voice conversion: each source's words in the --ref voice, as 22.05 kHz wav (DiffVC)."""
    from voxtool.console import log, progress
    from voxtool.errors import BadInput
    from voxtool.inputs import expand_inputs, protected_paths

    _check_sampler(sampler)
    if not ref.exists():  # before torch and the models are loaded
        raise BadInput(ref, "reference not found")
    from voxtool.tasks.diffvc.infer import load_model, predict_from_files_to_files, reference_from_paths

    jobs = expand_inputs(inputs, out, ".wav", skip_existing=skip_existing,
                         protect=protected_paths(model, vocoder if Path(vocoder).exists() else None, ref))
    if not jobs:
        log("nothing to do (every output exists)")
        return
    converter = load_model(model, vocoder, device=device, preset=preset, precision=precision,
                           chunk_frames=chunk_frames, batch_chunks=batch_chunks)
    log(f"model: {model} ({converter.description}); vocoder: {converter.vocoder.description}")
    reference = reference_from_paths(ref, converter)
    with progress(len(jobs), "convert diffvc") as advance:
        results = predict_from_files_to_files(jobs, reference, converter, steps=steps, sampler=sampler,
                                              denoise=denoise, seed=seed, advance=advance, fail_fast=fail_fast,
                                              out=out)
    results.report("convert diffvc", json_out=json_out)


@common_flags
def evaluate(
    data: Annotated[Path, typer.Argument(help="Prepared dataset (voxtool prep diffvc).")],
    model: ModelOpt,
    split: Annotated[str, typer.Option("--split", help="Split whose speakers are converted into each other "
                                                       "(unseen | valid | train).")] = "unseen",
    vocoder: VocoderOpt = "griffinlim",
    preset: PresetOpt = None,
    steps: StepsOpt = 6,
    sampler: SamplerOpt = "ml",
    seed: SeedOpt = 0,
    limit: Annotated[int, typer.Option("--limit", min=0, max=10_000_000, help="Convert at most N items "
                                                                             "(0 = all).")] = 0,
    per_file: Annotated[bool, typer.Option("--per-file", help="Also print every conversion's scores.")] = False,
    device: Device = "auto",
    json_out: JsonOut = False,
) -> None:
    """Any-to-any conversion between a split's speakers, scored against target and source voice: GE2E cosine
    (higher = closer) and mel-cepstral statistics distance (lower = closer; DiffVC is not conditioned on it)."""
    from voxtool.console import emit_json, print_table, progress
    from voxtool.tasks.diffvc.data import DiffvcItems
    from voxtool.tasks.diffvc.infer import evaluate_dataset, load_model

    _check_sampler(sampler)
    converter = load_model(model, vocoder, device=device, preset=preset)
    total = len(DiffvcItems(data, split, converter.mel.n_mels, with_avg=False, required=True))
    with progress(min(limit, total) if limit else total, "eval diffvc") as advance:
        result = evaluate_dataset(converter, data, split, limit=limit, advance=advance, steps=steps,
                                  sampler=sampler, seed=seed)
    names = list(result.metrics)
    if json_out:
        emit_json({"items": len(result.items), **result.metrics,
                   **({"per_file": result.items} if per_file else {})})
        return
    if per_file:
        print_table("per conversion", ["item", "source", "target", *names],
                    [[r["name"], r["source"], r["target"], *(round(r[k], 4) for k in names)] for r in result.items])
    print_table(f"eval diffvc ({len(result.items)} conversions, {split})", names,
                [[round(result.metrics[k], 4) for k in names]])


plugin = TaskPlugin(
    name="diffvc",
    summary="DiffVC one-shot voice conversion: GE2E d-vectors, average-voice encoder, diffusion decoder (ML sampler)",
    commands={"prep": {"diffvc": prep_diffvc},
              "train": {"diffvc-encoder": train_diffvc_encoder, "diffvc": train_diffvc},
              "infer": {"ge2e": infer_ge2e},
              "eval": {"ge2e": eval_ge2e, "diffvc": evaluate},
              "convert": {"diffvc": convert}},
    config="voxtool.tasks.diffvc.config:DiffvcConfig",
    configs={"diffvc-encoder": "voxtool.tasks.diffvc.config:DiffvcEncoderConfig"},
)
