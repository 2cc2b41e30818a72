"""Per-singer gain (`model.speaker_gain`) and noise-block augmentation (`data.noise_block_p`): do they help on
singers the model never heard?  `python benchmarks/mouth_gain.py [--seeds 0 1 2] [--out DIR]`

Synthetic LipsSync takes (voxtool.tasks.mouth.synth) in which every singer's face has its own jaw scale: the
captured jawOpen/mouthClose are the true ones times `label_scale` (0.6-1.4 across the five training singers), a
factor the sound does not reveal, so without a gain it is label noise. Two further singers (scales 0.85 and 1.15)
form the `unseen` split. Each run trains `mouth-tiny` (400 steps, one torch thread) with one validation at the
end (so model.pt is the last weights, not a checkpoint chosen on the unseen split), then scores the unseen split
without any gain: Pearson r and MAE (target units) against the unseen singers' own captured labels.

Rows: baseline (`mouth-tiny` without the gain, as before it was on in the presets), speaker gain on (scored as the original infers: no gain; and with `--average-gain`,
the training singers' mean gain), noise blocks on (p 0.2, the original's). Training seeds vary; the corpus is the
same for every run. With `--out DIR`, runs already in DIR are scored again without retraining. Prints a Markdown
table (per seed, median, mean) for docs/mouth.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

TRAIN_SCALES = (0.6, 1.4, 0.8, 1.2, 1.0)  # bass, baritone, tenor, alto, soprano
UNSEEN_SCALES = (0.85, 1.15)
RUNS = {  # run-folder prefix: (table label, --set overrides)
    "base": ("baseline (mouth-tiny, model.speaker_gain=false)", ["model.speaker_gain=false"]),
    "gain": ("speaker gain (model.speaker_gain=true), inferred without gain", ["model.speaker_gain=true"]),
    "gain+avg": ("speaker gain, inferred with --average-gain", ["model.speaker_gain=true"]),
    "noise": ("noise blocks (data.noise_block_p=0.2)", ["model.speaker_gain=false", "data.noise_block_p=0.2"]),
}


def make_data(root: Path) -> Path:
    from dataclasses import replace

    from voxtool.tasks.mouth.data import prepare_lipsync
    from voxtool.tasks.mouth.synth import TRAIN_SINGERS, UNSEEN_SINGER, Singer, make_corpus

    src = root / "src"
    train = [replace(s, label_scale=k) for s, k in zip(TRAIN_SINGERS, TRAIN_SCALES)]
    unseen = [replace(UNSEEN_SINGER, label_scale=UNSEEN_SCALES[0]),
              Singer("contralto", 165.0, 1.0, -10.0, 0.3, UNSEEN_SCALES[1])]  # fmt: skip
    make_corpus(src, train, takes_per_singer=3, duration=10.0, seed=11)
    make_corpus(src, unseen, takes_per_singer=2, duration=10.0, seed=12)
    (src / "valid.txt").write_text("tenor/take_2/audio.wav\n", encoding="utf-8")
    (root / "unseen.txt").write_text("mezzo/\ncontralto/\n", encoding="utf-8")
    data = root / "data"
    prepare_lipsync(src, data, unseen_list=root / "unseen.txt")
    return data


def train_and_score(data: Path, runs: Path, name: str, overrides: list[str], seed: int,
                    average_gain: bool = False) -> dict[str, float]:  # fmt: skip
    from voxtool.cli import main
    from voxtool.tasks.mouth.evaluate import evaluate_dataset
    from voxtool.tasks.mouth.infer import load_model

    args = ["train", "mouth", str(data), "--preset", "mouth-tiny", "--exp", name, "--runs-dir", str(runs),
            "--device", "cpu", "--seed", str(seed), "--quiet", "--set", "train.valid_every=400"]  # fmt: skip
    for o in overrides:
        args += ["--set", o]
    t0 = time.perf_counter()
    if not (runs / name / "model.pt").is_file() and main(args) != 0:
        raise SystemExit(f"training {name} failed")
    model = load_model(runs / name)
    if average_gain:
        model.use_average_gain()
    metrics = evaluate_dataset(model, data, "unseen").metrics
    return {"pearson": metrics["pearson"], "mae": metrics["mae"], "seconds": time.perf_counter() - t0}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None, help="keep the corpus and runs here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = args.out or Path(tempfile.mkdtemp(prefix="mouth_gain_"))
    data = root / "data" if (root / "data" / "dataset.json").is_file() else make_data(root)
    results: dict[str, list[dict[str, float]]] = {}
    for key, (label, overrides) in RUNS.items():
        for seed in args.seeds:
            run = f"{key.split('+')[0]}_{seed}"  # gain+avg scores the gain runs again
            r = train_and_score(data, root / "runs", run, overrides, seed, average_gain=key.endswith("+avg"))
            results.setdefault(label, []).append(r)
            print(json.dumps({"run": label, "seed": seed, **{k: round(v, 4) for k, v in r.items()}}), flush=True)
    seeds = " | ".join(f"seed {s}" for s in args.seeds)
    print(f"\n| run | unseen Pearson r ({seeds}) | median r | mean r | unseen MAE ({seeds}) | median MAE | mean MAE |")
    print("|---|---|---|---|---|---|---|")
    for label, rows in results.items():
        rs, maes = [r["pearson"] for r in rows], [r["mae"] for r in rows]
        print(f"| {label} | {' / '.join(f'{v:.3f}' for v in rs)} | {statistics.median(rs):.3f} | "
              f"{statistics.mean(rs):.3f} | {' / '.join(f'{v:.4f}' for v in maes)} | {statistics.median(maes):.4f} | "
              f"{statistics.mean(maes):.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
