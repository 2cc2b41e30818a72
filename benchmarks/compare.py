"""voxtool's inference against the original implementations' inference paths, side by side in one process (issue 15).

    python benchmarks/compare.py                                  # mouth, rmvpe and pinyin at 10, 60 and 600 s
    python benchmarks/compare.py --only mouth --seconds 10 60 --runs 5
    python benchmarks/compare.py --mouth-model runs/mouth --rmvpe-model rmvpe.pt   # real weights

The originals' paths are written here from their published formulas (not imported from voxtool's inference code):
- mouth, R^3-MOE `eval.py` (HEAD): 16 kHz audio, reflect pad 352 samples per side, `torch.stft(n_fft 1024, hop 320,
  Hann 1024, center=True, reflect)` magnitude, librosa's Slaney mel basis (80 bins, 0-8 kHz), log(clamp(1e-5)), then
  `BiLSTMCurveEstimator.infer` on the whole file in one forward pass (fp32).
- rmvpe, yxlllc/RMVPE: 16 kHz audio, `torch.stft(n_fft 1024, hop 160, Hann 1024, center=True, reflect)` magnitude,
  librosa's HTK mel basis with Slaney norm (128 bins, 30-8000 Hz), log(clamp(1e-5)); frames padded on the right with
  zeros to a multiple of 32 (`mel2hidden`), E2E0 on the whole file (fp32), cropped, then the local-average decoder:
  argmax, 9 bins around it, cents-weighted mean, f0 = 10 * 2^(cents / 1200), unvoiced below 0.03.
Both run the same network classes in the published key layout with the same weights (random at published size
unless a model file is given: speed does not depend on them), so what differs is everything around the network.

voxtool runs its public `predict(audio, 16000, model)` with its defaults (`--precision auto`: bf16 on a CPU with
native bf16; batched windows) and, for the record, with `--precision 32` and with `--backend onnx`.

Runs alternate (original, then each voxtool variant, repeated --runs times) and report medians: real-time factor
(seconds of compute per second of audio), the ratio to the original's time, peak memory above the process's
resident size before the call (sampled every 2 ms by a thread), and the output difference to the original
(mouth: max |curve difference|; rmvpe: median / 99th percentile / max cents on frames voiced in both, and the
voicing agreement). pinyin has no published inference path to compare with: its real-time factor and memory are
measured the same way for `emissions` (QuartzNet 15x5 at published size) with --precision 32 and bf16.

Threads: --threads (default: one per core) for torch and onnxruntime alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _trim_heap() -> None:
    """Hand freed heap back to the OS (glibc), so one case's peak does not hide in the next one's baseline."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the peaks are then upper bounds of the later cases' own
        pass


def measured(fn):
    """fn() -> (result, seconds, peak RSS above the start in MB), the peak sampled every 2 ms by a thread."""
    _trim_heap()
    start = _rss_mb()
    peak = [start]
    done = threading.Event()

    def watch():
        while not done.wait(0.002):
            peak[0] = max(peak[0], _rss_mb())

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        elapsed = time.perf_counter() - t0
        done.set()
        t.join()
    return out, elapsed, max(peak[0], _rss_mb()) - start


# ------------------------------------------------------------------------------------------ the originals' paths


def _stft_magnitude(torch, audio: np.ndarray, n_fft: int, hop: int, pad: int = 0):
    wav = torch.from_numpy(audio)[None]
    if pad:
        wav = torch.nn.functional.pad(wav[:, None], (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(wav, n_fft, hop, n_fft, torch.hann_window(n_fft), center=True, pad_mode="reflect",
                      return_complex=True)  # fmt: skip
    return spec.abs()  # (1, n_fft // 2 + 1, T)


def original_mouth(net, audio: np.ndarray) -> np.ndarray:
    """R^3-MOE eval.py: (N,) 16 kHz -> (T,) curve in target units, the whole file in one pass."""
    import librosa
    import torch

    basis = torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0,
                                                 htk=False, norm="slaney"))  # fmt: skip
    with torch.no_grad():
        mel = torch.log(torch.clamp(basis @ _stft_magnitude(torch, audio, 1024, 320, pad=352), min=1e-5))
        return net.infer(mel)[0].numpy()


