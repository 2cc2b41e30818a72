"""hifigan task benchmarks (CPU).

    python benchmarks/hifigan.py                              # everything
    python benchmarks/hifigan.py --only infer --seconds 10 60 --repeats 3
    python benchmarks/hifigan.py --only quality --tiny-steps 2000

- infer: real-time factor (processing seconds / audio seconds) and peak memory for --seconds of audio (default 10
  and 60) with both published sizes (hifigan-16k: bshall 16 kHz, hop 160; hifigan-22k: jik876 V1, hop 256; random
  weights: speed does not depend on them), whole input (--chunk-frames 0) against streamed (500-frame chunks,
  cross-faded, the default), both through `predict` under inference_mode, with the fixed mmap threshold of
  `voxtool infer hifigan` (`voxtool.runtime.limit_mmap_threshold`). Each case runs in a fresh subprocess so
  ru_maxrss is its own peak; memory is reported above the baseline after imports, model load and building the
  input mel. Medians over --repeats (60 s and longer: one run unless --repeats-long).
- train: optimiser steps/s (both optimisers: discriminator + generator) of hifigan-tiny (preset batch x segment)
  and hifigan-16k (published batch 8 x 8320 samples; --big-steps steps) on synthetic tones: steps / seconds of
  `Trainer.fit` (first step included, no validation or checkpoints).
- quality: hifigan-tiny trained for --tiny-steps on synthetic speech-like tones (`synth.harmonic_clip`) against
  Griffin-Lim (32 iterations) on the same held-out clips: PESQ (wideband), mel L1, MCD, STOI, f0 RMSE
  (`eval hifigan`'s copy synthesis).
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


# --------------------------------------------------------------------------------------------- infer


def infer_case(preset: str, seconds: float, chunk_frames: int, threads: int) -> dict:
    """Runs inside a fresh subprocess: one `predict` of a random-valued log-mel of `seconds`."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from voxtool.presets import load_config
    from voxtool.runtime import limit_mmap_threshold
    from voxtool.tasks.hifigan.config import HifiganConfig
    from voxtool.tasks.hifigan.infer import Vocoder, predict
    from voxtool.vocoders.hifigan import Generator

    limit_mmap_threshold()  # as `voxtool infer hifigan` does: freed window activations go back to the OS
    cfg = load_config(HifiganConfig, preset, task="hifigan")
    torch.manual_seed(0)
    generator = Generator(cfg.generator).eval().remove_weight_norm()
    vocoder = Vocoder(generator, cfg.mel, torch.device("cpu"), chunk_frames=chunk_frames)
    frames = int(seconds * cfg.mel.sample_rate) // cfg.mel.hop_length
    mel = np.random.default_rng(0).normal(-5, 2, (cfg.mel.n_mels, frames)).astype(np.float32)
    predict(mel[:, :50], vocoder)  # warm-up
    base = _peak_mb()
    start = time.perf_counter()
    wav = predict(mel, vocoder)
    took = time.perf_counter() - start
    assert len(wav) == frames * cfg.mel.hop_length
    return {"rtf": took / seconds, "peak_mb": _peak_mb() - base}


