"""Does semi-supervised training help? Supervised-only vs Mean Teacher on a synthetic few-singer setup.

    python benchmarks/mouth_ssl.py [--steps 600] [--seeds 0 1 2]

Setup (voxtool.tasks.mouth.synth): labeled takes come from 2 singers only; unlabeled audio from 12 other singers;
the `unseen` split holds 2 further singers. For each seed both runs start from the same weights and see the same
labeled batches:

- `supervised`: `mouth-ssl-tiny` with `ssl.consistency_weight = 0` — R-Drop + the EMA model, i.e. exactly the SSL
  recipe without the unlabeled consistency term (the cleanest ablation);
- `ssl`: `mouth-ssl-tiny` as shipped (consistency on unlabeled crops, ramped up);
- `plain`: `mouth-tiny` with Huber (the supervised default) for reference.

Reported: unseen-singer Pearson r of the deployable model (the EMA/teacher) at the last step and the best over
validations, per seed and as medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def build_data(root: Path, take_seconds: float) -> tuple[Path, Path]:
    import soundfile as sf

    from voxtool.tasks.mouth.data import prepare_lipsync
    from voxtool.tasks.mouth.synth import TRAIN_SINGERS, UNSEEN_SINGER, make_corpus, make_singers, synth_take
    from voxtool.tasks.mouth.unlabeled import prepare_unlabeled

    labeled_singers = [TRAIN_SINGERS[1], TRAIN_SINGERS[3]]  # baritone and alto only
    unseen_singers = [UNSEEN_SINGER, TRAIN_SINGERS[4]]  # mezzo and soprano: never labeled, never unlabeled
    make_corpus(root / "takes", labeled_singers, takes_per_singer=4, duration=take_seconds, seed=11)
    make_corpus(root / "takes", unseen_singers, takes_per_singer=2, duration=take_seconds, seed=12)
    (root / "unseen.txt").write_text("mezzo/\nsoprano/\n")
    prepare_lipsync(root / "takes", root / "data", unseen_list=root / "unseen.txt")
    (root / "vocals").mkdir()
    for i, singer in enumerate(make_singers(12, seed=99)):
        for j in range(2):
            take = synth_take(singer, take_seconds, seed=5000 + 10 * i + j)
            sf.write(root / "vocals" / f"{singer.name}_{j}.wav", take.audio, take.sr)
    prepare_unlabeled(root / "vocals", root / "unlabeled", like=root / "data")
    return root / "data", root / "unlabeled"


def run(kind: str, data: Path, unlabeled: Path, runs: Path, steps: int, seed: int, ssl_set: list[str]) -> dict:
    from voxtool.options import TrainOptions
    from voxtool.tasks.mouth.config import MouthConfig, MouthSSLConfig
    from voxtool.tasks.mouth.ssl import MouthSSLTask, unlabeled_override
    from voxtool.tasks.mouth.train import MouthTrainTask
    from voxtool.training.run import train_from_options

    exp = f"{kind}-{seed}"
    valid_every = max(1, steps // 6)
    sets = [f"train.valid_every={valid_every}", f"train.seed={seed}"]
    t = time.perf_counter()
    if kind == "plain":
        opts = TrainOptions(exp=exp, runs_dir=runs, preset="mouth-tiny", device="cpu", steps=steps, quiet=True,
                            set=sets)  # fmt: skip
        train_from_options(MouthTrainTask, MouthConfig, data, opts, default_preset="mouth-tiny")
    else:
        extra = ["ssl.consistency_weight=0"] if kind == "supervised" else list(ssl_set)
        opts = TrainOptions(exp=exp, runs_dir=runs, preset="mouth-ssl-tiny", device="cpu", steps=steps, quiet=True,
                            set=sets + extra)  # fmt: skip
        train_from_options(MouthSSLTask, MouthSSLConfig, data, opts, default_preset="mouth-ssl-tiny",
                           overrides=[unlabeled_override(unlabeled)])  # fmt: skip
    seconds = time.perf_counter() - t
    logged = [json.loads(line) for line in (runs / exp / "metrics.jsonl").read_text().splitlines()]
    unseen = [m["unseen/pearson"] for m in logged if "unseen/pearson" in m]
    return {"kind": kind, "seed": seed, "final": unseen[-1], "best": max(unseen), "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--take-seconds", type=float, default=10.0)
    ap.add_argument("--kinds", nargs="+", default=["supervised", "ssl", "plain"])
    ap.add_argument(
        "--ssl-set", action="append", default=[], help="extra override for the ssl run, e.g. ssl.consistency_weight=1.0"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    from voxtool import console

    console.set_quiet(True)
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    tmp = Path(tempfile.mkdtemp(prefix="mouth-bench-ssl-"))
    try:
        data, unlabeled = build_data(tmp, args.take_seconds)
        results = []
        for seed in args.seeds:
            for kind in args.kinds:
                r = run(kind, data, unlabeled, tmp / "runs", args.steps, seed, args.ssl_set)
                results.append(r)
                if not args.json:
                    print(f"seed {seed} {kind:10s} unseen Pearson final {r['final']:.4f} best {r['best']:.4f} "
                          f"({r['seconds']:.0f} s)", flush=True)  # fmt: skip
        summary = {}
        for kind in args.kinds:
            rs = [r for r in results if r["kind"] == kind]
            summary[kind] = {"final_median": statistics.median(r["final"] for r in rs),
                             "best_median": statistics.median(r["best"] for r in rs)}  # fmt: skip
        if args.json:
            print(json.dumps({"steps": args.steps, "results": results, "summary": summary}, indent=1))
        else:
            for kind, s in summary.items():
                print(f"{kind:10s} median unseen Pearson: final {s['final_median']:.4f} best {s['best_median']:.4f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
