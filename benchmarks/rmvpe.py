"""rmvpe task benchmarks (CPU unless --device says otherwise).

    python benchmarks/rmvpe.py                      # everything
    python benchmarks/rmvpe.py --only infer         # infer | train | prefetch | accuracy | voicing
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
- accuracy: `rmvpe-tiny` trained for a fixed budget (--tiny-steps, default 300) with the default recipe on
  synthetic voicing clips (`synth.voicing_clip`: notes separated by silent, breath and accompaniment-only gaps),
  its threshold calibrated on 8 validation clips, against pyworld harvest, librosa pyin and a constant-median-f0
  baseline on 12 held-out clips (mir_eval, 50 cents): RPA RCA OA VR VFA, rmvpe-tiny at 0.03 and at its
  calibrated threshold, clean and with pink noise at 5 dB SNR, plus rmvpe-tiny's false alarms per kind of gap.
- voicing: the default recipe against the voicing training options (`loss.unvoiced_weight=4`,
  `data.voice_drop_prob=0.5`, both) over --voicing-seeds, --voicing-steps each: VFA/VR at 0.03, the calibrated
  threshold and OA/VR/VFA there, for the local and the Viterbi decoder, on 12 held-out clean clips.
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
    env = RunEnv(device=torch.device("cpu"), seed=cfg.train.seed)  # as train_from_options: weights and batches
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


def voicing_dataset(root: Path, n_train: int, n_valid: int, seed: int = 0) -> Path:
    """Prepared `voicing_clip` data (notes with silent, breath and accompaniment-only gaps); the valid split
    is what training validates and calibrates the threshold on."""
    from voxtool.tasks.rmvpe import data
    from voxtool.tasks.rmvpe.synth import write_voicing_dataset

    write_voicing_dataset(root / "src", n_train, n_valid, seed=seed)
    sources = data.pitch_sources(root / "src")
    data.split_sources(sources, None, 0.1, 0)
    data.write_dataset(sources, root / "data")
    return root / "data"


def test_clips(n: int, seed: int, noisy: bool) -> list[tuple]:
    """Held-out `voicing_clip` mixtures (voice + accompaniment), clean or with pink noise at 5 dB SNR over the
    whole clip -> [(audio, ref f0, frame kinds)]."""
    import numpy as np

    from voxtool.tasks.rmvpe.data import coloured_noise
    from voxtool.tasks.rmvpe.synth import voicing_clip

    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n):
        voice, acc, f0, kind = voicing_clip(rng)
        audio = voice + acc
        if noisy:
            audio = audio + coloured_noise(len(audio), 1.0, rng) * np.sqrt(np.mean(audio**2) / 10**0.5)
            audio = audio / max(1.0, float(np.abs(audio).max()))
        clips.append((audio.astype(np.float32), f0, kind))
    return clips


def train_tiny(data_dir: Path, steps: int, overrides: list[str]):
    """rmvpe-tiny trained `steps` steps, then validated once (which calibrates its threshold) -> (task, seconds)."""
    import torch

    task, trainer = _task("rmvpe-tiny", data_dir, [f"train.steps={steps}", *overrides])
    start = time.perf_counter()
    while trainer.step < steps:
        trainer.train_step()
    seconds = time.perf_counter() - start
    task.model.eval()
    with torch.no_grad():
        task.validate(task.model)
    return task, seconds


def tiny_tracks(task, clips: list[tuple], decoder: str = "local") -> list:
    """Every frame's pitch and confidence of the trained tiny model on `clips` -> VoicingSweep."""
    from voxtool.pitch.rmvpe import predict
    from voxtool.pitch.runtime import TorchPitchModel
    from voxtool.tasks.rmvpe.metrics import ScoredTrack, VoicingSweep

    model = TorchPitchModel(task.model.eval(), task.config.mel)
    tracks = []
    for i, (audio, ref, _) in enumerate(clips):
        track = predict(audio, 16000, model, threshold=0.0, decoder=decoder)
        tracks.append(ScoredTrack(str(i), ref, track.f0, track.confidence))
    return VoicingSweep(tracks, 0.01)


