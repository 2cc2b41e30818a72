"""prep lipsync: schemas, targets, frozen runs, alignment, masks, lists, bad takes, re-runs, workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxtool.errors import BadInput
from voxtool.tasks.mouth.config import default_mel
from voxtool.tasks.mouth.data import (
    CropSampler,
    MouthDataset,
    augment_volume,
    drop_frozen_start,
    prepare_lipsync,
    read_capture,
)
from voxtool.tasks.mouth.synth import TRAIN_SINGERS, capture_rows, synth_take, write_csv, write_take

SR = 16000


@pytest.fixture(scope="module")
def short_take():
    return synth_take(TRAIN_SINGERS[2], 3.0, seed=11)


def good_take(folder: Path, take, seed: int = 0, frozen_rows: int = 0) -> Path:
    return write_take(folder, take, seed=seed, frozen_rows=frozen_rows)


def rows_of(take, seed=0):
    return capture_rows(take, np.random.default_rng(seed))


# ----------------------------------------------------------------------------------------------- schemas


def test_iphone_android_and_lowercase_lips_schemas(tmp_path, short_take):
    rows = rows_of(short_take)
    write_csv(tmp_path / "a.csv", rows, "iphone")
    write_csv(tmp_path / "b.csv", rows, "iphone", lips_column="lipsDistance")
    write_csv(tmp_path / "c.csv", rows, "android")
    write_csv(tmp_path / "d.csv", rows, "iphone", lips_column=None)
    a, b, c, d = (read_capture(tmp_path / f"{n}.csv") for n in "abcd")
    assert a.schema == b.schema == d.schema == "iphone" and c.schema == "android"
    np.testing.assert_allclose(a.times, rows[:, 0], atol=1e-6)
    np.testing.assert_allclose(b.lips, rows[:, 3], atol=1e-4)
    np.testing.assert_allclose(c.times, np.round(rows[:, 0] * 1000) / 1000)  # Android: integer milliseconds
    np.testing.assert_allclose(c.jaw - c.close, rows[:, 1] - rows[:, 2], atol=2e-4)
    assert d.lips is None and c.lips is None


def test_targets_and_value_range(tmp_path, short_take):
    src = tmp_path / "src"
    good_take(src / "singer" / "t0", short_take)
    out = {}
    for target in ("jaw-minus-close", "jaw", "close", "jaw-times-open", "lips-distance"):
        prepare_lipsync(src, tmp_path / target, target=target)
        meta = json.loads((tmp_path / target / "dataset.json").read_text())
        assert meta["target"] == target
        with np.load(tmp_path / target / "items/singer/t0/audio.npz") as z:
            out[target] = z["curve"]
            assert z["mel"].shape == (len(z["curve"]), 80)
        assert meta["value_range"][0] == pytest.approx(float(out[target].min()), abs=1e-6)
    np.testing.assert_allclose(out["jaw-minus-close"], out["jaw"] - out["close"], atol=1e-5)
    np.testing.assert_allclose(out["jaw-times-open"], out["jaw"] * (1 - out["close"]), atol=1e-5)
    assert out["lips-distance"].max() > 1.0  # centimetres, not a 0-1 coefficient
    meta = json.loads((tmp_path / "lips-distance" / "dataset.json").read_text())
    assert meta["norm_range"][1] >= out["lips-distance"].max()


def test_frozen_start_is_dropped(tmp_path, short_take):
    rows = capture_rows(short_take, np.random.default_rng(0), frozen_rows=8)
    write_csv(tmp_path / "m.csv", rows)
    cap = drop_frozen_start(read_capture(tmp_path / "m.csv"))
    assert cap.frozen_dropped == 8
    assert cap.times[0] == pytest.approx(rows[8, 0], abs=1e-6)
    # and prep crops the audio to start at the first live row
    good_take(tmp_path / "src" / "s" / "t", short_take, frozen_rows=8)
    prepare_lipsync(tmp_path / "src", tmp_path / "out")
    with np.load(tmp_path / "out/items/s/t/audio.npz") as z:
        meta = json.loads(str(z["meta"]))
    assert meta["frozen_rows_dropped"] == 8
    first_live = read_capture(tmp_path / "src/s/t/mouth_data.csv").times[8]
    assert meta["crop_start"] == pytest.approx(first_live, abs=1 / SR)


# ----------------------------------------------------------------------------------------------- alignment


def test_alignment_of_a_known_step(tmp_path):
    """Silence then a loud tone at t_step; the curve steps 0 -> 1 at the same instant.

    With frame-centre interpolation, the first frame whose curve is >= 0.5 is the first frame whose mel energy
    reaches half of the tone's: the labels line up with the audio. The original's `linspace(0, duration, T)`
    timing is off by a frame near the start of a take, which this test would catch.
    """
    # frame centres lie at 0.4 - 0.022 + 0.02 i; 0.628 is mid-way between two of them, near the capture's start
    # (where the original's timing is most skewed: its frame 0 sits at 0 s instead of -22 ms)
    duration, t_step = 6.0, 0.628
    t = np.arange(int(duration * SR)) / SR
    noise = 1e-4 * np.random.default_rng(0).standard_normal(len(t))
    audio = np.where(t >= t_step, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0) + noise
    take_dir = tmp_path / "src" / "s" / "t"
    take_dir.mkdir(parents=True)
    sf.write(take_dir / "audio.wav", audio.astype(np.float32), SR, subtype="FLOAT")
    cap_t = np.concatenate(
        [np.arange(0.4, t_step - 1e-3, 1 / 60), [t_step - 1e-4, t_step], np.arange(t_step + 1 / 60, 5.9, 1 / 60)]
    )
    jaw = (cap_t >= t_step) + 0.02 * (np.arange(len(cap_t)) % 3)  # varying: a constant start reads as frozen
    rows = np.stack([cap_t, jaw, np.zeros_like(jaw), jaw], axis=1)
    write_csv(take_dir / "mouth_data.csv", rows)
    prepare_lipsync(tmp_path / "src", tmp_path / "out")
    with np.load(tmp_path / "out/items/s/t/audio.npz") as z:
        mel, curve, meta = z["mel"], z["curve"], json.loads(str(z["meta"]))
    peak = np.exp(mel).max(axis=1)  # the tone's bin: magnitude grows with the share of the window it covers
    full = np.median(peak[-20:])
    mel_onset = int(np.argmax(peak >= 0.5 * full))
    curve_onset = int(np.argmax(curve >= 0.5))
    assert curve_onset == mel_onset
    # every frame is the capture interpolated at its true centre time
    centres = meta["crop_start"] + default_mel().frame_times(len(curve))
    np.testing.assert_allclose(curve, np.interp(centres, cap_t, jaw), atol=1e-6)
    # the original's timing would put the step a frame off
    naive = np.interp(meta["crop_start"] + np.linspace(0, meta["seconds"], len(curve)), cap_t, jaw)
    assert int(np.argmax(naive >= 0.5)) != mel_onset


def test_mask_ass_zeroes_the_target(tmp_path, short_take):
    take_dir = tmp_path / "src" / "s" / "t"
    good_take(take_dir, short_take)
    (take_dir / "mask.ass").write_text(
        "[Script Info]\nScriptType: v4.00+\n\n[Events]\n"
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: 0,0:00:01.00,0:00:01.50,Default,,0,0,0,,\n",
        encoding="utf-8",
    )
    prepare_lipsync(tmp_path / "src", tmp_path / "out")
    with np.load(tmp_path / "out/items/s/t/audio.npz") as z:
        curve, meta = z["curve"], json.loads(str(z["meta"]))
    centres = meta["crop_start"] + default_mel().frame_times(len(curve))
    inside = (centres >= 1.0) & (centres <= 1.5)
    assert inside.sum() >= 24 and np.all(curve[inside] == 0)
    assert np.mean(curve[~inside] != 0) > 0.9


# ----------------------------------------------------------------------------------------------- lists, layout


def test_lists_split_the_dataset_and_bad_entries_are_errors(tmp_path, short_take):
    src = tmp_path / "src"
    for spk in ("甲", "乙", "丙"):
        good_take(src / spk / "t0", short_take)
    (src / "valid.txt").write_bytes("乙/t0/audio.wav\r\n".encode("gbk"))
    (tmp_path / "unseen.txt").write_bytes("丙/t0/audio.wav\n".encode("utf-8-sig"))
    summary = prepare_lipsync(src, tmp_path / "out", unseen_list=tmp_path / "unseen.txt")
    assert summary.splits == {"train": 1, "valid": 1, "unseen": 1}
    ds = MouthDataset(tmp_path / "out")
    assert ds.prepared.entries("valid") == ["items/乙/t0/audio.npz"]
    assert ds.prepared.entries("unseen") == ["items/丙/t0/audio.npz"]
    assert set(ds.speakers) == {"甲", "乙", "丙"}
    (tmp_path / "leave.txt").write_text("../outside.wav\n")
    (tmp_path / "outside.wav").write_bytes(b"")
    with pytest.raises(BadInput, match="leaves"):
        prepare_lipsync(src, tmp_path / "o2", unseen_list=tmp_path / "leave.txt")
    (tmp_path / "missing.txt").write_text("甲/nope.wav\n")
    with pytest.raises(BadInput, match="does not exist"):
        prepare_lipsync(src, tmp_path / "o3", unseen_list=tmp_path / "missing.txt")


def test_flat_layout_makes_each_take_a_speaker(tmp_path, short_take):
    logs = []
    for name in ("2025-02-04_22-01-52", "2025-02-04_22-05-10"):
        good_take(tmp_path / "src" / name, short_take)
    summary = prepare_lipsync(tmp_path / "src", tmp_path / "out", log=logs.append)
    assert summary.layout == "flat" and summary.speakers == 2
    assert any("own speaker" in line for line in logs)


# ----------------------------------------------------------------------------------------------- bad takes


def _bad_cases(take, duration):
    rows = rows_of(take)

    def csv_text(header, body_rows):
        return header + "\n" + "".join(",".join(str(v) for v in r) + "\n" for r in body_rows)

    base = [list(r[:3]) for r in rows]
    nan_rows = [list(r) for r in base]
    nan_rows[5][1] = float("nan")
    backwards = [list(r) for r in base]
    backwards[10][0], backwards[11][0] = backwards[11][0], backwards[10][0]
    negative = [list(r) for r in base]
    negative[0][0] = -0.5
    longer = [list(r) for r in base] + [[duration + 1.0, 0.3, 0.02]]
    h = "TimeStamp,jawOpen,mouthClose"
    return {
        "missing column": ({"mouth_data.csv": csv_text("TimeStamp,jawOpen", [r[:2] for r in base])}, "missing column"),
        "extra column": (
            {"mouth_data.csv": csv_text(h + ",eyeBlinkLeft", [r + [0.1] for r in base])},
            "unexpected column",
        ),
        "unknown header": ({"mouth_data.csv": csv_text("a,b,c", base)}, "unrecognised CSV header (found: a, b, c)"),
        "nan": ({"mouth_data.csv": csv_text(h, nan_rows)}, "NaN"),
        "non-monotonic": ({"mouth_data.csv": csv_text(h, backwards)}, "backwards"),
        "negative": ({"mouth_data.csv": csv_text(h, negative)}, "negative timestamp"),
        "too long": ({"mouth_data.csv": csv_text(h, longer)}, "but the audio is only"),
        "empty csv": ({"mouth_data.csv": ""}, "empty file"),
        "header only": ({"mouth_data.csv": h + "\n"}, "no data rows"),
        "unreadable wav": ({"audio.wav": b"RIFF....garbage, not a wav file"}, "cannot read audio"),
        "empty wav": ({"audio.wav": None}, "empty"),
    }


def test_every_bad_take_is_skipped_with_its_reason_or_fatal_with_strict(tmp_path, short_take):
    cases = _bad_cases(short_take, short_take.duration)
    for i, (name, (files, reason)) in enumerate(cases.items()):
        src = tmp_path / f"c{i}" / "src"
        good_take(src / "good" / "t0", short_take)
        bad_dir = src / "bad" / "t0"
        good_take(bad_dir, short_take)
        for fname, content in files.items():
            if content is None:
                sf.write(bad_dir / fname, np.zeros(0, np.float32), SR)
            elif isinstance(content, bytes):
                (bad_dir / fname).write_bytes(content)
            else:
                (bad_dir / fname).write_text(content)
        out = tmp_path / f"c{i}" / "out"
        summary = prepare_lipsync(src, out)
        assert summary.takes == 1, name
        assert len(summary.skipped) == 1 and summary.skipped[0][0] == "bad/t0/audio.wav", name
        assert reason in summary.skipped[0][1], (name, summary.skipped[0][1])
        assert not (out / "items" / "bad").exists(), name  # nothing written for the bad take
        assert (out / "train.txt").read_text() == "items/good/t0/audio.npz\n"
        strict_out = tmp_path / f"c{i}" / "strict"
        with pytest.raises(BadInput, match=reason.split(" (")[0].replace("(", r"\(")):
            prepare_lipsync(src, strict_out, strict=True)
        assert not (strict_out / "dataset.json").exists(), name
        assert not list(strict_out.rglob("*.tmp*")), name  # no half-written files


def test_lips_distance_target_needs_the_column(tmp_path, short_take):
    take_dir = tmp_path / "src" / "s" / "t"
    good_take(take_dir, short_take)
    write_csv(take_dir / "mouth_data.csv", rows_of(short_take), lips_column=None)
    good_take(tmp_path / "src" / "s" / "u", short_take)
    summary = prepare_lipsync(tmp_path / "src", tmp_path / "out", target="lips-distance")
    assert summary.takes == 1 and "LipsDistance" in summary.skipped[0][1]


# ----------------------------------------------------------------------------------------------- re-runs, workers


def test_rerun_skips_done_takes_and_workers_agree(tmp_path, short_take):
    src = tmp_path / "src"
    for i in range(3):
        good_take(src / f"s{i}" / "t0", synth_take(TRAIN_SINGERS[i], 2.0, seed=i), seed=i)
    first = prepare_lipsync(src, tmp_path / "a", workers=2)
    assert first.takes == 3 and first.reused == 0
    again = prepare_lipsync(src, tmp_path / "a")
    assert again.reused == 3
    redo = prepare_lipsync(src, tmp_path / "a", overwrite=True)
    assert redo.reused == 0
    with pytest.raises(BadInput, match="other settings"):
        prepare_lipsync(src, tmp_path / "a", target="jaw")
    serial = prepare_lipsync(src, tmp_path / "b", workers=1)
    assert serial.frames == first.frames
    for npz in (tmp_path / "a").rglob("*.npz"):
        with np.load(npz) as x, np.load(tmp_path / "b" / npz.relative_to(tmp_path / "a")) as y:
            np.testing.assert_array_equal(x["mel"], y["mel"])
            np.testing.assert_array_equal(x["curve"], y["curve"])


def test_prep_cli_summary_and_exit_codes(tmp_path, short_take, capsys):
    from voxtool.cli import main

    good_take(tmp_path / "src" / "s" / "t", short_take)
    (tmp_path / "src" / "s" / "u").mkdir()
    (tmp_path / "src" / "s" / "u" / "mouth_data.csv").write_text("")
    sf.write(tmp_path / "src" / "s" / "u" / "audio.wav", short_take.audio, SR)
    assert main(["prep", "lipsync", str(tmp_path / "src"), str(tmp_path / "out"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["takes"] == 1 and report["skipped"] == [{"path": "s/u/audio.wav", "reason": "empty file"}]
    assert main(["prep", "lipsync", str(tmp_path / "src"), str(tmp_path / "o2"), "--strict"]) == 2
    assert main(["prep", "lipsync", str(tmp_path / "nowhere"), str(tmp_path / "o3")]) == 2
    assert main(["prep", "lipsync", str(tmp_path / "src"), str(tmp_path / "o4"), "--target", "nose"]) == 2


# ----------------------------------------------------------------------------------------------- crops


def test_crop_sampler_weights_pads_and_masks():
    rng = np.random.default_rng(0)
    mels = [np.full((80, 50), 1.0, np.float32), np.full((80, 1000), 2.0, np.float32)]  # (n_mels, T)
    curves = [np.full(50, 0.1, np.float32), np.arange(1000, dtype=np.float32)]
    sampler = CropSampler(mels, curves, crop=128, pad_value=-12.0)
    batch = sampler.sample(rng, 400)
    assert batch["mel"].shape == (400, 80, 128) and batch["curve"].shape == (400, 128)
    short = batch["index"] == 0
    assert 0.02 < short.mean() < 0.1  # drawn in proportion to length (50 / 1050)
    assert np.all(batch["mask"][short, :50] == 1) and np.all(batch["mask"][short, 50:] == 0)
    assert np.all(batch["mel"][short, :, 50:] == -12.0) and np.all(batch["mel"][short, :, :50] == 1.0)
    long_curves = batch["curve"][~short]
    np.testing.assert_array_equal(np.diff(long_curves, axis=1), 1.0)  # contiguous crops, aligned with the mel
    unlabeled = CropSampler(mels, None, crop=64, pad_value=-12.0).sample(rng, 4)
    assert "curve" not in unlabeled and unlabeled["mel"].shape == (4, 80, 64)
    aug = augment_volume(np.zeros((200, 80, 10), np.float32), rng, p=0.5, max_shift=3.0, floor=-1.0)
    shifted = aug[:, 0, 0] != 0
    assert 0.35 < shifted.mean() < 0.65 and aug.min() >= -1.0 and aug.max() <= 3.0
    assert np.all(aug == aug[:, :1, :1])  # one gain per crop
