"""softvc benchmarks (CPU).

    python benchmarks/softvc.py                                  # everything
    python benchmarks/softvc.py --only convert --seconds 10 60 --repeats 3
    python benchmarks/softvc.py --only train

- convert: real-time factor (processing seconds / audio seconds) of `predict` (the chain `convert softvc` runs:
  pieces cut at pauses, 1 s context each side, cross-faded) for --seconds of synthetic singing, split into
  content (HuBERT-Soft units), f0 (WORLD harvest, explicit conditioning), acoustic (autoregressive generation) and
  vocoder; peak memory (ru_maxrss above the baseline after imports, model build and input synthesis). Chains:
  "published" (HuBERT-Soft base 94.6M, bshall acoustic model at 259-d explicit input, HiFi-GAN 16 kHz; random
  weights: speed does not depend on them) and "tiny" (hubert-tiny, softvc-tiny, Griffin-Lim 32 iterations). Each
  case runs in a fresh subprocess so ru_maxrss is its own peak. Medians over --repeats (60 s: --repeats-long).
- train: optimiser steps/s of `Trainer.fit` for hubert-tiny (MFCC k-means targets) and softvc-tiny (explicit)
  on a synthetic corpus (first step included, no validation or checkpoints), and the forward (+ backward) time of
  one training batch at the published sizes (HuBERT-Soft: 8 x 1 s crops; acoustic model: 32 x 100 units).
- key: the key shift of an explicit-pitch chain trained here per --key-seeds (hubert-tiny on MFCC targets for
  --key-hubert-steps, softvc-tiny for --key-steps on 40 synthetic singing clips of 90-450 Hz with notes up to 50
  cents off the semitone grid, prep's harvest f0, Griffin-Lim): for N in -5, +3, +7 the
  median of |cents(f0 of the --key N output) - cents(f0 of the unshifted output) - 100 N| on frames voiced in
  both (WORLD harvest), and the unshifted output's median |cents error| against the source's f0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------------------------- convert

STATS = {"f0_min_hz": 80.0, "f0_max_hz": 500.0, "rms_min": 0.0, "rms_max": 0.3, "dynamics_bins": 32,
         "f0_method": "harvest"}


def build_converter(chain: str):
    """A `Converter` with random weights: "published" or "tiny" sizes (module doc)."""
    import torch

    from voxtool.encoders.hubert import HubertSoft
    from voxtool.encoders.hubert_settings import PUBLISHED, TINY
    from voxtool.presets import load_config
    from voxtool.tasks.softvc.checkpoint import AcousticMeta
    from voxtool.tasks.softvc.config import SoftvcConfig
    from voxtool.tasks.softvc.infer import Converter
    from voxtool.tasks.softvc.model import AcousticModel
    from voxtool.vocoders.loading import Vocoder, load_vocoder
    from voxtool.vocoders.settings import HIFIGAN_16K, MEL_16K_BSHALL

    torch.manual_seed(0)
    arch = PUBLISHED if chain == "published" else TINY
    preset = "softvc" if chain == "published" else "softvc-tiny"
    f0_range = f"model.f0_range_hz=[{STATS['f0_min_hz']}, {STATS['f0_max_hz']}]"  # for the harmonic prior
    cfg = load_config(SoftvcConfig, preset, [f"model.unit_dim={arch.unit_dim}", 'model.conditioning="explicit"',
                                             f0_range], task="softvc")
    acoustic = AcousticModel(cfg.model).eval()
    if chain == "published":
        from voxtool.vocoders.hifigan import Generator

        generator = Generator(HIFIGAN_16K).eval().remove_weight_norm()
        vocoder = Vocoder(generator, MEL_16K_BSHALL, torch.device("cpu"), "HiFi-GAN 16 kHz (random weights)")
    else:
        vocoder = load_vocoder("griffinlim", mel=MEL_16K_BSHALL)
    return Converter(acoustic, AcousticMeta(cfg.model, stats=STATS), HubertSoft(arch).eval(), vocoder,
                     torch.device("cpu"))


def convert_case(chain: str, seconds: float, threads: int) -> dict:
    """Runs inside a fresh subprocess: one `predict` of `seconds` of synthetic singing."""
    import torch

    torch.set_num_threads(threads)
    from voxtool.runtime import limit_mmap_threshold
    from voxtool.tasks.softvc import synth
    from voxtool.tasks.softvc.infer import predict

    limit_mmap_threshold()  # as `convert softvc` does
    converter = build_converter(chain)
    phones, melody = synth.corpus_item(1, 0, seconds)
    audio = synth.render(phones, melody, synth.voice(0), noise_seed=1)
    predict(audio[:16000], 16000, converter)  # warm-up
    converter.timings = dict.fromkeys(converter.timings, 0.0)
    base = _peak_mb()
    start = time.perf_counter()
    wav, _ = predict(audio, 16000, converter)
    took = time.perf_counter() - start
    assert len(wav) == len(audio)
    stages = {k: v / seconds for k, v in converter.timings.items()}
    return {"rtf": took / seconds, **{f"rtf_{k}": v for k, v in stages.items()}, "peak_mb": _peak_mb() - base}


def bench_convert(chains: list[str], seconds_list: list[float], repeats: int, repeats_long: int,
                  threads: int) -> list[dict]:
    rows = []
    for chain in chains:
        for seconds in seconds_list:
            runs = []
            for _ in range(repeats if seconds < 60 else repeats_long):
                code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.softvc import "
                        f"convert_case; print(json.dumps(convert_case({chain!r}, {seconds}, {threads})))")
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                     env={**os.environ, "OMP_NUM_THREADS": str(threads)})
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            row = {"chain": chain, "seconds": seconds, "runs": len(runs),
                   **{k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- train


def synthetic_dataset(root: Path, items: int, seed: int = 0, content: Path | None = None) -> Path:
    from voxtool.tasks.softvc import synth
    from voxtool.tasks.softvc.prep import prep_softvc

    wavs = root / "wavs"
    if not wavs.exists():
        synth.write_corpus(wavs, items, synth.voice(1), seed, (1.5, 3.0))
    out = root / ("ds_units" if content else "ds")
    prep_softvc([wavs], out, content=content, valid_fraction=0.2, seed=seed, workers=2)
    return out


def _fit(task_cls, config_cls, preset: str, data_dir: Path, run_dir: Path, overrides: list[str], steps: int) -> dict:
    import torch

    from voxtool.presets import load_config
    from voxtool.training.task import RunEnv
    from voxtool.training.trainer import Trainer

    cfg = load_config(config_cls, preset, ["train.seed=0", f"train.steps={steps}", "train.valid_every=100000",
                                           "train.save_every=0", "train.log_every=100000", *overrides])
    env = RunEnv(device=torch.device("cpu"), seed=0)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(task_cls(cfg, data_dir, env), cfg.train, env, run_dir, cfg.model_dump(mode="json"))
    start = time.perf_counter()
    trainer.fit()
    return {"batch": cfg.train.batch_size, "steps": steps, "steps_per_s": round(steps / (time.perf_counter() - start), 2)}


def published_forward_ms(repeats: int) -> dict:
    """Median ms of one forward and one forward + backward of a training batch at the published sizes."""
    import torch

    from voxtool.encoders.hubert import HubertSoft
    from voxtool.encoders.hubert_settings import PUBLISHED
    from voxtool.tasks.softvc.config import AcousticSection
    from voxtool.tasks.softvc.model import AcousticModel

    torch.manual_seed(0)
    hubert, acoustic = HubertSoft(PUBLISHED).train(), AcousticModel(AcousticSection(conditioning="explicit")).train()
    cases = {"hubert-soft (8 x 1 s)": (lambda: hubert(torch.randn(8, 16000 + 80))),
             "acoustic (32 x 100 units)": (lambda: acoustic(torch.randn(32, 100, 259), torch.randn(32, 200, 128)))}
    result = {}
    for name, forward in cases.items():
        for mode in ("forward", "forward+backward"):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                out = forward()
                out = out[0] if isinstance(out, tuple) else out
                if mode != "forward":
                    out.float().mean().backward()
                times.append(time.perf_counter() - start)
            result[f"{name} {mode} ms"] = round(1000 * statistics.median(times), 1)
    print(json.dumps(result), flush=True)
    return result


def bench_train(tmp: Path, items: int, steps: int, repeats: int) -> dict:
    from voxtool.tasks.softvc.config import SoftvcConfig
    from voxtool.tasks.softvc.hubert_train import HubertSoftConfig, HubertSoftTask
    from voxtool.tasks.softvc.train import SoftvcTask

    data = synthetic_dataset(tmp, items)
    result = {"hubert-tiny": _fit(HubertSoftTask, HubertSoftConfig, "hubert-tiny", data, tmp / "h", [], steps)}
    print(json.dumps(result), flush=True)
    units = synthetic_dataset(tmp, items, content=tmp / "h" / "model.pt")
    result["softvc-tiny"] = _fit(SoftvcTask, SoftvcConfig, "softvc-tiny", units, tmp / "s",
                                 ["model.unit_dim=32", 'model.conditioning="explicit"'], steps)
    print(json.dumps({"softvc-tiny": result["softvc-tiny"]}), flush=True)
    result["published"] = published_forward_ms(repeats)
    return result


def bench_key(tmp: Path, hubert_steps: int, acoustic_steps: int, seed: int = 0) -> dict:
    import numpy as np
    import soundfile as sf

    from voxtool.pitch import estimate_f0
    from voxtool.tasks.softvc import synth
    from voxtool.tasks.softvc.config import SoftvcConfig
    from voxtool.tasks.softvc.hubert_train import HubertSoftConfig, HubertSoftTask
    from voxtool.tasks.softvc.infer import load_model, predict
    from voxtool.tasks.softvc.train import SoftvcTask

    tmp = tmp / f"key_seed{seed}"
    wavs = tmp / "key_wavs"
    wavs.mkdir(parents=True)
    for i in range(40):
        melody = synth.random_melody(seed * 1000 + 2 * i + 1, 100, 90.0, 450.0, detune_cents=50.0)
        wav = synth.render(synth.random_phones(seed * 1000 + 2 * i, 2.0), melody, synth.voice(1), noise_seed=i)
        sf.write(wavs / f"u{i:02d}.wav", wav, 16000)
    from voxtool.tasks.softvc.prep import prep_softvc

    prep_softvc([wavs], tmp / "key_ds0", valid_fraction=0.1, workers=2)
    _fit(HubertSoftTask, HubertSoftConfig, "hubert-tiny", tmp / "key_ds0", tmp / "key_h", [], hubert_steps)
    prep_softvc([wavs], tmp / "key_ds", content=tmp / "key_h" / "model.pt", valid_fraction=0.1, workers=2)
    _fit(SoftvcTask, SoftvcConfig, "softvc-tiny", tmp / "key_ds", tmp / "key_s", ['model.conditioning="explicit"'],
         acoustic_steps)  # unit_dim (32, hubert-tiny) comes from dataset.json
    conv = load_model(tmp / "key_s", tmp / "key_h", "griffinlim", device="cpu")
    phones, melody = synth.random_phones(777 + seed, 3.0), synth.random_melody(778 + seed, 150, 160.0, 230.0)
    source = synth.render(phones, melody, synth.voice(1), noise_seed=5)

    def f0(wav):
        return estimate_f0(wav, 16000, method="harvest", hop_ms=20)[1]

    def median_cents(a, b, shift=0.0):
        n = min(len(a), len(b))
        both = (a[:n] > 0) & (b[:n] > 0)
        cents = 1200 * np.log2(a[:n][both] / b[:n][both]) - shift
        return (round(float(np.median(np.abs(cents))), 1) if both.any() else None), round(float(both.mean()), 3)

    plain = f0(predict(source, 16000, conv)[0])
    err, voiced = median_cents(plain, f0(source))
    result = {"seed": seed, "hubert_steps": hubert_steps, "acoustic_steps": acoustic_steps, "unshifted_vs_source_cents": err,
              "voiced_in_both": voiced}
    for key in (-5, 3, 7):
        result[f"key{key:+d}_cents"], result[f"key{key:+d}_voiced"] = median_cents(
            f0(predict(source, 16000, conv, key=key)[0]), plain, 100 * key)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["convert", "train", "key"])
    parser.add_argument("--chains", nargs="+", default=["tiny", "published"], choices=["tiny", "published"])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeats-long", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--items", type=int, default=12, help="synthetic clips for the train benchmark")
    parser.add_argument("--steps", type=int, default=30, help="timed steps of each tiny trainer")
    parser.add_argument("--key-hubert-steps", type=int, default=400)
    parser.add_argument("--key-steps", type=int, default=2000, help="softvc-tiny steps for the key benchmark")
    parser.add_argument("--key-seeds", type=int, nargs="+", default=[0, 1, 2], help="one chain trained per seed")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    report = {"threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp_name:
        if args.only in (None, "convert"):
            report["convert"] = bench_convert(args.chains, args.seconds, args.repeats, args.repeats_long,
                                              args.threads)
        if args.only in (None, "train"):
            report["train"] = bench_train(Path(tmp_name), args.items, args.steps, args.repeats)
        if args.only in (None, "key"):
            report["key"] = keys = [bench_key(Path(tmp_name), args.key_hubert_steps, args.key_steps, seed)
                                    for seed in args.key_seeds]
            report["key_median_cents"] = {  # per key, the median over seeds; then the worst seed x key
                **{k: statistics.median(r[f"key{k:+d}_cents"] for r in keys) for k in (-5, 3, 7)},
                "worst": max(r[f"key{k:+d}_cents"] for r in keys for k in (-5, 3, 7)),
                "unshifted": statistics.median(r["unshifted_vs_source_cents"] for r in keys)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