def false_alarms_by_kind(sweep, clips: list[tuple], threshold: float) -> dict[str, float]:
    """Fraction of each kind of unvoiced frame (silence, breath, accompaniment-only) called voiced."""
    import numpy as np

    from voxtool.tasks.rmvpe.synth import KIND_NAMES, VOICED

    voiced_at = [t.confidence >= np.float32(threshold) for t in sweep.tracks]
    out = {}
    for k, name in KIND_NAMES.items():
        if k == VOICED:
            continue
        hits = [v[: len(c[2])][c[2][: len(v)] == k] for v, c in zip(voiced_at, clips)]
        out[name] = float(np.mean(np.concatenate(hits))) if sum(map(len, hits)) else float("nan")
    return out


def bench_accuracy(tiny_steps: int, tmp: Path, n_test: int = 12) -> dict:
    """rmvpe-tiny (default recipe, threshold calibrated on validation) vs harvest, pyin and a constant-median-f0
    track on held-out voicing clips, clean and noisy: RPA RCA OA VR VFA, voxtool at 0.03 and calibrated."""
    import librosa
    import numpy as np
    import pyworld

    from voxtool.tasks.rmvpe.data import PitchDataset
    from voxtool.tasks.rmvpe.metrics import mean_metrics, melody_metrics

    data_dir = voicing_dataset(tmp / "acc", n_train=48, n_valid=8)
    task, train_s = train_tiny(data_dir, tiny_steps, [])
    calibrated = task.calibrated_threshold
    train = PitchDataset(data_dir, "train")
    median_f0 = float(np.median(np.concatenate([train[i].f0[train[i].f0 > 0] for i in range(len(train))])))
    summary = {"calibrated_threshold": calibrated}
    print(f"accuracy on {n_test} held-out voicing clips (3 s: notes, silent / breath / accompaniment-only gaps); "
          f"rmvpe-tiny trained {tiny_steps} steps ({train_s:.0f} s), threshold calibrated on 8 validation clips: "
          f"{calibrated:g}")
    for condition in ("clean", "noisy 5 dB"):
        clips = test_clips(n_test, 123, condition != "clean")
        seconds = sum(len(c[0]) for c in clips) / 16000
        t = time.perf_counter()
        sweep = tiny_tracks(task, clips)
        tiny_s = time.perf_counter() - t
        means = {"rmvpe-tiny @0.03": (sweep.means(0.03), tiny_s),
                 f"rmvpe-tiny @{calibrated:g}": (sweep.means(calibrated), tiny_s)}
        rows: dict[str, list] = {"harvest": [], "pyin": [], "median f0": []}
        timing = {k: 0.0 for k in rows}
        for audio, ref, _ in clips:
            t = time.perf_counter()
            f0, _ = pyworld.harvest(audio.astype(np.float64), 16000, f0_floor=50.0, f0_ceil=1100.0, frame_period=10.0)
            timing["harvest"] += time.perf_counter() - t
            rows["harvest"].append(melody_metrics(ref, f0, 0.01))
            t = time.perf_counter()
            f0, voiced, _ = librosa.pyin(audio, fmin=50.0, fmax=1100.0, sr=16000, frame_length=1024, hop_length=160)
            timing["pyin"] += time.perf_counter() - t
            rows["pyin"].append(melody_metrics(ref, np.where(voiced, np.nan_to_num(f0), 0.0), 0.01))
            rows["median f0"].append(melody_metrics(ref, np.full_like(ref, median_f0), 0.01))
        means.update({name: (mean_metrics(r), timing[name] or float("nan")) for name, r in rows.items()})
        print(f"  {condition:17s} RPA    RCA    OA     VR     VFA    RTF")
        for name, (m, spent) in means.items():
            summary[f"{condition}/{name}"] = m
            print(f"  {name:17s} " + " ".join(f"{m[k]:.3f}" for k in ("rpa", "rca", "oa", "vr", "vfa"))
                  + f"  {spent / seconds:.3f}", flush=True)
        for thr in (0.03, calibrated):
            kinds = false_alarms_by_kind(sweep, clips, thr)
            summary[f"{condition}/false alarms @{thr:g}"] = kinds
            print(f"    rmvpe-tiny false alarms @{thr:g}: " + ", ".join(f"{k} {v:.3f}" for k, v in kinds.items()))
    return summary


