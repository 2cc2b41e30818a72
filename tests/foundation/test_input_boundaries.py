"""User files read at the boundaries: every bad model file, dataset item or output path is one line
`error: <file>: <problem>` with exit code 2 (never `unexpected ...`, never a traceback), and nothing is written;
killed runs leave no temporary files behind for good; audio is read in blocks exactly as a whole-file read.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voxtool.errors import BadInput

# ----------------------------------------------------------------------------------------------- helpers

def run_cli(capfd, *argv: str) -> tuple[int, list[str]]:
    """voxtool ARGV in this process -> (exit code, stderr lines)."""
    from voxtool.cli import main

    capfd.readouterr()
    code = main([*argv, "--quiet"] if argv[0] not in ("prep",) else [*argv])
    return code, capfd.readouterr().err.splitlines()


def assert_one_line(code: int, lines: list[str], path: Path | str, *needles: str) -> str:
    assert code == 2, lines
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(f"error: {path}: "), line
    assert "unexpected" not in line and "Traceback" not in line
    for needle in needles:
        assert needle in line, line
    return line


def mouth_model(path: Path) -> Path:
    from voxtool.presets import load_config
    from voxtool.tasks.mouth.config import MouthConfig
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator
    from voxtool.training.modelfile import save_model_file

    cfg = load_config(MouthConfig, "mouth-tiny", [], task="mouth")
    torch.manual_seed(0)
    net = BiLSTMCurveEstimator(cfg.model, -0.15, 1.0)
    save_model_file(path, "mouth", cfg.model_dump(mode="json"), net.state_dict(),
                    {"mel": cfg.mel.model_dump(), "value_range": [-0.15, 1.0], "target": "jaw-minus-close"})
    return path


def pinyin_model(path: Path) -> Path:
    from voxtool.presets import load_config
    from voxtool.tasks.pinyin.config import PinyinConfig
    from voxtool.tasks.pinyin.model import build_model
    from voxtool.tasks.pinyin.tokens import Vocab
    from voxtool.training.modelfile import save_model_file

    cfg = load_config(PinyinConfig, "pinyin-tiny", [], task="pinyin")
    net = build_model(cfg, Vocab())
    save_model_file(path, "pinyin", cfg.model_dump(mode="json"), net.state_dict(), {"vocab": Vocab().to_dict()})
    return path


def rmvpe_model(path: Path) -> Path:
    from voxtool.pitch.rmvpe_model import E2E0
    from voxtool.presets import load_config
    from voxtool.tasks.rmvpe.train import RmvpeConfig
    from voxtool.training.modelfile import save_model_file

    cfg = load_config(RmvpeConfig, "rmvpe-tiny", [], task="rmvpe")
    net = E2E0(cfg.model.arch())
    save_model_file(path, "rmvpe", cfg.model_dump(mode="json"), net.state_dict(), {})
    return path


def with_bad_shape(src: Path, dst: Path) -> tuple[str, tuple, tuple]:
    """A copy of a model file whose first multi-dimensional weight has one row too many."""
    obj = torch.load(src, weights_only=True)
    key = sorted(k for k, v in obj["state_dict"].items() if v.ndim >= 2)[0]
    good = tuple(obj["state_dict"][key].shape)
    bad = (good[0] + 1, *good[1:])
    obj["state_dict"][key] = torch.zeros(bad)
    torch.save(obj, dst)
    return key, good, bad


class MakesDir:
    """Unpickling this calls os.mkdir(target): a stand-in for any code a malicious checkpoint would run."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("boundaries")
    f = {"root": root}
    f["mouth"] = mouth_model(root / "mouth.pt")
    f["pinyin"] = pinyin_model(root / "pinyin.pt")
    f["rmvpe"] = rmvpe_model(root / "rmvpe.pt")
    for task in ("mouth", "pinyin", "rmvpe"):
        f[f"{task}_shape"] = root / f"{task}_shape.pt"
        f[f"{task}_shape_info"] = with_bad_shape(f[task], f[f"{task}_shape"])
    (root / "empty.pt").write_bytes(b"")
    f["empty"] = root / "empty.pt"
    f["random"] = root / "random.pt"
    f["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    f["text"] = root / "text.pt"
    f["text"].write_text("hello, not a checkpoint\n")
    f["truncated"] = root / "truncated.pt"
    f["truncated"].write_bytes(f["mouth"].read_bytes()[:-300])
    f["wav"] = root / "a.wav"
    sf.write(f["wav"], (0.1 * np.sin(np.arange(16000) * 0.05)).astype(np.float32), 16000)
    return f


# ----------------------------------------------------------------------------------------------- model files

MODEL_COMMANDS = {
    "infer mouth": lambda f, m: ["infer", "mouth", str(f["wav"]), "--model", str(m), "-o", str(f["root"] / "o.csv")],
    "eval mouth": lambda f, m: ["eval", "mouth", str(f["root"] / "nodata"), "--model", str(m)],
    "export mouth": lambda f, m: ["export", "mouth", "--model", str(m), "--out", str(f["root"] / "o.onnx")],
    "infer rmvpe": lambda f, m: ["infer", "rmvpe", str(f["wav"]), "--model", str(m), "-o", str(f["root"] / "o.csv"),
                                 "--device", "cpu"],
    "eval rmvpe": lambda f, m: ["eval", "rmvpe", str(f["root"] / "nodata"), "--model", str(m), "--device", "cpu"],
    "export rmvpe": lambda f, m: ["export", "rmvpe", "--model", str(m), "--out", str(f["root"] / "o.onnx")],
    "transcribe pinyin": lambda f, m: ["transcribe", "pinyin", str(f["wav"]), "--model", str(m),
                                       "-o", str(f["root"] / "o.csv")],
    "eval pinyin": lambda f, m: ["eval", "pinyin", str(f["root"] / "nodata"), "--model", str(m)],
}
GARBAGE = {
    "empty": "empty file (0 bytes), not a PyTorch checkpoint",
    "random": "not a PyTorch checkpoint (unreadable or corrupt)",
    "text": "not a PyTorch checkpoint (unreadable or corrupt)",
    "truncated": "not a PyTorch checkpoint (unreadable or corrupt)",
}


@pytest.mark.parametrize("command", list(MODEL_COMMANDS))
@pytest.mark.parametrize("kind", list(GARBAGE))
def test_garbage_model_file_is_one_line(files, capfd, command, kind):
    code, lines = run_cli(capfd, *MODEL_COMMANDS[command](files, files[kind]))
    assert_one_line(code, lines, files[kind], GARBAGE[kind])
    assert not (files["root"] / "o.csv").exists() and not (files["root"] / "o.onnx").exists()


@pytest.mark.parametrize("command", ["infer mouth", "export mouth", "infer rmvpe", "export rmvpe",
                                     "transcribe pinyin"])
def test_weight_of_wrong_shape_names_key_and_shapes(files, capfd, command):
    task = command.split()[1]
    path = files[f"{task}_shape"]
    key, good, bad = files[f"{task}_shape_info"]
    code, lines = run_cli(capfd, *MODEL_COMMANDS[command](files, path))
    shape = lambda s: "(" + ", ".join(map(str, s)) + ")"  # noqa: E731
    assert_one_line(code, lines, path, f"'{key}'", shape(good), shape(bad))


def test_pickles_needing_code_are_refused_unexecuted(files, capfd, tmp_path):
    marker = tmp_path / "was-executed"
    raw = tmp_path / "raw.pt"
    with open(raw, "wb") as fh:
        pickle.dump({"state_dict": MakesDir(str(marker))}, fh, protocol=4)
    zipped = tmp_path / "zipped.pt"
    torch.save({"format": "voxtool-model", "weights": MakesDir(str(marker))}, zipped)
    for path in (raw, zipped):
        for command in ("infer mouth", "infer rmvpe", "transcribe pinyin"):
            code, lines = run_cli(capfd, *MODEL_COMMANDS[command](files, path))
            assert_one_line(code, lines, path, "refusing to load", "needs code to unpickle", "mkdir")
            assert "weights_only" not in lines[0] and len(lines[0]) < 200  # no PyTorch essay
    assert not marker.exists()


def test_garbled_voxtool_model_files(files, capfd, tmp_path):
    good = torch.load(files["mouth"], weights_only=True)
    cases = {
        "list_weights": {**good, "state_dict": [1, 2, 3]},
        "no_config": {k: v for k, v in good.items() if k != "config"},
        "string_weight": {**good, "state_dict": {**good["state_dict"], "extra": "x"}},
        "bad_meta": {**good, "meta": {"mel": {"n_mels": -3}, "value_range": [0, 1]}},
    }
    for name, obj in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(obj, path)
        code, lines = run_cli(capfd, *MODEL_COMMANDS["infer mouth"](files, path))
        assert_one_line(code, lines, path)


def test_init_checkpoint_for_training_is_checked(files, capfd, tmp_path):
    data = rmvpe_dataset(tmp_path / "data", [("a", 16000)])
    code, lines = run_cli(capfd, "train", "rmvpe", str(data), "--init", str(files["empty"]), "--preset",
                          "rmvpe-tiny", "--runs-dir", str(tmp_path / "runs"), "--exp", "x", "--device", "cpu",
                          "--steps", "1")
    assert_one_line(code, lines, files["empty"], "empty file")


# ----------------------------------------------------------------------------------------------- output folders

PREP = {
    "lipsync": lambda src, out: ["prep", "lipsync", str(src), str(out)],
    "unlabeled": lambda src, out: ["prep", "unlabeled", str(src), str(out)],
    "mir1k": lambda src, out: ["prep", "mir1k", str(src), str(out)],
    "pitch": lambda src, out: ["prep", "pitch", str(src), str(out)],
    "tsv": lambda src, out: ["prep", "tsv", str(src / "list.tsv"), str(out)],
    "aishell": lambda src, out: ["prep", "aishell", str(src), str(out)],
}


@pytest.mark.parametrize("prep", list(PREP))
def test_prep_out_that_is_a_file(capfd, tmp_path, prep):
    src = tmp_path / "src"
    src.mkdir()
    (src / "list.tsv").write_text("path\ttext\n")
    out = tmp_path / "out.txt"
    out.write_text("precious\n")
    code, lines = run_cli(capfd, *PREP[prep](src, out))
    assert_one_line(code, lines, out, "not a folder")
    assert out.read_text() == "precious\n"
    below = out / "sub"  # a parent of OUT is a file
    code, lines = run_cli(capfd, *PREP[prep](src, below))
    assert_one_line(code, lines, below, f"{out} is a file")
    assert out.read_text() == "precious\n"


def test_ensure_output_dir(tmp_path):
    from voxtool.fileio import ensure_output_dir

    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInput, match="exists and is not a folder"):
        ensure_output_dir(tmp_path / "f")
    with pytest.raises(BadInput, match="is a file"):
        ensure_output_dir(tmp_path / "f" / "runs")
    assert ensure_output_dir(tmp_path / "a" / "b").is_dir()