def original_rmvpe(net, audio: np.ndarray, threshold: float = 0.03) -> np.ndarray:
    """yxlllc/RMVPE: (N,) 16 kHz -> (T,) f0 in Hz (0 = unvoiced), the whole file in one pass."""
    import librosa
    import torch

    basis = torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=30.0, fmax=8000.0,
                                                 htk=True, norm="slaney"))  # fmt: skip
    with torch.no_grad():
        mel = torch.log(torch.clamp(basis @ _stft_magnitude(torch, audio, 1024, 160), min=1e-5))
        n = mel.shape[-1]
        mel = torch.nn.functional.pad(mel, (0, 32 * ((n - 1) // 32 + 1) - n), mode="constant")
        salience = net(mel)[0, :n].numpy()
    k = salience.argmax(axis=1)
    idx = np.clip(k[:, None] + np.arange(-4, 5), 0, 359)
    weights = np.take_along_axis(salience, idx, axis=1) * ((k[:, None] + np.arange(-4, 5) >= 0)
                                                           & (k[:, None] + np.arange(-4, 5) <= 359))  # fmt: skip
    cents = 1997.3794084376191 + 20.0 * idx
    avg = (weights * cents).sum(1) / np.maximum(weights.sum(1), 1e-9)
    f0 = 10.0 * 2.0 ** (avg / 1200.0)
    return np.where(salience.max(axis=1) >= threshold, f0, 0.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------- inputs


def mouth_model_file(tmp: Path) -> Path:
    import torch

    from voxtool.tasks.mouth.config import MouthConfig
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator
    from voxtool.training.modelfile import save_model_file

    torch.manual_seed(0)
    config = MouthConfig()
    model = BiLSTMCurveEstimator(config.model, -0.15, 1.0)
    meta = {"value_range": [-0.15, 1.0], "mel": config.mel.model_dump(), "target": "jaw-minus-close", "fps": 50}
    save_model_file(tmp / "mouth.pt", "mouth", config.model_dump(mode="json"), model.state_dict(), meta)
    return tmp / "mouth.pt"


def rmvpe_model_file(tmp: Path) -> Path:
    import torch

    from voxtool.pitch.rmvpe_model import E2E0

    torch.manual_seed(0)
    torch.save({"model": E2E0().state_dict()}, tmp / "rmvpe.pt")  # yxlllc's layout
    return tmp / "rmvpe.pt"


def singing(seconds: float, seed: int = 0) -> np.ndarray:
    """Synthetic sung phrases (the mouth task's singer synthesiser), 16 kHz, `seconds` long."""
    from voxtool.tasks.mouth.synth import make_singers, synth_take

    singer = make_singers(1, seed=seed)[0]
    take = synth_take(singer, min(seconds, 60.0), seed=seed, sr=16000).audio.astype(np.float32)
    reps = int(np.ceil(seconds * 16000 / len(take)))
    return np.tile(take, reps)[: int(seconds * 16000)]


# ------------------------------------------------------------------------------------------------- timing


def alternate(cases: dict, runs: int) -> dict:
    """cases: name -> fn() returning an output; runs every case once per round, `runs` rounds."""
    times = {k: [] for k in cases}
    peaks = {k: [] for k in cases}
    outputs = {}
    for k, fn in cases.items():  # warm-up (first-call allocations, ONNX session, oneDNN kernels)
        outputs[k] = fn()
    for _ in range(runs):
        for k, fn in cases.items():
            outputs[k], t, peak = measured(fn)
            times[k].append(t)
            peaks[k].append(peak)
    return {k: {"median_s": statistics.median(times[k]), "runs_s": times[k], "peak_mb": max(peaks[k]),
                "output": outputs[k]} for k in cases}  # fmt: skip


def cents_difference(ref: np.ndarray, f0: np.ndarray) -> dict:
    """Cents on frames voiced in both, except the last 32: there the original pads its log-mel with zeros (a loud
    frame) up to a multiple of 32 frames and voxtool pads the audio with silence, so the network sees different
    input; those frames are reported apart (`edge_max_cents`)."""
    n = min(len(ref), len(f0))
    ref, f0 = ref[:n], f0[:n]
    both = (ref > 0) & (f0 > 0)
    cents = np.zeros(n)
    cents[both] = np.abs(1200 * np.log2(f0[both] / ref[both]))
    inner, edge = slice(0, max(1, n - 32)), slice(max(1, n - 32), n)
    c = cents[inner][both[inner]] if both[inner].any() else np.zeros(1)
    return {"median_cents": float(np.median(c)), "p99_cents": float(np.percentile(c, 99)),
            "max_cents": float(c.max()), "over_1_cent": float(np.mean(c > 1.0)),
            "voicing_agreement": float(np.mean((ref[inner] > 0) == (f0[inner] > 0))),
            "edge_max_cents": float(cents[edge].max()) if n > 32 else 0.0, "frames": n}  # fmt: skip


def report(task: str, seconds: float, res: dict, diff) -> dict:
    base = res["original"]["median_s"]
    rows = {}
    for k, r in res.items():
        rows[k] = {"rtf": r["median_s"] / seconds, "ratio": r["median_s"] / base, "peak_mb": r["peak_mb"],
                   "median_s": r["median_s"]}  # fmt: skip
        if k != "original":
            rows[k]["difference"] = diff(res["original"]["output"], r["output"])
    for k, r in rows.items():
        d = r.get("difference", "")
        print(f"{task:6s} {seconds:5.0f} s  {k:14s} RTF {r['rtf']:.4f}  ratio {r['ratio']:.3f}  "
              f"peak +{r['peak_mb']:.0f} MB  {d}", flush=True)
    return {"task": task, "seconds": seconds, "variants": rows}


def bench_mouth(seconds_list, runs, model_path, threads) -> list[dict]:
    from voxtool.tasks.mouth.infer import load_model, predict

    variants = {"voxtool": load_model(model_path, precision="auto", threads=threads),
                "voxtool-32": load_model(model_path, precision="32", threads=threads),
                "voxtool-onnx": load_model(model_path, precision="32", backend="onnx", threads=threads)}  # fmt: skip
    net = load_model(model_path, precision="32").model  # the same weights for the original's path
    out = []
    for seconds in seconds_list:
        audio = singing(seconds)
        cases = {"original": lambda a=audio: original_mouth(net, a)}
        for name, m in variants.items():
            cases[name] = lambda m=m, a=audio: predict(a, 16000, m).curve
        res = alternate(cases, runs if seconds < 300 else max(1, runs // 2))
        out.append(report("mouth", seconds, res,
                          lambda a, b: {"max_abs": float(np.max(np.abs(a[: len(b)] - b[: len(a)]))),
                                        "frames": [len(a), len(b)]}))  # fmt: skip
    return out


def bench_rmvpe(seconds_list, runs, model_path, threads) -> list[dict]:
    from voxtool.pitch import rmvpe
    from voxtool.pitch.runtime import load_model

    variants = {"voxtool": load_model(model_path, precision="auto", threads=threads),
                "voxtool-32": load_model(model_path, precision="32", threads=threads),
                "voxtool-onnx": load_model(model_path, precision="32", backend="onnx", threads=threads)}  # fmt: skip
    net = load_model(model_path, precision="32", fold_norms=False).net  # as published: batch norms unfolded
    out = []
    for seconds in seconds_list:
        audio = singing(seconds)
        cases = {"original": lambda a=audio: original_rmvpe(net, a)}
        for name, m in variants.items():
            cases[name] = lambda m=m, a=audio: rmvpe.predict(a, 16000, m, threshold=0.03).f0
        res = alternate(cases, runs if seconds < 300 else max(1, runs // 2))
        out.append(report("rmvpe", seconds, res, cents_difference))
    return out


def bench_pinyin(seconds_list, runs, threads) -> list[dict]:
    import torch

    from voxtool.presets import load_config
    from voxtool.tasks.pinyin.config import PinyinConfig
    from voxtool.tasks.pinyin.infer import emissions, load_model
    from voxtool.tasks.pinyin.model import build_model
    from voxtool.training.modelfile import save_model_file

    tmp = Path(tempfile.mkdtemp(prefix="compare-pinyin-"))
    cfg = load_config(PinyinConfig, "pinyin", [], task="pinyin")
    torch.manual_seed(0)
    save_model_file(tmp / "pinyin.pt", "pinyin", cfg.model_dump(mode="json"), build_model(cfg).state_dict(), {})
    model = load_model(tmp / "pinyin.pt")
    out = []
    for seconds in seconds_list:
        audio = singing(seconds)

        def run(bf16: bool, a=audio):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return emissions(model, a, 16000)

        res = alternate({"original": lambda: run(False), "bf16": lambda: run(True)},
                        runs if seconds < 300 else max(1, runs // 2))  # fmt: skip
        # "original" here is voxtool's own fp32 path: pinyin has no published inference code to compare with
        out.append(report("pinyin", seconds, res,
                          lambda a, b: {"max_abs_logprob": float(np.max(np.abs(a - b))),
                                        "same_argmax": float(np.mean(a.argmax(1) == b.argmax(1)))}))  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["mouth", "rmvpe", "pinyin"], action="append")
    ap.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0, 600.0])
    ap.add_argument("--runs", type=int, default=5, help="rounds (600 s and longer: half as many)")
    ap.add_argument("--threads", type=int, default=0, help="torch and onnxruntime threads (0: one per core)")
    ap.add_argument("--mouth-model", help="a mouth model.pt / run folder / R^3-MOE ema_model_N.pt")
    ap.add_argument("--rmvpe-model", help="an rmvpe model.pt / run folder / published rmvpe.pt")
    ap.add_argument("--json", help="write every figure to this JSON file")
    args = ap.parse_args()
    import torch

    from voxtool.inference_backends import cpu_has_native_bf16, set_threads

    threads = set_threads(args.threads) if args.threads else torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, native bf16: {cpu_has_native_bf16()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="compare-"))
    only = args.only or ["mouth", "rmvpe", "pinyin"]
    results = []
    if "mouth" in only:
        results += bench_mouth(args.seconds, args.runs, args.mouth_model or mouth_model_file(tmp), args.threads)
    if "rmvpe" in only:
        results += bench_rmvpe(args.seconds, args.runs, args.rmvpe_model or rmvpe_model_file(tmp), args.threads)
    if "pinyin" in only:
        results += bench_pinyin(args.seconds, args.runs, args.threads)
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": threads, "native_bf16": cpu_has_native_bf16(),
                                               "results": results}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
