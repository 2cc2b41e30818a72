"""diffvc conversion benchmark: 10 s of speech at 6 and 30 ML steps, split into encoder / decoder / vocoder.

    python benchmarks/diffvc.py                                   # published + tiny sizes, 6 and 30 steps, CPU
    python benchmarks/diffvc.py --sizes diffvc --steps 6 --repeats 3 --seconds 10
    python benchmarks/diffvc.py --device cuda --precision bf16    # an accelerator, when there is one

Each case (size, steps) runs in a fresh subprocess, so ru_maxrss is its own peak (on CUDA also
torch.cuda.max_memory_allocated). The model has random weights (speed does not depend on them): DiffVC at the
`diffvc` (published, 126 M parameters) or `diffvc-tiny` preset's sizes, and a HiFi-GAN V1 22.05 kHz generator
(13.9 M; jik876 UNIVERSAL_V1's layout; weight norm removed). The source is `synth.py` speech of --seconds, the
reference 3 s of another voice. Timed per run, through the real conversion path (`infer.convert_mel`: 512-frame
chunks, cross-faded, batched; `infer.vocode`):
- encoder: the average-voice encoder on the source chunks and the reference (`DiffVC.average_voice`);
- decoder: the whole conversion minus that encoder time (the reverse diffusion: `steps` U-Net evaluations, each
  with the reference block);
- vocoder: HiFi-GAN on the converted mel (500-frame streamed chunks, as `convert diffvc`).
Memory is reported above the baseline after imports, model load and building the inputs. Medians over --repeats
(the published size at 30 steps: --repeats-long, default 1, since one run takes minutes on a CPU).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def case(size: str, steps: int, seconds: float, repeats: int, device: str, precision: str, threads: int) -> dict:
    """Runs inside a fresh subprocess: `repeats` conversions of the same input; per-part medians."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from voxtool.devices import resolve_device
    from voxtool.presets import load_config
    from voxtool.runtime import limit_mmap_threshold
    from voxtool.tasks.diffvc import infer, synth
    from voxtool.tasks.diffvc.config import DiffvcConfig
    from voxtool.tasks.diffvc.vc import DiffVC
    from voxtool.vocoders.hifigan import Generator
    from voxtool.vocoders.loading import Vocoder
    from voxtool.vocoders.settings import HIFIGAN_22K, MEL_22K_JIK876

    limit_mmap_threshold()
    dev = resolve_device(device)
    cfg = load_config(DiffvcConfig, size, task="diffvc")
    torch.manual_seed(0)
    vc = DiffVC(cfg.encoder, cfg.decoder).eval().to(dev.torch)
    generator = Generator(HIFIGAN_22K).eval().remove_weight_norm().to(dev.torch)
    vocoder = Vocoder(generator, MEL_22K_JIK876, dev.torch, "HiFi-GAN V1 (random weights)", precision=precision)
    converter = infer.Converter(vc, vocoder, MEL_22K_JIK876, dev, precision=precision)
    rng = np.random.default_rng(0)
    voices = synth.make_voices(2, seed=0)

    def speech(voice, n_seconds):
        parts, total = [], 0
        while total < n_seconds * synth.SR:
            wav = synth.render(voice, synth.random_content(rng), rng)[0]
            parts.append(wav)
            total += len(wav)
        return np.concatenate(parts)[: int(n_seconds * synth.SR)]

    mel = converter.log_mel(speech(voices[0], seconds))
    ref_mel = converter.log_mel(speech(voices[1], 3.0))
    reference = infer.Reference(ref_mel, np.abs(rng.normal(size=256)).astype(np.float32))
    sync = torch.cuda.synchronize if dev.torch.type == "cuda" else (lambda: None)
    if dev.torch.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = _peak_mb()

    def encoder_pass():
        with torch.inference_mode():
            for s, e in infer.chunk_spans(mel.shape[1], converter.chunk_frames):
                x = torch.from_numpy(mel[None, :, s:e]).to(dev.torch)
                vc.average_voice(x, torch.ones(1, 1, e - s, device=dev.torch))
            x = torch.from_numpy(ref_mel[None]).to(dev.torch)
            vc.average_voice(x, torch.ones(1, 1, x.shape[-1], device=dev.torch))

    times = {"encoder": [], "decoder": [], "vocoder": [], "total": []}
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        encoder_pass()
        sync()
        t1 = time.perf_counter()
        converted = infer.convert_mel(mel, reference, converter, steps=steps, sampler="ml")
        sync()
        t2 = time.perf_counter()
        infer.vocode(converted, converter)
        sync()
        t3 = time.perf_counter()
        times["encoder"].append(t1 - t0)
        times["decoder"].append((t2 - t1) - (t1 - t0))
        times["vocoder"].append(t3 - t2)
        times["total"].append(t3 - t1)
    out = {k: round(statistics.median(v), 3) for k, v in times.items()}
    out.update(size=size, steps=steps, seconds=seconds, repeats=repeats, device=str(dev.torch), precision=precision,
               threads=threads, rtf=round(out["total"] / seconds, 3), peak_mb=round(_peak_mb() - base, 1),
               params_m=round(sum(p.numel() for p in vc.parameters()) / 1e6, 2))
    if dev.torch.type == "cuda":
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["diffvc-tiny", "diffvc"])
    ap.add_argument("--steps", nargs="+", type=int, default=[6, 30])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repeats-long", type=int, default=1, help="repeats of the published size at >= 30 steps")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", nargs=2, metavar=("SIZE", "STEPS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        size, steps = args.one[0], int(args.one[1])
        print(json.dumps(case(size, steps, args.seconds, args.repeats, args.device, args.precision, args.threads)))
        return
    rows = []
    for size in args.sizes:
        for steps in args.steps:
            repeats = args.repeats_long if size == "diffvc" and steps >= 30 else args.repeats
            cmd = [sys.executable, __file__, "--one", size, str(steps), "--seconds", str(args.seconds), "--repeats",
                   str(repeats), "--device", args.device, "--precision", args.precision, "--threads",
                   str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode:
                print(proc.stderr[-2000:], file=sys.stderr)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'size':12} {'steps':>5} {'encoder s':>9} {'decoder s':>9} {'vocoder s':>9} {'total s':>8} {'RTF':>6} "
          f"{'peak MB':>8} {'runs':>4}")
    for r in rows:
        print(f"{r['size']:12} {r['steps']:>5} {r['encoder']:>9} {r['decoder']:>9} {r['vocoder']:>9} {r['total']:>8} "
              f"{r['rtf']:>6} {r['peak_mb']:>8} {r['repeats']:>4}")


if __name__ == "__main__":
    main()
