"""pinyin task benchmarks (CPU unless --device says otherwise).

    python benchmarks/pinyin.py                    # everything
    python benchmarks/pinyin.py --only rtf         # rtf | train | blank | memory

- rtf: real-time factor (processing seconds per audio second) on 10 s of synthetic speech; median of runs.
  The network is timed for `pinyin` (15x5) and `pinyin-5x5` (random weights: its speed does not depend on them);
  decoding (greedy, prefix beam 8) is timed on the posteriors of a pinyin-tiny model trained in this process
  (peaky, like any trained CTC model) and, as a worst case, on the random models' flat posteriors.
  rtf_greedy / rtf_beam8 = network + decoder; the trained tiny model is also timed through `predict` (what
  `transcribe pinyin` runs per file) as a whole: network + decoding + forced alignment into segments. Ratios:
  beam 8 / greedy, 5x5 / 15x5.
- train: optimiser steps/s for pinyin-tiny (batch 16 x ~2 s), pinyin-5x5 and pinyin (batch 4 x 4 s); ratios vs
  tiny.
- blank: pinyin-tiny trained on the synthetic tonal language (same data, seed and steps) with the blank loss off
  and on: held-out syllable/token error rate, share of blank frames, and the forced-alignment boundary errors
  (syllable starts/ends, and the initial->final phone boundary) against the known boundaries, for both boundary
  modes (posterior re-segmentation, default; plain CTC spans).
- memory (only with --only memory: minutes): peak RSS growth and time of one `emissions()` call of `pinyin` (15x5,
  random weights, --precision, default auto) on 60 s and 600 s of noise, the whole file in one piece
  (chunk_seconds=0) and in the default overlapping windows; each case in a fresh process (ru_maxrss is a
  high-water mark). Ratio chunked / whole time per duration.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _loaded_model(preset: str, device: str):
    from voxtool.audio.mel import LogMel
    from voxtool.presets import load_config
    from voxtool.tasks.pinyin.config import PinyinConfig
    from voxtool.tasks.pinyin.infer import LoadedModel
    from voxtool.tasks.pinyin.model import build_model
    from voxtool.tasks.pinyin.tokens import Vocab

    cfg = load_config(PinyinConfig, preset, [], task="pinyin")
    torch.manual_seed(0)
    model = build_model(cfg).to(device).eval()
    return LoadedModel(model, Vocab(), cfg, torch.device(device), LogMel(cfg.features.mel).to(device))


def bench_rtf(runs: int, device: str, trained: Path | None) -> dict:
    """Network and decoder real-time factors, measured apart (decoding cost depends only on the posteriors)."""
    from voxtool.tasks.pinyin import synth
    from voxtool.tasks.pinyin.decode import greedy_decode, prefix_beam_search
    from voxtool.tasks.pinyin.infer import emissions, load_model, predict

    rng = np.random.default_rng(0)
    pieces = []
    while sum(p.size for p in pieces) < 10 * synth.SR:
        pieces.append(synth.make_utterance(rng, 4, 6)[0])
    audio = np.concatenate(pieces)[: 10 * synth.SR]
    seconds = audio.size / synth.SR
    out: dict = {"audio_seconds": seconds}

    def decoders(lp: np.ndarray) -> dict:
        g = _median_time(lambda: greedy_decode(lp), runs) / seconds
        b = _median_time(lambda: prefix_beam_search(lp, 8), runs) / seconds
        return {"rtf_greedy_decode": g, "rtf_beam8_decode": b}

    peaky = None
    if trained is not None:
        model = load_model(trained, device)
        peaky = emissions(model, audio, synth.SR)
        row = {"rtf_network": _median_time(lambda: emissions(model, audio, synth.SR), runs) / seconds,
               **decoders(peaky)}
        for beam in (1, 8):  # the whole command path: network + decoding + forced alignment into segments
            row[f"rtf_transcribe_beam{beam}"] = _median_time(lambda b=beam: predict(model, audio, synth.SR, beam=b),
                                                             runs) / seconds
        out["pinyin-tiny (trained)"] = row
    for preset in ("pinyin", "pinyin-5x5"):
        model = _loaded_model(preset, device)
        emissions(model, audio, synth.SR)  # warm-up
        row = {"rtf_network": _median_time(lambda m=model: emissions(m, audio, synth.SR), runs) / seconds}
        flat = emissions(model, audio, synth.SR)
        row["flat_posteriors"] = decoders(flat)  # random weights: worst case for the beam
        if peaky is not None:  # a trained model's posteriors: what decoding really costs
            dec = out["pinyin-tiny (trained)"]
            row["rtf_greedy"] = row["rtf_network"] + dec["rtf_greedy_decode"]
            row["rtf_beam8"] = row["rtf_network"] + dec["rtf_beam8_decode"]
            row["beam8_over_greedy"] = row["rtf_beam8"] / row["rtf_greedy"]
        out[preset] = row
    out["5x5_over_15x5_network"] = out["pinyin-5x5"]["rtf_network"] / out["pinyin"]["rtf_network"]
    return out


def _train_step(model, opt, feats, lens, targets, tlens, device: str) -> None:
    from voxtool.tasks.pinyin.losses import ctc_loss

    lp, ol = model(feats, lens)
    loss = ctc_loss(lp, ol, targets, tlens)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_train(runs: int, device: str) -> dict:
    from voxtool.presets import load_config
    from voxtool.tasks.pinyin.config import PinyinConfig
    from voxtool.tasks.pinyin.losses import NovoGrad
    from voxtool.tasks.pinyin.model import build_model

    out = {}
    for preset, batch, frames in (("pinyin-tiny", 16, 200), ("pinyin-5x5", 4, 400), ("pinyin", 4, 400)):
        cfg = load_config(PinyinConfig, preset, [], task="pinyin")
        torch.manual_seed(0)
        model = build_model(cfg).to(device).train()
        opt = NovoGrad(model.parameters(), lr=0.01)
        feats = torch.randn(batch, 64, frames, device=device)
        lens = torch.full((batch,), frames, device=device)
        targets = torch.randint(2, 200, (batch, frames // 8), device=device)
        tlens = torch.full((batch,), frames // 8, device=device)
        step = functools.partial(_train_step, model, opt, feats, lens, targets, tlens, device)
        step()
        dt = _median_time(step, runs)
        out[preset] = {"batch": batch, "frames": frames, "steps_per_s": 1 / dt}
    for p in ("pinyin-5x5", "pinyin"):
        out[p]["vs_tiny"] = out[p]["steps_per_s"] / out["pinyin-tiny"]["steps_per_s"]
    return out


def bench_blank(steps: int, device: str, keep: Path | None) -> dict:
    from voxtool.options import TrainOptions
    from voxtool.presets import load_config
    from voxtool.tasks.pinyin import synth
    from voxtool.tasks.pinyin.config import PinyinConfig
    from voxtool.tasks.pinyin.infer import align, evaluate_dataset, load_model
    from voxtool.tasks.pinyin.prep import prepare
    from voxtool.tasks.pinyin.train import PinyinTrainTask
    from voxtool.training.run import train_from_options

    tmp = Path(tempfile.mkdtemp(prefix="pinyin-bench-"))
    out = {"steps": steps}
    try:
        synth.write_corpus(tmp / "corpus", 320, seed=0, speakers=10)
        cfg = load_config(PinyinConfig, "pinyin-tiny", [], task="pinyin")
        prepare("tsv", [tmp / "corpus" / "corpus.tsv"], tmp / "ds", feat=cfg.features, text_cfg=cfg.text,
                valid_frac=0.1, test_frac=0.1)
        for label, weight in (("off", 0.0), ("on", 0.5)):
            opts = TrainOptions(exp=label, runs_dir=tmp / "runs", preset="pinyin-tiny", device=device, steps=steps,
                                quiet=True, set=[f"blank_loss.weight={weight}", f"train.valid_every={steps}"])
            t = time.perf_counter()
            train_from_options(PinyinTrainTask, PinyinConfig, tmp / "ds", opts, default_preset="pinyin-tiny")
            train_s = time.perf_counter() - t
            model = load_model(tmp / "runs" / label, device)
            m = evaluate_dataset(model, tmp / "ds", "test", device=device).metrics
            row = {"weight": weight, "test_ser": m["ser"], "test_ter": m["ter"], "blank_share": m["blank_share"],
                   "train_seconds": train_s}
            for mode in ("posterior", "ctc"):
                rng = np.random.default_rng(99)
                err, phone = [], []
                for _ in range(30):
                    wav, segs = synth.make_utterance(rng)
                    tr = align(model, wav, synth.SR, " ".join(s.pinyin for s in segs), boundaries=mode)
                    for truth, got in zip(segs, tr.segments, strict=True):
                        err += [abs(got.start - truth.start), abs(got.end - truth.end)]
                        if len(got.phones) == 2:
                            phone.append(abs(got.phones[1].start - truth.final_start))
                row[f"{mode}_median_boundary_error_ms"] = 1000 * float(np.median(err))
                row[f"{mode}_p90_boundary_error_ms"] = 1000 * float(np.percentile(err, 90))
                row[f"{mode}_median_initial_final_error_ms"] = 1000 * float(np.median(phone))
            out[label] = row
        if keep is not None:
            shutil.copytree(tmp / "runs" / "on", keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _memory_case(spec: dict, device: str) -> dict:
    """One `emissions()` call in this process: peak RSS growth over what loading the model reached, and its time."""
    import resource

    from voxtool.inference_backends import resolve_precision
    from voxtool.tasks.pinyin.infer import emissions

    model = _loaded_model(spec["preset"], device)
    model.precision = resolve_precision(spec["precision"], model.device)
    sr = model.sample_rate
    audio = (0.1 * np.random.default_rng(0).standard_normal(int(spec["seconds"] * sr))).astype(np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    lp = emissions(model, audio, sr, chunk_seconds=spec["chunk_seconds"])
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"peak_rss_mb": peak / 1024, "growth_mb": (peak - before) / 1024, "seconds": seconds,
            "precision": model.precision, "frames": lp.shape[0]}


def bench_memory(device: str, threads: int, precision: str) -> dict:
    out: dict = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for seconds in (60, 600):
        for label, chunk in (("whole", 0.0), ("chunked", None)):
            spec = {"preset": "pinyin", "seconds": seconds, "chunk_seconds": chunk, "precision": precision}
            cmd = [sys.executable, __file__, "--memory-case", json.dumps(spec), "--device", device,
                   "--threads", str(threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            out[f"{seconds}s_{label}"] = json.loads(done.stdout.strip().splitlines()[-1])
        out[f"{seconds}s_chunked_over_whole_time"] = (out[f"{seconds}s_chunked"]["seconds"]
                                                      / out[f"{seconds}s_whole"]["seconds"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["rtf", "train", "blank", "memory"], action="append")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--blank-steps", type=int, default=260)
    ap.add_argument("--precision", default="auto", help="of the network in the memory benchmark")
    ap.add_argument("--memory-case", help=argparse.SUPPRESS)  # one case of bench_memory, in a fresh process
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_case:
        print(json.dumps(_memory_case(json.loads(args.memory_case), args.device)))
        return
    only = set(args.only or ["blank", "rtf", "train"])
    results: dict = {"device": args.device, "threads": args.threads}
    trained = None
    keep = Path(tempfile.mkdtemp(prefix="pinyin-bench-model-")) if "blank" in only and "rtf" in only else None
    if "blank" in only:
        results["blank"] = bench_blank(args.blank_steps, args.device, keep)
        trained = keep
    if "rtf" in only:
        results["rtf"] = bench_rtf(args.runs, args.device, trained)
    if "train" in only:
        results["train"] = bench_train(args.runs, args.device)
    if "memory" in only:
        results["memory"] = bench_memory(args.device, args.threads, args.precision)
    if keep is not None:
        shutil.rmtree(keep, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
