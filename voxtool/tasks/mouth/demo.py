"""`voxtool demo` (the mouth plugin's `demo=`): the whole mouth-opening path on synthetic singing, in about two
minutes on a 2-core CPU.

1. Synthesise a small LipsSync-format dataset (`audio.wav` + `mouth_data.csv` per take) in which the mouth
   opening drives the sound: a source-filter voice whose first formant follows the jaw, five "singers" differing
   in pitch range and formant scale (voxtool.tasks.mouth.synth).
2. `prep lipsync` it (one more singer as the `unseen` split for model selection).
3. Train `mouth-tiny`.
4. Infer on a held-out take of a singer that is in no split at all (44.1 kHz, as a phone would record it),
   print Pearson r against the true opening and against a loudness-envelope baseline, write `curve.csv` and a
   PNG (mel spectrogram, model curve, truth and the rescaled baseline).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path


def main(out: Path = Path("demo-out"), quiet: bool = False) -> int:
    """Run the demo into `out`; returns 0 when the model beats the loudness baseline clearly, else 1."""
    import numpy as np

    from voxtool import console
    from voxtool.audio.io import load_audio
    from voxtool.options import TrainOptions
    from voxtool.tasks.mouth.config import MouthConfig
    from voxtool.tasks.mouth.data import prepare_lipsync
    from voxtool.tasks.mouth.infer import curve_on_grid, load_model, plot_curve, predict, write_curve
    from voxtool.tasks.mouth.synth import (
        TRAIN_SINGERS,
        UNSEEN_SINGER,
        Singer,
        loudness_db,
        make_corpus,
        pearson,
        synth_take,
        write_take,
    )
    from voxtool.tasks.mouth.train import MouthTrainTask
    from voxtool.training.run import train_from_options

    console.set_quiet(quiet)
    out = Path(out)
    t_start = time.perf_counter()
    takes_dir, data_dir, runs_dir = out / "takes", out / "data", out / "runs"

    # 1. synthetic LipsSync sessions: <singer>/<take>/{audio.wav, mouth_data.csv}
    selection_singer = Singer("contralto", 165.0, 1.0, -10.0, 0.3)  # the `unseen` split, for model selection
    if not (takes_dir / "valid.txt").is_file():
        console.log(f"synthesising LipsSync takes into {takes_dir}")
        make_corpus(takes_dir, TRAIN_SINGERS, takes_per_singer=3, duration=12.0, seed=1)
        make_corpus(takes_dir, [selection_singer], takes_per_singer=2, duration=12.0, seed=2)
        (takes_dir / "unseen.txt").write_text("contralto/\n", encoding="utf-8")
        (takes_dir / "valid.txt").write_text("tenor/take_2/audio.wav\nalto/take_2/audio.wav\n", encoding="utf-8")
    heldout_take = synth_take(UNSEEN_SINGER, 20.0, seed=4242)
    heldout_wav = write_take(out / "heldout" / UNSEEN_SINGER.name, heldout_take, seed=4242, file_sr=44100)

    # 2. prep
    summary = prepare_lipsync(takes_dir, data_dir, unseen_list=takes_dir / "unseen.txt", log=console.log)
    console.log(f"prepared {summary.takes} takes ({summary.seconds / 60:.1f} min, {summary.speakers} singers): "
                f"{summary.splits}")  # fmt: skip

    # 3. train mouth-tiny (the demo's own run folder is replaced on every run)
    run_dir = runs_dir / "demo"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t_train = time.perf_counter()
    import torch

    torch.set_num_threads(1)  # a model this small trains several times faster on one thread than on two
    opts = TrainOptions(exp="demo", runs_dir=runs_dir, preset="mouth-tiny", device="cpu", quiet=quiet)
    train_from_options(MouthTrainTask, MouthConfig, data_dir, opts, default_preset="mouth-tiny")
    train_seconds = time.perf_counter() - t_train

    # 4. infer on the held-out take of a singer the model never heard
    model = load_model(run_dir)
    audio = load_audio(heldout_wav, sr=16000)
    prediction = predict(audio, 16000, model)
    times, curve, fps = curve_on_grid(prediction, native_fps=model.fps)
    truth = np.interp(times, heldout_take.curve_t, heldout_take.opening)
    loudness = loudness_db(audio, 16000, times)
    r_model, r_loud = pearson(curve, truth), pearson(loudness, truth)
    slope, intercept = np.polyfit(loudness, truth, 1)  # the baseline at its best affine fit, for the plot
    write_curve(out / "curve.csv", times, curve, fps, "csv")
    plot_curve(
        out / "curve.png", prediction, times, curve, title=f"unseen singer '{UNSEEN_SINGER.name}' (held out)",
        overlays={"truth": truth, "loudness baseline (fitted)": slope * loudness + intercept},
    )  # fmt: skip

    beats = r_model > r_loud + 0.1
    lines = [
        f"held-out take: {heldout_wav} ({len(audio) / 16000:.0f} s, singer '{UNSEEN_SINGER.name}' not in training)",
        f"Pearson r vs true opening: model {r_model:.3f} | loudness-envelope baseline {r_loud:.3f}",
        f"trained mouth-tiny in {train_seconds:.0f} s; demo took {time.perf_counter() - t_start:.0f} s",
        f"wrote {out / 'curve.csv'} and {out / 'curve.png'}; model: {run_dir / 'model.pt'}",
        "the model beats the baseline" if beats else "the model did NOT beat the baseline clearly",
    ]
    print("\n".join(lines))
    return 0 if beats else 1