def bench_infer(seconds_list: list[float], repeats: int, repeats_long: int, threads: int) -> list[dict]:
    rows = []
    for preset in ("hifigan-16k", "hifigan-22k"):
        for seconds in seconds_list:
            for mode, chunk in (("whole", 0), ("streamed", 500)):
                runs = []
                for _ in range(repeats if seconds < 60 else repeats_long):
                    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.hifigan import "
                            f"infer_case; print(json.dumps(infer_case({preset!r}, {seconds}, {chunk}, {threads})))")
                    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                         env={**os.environ, "OMP_NUM_THREADS": str(threads)})
                    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                row = {"preset": preset, "seconds": seconds, "mode": mode, "runs": len(runs),
                       "rtf": round(statistics.median(r["rtf"] for r in runs), 3),
                       "peak_mb": round(statistics.median(r["peak_mb"] for r in runs), 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- data


def synthetic_dataset(root: Path, n_clips: int, seed: int = 0) -> Path:
    from voxtool.presets import load_config
    from voxtool.tasks.hifigan import data
    from voxtool.tasks.hifigan.config import HifiganConfig
    from voxtool.tasks.hifigan.synth import write_clips

    wavs = write_clips(root / "wavs", n_clips, seed, seconds=(1.5, 3.0))
    config = load_config(HifiganConfig, "hifigan-tiny", task="hifigan")
    out = root / "data"
    data.write_dataset(data.collect_audio([wavs]), out, config, valid_fraction=0.2, seed=seed)
    return out


def _trainer(preset: str, data_dir: Path, run_dir: Path, overrides: list[str]):
    import torch

    from voxtool.presets import load_config
    from voxtool.tasks.hifigan.config import HifiganConfig
    from voxtool.tasks.hifigan.train import HifiganTrainTask
    from voxtool.training.task import RunEnv
    from voxtool.training.trainer import Trainer

    cfg = load_config(HifiganConfig, preset, ["train.seed=0", *overrides], task="hifigan")
    env = RunEnv(device=torch.device("cpu"), seed=0)
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(HifiganTrainTask(cfg, data_dir, env), cfg.train, env, run_dir, cfg.model_dump(mode="json")), cfg


def bench_train(data_dir: Path, tmp: Path, tiny_steps: int, big_steps: int) -> dict:
    """Steps/s of `Trainer.fit` over `steps` steps (the first included; no validation, no checkpoints)."""
    result = {}
    for preset, steps in (("hifigan-tiny", tiny_steps), ("hifigan-16k", big_steps)):
        trainer, cfg = _trainer(preset, data_dir, tmp / f"speed-{preset}",
                                [f"train.steps={steps}", "train.valid_every=100000", "train.save_every=0",
                                 "train.log_every=100000"])
        start = time.perf_counter()
        trainer.fit()
        total = time.perf_counter() - start
        result[preset] = {"batch": cfg.train.batch_size, "segment_samples": cfg.data.segment_samples,
                          "steps": steps, "steps_per_s": round(steps / total, 3)}
        print(json.dumps({preset: result[preset]}), flush=True)
    return result


# --------------------------------------------------------------------------------------------- quality


def bench_quality(data_dir: Path, tmp: Path, tiny_steps: int) -> dict:
    from voxtool.tasks.hifigan.infer import evaluate_dataset, load_model

    trainer, _ = _trainer("hifigan-tiny", data_dir, tmp / "quality",
                          [f"train.steps={tiny_steps}", f"train.valid_every={tiny_steps}", "train.save_every=0"])
    start = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - start
    result = {"tiny_steps": tiny_steps, "train_seconds": round(train_s, 1)}
    for name, model in (("hifigan-tiny", load_model(tmp / "quality")),
                        ("griffinlim", load_model("griffinlim", preset="hifigan-tiny"))):
        scores = evaluate_dataset(model, data_dir, "valid")
        result[name] = {k: round(v, 4) for k, v in scores.metrics.items()}
        result["valid_items"] = len(scores.items)
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["infer", "train", "quality"])
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeats-long", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny-steps", type=int, default=400, help="hifigan-tiny training steps for quality")
    parser.add_argument("--speed-steps", type=int, default=20, help="timed hifigan-tiny steps for steps/s")
    parser.add_argument("--big-steps", type=int, default=2, help="timed hifigan-16k steps for steps/s")
    parser.add_argument("--clips", type=int, default=20, help="synthetic clips (20 % held out)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    report = {"threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.only in (None, "infer"):
            report["infer"] = bench_infer(args.seconds, args.repeats, args.repeats_long, args.threads)
        if args.only in (None, "train", "quality"):
            data_dir = synthetic_dataset(tmp, args.clips)
            if args.only in (None, "train"):
                report["train"] = bench_train(data_dir, tmp, args.speed_steps, args.big_steps)
            if args.only in (None, "quality"):
                report["quality"] = bench_quality(data_dir, tmp, args.tiny_steps)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
