"""Soft-VC conditioning compared on synthetic singing: `none` vs `pitdyn` vs `explicit` (issue 12).

    OMP_NUM_THREADS=1 python benchmarks/softvc_conditioning.py [--steps 600] [--items 32] [--seeds 0 1]

Data (`synthetic_dataset`): formant-synthesised singing (voxtool.tasks.softvc.synth) with melodies that move by up
to 4 semitones per note over 110-330 Hz, written straight into the prepared-dataset layout of `voxtool prep softvc`
(audio, the bshall mel, f0 and frame RMS, dataset.json with the bin statistics). The f0 of the data is the
synthesiser's exact f0 by default (`--f0 known`: a perfect pitch tracker, and fast) or WORLD harvest as prep
computes it (`--f0 harvest`).
Stand-ins, stated in every printed table:
- content units: the phone identity per 50 Hz frame, one-hot and smoothed over 3 frames (speaker-independent and
  pitch-free by construction: no HuBERT is involved, so `none` has no pitch information at all);
- pitdyn streams: the oracle pitch and dynamics bins (voxtool.tasks.softvc.bins, from the harvest f0 and RMS),
  one-hot. Row `pitdyn@50%` corrupts half of the frames' bins by 1-2 semitones / 1-3 dynamics bins, the accuracy
  hubert-pitdyn's author reported for his HuBERT-pit/dyn.
Each conditioning trains the `softvc-tiny` acoustic model on voice B for the same steps and seed, then converts
held-out utterances of voice A (parallel content and melody) to B. Scores:
- mel L1 of free-running generation against B's parallel rendition (held out; lower is better);
- MCD with DTW to B's parallel rendition (dB, lower);
- f0 of the output (Griffin-Lim audio of the generated mel, WORLD harvest at 20 ms) against the source's f0:
  Pearson r of log-f0 on frames voiced in both and the median |error| in cents there;
- pitch-bin and dynamics-bin accuracy of the output (its harvest f0 / frame RMS binned with the dataset statistics)
  against the source's bins (pitch on frames voiced in the source).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voxtool.tasks.softvc import synth  # noqa: E402
from voxtool.tasks.softvc.bins import PitchDynStats, pitch_to_bins, rms_to_bins  # noqa: E402
from voxtool.tasks.softvc.synthdata import (  # noqa: E402
    PITDYN_DIM,
    corrupt,
    frame_rms,
    generate,
    one_hot,
    synthetic_items,
    train,
    write_dataset,
)

CONDITIONINGS = ("none", "pitdyn", "pitdyn@50%", "explicit")


def oracle_streams(item: dict[str, np.ndarray], stats: PitchDynStats, accuracy: float,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The item with its pitdyn streams rebuilt from its f0 / RMS in the bins of `stats` (the model's dataset), as a
    pitch/dynamics encoder of the given accuracy would give them."""
    pb, db = pitch_to_bins(item["f0"], stats), rms_to_bins(item["rms"], stats)
    if accuracy < 1.0:
        pb = corrupt(pb, accuracy, 2, 1, stats.pitch_bins - 1, rng, keep=pb > 0)
        db = corrupt(db, accuracy, 3, 0, stats.dynamics_bins - 1, rng)
    return {**item, "pitch_units": one_hot(pb, PITDYN_DIM), "dynamics_units": one_hot(db, PITDYN_DIM)}