def test_atomic_write_onto_a_folder_or_below_a_file(tmp_path):
    from voxtool.fileio import atomic_write

    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInput, match="is a folder"):
        with atomic_write(tmp_path / "d") as fh:
            fh.write(b"")
    with pytest.raises(BadInput, match="a parent path is a file"):
        with atomic_write(tmp_path / "f" / "x.csv") as fh:
            fh.write(b"")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


# ----------------------------------------------------------------------------------------------- datasets

def rmvpe_dataset(root: Path, items: list[tuple[str, int]]) -> Path:
    """A hand-made prepared rmvpe dataset: items (name, samples) of a 220 Hz tone, all in train and valid."""
    (root / "items").mkdir(parents=True)
    for name, n in items:
        voice = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / 16000) * 32767).astype(np.int16)
        np.savez(root / "items" / f"{name}.npz", voice=voice, accompaniment=np.zeros(0, np.int16),
                 f0=np.full(n // 160 + 1, 220.0, np.float32))
    lists = "".join(f"items/{name}.npz\n" for name, _ in items)
    (root / "train.txt").write_text(lists)
    (root / "valid.txt").write_text(lists)
    (root / "dataset.json").write_text(json.dumps({"format": "voxtool-rmvpe-dataset", "sample_rate": 16000,
                                                   "hop_length": 160}))
    return root


def corrupt(path: Path, how: str, good: dict[str, np.ndarray]) -> None:
    if how == "bytes":
        path.write_bytes(path.read_bytes()[:40])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "missing_key":
        np.savez(path, **dict(list(good.items())[1:]))
    elif how == "shape":
        first = next(iter(good))
        np.savez(path, **{**good, first: np.zeros((3, 3, 3), good[first].dtype)})


@pytest.mark.parametrize("how", ["bytes", "empty", "missing_key", "shape"])
def test_rmvpe_dataset_item(files, capfd, tmp_path, how):
    from voxtool.tasks.rmvpe.data import PitchDataset

    data = rmvpe_dataset(tmp_path / "data", [("a", 8000), ("b", 8000)])
    bad = data / "items" / "b.npz"
    with np.load(bad) as z:
        good = {k: z[k] for k in z.files}
    corrupt(bad, how, good)
    ds = PitchDataset(data, "valid")
    ds[0]
    with pytest.raises(BadInput) as err:
        ds[1]
    assert err.value.where == str(bad.resolve())
    code, lines = run_cli(capfd, "eval", "rmvpe", str(data), "--model", str(files["rmvpe"]), "--device", "cpu")
    assert_one_line(code, lines, bad.resolve())


def test_rmvpe_f0_length_must_match_the_audio(tmp_path):
    from voxtool.tasks.rmvpe.data import PitchDataset

    data = rmvpe_dataset(tmp_path / "data", [("a", 8000)])
    np.savez(data / "items" / "a.npz", voice=np.zeros(8000, np.int16), accompaniment=np.zeros(0, np.int16),
             f0=np.zeros(7, np.float32))
    with pytest.raises(BadInput, match="'f0' has 7 frames; 51 expected"):
        PitchDataset(data, "train")[0]


def mouth_dataset(root: Path, n_items: int = 2) -> Path:
    from voxtool.tasks.mouth.config import default_mel
    from voxtool.tasks.mouth.data import DATASET_FORMAT

    (root / "items").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n_items):
        np.savez(root / "items" / f"t{i}.npz", mel=rng.standard_normal((120, 80)).astype(np.float32),
                 curve=rng.random(120).astype(np.float32), meta=np.array("{}"))
    (root / "valid.txt").write_text("".join(f"items/t{i}.npz\n" for i in range(n_items)))
    (root / "train.txt").write_text("items/t0.npz\n")
    meta = {"format": DATASET_FORMAT, "kind": "lipsync", "mel": default_mel().model_dump(),
            "norm_range": [-0.15, 1.0], "speakers": {}, "items": {}}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.mark.parametrize("how", ["bytes", "empty", "missing_key", "shape", "curve_length"])
def test_mouth_dataset_item(files, capfd, tmp_path, how):
    from voxtool.tasks.mouth.data import MouthDataset

    data = mouth_dataset(tmp_path / "data")
    bad = data / "items" / "t1.npz"
    with np.load(bad) as z:
        good = {k: z[k] for k in z.files}
    if how == "curve_length":
        np.savez(bad, **{**good, "curve": good["curve"][:-5]})
    else:
        corrupt(bad, how, good)
    assert len(MouthDataset(data).load_split("train")) == 1
    with pytest.raises(BadInput) as err:
        MouthDataset(data).load_split("valid")
    assert err.value.where == str(bad)
    code, lines = run_cli(capfd, "eval", "mouth", str(data), "--model", str(files["mouth"]))
    assert_one_line(code, lines, bad)


def test_mouth_dataset_header_is_checked(tmp_path):
    from voxtool.tasks.mouth.data import MouthDataset

    data = mouth_dataset(tmp_path / "data")
    meta = json.loads((data / "dataset.json").read_text())
    for broken in ({**meta, "mel": {"n_mels": "many"}}, {**meta, "norm_range": "wide"}, [1, 2]):
        (data / "dataset.json").write_text(json.dumps(broken))
        with pytest.raises(BadInput) as err:
            MouthDataset(data)
        assert err.value.where == str(data / "dataset.json")


def pinyin_dataset(root: Path, n_items: int = 2) -> Path:
    from voxtool.presets import load_config
    from voxtool.tasks.pinyin.config import PinyinConfig
    from voxtool.tasks.pinyin.prep import _dataset_header

    cfg = load_config(PinyinConfig, "pinyin-tiny", [], task="pinyin")
    (root / "items").mkdir(parents=True)
    n_mels = cfg.features.mel.n_mels
    for i in range(n_items):
        np.savez(root / "items" / f"u{i}.npz", mel=np.zeros((n_mels, 60), np.float16),
                 tokens=np.array([1, 5, 40, 1], np.int16), text="你", pinyin="ni3", speaker="s",
                 seconds=np.float32(0.6), trim_start=np.int64(0))
    (root / "test.txt").write_text("".join(f"items/u{i}.npz\n" for i in range(n_items)))
    (root / "dataset.json").write_text(json.dumps(_dataset_header(cfg.features, cfg.text), ensure_ascii=False))
    return root


@pytest.mark.parametrize("how", ["bytes", "empty", "missing_key", "shape", "token_range"])
def test_pinyin_dataset_item(files, capfd, tmp_path, how):
    from voxtool.tasks.pinyin.data import PinyinDataset

    data = pinyin_dataset(tmp_path / "data")
    bad = data / "items" / "u1.npz"
    with np.load(bad) as z:
        good = {k: z[k] for k in z.files}
    if how == "token_range":
        np.savez(bad, **{**good, "tokens": np.array([1, 9999], np.int16)})
    else:
        corrupt(bad, how, good)
    ds = PinyinDataset(data, "test")
    ds[0]
    with pytest.raises(BadInput) as err:
        ds[1]
    assert err.value.where == str(bad)
    code, lines = run_cli(capfd, "eval", "pinyin", str(data), "--model", str(files["pinyin"]))
    assert_one_line(code, lines, bad)


# ----------------------------------------------------------------------------------------------- leftovers

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_names_are_recognisable_and_stale_ones_removed(tmp_path):
    from voxtool.fileio import atomic_write, clean_stale_temps, is_stale_temp, temp_prefix

    target = tmp_path / "x.npz"
    assert temp_prefix(target) == f".x.npz.voxtool-tmp-{os.getpid()}-"
    dead = tmp_path / f".y.npz.voxtool-tmp-{_dead_pid()}-abcd1234.tmp.npz"
    mine = tmp_path / f".z.npz.voxtool-tmp-{os.getpid()}-abcd1234.tmp.npz"  # a write of this live process
    old = tmp_path / f".w.npz.voxtool-tmp-{os.getpid()}-abcd9999.tmp.npz"
    legacy = tmp_path / ".v.k2j4h5g6.tmp.npz"  # an earlier voxtool's name, from before this process
    user = tmp_path / ".notes.tmp"  # not ours
    for p in (dead, mine, old, legacy, user):
        p.write_bytes(b"")
    day_ago = time.time() - 2 * 86400
    os.utime(old, (day_ago, day_ago))
    os.utime(legacy, (day_ago, day_ago))
    assert is_stale_temp(dead) and not is_stale_temp(mine) and is_stale_temp(old) and not is_stale_temp(user)
    assert sorted(p.name for p in clean_stale_temps(tmp_path)) == sorted([dead.name, old.name, legacy.name])
    assert mine.exists() and user.exists()
    with atomic_write(target) as fh:  # writing works and leaves only the target and the live temp
        fh.write(b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, user.name, "x.npz"])


