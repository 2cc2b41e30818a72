"""Peak memory of `voxtool infer mouth` on file input: a short clip against a long file.

    python benchmarks/audio_memory.py                  # 2 s and 60 min, 44.1 kHz stereo 16-bit WAV
    python benchmarks/audio_memory.py --minutes 30 --rate 16000 --channels 1

Every case runs in a fresh subprocess: imports, a `mouth-tiny` model with random weights (the model's own
activations are the same for every file length), and a warm-up inference on a 1-s clip; then the peak is reset
(Linux: /proc/self/clear_refs) and the case runs. Reported: peak RSS above the RSS just before the case, in MiB
(from VmHWM after the reset; `resource.getrusage` ru_maxrss where the reset is not available).

Modes:
- file: `predict_from_files_to_files` (the CLI path): the file is read in blocks and resampled block by block, the
  log-mel is made chunk by chunk and the model runs in chunks; a file longer than one chunk is read twice.
- whole: the previous path, `load_audio` (whole file decoded and resampled) then `predict` on the array.
- decode: only the audio: `load_audio` against consuming `iter_audio_blocks` (mode decode-blocks).
- rmvpe-file / rmvpe-whole: the same for `infer rmvpe` (`rmvpe-tiny`, random weights, its preset's chunking):
  `predict_from_file` (blocks) against `predict(load_audio(...))`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb(reset: bool) -> float:
    if reset:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_signal(path: Path, seconds: float, rate: int, channels: int) -> None:
    """A synthetic sung-like signal (gliding harmonic tone + noise), written block by block (PCM 16)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    total = int(seconds * rate)
    block = rate * 30
    phase = 0.0
    with sf.SoundFile(str(path), "w", rate, channels, subtype="PCM_16") as f:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / rate
            f0 = 220.0 * 2 ** (0.5 * np.sin(2 * np.pi * 0.2 * t))
            ph = phase + 2 * np.pi * np.cumsum(f0) / rate
            phase = float(ph[-1])
            x = 0.3 * np.sin(ph) + 0.1 * np.sin(2 * ph) + 0.01 * rng.standard_normal(n)
            f.write(np.repeat(x[:, None], channels, axis=1).astype(np.float32))


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    from voxtool.audio.io import iter_audio_blocks, load_audio
    from voxtool.inputs import expand_inputs
    from voxtool.presets import load_config
    from voxtool.tasks.mouth.config import MouthConfig
    from voxtool.tasks.mouth.infer import load_model, predict, predict_from_files_to_files
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator
    from voxtool.training.modelfile import save_model_file

    work = Path(args.work)
    if args.mode.startswith("rmvpe"):
        rmvpe_child(args, work)
        return
    model_path = work / "model.pt"
    if not model_path.exists():
        cfg = load_config(MouthConfig, "mouth-tiny", [], task="mouth")
        net = BiLSTMCurveEstimator(cfg.model, -0.15, 1.0)
        save_model_file(model_path, "mouth", cfg.model_dump(mode="json"), net.state_dict(),
                        {"mel": cfg.mel.model_dump(), "value_range": [-0.15, 1.0]})
    pred = load_model(model_path)
    warm = work / "warm.wav"
    # warm-up: lazy allocations, thread pools
    predict_from_files_to_files(expand_inputs([str(warm)], work / "warm.csv", ".csv"), pred)
    predict(load_audio(warm, 16000), 16000, pred)
    sum(len(b) for b in iter_audio_blocks(warm, 16000))

    reset = _reset_peak()
    base = _current_rss_mb()
    t0 = time.perf_counter()
    if args.mode == "file":
        predict_from_files_to_files(expand_inputs([args.file], work / "out.csv", ".csv"), pred)
    elif args.mode == "whole":
        audio = load_audio(args.file, sr=16000)
        predict(audio, 16000, pred)
    elif args.mode == "decode":
        load_audio(args.file, sr=16000)
    elif args.mode == "decode-blocks":
        sum(len(b) for b in iter_audio_blocks(args.file, 16000))
    else:
        raise SystemExit(f"unknown mode {args.mode}")
    report(t0, base, reset)


def report(t0: float, base: float, reset: bool) -> None:
    seconds = time.perf_counter() - t0
    peak = _peak_mb(reset)
    print(json.dumps({"above_baseline_mb": round(peak - base, 1), "baseline_mb": round(base, 1),
                      "seconds": round(seconds, 2), "peak_reset": reset}))


def rmvpe_child(args: argparse.Namespace, work: Path) -> None:
    from voxtool.audio.io import load_audio
    from voxtool.pitch.rmvpe_model import E2E0
    from voxtool.presets import load_config
    from voxtool.runtime import limit_mmap_threshold
    from voxtool.tasks.rmvpe.infer import load_model, predict, predict_from_file
    from voxtool.tasks.rmvpe.train import RmvpeConfig
    from voxtool.training.modelfile import save_model_file

    model_path = work / "rmvpe.pt"
    if not model_path.exists():
        cfg = load_config(RmvpeConfig, "rmvpe-tiny", [], task="rmvpe")
        save_model_file(model_path, "rmvpe", cfg.model_dump(mode="json"), E2E0(cfg.model.arch()).state_dict(), {})
    model = load_model(model_path, device="cpu")
    limit_mmap_threshold()  # as `voxtool infer rmvpe` does
    warm = work / "warm.wav"
    predict_from_file(warm, model)
    predict(load_audio(warm, 16000), 16000, model)

    reset = _reset_peak()
    base = _current_rss_mb()
    t0 = time.perf_counter()
    if args.mode == "rmvpe-file":
        predict_from_file(args.file, model)
    else:
        predict(load_audio(args.file, sr=16000), 16000, model)
    report(t0, base, reset)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the long file")
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--modes", default="file,whole,decode,decode-blocks")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="voxtool-audio-memory-") as tmp:
        work = Path(tmp)
        write_signal(work / "warm.wav", 1.0, args.rate, args.channels)
        files = {"2 s": work / "short.wav", f"{args.minutes:g} min": work / "long.wav"}
        write_signal(files["2 s"], 2.0, args.rate, args.channels)
        write_signal(files[f"{args.minutes:g} min"], args.minutes * 60, args.rate, args.channels)
        print(f"{args.rate} Hz, {args.channels} channel(s), 16-bit WAV; peak RSS above the pre-case baseline (MiB)")
        print(f"{'mode':<14} {'file':<10} {'MiB':>8} {'seconds':>8}")
        for mode in args.modes.split(","):
            for label, path in files.items():
                cmd = [sys.executable, __file__, "--child", "--mode", mode, "--file", str(path), "--work", tmp]
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode:
                    print(f"{mode:<14} {label:<10} failed: {res.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(res.stdout.strip().splitlines()[-1])
                print(f"{mode:<14} {label:<10} {r['above_baseline_mb']:>8.1f} {r['seconds']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