def evaluate(model_dir: Path, source: Path, target: Path, pitdyn_accuracy: float = 1.0) -> dict[str, float]:
    """Convert the valid items of dataset `source` with the model and score them against the parallel items of
    `target` (and against the source's f0 / bins). Features are built with the model's own dataset statistics."""
    from voxtool.tasks.softvc import metrics
    from voxtool.tasks.softvc.checkpoint import load_acoustic
    from voxtool.tasks.softvc.data import open_dataset, read_item
    from voxtool.tasks.softvc.model import conditioning_features
    from voxtool.vocoders.griffinlim import GriffinLim
    from voxtool.vocoders.settings import MEL_16K_BSHALL

    model, meta = load_acoustic(model_dir)
    stats = PitchDynStats.from_dict(meta.stats)
    gl = GriffinLim(MEL_16K_BSHALL)
    rng = np.random.default_rng(0)
    rows = []
    for rel in open_dataset(source).entries("valid"):
        src, tgt = oracle_streams(read_item(source / rel), stats, pitdyn_accuracy, rng), read_item(target / rel)
        out = generate(model, conditioning_features(src, meta.conditioning, meta.stats))
        audio = gl.invert(out.T)
        out_f0 = metrics.frame_f0(audio)
        agree = metrics.f0_agreement(src["f0"], out_f0)
        src_pb = pitch_to_bins(src["f0"], stats)
        rows.append({"mel_l1": metrics.mel_l1(out, tgt["mel"]), "mcd": metrics.mcd_dtw(tgt["mel"], out),
                     "f0_r": agree.correlation, "cents": agree.median_cents,
                     "pitch_acc": metrics.bin_accuracy(src_pb, pitch_to_bins(out_f0, stats), src_pb > 0),
                     "dyn_acc": metrics.bin_accuracy(rms_to_bins(src["rms"], stats),
                                                     rms_to_bins(frame_rms(audio), stats))})
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def source_vs_target(source: Path, target: Path) -> dict[str, float]:
    """The do-nothing conversion: A's own mels against B's parallel rendition."""
    from voxtool.tasks.softvc import metrics
    from voxtool.tasks.softvc.data import open_dataset, read_item

    rows = [(metrics.mel_l1(read_item(source / r)["mel"], read_item(target / r)["mel"]),
             metrics.mcd_dtw(read_item(target / r)["mel"], read_item(source / r)["mel"]))
            for r in open_dataset(source).entries("valid")]
    return {"mel_l1": float(np.mean([a for a, _ in rows])), "mcd": float(np.mean([b for _, b in rows]))}


def run(steps: int, items: int, seed: int, work: Path, f0: str = "known") -> dict[str, dict[str, float]]:
    voice_a, voice_b = synth.voice(0), synth.voice(1)
    items_a, items_b = synthetic_items(voice_a, items, seed, f0=f0), synthetic_items(voice_b, items, seed, f0=f0)
    src, tgt = write_dataset(work / "A", items_a, seed=seed), write_dataset(work / "B", items_b, seed=seed)
    tgt_noisy = write_dataset(work / "B50", items_b, pitdyn_accuracy=0.5, seed=seed)
    nan = float("nan")  # the f0 and bin columns compare an output with its source: not defined for A itself
    results = {"A unchanged": {**source_vs_target(src, tgt), "f0_r": nan, "cents": nan, "pitch_acc": nan,
                               "dyn_acc": nan}}
    for cond in CONDITIONINGS:
        noisy = cond.endswith("@50%")
        t0 = time.perf_counter()
        run_dir = train(tgt_noisy if noisy else tgt, work / "runs", f"{cond.replace('@50%', '50')}-{seed}",
                        cond.split("@")[0], steps, 1234 + seed)
        results[cond] = {**evaluate(run_dir, src, tgt, 0.5 if noisy else 1.0),
                         "train_s": time.perf_counter() - t0}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--f0", choices=["known", "harvest"], default="known",
                        help="f0 of the data: the synthesiser's exact f0 (fast) or WORLD harvest as prep computes it")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    per_seed = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            per_seed.append(run(args.steps, args.items, seed, Path(tmp) / f"seed{seed}", args.f0))
    cols = ["mel_l1", "mcd", "f0_r", "cents", "pitch_acc", "dyn_acc"]
    print(f"softvc conditioning, synthetic singing A -> B, softvc-tiny, {args.steps} steps, {args.items} items "
          f"({args.items - 4} train / 4 held out), seeds {args.seeds}, data f0 {args.f0}; mean over seeds (min..max)")
    print("units: phone identity (pitch-free); pitdyn: oracle bins one-hot (pitdyn@50%: half the bins off)")
    print(f"| {'conditioning':<12} | " + " | ".join(f"{c:>17}" for c in cols) + " |")
    print("|" + "---|" * (len(cols) + 1))
    for name in per_seed[0]:
        cells = []
        for c in cols:
            vals = np.array([r[name][c] for r in per_seed])
            cells.append(f"{vals.mean():6.3f} ({vals.min():.2f}..{vals.max():.2f})" if not np.isnan(vals).all()
                         else "-")
        print(f"| {name:<12} | " + " | ".join(f"{x:>17}" for x in cells) + " |")


if __name__ == "__main__":
    main()
