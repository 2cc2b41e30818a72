"""mouth task benchmarks (CPU unless --device says otherwise).

    python benchmarks/mouth.py                 # everything
    python benchmarks/mouth.py --only prep     # prep | infer | train

- prep: takes/s of `prepare_lipsync` with 1 and 2 workers on synthetic 10-s takes (median of runs, fresh
  output folder each run); ratio 2 workers / 1 worker.
- infer: real-time factor (processing seconds per audio second) and peak memory for 60 s and 600 s of audio with
  the full-size `mouth` model (random weights: speed does not depend on them), chunked (the default) against
  whole-file inference in the same process. Each case runs in a fresh subprocess so ru_maxrss is its own peak;
  memory is reported above the process's baseline after imports and model load.
- train: optimiser steps/s of the `mouth` preset (batch 16 x 128 frames, schedule-free AdamW) against `mouth-tiny`
  in the same process.

Torch uses BENCH_THREADS threads (default 1: on a small shared machine more threads mostly add contention).
prep workers are threads (the decoding, resampling and STFT release the GIL).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --------------------------------------------------------------------------------------------- prep


def bench_prep(runs: int, n_takes: int) -> dict:
    import torch

    from voxtool.tasks.mouth.data import prepare_lipsync
    from voxtool.tasks.mouth.synth import make_corpus, make_singers

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    tmp = Path(tempfile.mkdtemp(prefix="mouth-bench-prep-"))
    try:
        singers = make_singers(n_takes // 2, seed=3)
        make_corpus(tmp / "src", singers, takes_per_singer=2, duration=10.0, seed=3)
        result = {}
        for workers in (1, 2):
            times = []
            for r in range(runs):
                out = tmp / f"out-{workers}-{r}"
                t = time.perf_counter()
                summary = prepare_lipsync(tmp / "src", out, workers=workers)
                times.append(time.perf_counter() - t)
                assert summary.takes == len(singers) * 2
                shutil.rmtree(out)
            med = statistics.median(times)
            result[f"workers_{workers}"] = {"takes_per_s": len(singers) * 2 / med, "median_s": med, "runs": times}
        result["speedup_2_vs_1"] = result["workers_2"]["takes_per_s"] / result["workers_1"]["takes_per_s"]
        result["takes"] = len(singers) * 2
        result["take_seconds"] = 10.0
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------- inference


def _model_file(path: Path) -> None:
    import torch

    from voxtool.tasks.mouth.config import MouthConfig
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator
    from voxtool.training.modelfile import save_model_file

    torch.manual_seed(0)
    config = MouthConfig()
    model = BiLSTMCurveEstimator(config.model, -0.15, 1.0)
    meta = {"value_range": [-0.15, 1.0], "mel": config.mel.model_dump(), "target": "jaw-minus-close", "fps": 50}
    save_model_file(path, "mouth", config.model_dump(mode="json"), model.state_dict(), meta)


def infer_case(model_path: str, seconds: float, whole: bool, device: str, runs: int) -> dict:
    """Runs in its own process: one inference mode on `seconds` of synthetic audio."""
    import numpy as np
    import torch

    from voxtool.tasks.mouth.infer import load_model, predict

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    pred = load_model(model_path, device)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    predict(audio[: 16000 * 5], 16000, pred)  # warm-up
    base_rss = _current_rss_mb()
    from voxtool.tasks.mouth.config import DEFAULT_CHUNK_FRAMES

    chunk = 10**9 if whole else DEFAULT_CHUNK_FRAMES
    times = []
    for _ in range(runs):
        if pred.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        predict(audio, 16000, pred, chunk_frames=chunk)
        if pred.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"seconds": seconds, "mode": "whole" if whole else "chunked", "rtf": med / seconds, "median_s": med,
            "peak_rss_mb": _rss_mb(), "peak_above_baseline_mb": _rss_mb() - base_rss,
            "audio_mb": audio.nbytes / 2**20}  # fmt: skip


def bench_infer(device: str, runs: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="mouth-bench-infer-"))
    try:
        model = tmp / "model.pt"
        _model_file(model)
        results = []
        for seconds in (60.0, 600.0):
            for whole in (False, True):
                cmd = [sys.executable, __file__, "--_infer-case", str(model), str(seconds), str(int(whole)), device,
                       str(runs if seconds < 300 else max(1, runs // 2))]  # fmt: skip
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        return {"cases": results}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------- training


def bench_train(device: str, steps: int) -> dict:
    import numpy as np
    import torch

    from voxtool.devices import resolve_device
    from voxtool.presets import load_config
    from voxtool.tasks.mouth.config import MouthConfig
    from voxtool.tasks.mouth.data import prepare_lipsync
    from voxtool.tasks.mouth.synth import TRAIN_SINGERS, make_corpus
    from voxtool.tasks.mouth.train import MouthTrainTask
    from voxtool.training.task import RunEnv
    from voxtool.training.trainer import Trainer

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    dev = resolve_device(device)
    tmp = Path(tempfile.mkdtemp(prefix="mouth-bench-train-"))
    try:
        make_corpus(tmp / "src", TRAIN_SINGERS[:2], takes_per_singer=2, duration=10.0, seed=5)
        prepare_lipsync(tmp / "src", tmp / "data")
        result = {}
        for preset in ("mouth", "mouth-tiny"):
            cfg = load_config(MouthConfig, preset, [f"train.steps={10**6}"], task="mouth")
            env = RunEnv(device=dev.torch, device_spec=dev, seed=0)
            task = MouthTrainTask(cfg, tmp / "data", env)
            trainer = Trainer(task, cfg.train, env, run_dir=None, config_dict={})
            trainer._optimizers_mode("train")
            for _ in range(2):  # warm-up
                trainer.train_step()
            times = []
            for _ in range(steps):
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                trainer.train_step()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
            med = float(np.median(times))
            result[preset] = {"steps_per_s": 1.0 / med, "median_step_s": med,
                              "batch": cfg.train.batch_size, "crop_frames": cfg.data.crop_frames}  # fmt: skip
        result["tiny_vs_full_speed"] = result["mouth-tiny"]["steps_per_s"] / result["mouth"]["steps_per_s"]
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_infer-case":
        _, _, model, seconds, whole, device, runs = sys.argv
        print(json.dumps(infer_case(model, float(seconds), bool(int(whole)), device, int(runs))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["prep", "infer", "train"], action="append")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--takes", type=int, default=24)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    todo = args.only or ["prep", "infer", "train"]
    report = {"device": args.device, "threads": int(os.environ.get("BENCH_THREADS", "1")), "cpus": os.cpu_count()}
    if "prep" in todo:
        report["prep"] = p = bench_prep(args.runs, args.takes)
        if not args.json:
            print(f"prep: {p['takes']} takes of 10 s | 1 worker {p['workers_1']['takes_per_s']:.2f} takes/s | "
                  f"2 workers {p['workers_2']['takes_per_s']:.2f} takes/s | x{p['speedup_2_vs_1']:.2f}")  # fmt: skip
    if "infer" in todo:
        report["infer"] = r = bench_infer(args.device, args.runs)
        if not args.json:
            for c in r["cases"]:
                print(f"infer {c['seconds']:5.0f} s {c['mode']:7s}: RTF {c['rtf']:.4f} ({c['median_s']:.2f} s) | "
                      f"peak RSS {c['peak_rss_mb']:.0f} MB, +{c['peak_above_baseline_mb']:.0f} MB over baseline")  # fmt: skip
    if "train" in todo:
        report["train"] = t = bench_train(args.device, args.train_steps)
        if not args.json:
            print(f"train: mouth {t['mouth']['steps_per_s']:.2f} steps/s | mouth-tiny "
                  f"{t['mouth-tiny']['steps_per_s']:.2f} steps/s (x{t['tiny_vs_full_speed']:.1f})")  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
