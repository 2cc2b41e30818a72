"""Average-voice targets compared: phones (TextGrids) vs k-means units (shared only, or all), tiny models.

    python benchmarks/diffvc_units.py                       # seeds 0 and 1, every target kind, one thread
    python benchmarks/diffvc_units.py --seeds 2 --units kmeans kmeans-all --decoder-steps 400

Per seed: `synth.write_corpus` (4 voices x 5 parallel utterances, spk3 unseen, MFA-style TextGrids), then for each
target kind `prepare` (`phones`: --alignments; `kmeans`: --avg-units kmeans --clusters 12, VTLN, speaker-dominated
units dropped; `kmeans-novtln`: the same with --no-vtln; `kmeans-all`: VTLN but --keep-speaker-units),
diffvc-encoder-tiny (150 steps) and diffvc-tiny (the encoder frozen; lr 2e-3, 32-frame crops) trained in-process,
as tests/diffvc/test_convert.py does (`--targets-only`: prep only). Reported:
- `target_gap`: mean |avg_mel_A - avg_mel_B| / mean |mel_A - mel_B| over parallel utterances of two voices (how
  much speaker the targets themselves keep; 0 = none);
- `unit_phone_nmi`: normalised mutual information between the target units and the TextGrid phones (1 for phones);
- `encoder_gap`: the same ratio for the trained encoder's outputs (the prior mean the decoder starts from);
- `encoder_valid`: the encoder's best held-out masked MSE to its own targets;
- the conversion measures of `eval diffvc` on the seen voices (8 conversions, ML-6, Griffin-Lim): GE2E cosine to
  the target / source voice, mel-cepstral statistics distance to the target / source voice, share closer on both.
Each kind takes about 1.5 minutes on one core. Prints one JSON line per (seed, kind) and a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("phones", "kmeans", "kmeans-novtln", "kmeans-all")
UNSEEN = "spk3"


def _prep(corpus, out: Path, kind: str, seed: int) -> Path:
    from voxtool.tasks.diffvc.prep import PrepOptions, prepare

    kw = ({"alignments": corpus.root.parent / "textgrids"} if kind == "phones" else
          {"avg_units": "kmeans", "clusters": 12, "shared_units": kind != "kmeans-all",
           "vtln": kind != "kmeans-novtln"})
    prepare(corpus.root, out, PrepOptions(unseen=[UNSEEN], valid_fraction=0.2, seed=seed, **kw))
    return out


def _gap(corpus, dataset: Path, transform=None) -> float:
    """mean |f(A) - f(B)| / mean |mel_A - mel_B| over parallel utterances of two different seen voices, where f is
    the stored avg_mel (transform None) or transform(mel)."""
    import numpy as np

    by = {(u.speaker, u.content_id): u for u in corpus.utterances}
    speakers = [v.name for v in corpus.voices if v.name != UNSEEN]
    num, den = [], []
    for cid in range(len(corpus.contents)):
        for a, b in itertools.combinations(speakers, 2):
            za = np.load(dataset / "items" / a / f"{by[a, cid].wav.stem}.npz")
            zb = np.load(dataset / "items" / b / f"{by[b, cid].wav.stem}.npz")
            fa, fb = (za["avg_mel"], zb["avg_mel"]) if transform is None else (transform(za["mel"]),
                                                                                transform(zb["mel"]))
            num.append(np.abs(fa - fb).mean())
            den.append(np.abs(za["mel"] - zb["mel"]).mean())
    return float(np.mean(num) / np.mean(den))


def _unit_phone_nmi(corpus, dataset: Path) -> float:
    """Normalised mutual information between the frames' target units (one distinct avg_mel column per unit) and
    the TextGrid phones: 1 when units and phones are the same partition of the frames."""
    import numpy as np
    from sklearn.metrics import normalized_mutual_info_score

    from voxtool.tasks.diffvc import avg_voice

    mel = json.loads((dataset / "dataset.json").read_text())["mel"]
    units, phones = [], []
    for u in corpus.utterances:
        avg = np.load(dataset / "items" / u.speaker / f"{u.wav.stem}.npz")["avg_mel"]
        label = np.full(avg.shape[1], "?", dtype=object)
        for a, b, phone in avg_voice.interval_frames(avg_voice.read_phone_intervals(u.textgrid), avg.shape[1],
                                                     mel["sample_rate"], mel["hop_length"]):
            label[a:b] = phone
        units += [hash(avg[:, i].tobytes()) for i in range(avg.shape[1])]
        phones += list(label)
    return float(normalized_mutual_info_score(phones, units))


def _targets(corpus, data: Path, kind: str, seed: int) -> dict:
    meta = json.loads((data / "dataset.json").read_text())
    km = meta.get("kmeans") or {}
    return {"seed": seed, "kind": kind, "target_gap": _gap(corpus, data),
            "unit_phone_nmi": _unit_phone_nmi(corpus, data),
            "dropped": len(km.get("dropped") or {}), "vtln": km.get("vtln")}


def run_kind(corpus, base: Path, kind: str, seed: int, enc_steps: int, dec_steps: int, sampler_steps: int,
             targets_only: bool = False) -> dict:
    import torch

    from voxtool.options import TrainOptions
    from voxtool.tasks.diffvc import infer
    from voxtool.tasks.diffvc.config import DiffvcConfig, DiffvcEncoderConfig
    from voxtool.tasks.diffvc.train import DiffvcEncoderTask, DiffvcTask
    from voxtool.training.run import train_from_options

    t0 = time.perf_counter()
    data = _prep(corpus, base / f"data_{kind}", kind, seed)
    targets = _targets(corpus, data, kind, seed)
    if targets_only:
        return {**targets, "seconds": time.perf_counter() - t0}
    runs = base / f"runs_{kind}"
    enc = train_from_options(DiffvcEncoderTask, DiffvcEncoderConfig, data, TrainOptions(
        exp="enc", runs_dir=runs, preset="diffvc-encoder-tiny", steps=enc_steps, seed=1234 + seed, quiet=True,
        set=["train.valid_every=100000"]), "diffvc-encoder-tiny")
    train_from_options(DiffvcTask, DiffvcConfig, data, TrainOptions(
        exp="dec", runs_dir=runs, preset="diffvc-tiny", steps=dec_steps, seed=1234 + seed, quiet=True,
        set=["train.lr=2e-3", "data.crop_frames=32", "train.valid_every=100000"]), "diffvc-tiny",
        overrides=[f'encoder_init="{(runs / "enc").as_posix()}"'])
    converter = infer.load_model(runs / "dec", "griffinlim")

    def encode(mel):
        x = torch.from_numpy(mel)[None]
        return converter.vc.average_voice(x, torch.ones(1, 1, x.shape[-1]))[0].numpy()

    metrics = infer.evaluate_dataset(converter, data, "train", limit=8, steps=sampler_steps).metrics
    return {**targets, "encoder_gap": _gap(corpus, data, encode),
            "encoder_valid": enc["best"]["value"], **metrics, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--units", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--encoder-steps", type=int, default=150)
    p.add_argument("--decoder-steps", type=int, default=400)
    p.add_argument("--sampler-steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--targets-only", action="store_true", help="prep only: the targets' speaker gap, no training")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    from voxtool.tasks.diffvc import synth

    torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            corpus = synth.write_corpus(base / "corpus", 4, 5, 11 + seed, textgrids=base / "textgrids")
            for kind in args.units:
                row = run_kind(corpus, base, kind, seed, args.encoder_steps, args.decoder_steps, args.sampler_steps,
                               args.targets_only)
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
                      flush=True)
                rows.append(row)
    if args.targets_only:
        return 0
    print("\n| seed | targets | target gap | encoder gap | encoder valid MSE | GE2E target / source "
          "| cepstral target / source | closer on both |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['kind']} | {r['target_gap']:.3f} | {r['encoder_gap']:.3f} | "
              f"{r['encoder_valid']:.3f} | {r['target_cos']:.3f} / {r['source_cos']:.3f} | "
              f"{r['cep_target']:.2f} / {r['cep_source']:.2f} | {r['target_wins']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