KILLED_WRITER = """
import sys, time
from voxtool.fileio import atomic_write
with atomic_write(sys.argv[1]) as f:
    print("writing", flush=True)
    time.sleep(120)
"""


def test_prep_removes_temps_of_a_killed_run(capfd, tmp_path):
    from voxtool.tasks.rmvpe.synth import write_csv_dataset

    write_csv_dataset(tmp_path / "src", n_train=2, n_test=1, seconds=0.5)
    out = tmp_path / "out"
    code, lines = run_cli(capfd, "prep", "pitch", str(tmp_path / "src"), str(out), "--quiet")
    assert code == 0, lines
    # a prep killed with SIGKILL while writing an item leaves its hidden temporary file
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out / "items" / "late.npz")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    left = [p for p in (out / "items").iterdir() if p.name.startswith(".")]
    assert len(left) == 1 and f"voxtool-tmp-{proc.pid}-" in left[0].name
    code, lines = run_cli(capfd, "prep", "pitch", str(tmp_path / "src"), str(out), "--quiet")
    assert code == 0, lines
    assert not [p for p in out.rglob(".*")], "stale temporary files survived the next prep"


# ----------------------------------------------------------------------------------------------- audio blocks

@pytest.mark.parametrize("rate,channels", [(44100, 2), (16000, 1), (22050, 1)])
def test_audio_blocks_equal_whole_file(tmp_path, rate, channels):
    from voxtool.audio.io import iter_audio_blocks, load_audio

    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal((int(rate * 7.3), channels))).astype(np.float32)
    path = tmp_path / "a.flac"
    sf.write(path, x, rate)
    whole = load_audio(path, 16000)
    blocks = list(iter_audio_blocks(path, 16000, block_seconds=1.0))
    assert len(blocks) >= 7
    joined = np.concatenate(blocks)
    assert joined.shape == whole.shape
    assert np.abs(joined - whole).max() <= 1e-6
    stereo = np.concatenate(list(iter_audio_blocks(path, 16000, block_seconds=1.0, mono=False)))
    assert np.abs(stereo - load_audio(path, 16000, mono=False)).max() <= 1e-6