def bench_voicing(steps: int, seeds: list[int], tmp: Path, n_test: int = 12, only: list[str] | None = None) -> dict:
    """The default recipe against the voicing fixes (unvoiced-frame BCE weight, voice-dropped spans), over
    seeds: VFA/VR at 0.03, the calibrated threshold and OA/VR/VFA there, and Viterbi decoding at the same
    thresholds; on held-out clean voicing clips."""
    import numpy as np

    data_dir = voicing_dataset(tmp / "voicing", n_train=48, n_valid=8)
    clips = test_clips(n_test, 321, noisy=False)
    recipes = {
        "default": [],
        "unvoiced_weight 4": ["loss.unvoiced_weight=4"],
        "voice_drop 0.5": ["data.voice_drop_prob=0.5"],
        "both": ["loss.unvoiced_weight=4", "data.voice_drop_prob=0.5"],
    }
    recipes = {k: v for k, v in recipes.items() if not only or k.split()[0] in only}
    out: dict = {}
    print(f"voicing: rmvpe-tiny {steps} steps, seeds {seeds}, {n_test} held-out clean voicing clips "
          "(threshold calibrated on 8 validation clips)")
    print(f"  {'recipe':18s} seed decoder  VFA@.03 VR@.03 | thr    OA     VR     VFA   | acc-only FA @thr")
    for name, overrides in recipes.items():
        for seed in seeds:
            task, _ = train_tiny(data_dir, steps, [*overrides, f"train.seed={seed}"])
            thr = task.calibrated_threshold
            for decoder in ("local", "viterbi"):
                sweep = tiny_tracks(task, clips, decoder)
                d, c = sweep.means(0.03), sweep.means(thr)
                fa = false_alarms_by_kind(sweep, clips, thr)["accompaniment-only"]
                out[f"{name}/{seed}/{decoder}"] = {"default": d, "threshold": thr, "calibrated": c, "acc_only_fa": fa}
                print(f"  {name:18s} {seed:4d} {decoder:8s} {d['vfa']:.3f}   {d['vr']:.3f} | {thr:.2f}  "
                      f"{c['oa']:.3f}  {c['vr']:.3f}  {c['vfa']:.3f} | {fa:.3f}", flush=True)
        rows = [out[f"{name}/{seed}/local"] for seed in seeds]
        print(f"  {name:18s} mean local: VFA@.03 {np.mean([r['default']['vfa'] for r in rows]):.3f}, calibrated "
              f"OA {np.mean([r['calibrated']['oa'] for r in rows]):.3f} VR "
              f"{np.mean([r['calibrated']['vr'] for r in rows]):.3f} VFA "
              f"{np.mean([r['calibrated']['vfa'] for r in rows]):.3f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["infer", "train", "prefetch", "accuracy", "voicing"], action="append")
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0, 600.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny-steps", type=int, default=300)
    parser.add_argument("--full-train-steps", type=int, default=2)
    parser.add_argument("--voicing-steps", type=int, default=200)
    parser.add_argument("--voicing-seeds", type=int, nargs="+", default=[1234, 1])
    parser.add_argument("--voicing-recipes", nargs="+", choices=["default", "unvoiced_weight", "voice_drop", "both"])
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        wav, mode, threads, device = json.loads(args.case)
        print(json.dumps(infer_case(wav, mode, threads, device)))
        return
    import torch

    torch.set_num_threads(args.threads)
    only = set(args.only or ["infer", "train", "prefetch", "accuracy", "voicing"])
    results: dict = {"threads": args.threads, "device": args.device}
    print(f"rmvpe benchmarks: torch {torch.__version__}, {args.threads} thread(s), device {args.device}")
    if "infer" in only:
        with tempfile.TemporaryDirectory() as tmp:
            results["infer"] = bench_infer(args.seconds, args.repeats, args.threads, args.device, Path(tmp))
    if only & {"train", "prefetch"}:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = synthetic_dataset(Path(tmp), n_train=48, n_test=12)
            if "train" in only:
                results["train"] = bench_train(data_dir, {"rmvpe-tiny": 10, "rmvpe": args.full_train_steps})
            if "prefetch" in only:
                results["prefetch"] = bench_prefetch(data_dir, steps=20, repeats=args.repeats)
    if only & {"accuracy", "voicing"}:
        with tempfile.TemporaryDirectory() as tmp:
            if "accuracy" in only:
                results["accuracy"] = bench_accuracy(args.tiny_steps, Path(tmp))
            if "voicing" in only:
                results["voicing"] = bench_voicing(args.voicing_steps, args.voicing_seeds, Path(tmp),
                                                   only=args.voicing_recipes)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
