"""rmvpe task benchmarks (CPU unless --device says otherwise).

    python benchmarks/rmvpe.py                      # everything
    python benchmarks/rmvpe.py --only infer         # infer | train | prefetch | accuracy
    python benchmarks/rmvpe.py --only infer --seconds 10 60 --repeats 3

- infer: real-time factor (processing seconds per audio second) and peak memory for 10 s, 60 s and 600 s of audio
  with the published-size E2E0 (random weights: speed does not depend on them), voxtool's chunked inference (the
  default: 2048-frame cores, 256 context frames per side, batch 2) against one whole-file forward pass of the same
  model, both through `predict_from_file` on a float WAV. Each case runs in a fresh subprocess so ru_maxrss is its
  own peak; memory is reported above the process's baseline after imports and model load (so it includes reading
  the audio). Medians over --repeats (600 s: repeats // 2).
- train: optimiser steps/s of `rmvpe-tiny` (preset batch 8 x 64 frames) and `rmvpe` (preset batch 32 x 128 frames)
  on synthetic data in the same process (median step time after one warm-up step).
- prefetch: `rmvpe-tiny` steps/s with `train.prefetch` off and on (the next step's batch built in a worker thread
  while this step trains), alternating runs, median over --repeats.
- accuracy: `rmvpe-tiny` trained for a fixed budget (--tiny-steps, default 300) on synthetic harmonic tones, against
  pyworld harvest, librosa pyin and a constant-median-f0 baseline on the same held-out tones (mir_eval, 50 cents),
  clean and with pink noise at 5 dB SNR.
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


def _current_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _tone(seconds: float, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    sr = 16000
    t = np.arange(int(seconds * sr)) / sr
    f0 = 220 * 2 ** (np.sin(2 * np.pi * 0.2 * t) / 2)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    return (0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


# --------------------------------------------------------------------------------------------- infer


def write_tone_wav(path: Path, seconds: float) -> Path:
    """A long 16 kHz test song written in 10-s blocks (continuous phase), so the parent stays small."""
    import numpy as np
    import soundfile as sf

    sr, block = 16000, 160000
    rng = np.random.default_rng(0)
    phase0 = 0.0
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="FLOAT") as f:
        for a in range(0, int(seconds * sr), block):
            t = (a + np.arange(min(block, int(seconds * sr) - a))) / sr
            f0 = 220 * 2 ** (np.sin(2 * np.pi * 0.2 * t) / 2)
            phase = phase0 + 2 * np.pi * np.cumsum(f0) / sr
            phase0 = float(phase[-1])
            f.write((0.3 * np.sin(phase) + 0.1 * np.sin(2 * phase) + 0.01 * rng.standard_normal(len(t)))
                    .astype(np.float32))
    return path


def infer_case(wav: str, mode: str, threads: int, device: str) -> dict:
    """Runs inside a fresh subprocess: `predict_from_file` on one file, chunked (default) or whole-file."""
    import soundfile as sf
    import torch

    torch.set_num_threads(threads)
    from voxtool.pitch.rmvpe import predict, predict_from_file
    from voxtool.pitch.rmvpe_model import E2E0
    from voxtool.pitch.runtime import TorchPitchModel
    from voxtool.pitch.settings import published_mel_config
    from voxtool.runtime import limit_mmap_threshold

    limit_mmap_threshold()  # as `voxtool infer rmvpe` does: freed window activations go back to the OS
    torch.manual_seed(0)
    model = TorchPitchModel(E2E0().eval(), published_mel_config(), torch.device(device))
    predict(_tone(1.0), 16000, model, chunk_frames=0)  # warm-up (allocator, kernels)
    base = _current_mb()
    seconds = sf.info(wav).duration
    start = time.perf_counter()
    track = predict_from_file(wav, model, chunk_frames=0 if mode == "whole" else None)
    elapsed = time.perf_counter() - start
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_mb() - base
    return {"seconds": seconds, "mode": mode, "rtf": elapsed / seconds, "peak_mb": peak, "frames": len(track.f0)}


def bench_infer(seconds_list: list[float], repeats: int, threads: int, device: str, tmp: Path) -> list[dict]:
    rows = []
    for seconds in seconds_list:
        wav = write_tone_wav(tmp / f"tone_{seconds:.0f}s.wav", seconds)
        for mode in ("chunked", "whole"):
            runs = []
            for _ in range(repeats if seconds < 300 else max(1, repeats // 2)):
                out = subprocess.run(
                    [sys.executable, __file__, "--case", json.dumps([str(wav), mode, threads, device])],
                    capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            row = {
                "seconds": seconds,
                "mode": mode,
                "rtf": statistics.median(r["rtf"] for r in runs),
                "peak_mb": statistics.median(r["peak_mb"] for r in runs),
                "runs": len(runs),
            }
            rows.append(row)
            print(f"infer {seconds:6.0f} s {mode:8s} RTF {row['rtf']:.3f}  peak +{row['peak_mb']:.0f} MiB "
                  f"(median of {len(runs)})", flush=True)
    for seconds in seconds_list:
        c = next(r for r in rows if r["seconds"] == seconds and r["mode"] == "chunked")
        w = next(r for r in rows if r["seconds"] == seconds and r["mode"] == "whole")
        print(f"  {seconds:6.0f} s: chunked/whole time {c['rtf'] / w['rtf']:.2f}x, memory "
              f"{c['peak_mb'] / max(w['peak_mb'], 1e-9):.2f}x")
    chunked = [r for r in rows if r["mode"] == "chunked"]
    for other in chunked[:-1]:
        print(f"  chunked memory {chunked[-1]['seconds']:.0f} s / {other['seconds']:.0f} s: "
              f"{chunked[-1]['peak_mb'] / other['peak_mb']:.2f}x")
    return rows


# --------------------------------------------------------------------------------------------- data


def synthetic_dataset(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    from voxtool.tasks.rmvpe import data
    from voxtool.tasks.rmvpe.synth import write_csv_dataset

    write_csv_dataset(root / "src", n_train, n_test, seed=seed)
    sources = data.pitch_sources(root / "src")
    data.split_sources(sources, None, 0.1, 0)
    data.write_dataset(sources, root / "data")
    return root / "data"


def _task(preset: str, data_dir: Path, overrides: list[str]):
    import torch

    from voxtool.presets import load_config
    from voxtool.tasks.rmvpe.train import RmvpeConfig, RmvpeTrainTask
    from voxtool.training.task import RunEnv
    from voxtool.training.trainer import Trainer

    cfg = load_config(RmvpeConfig, preset, overrides, task="rmvpe")
    env = RunEnv(device=torch.device("cpu"))
    task = RmvpeTrainTask(cfg, data_dir, env)
    return task, Trainer(task, cfg.train, env, None, cfg.model_dump(mode="json"))


def bench_train(data_dir: Path, steps: dict[str, int]) -> dict:
    out = {}
    for preset, n in steps.items():
        task, trainer = _task(preset, data_dir, [])
        trainer.train_step()  # warm-up
        times = []
        for _ in range(n):
            t = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - t)
        step_s = statistics.median(times)
        cfg = task.config
        out[preset] = 1.0 / step_s
        print(f"train {preset:11s} {1 / step_s:7.3f} steps/s (batch {cfg.train.batch_size} x "
              f"{cfg.data.crop_frames} frames, {sum(p.numel() for p in task.model.parameters()):,} params, "
              f"median of {n})", flush=True)
    if len(out) == 2:
        print(f"  rmvpe-tiny / rmvpe: {out['rmvpe-tiny'] / out['rmvpe']:.1f}x steps/s")
    return out


def bench_prefetch(data_dir: Path, steps: int, repeats: int) -> dict:
    """`train.prefetch` on and off: median step time of `rmvpe-tiny` (the data-bound preset: a small model
    waiting for crops, .npz reads and pitch-shift resampling), runs alternating in one process."""
    out = {}
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        for prefetch in (False, True):
            task, trainer = _task("rmvpe-tiny", data_dir, [f"train.prefetch={str(prefetch).lower()}",
                                                           f"train.steps={steps + 2}"])
            with trainer.prefetching():
                trainer.train_step()  # warm-up (and the first prefetch)
                t = time.perf_counter()
                for _ in range(steps):
                    trainer.train_step()
                times[prefetch].append((time.perf_counter() - t) / steps)
    for prefetch in (False, True):
        out["on" if prefetch else "off"] = 1.0 / statistics.median(times[prefetch])
    print(f"train rmvpe-tiny prefetch off {out['off']:7.2f} steps/s | on {out['on']:7.2f} steps/s | "
          f"on/off {out['on'] / out['off']:.2f}x (median of {repeats} x {steps} steps)", flush=True)
    return out


# --------------------------------------------------------------------------------------------- accuracy


def bench_accuracy(data_dir: Path, tiny_steps: int) -> dict:
    import librosa
    import numpy as np
    import pyworld

    from voxtool.pitch.rmvpe import predict
    from voxtool.pitch.runtime import TorchPitchModel
    from voxtool.tasks.rmvpe.data import PitchDataset, validation_audio
    from voxtool.tasks.rmvpe.metrics import mean_metrics, melody_metrics

    task, trainer = _task("rmvpe-tiny", data_dir, [f"train.steps={tiny_steps}"])
    start = time.perf_counter()
    while trainer.step < tiny_steps:
        trainer.train_step()
    train_s = time.perf_counter() - start
    model = TorchPitchModel(task.model.eval(), task.config.mel)
    valid = PitchDataset(data_dir, "valid")
    train = PitchDataset(data_dir, "train")
    median_f0 = float(np.median(np.concatenate([train[i].f0[train[i].f0 > 0] for i in range(len(train))])))
    rng = np.random.default_rng(123)
    summary = {}
    seconds = sum(len(validation_audio(valid[i])[0]) for i in range(len(valid))) / 16000
    print(f"accuracy on {len(valid)} held-out synthetic tones ({seconds:.0f} s); rmvpe-tiny trained {tiny_steps} "
          f"steps ({train_s:.0f} s on this CPU)")
    for condition in ("clean", "noisy 5 dB"):
        rows: dict[str, list] = {"rmvpe-tiny": [], "harvest": [], "pyin": [], "median f0": []}
        timing = {k: 0.0 for k in rows}
        for i in range(len(valid)):
            audio, ref = validation_audio(valid[i])
            if condition != "clean":  # pink noise at 5 dB SNR over the whole clip
                from voxtool.tasks.rmvpe.data import coloured_noise

                noise = coloured_noise(len(audio), 1.0, rng)
                audio = audio + noise * np.sqrt(np.mean(audio**2) / 10 ** 0.5)
                audio = (audio / max(1.0, np.abs(audio).max())).astype(np.float32)
            t = time.perf_counter()
            est = predict(audio, 16000, model).f0
            timing["rmvpe-tiny"] += time.perf_counter() - t
            rows["rmvpe-tiny"].append(melody_metrics(ref, est, 0.01))
            t = time.perf_counter()
            f0, _ = pyworld.harvest(audio.astype(np.float64), 16000, f0_floor=50.0, f0_ceil=1100.0, frame_period=10.0)
            timing["harvest"] += time.perf_counter() - t
            rows["harvest"].append(melody_metrics(ref, f0, 0.01))
            t = time.perf_counter()
            f0, voiced, _ = librosa.pyin(audio, fmin=50.0, fmax=1100.0, sr=16000, frame_length=1024, hop_length=160)
            timing["pyin"] += time.perf_counter() - t
            rows["pyin"].append(melody_metrics(ref, np.where(voiced, np.nan_to_num(f0), 0.0), 0.01))
            rows["median f0"].append(melody_metrics(ref, np.full_like(ref, median_f0), 0.01))
        print(f"  {condition:11s}   RPA    RCA    OA     VR     VFA    RTF")
        for name, r in rows.items():
            m = mean_metrics(r)
            summary[f"{condition}/{name}"] = m
            print(f"  {name:11s} " + " ".join(f"{m[k]:.3f}" for k in ("rpa", "rca", "oa", "vr", "vfa"))
                  + f"  {timing[name] / seconds:.3f}", flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["infer", "train", "prefetch", "accuracy"], action="append")
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0, 600.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny-steps", type=int, default=300)
    parser.add_argument("--full-train-steps", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        wav, mode, threads, device = json.loads(args.case)
        print(json.dumps(infer_case(wav, mode, threads, device)))
        return
    import torch

    torch.set_num_threads(args.threads)
    only = set(args.only or ["infer", "train", "prefetch", "accuracy"])
    results: dict = {"threads": args.threads, "device": args.device}
    print(f"rmvpe benchmarks: torch {torch.__version__}, {args.threads} thread(s), device {args.device}")
    if "infer" in only:
        with tempfile.TemporaryDirectory() as tmp:
            results["infer"] = bench_infer(args.seconds, args.repeats, args.threads, args.device, Path(tmp))
    if only & {"train", "prefetch", "accuracy"}:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = synthetic_dataset(Path(tmp), n_train=48, n_test=12)
            if "train" in only:
                results["train"] = bench_train(data_dir, {"rmvpe-tiny": 10, "rmvpe": args.full_train_steps})
            if "prefetch" in only:
                results["prefetch"] = bench_prefetch(data_dir, steps=20, repeats=args.repeats)
            if "accuracy" in only:
                results["accuracy"] = bench_accuracy(data_dir, args.tiny_steps)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
