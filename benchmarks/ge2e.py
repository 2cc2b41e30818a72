"""GE2E d-vector speed: voxtool.encoders.ge2e against resemblyzer's VoiceEncoder on the same clips, cold and warm.

    OMP_NUM_THREADS=1 python benchmarks/ge2e.py [--runs 5] [--threads 1]

Both run the whole pipeline on a 22.05 kHz clip (resample to 16 kHz, -30 dBFS, VAD trim, 40-mel frames, DiffVC's
partials of 160 frames every 80, LSTM, mean): resemblyzer as `embed_utterance(preprocess_wav(wav, sr), rate=1.25,
min_coverage=0.75)`, voxtool as `load_ge2e().embed_utterance(wav, sr)`.

- cold: a fresh Python process per run, timed from its first line: importing torch (the same for both, reported
  on its own), importing the encoder package, loading the weights, and the first embedding;
- warm: the median of `--runs` further calls in one process, after one warm-up call.
Clips: 3 s and 30 s of synthetic speech (voxtool.tasks.diffvc.synth). Medians of `--runs` cold processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

COLD = r"""
import time, json, sys
t0 = time.perf_counter()
import torch
torch.set_num_threads({threads})
t1 = time.perf_counter()
import numpy as np, soundfile as sf
wav, sr = sf.read({path!r}, dtype="float32")
t2 = time.perf_counter()
if {which!r} == "voxtool":
    from voxtool.encoders.ge2e import load_ge2e
    t3 = time.perf_counter()
    enc = load_ge2e()
    t4 = time.perf_counter()
    d = enc.embed_utterance(wav, sr)
else:
    from resemblyzer import VoiceEncoder, preprocess_wav
    t3 = time.perf_counter()
    enc = VoiceEncoder(device="cpu", verbose=False)
    t4 = time.perf_counter()
    d = enc.embed_utterance(preprocess_wav(wav, sr), rate=1.25, min_coverage=0.75)
t5 = time.perf_counter()
print(json.dumps({{"torch_import": t1 - t0, "package_import": t3 - t2, "load": t4 - t3, "first_embed": t5 - t4,
                  "after_torch": (t5 - t2), "total": t5 - t0}}))
"""


def write_clips(folder: Path) -> dict[str, Path]:
    import soundfile as sf

    from voxtool.tasks.diffvc import synth

    rng = np.random.default_rng(0)
    voice = synth.make_voices(1)[0]
    out = {}
    for seconds in (3, 30):
        pieces, total = [], 0.0
        while total < seconds:
            wav, _ = synth.render(voice, synth.random_content(rng), rng)
            pieces.append(wav)
            total += len(wav) / synth.SR
        wav = np.concatenate(pieces)[: seconds * synth.SR]
        out[f"{seconds}s"] = folder / f"clip{seconds}.wav"
        sf.write(out[f"{seconds}s"], wav, synth.SR)
    return out


def cold(which: str, path: Path, runs: int, threads: int) -> dict[str, float]:
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    for _ in range(runs):
        r = subprocess.run([sys.executable, "-c", COLD.format(path=str(path), which=which, threads=threads)],
                           capture_output=True, text=True, env=env, check=True)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]}


def warm(path: Path, runs: int) -> dict[str, float]:
    import time

    import soundfile as sf
    from resemblyzer import VoiceEncoder, preprocess_wav

    from voxtool.encoders.ge2e import load_ge2e

    wav, sr = sf.read(path, dtype="float32")
    ours, theirs = load_ge2e(), VoiceEncoder(device="cpu", verbose=False)
    fns = {"voxtool": lambda: ours.embed_utterance(wav, sr),
           "resemblyzer": lambda: theirs.embed_utterance(preprocess_wav(wav, sr), rate=1.25, min_coverage=0.75)}
    out = {}
    for name, fn in fns.items():
        fn()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out[name] = float(np.median(times))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = write_clips(Path(tmp))
        for name, path in clips.items():
            c_ours = cold("voxtool", path, args.runs, args.threads)
            c_theirs = cold("resemblyzer", path, args.runs, args.threads)
            w = warm(path, args.runs)
            report[name] = {"cold_voxtool": c_ours, "cold_resemblyzer": c_theirs, "warm": w,
                            "speedup_cold_after_torch": c_theirs["after_torch"] / c_ours["after_torch"],
                            "speedup_cold_total": c_theirs["total"] / c_ours["total"],
                            "speedup_warm": w["resemblyzer"] / w["voxtool"]}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"GE2E embed_utterance, {args.threads} thread(s), medians of {args.runs} runs (seconds)")
    for name, r in report.items():
        co, ct = r["cold_voxtool"], r["cold_resemblyzer"]
        print(f"{name}: cold total (incl. torch import {co['torch_import']:.2f}/{ct['torch_import']:.2f}) "
              f"voxtool {co['total']:.3f}  resemblyzer {ct['total']:.3f}  x{r['speedup_cold_total']:.1f}")
        print(f"      cold after torch import (package import + weights + first call) voxtool {co['after_torch']:.3f} "
              f"[{co['package_import']:.3f} + {co['load']:.3f} + {co['first_embed']:.3f}]  resemblyzer "
              f"{ct['after_torch']:.3f} [{ct['package_import']:.3f} + {ct['load']:.3f} + {ct['first_embed']:.3f}]  "
              f"x{r['speedup_cold_after_torch']:.1f}")
        print(f"      warm voxtool {r['warm']['voxtool']:.4f}  resemblyzer {r['warm']['resemblyzer']:.4f}  "
              f"x{r['speedup_warm']:.1f}")


if __name__ == "__main__":
    main()