def test_audio_blocks_report_bad_files(tmp_path):
    from voxtool.audio.io import iter_audio_blocks

    x = np.zeros(16000 * 3, np.float32)
    x[40000] = np.nan  # in the third block
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    for name, problem in (("nan.wav", "NaN"), ("junk.wav", "cannot read audio"), ("empty.wav", "empty"),
                          ("missing.wav", "not found")):
        with pytest.raises(BadInput, match=problem) as err:
            list(iter_audio_blocks(tmp_path / name, 16000, block_seconds=1.0))
        assert err.value.where == str(tmp_path / name)


MEMORY_CHILD = """
import os, sys
from voxtool.audio.io import iter_audio_blocks, load_audio
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM"))
sum(len(b) for b in iter_audio_blocks(sys.argv[1], 16000))  # warm-up: soxr, libsndfile
load_audio(sys.argv[1], 16000)[:10]
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = rss()
if sys.argv[2] == "blocks":
    n = sum(len(b) for b in iter_audio_blocks(sys.argv[1], 16000))
else:
    n = len(load_audio(sys.argv[1], 16000))
print(hwm() - base, n)
"""


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux peak-RSS reset")
def test_block_reading_memory_is_flat(tmp_path):
    """Ten minutes of 44.1 kHz stereo: decoded whole it costs >200 MiB; read in blocks it stays small."""
    path = tmp_path / "long.wav"
    with sf.SoundFile(str(path), "w", 44100, 2, subtype="PCM_16") as f:
        block = (0.1 * np.random.default_rng(0).standard_normal((44100 * 30, 2))).astype(np.float32)
        for _ in range(20):
            f.write(block)
    peaks = {}
    for mode in ("blocks", "whole"):
        res = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(path), mode], capture_output=True, text=True,
                             check=True)
        peak, n = res.stdout.split()
        peaks[mode] = float(peak)
        assert int(n) == 600 * 16000
    assert peaks["whole"] > 150, peaks
    assert peaks["blocks"] < 30, peaks
