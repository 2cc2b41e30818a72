"""The shared layers below the tasks: ONNX log-mel, framing, prepared datasets, outputs, ONNX export, prep pool.

Where a task still holds its own copy of a shared piece, the shared one is checked against it (bit for bit where
the numerics are the same code); those checks skip once the task's copy is gone (phase 2 of the migration)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from voxtool.audio.framing import (
    frame_config,
    frame_slice,
    frame_slice_from_audio,
    iter_frame_chunks,
    iter_log_mel_chunks,
    log_mel,
    pad_edges,
    pad_width,
)
from voxtool.audio.mel import LogMel, MelConfig
from voxtool.audio.onnx_mel import ConvLogMel
from voxtool.datasets import PreparedDataset
from voxtool.errors import BadInput, VoxtoolError
from voxtool.outputs import OutputFormats, csv_text, plan_outputs, write_csv, write_json, write_npy
from voxtool.prep_pool import map_items

MOUTH = MelConfig(
    sample_rate=16000,
    n_fft=1024,
    hop_length=320,
    n_mels=80,
    mel_scale="slaney",
    norm="slaney",
    center=True,
    pad_mode="reflect",
    pad=352,
)
RMVPE = MelConfig(
    sample_rate=16000,
    n_fft=1024,
    win_length=1024,
    hop_length=160,
    n_mels=128,
    f_min=30.0,
    f_max=8000.0,
    mel_scale="htk",
    norm="slaney",
    center=True,
)
SHORT_WIN = MelConfig(n_fft=512, win_length=400, hop_length=128, n_mels=40, power=2.0, pad_mode="constant")
SETTINGS = {"mouth": MOUTH, "rmvpe": RMVPE, "rmvpe-uncentred": frame_config(RMVPE), "short-win": SHORT_WIN}


def signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def blocks(x: np.ndarray, size: int):
    return (x[i : i + size] for i in range(0, len(x), size))


# ------------------------------------------------------------------------------------------------ ConvLogMel


@pytest.mark.parametrize("name", list(SETTINGS))
def test_conv_log_mel_equals_log_mel(name):
    cfg = SETTINGS[name]
    wav = torch.from_numpy(np.stack([signal(12345, 1), signal(12345, 2)]))
    want = LogMel(cfg)(wav)
    got = ConvLogMel(cfg)(wav)
    assert got.shape == want.shape == (2, cfg.n_mels, cfg.n_frames(12345))
    assert torch.allclose(got, want, atol=1e-4, rtol=0)
    assert ConvLogMel(cfg)(wav[0]).shape == want[0].shape  # (N,) -> (F, T) like LogMel


def _rmvpe_frontend():
    """rmvpe's own copies, or None once rmvpe uses the shared modules (the module is gone)."""
    try:
        from voxtool.tasks.rmvpe import frontend
    except ImportError:
        return None
    return frontend


def test_conv_log_mel_equals_the_task_copies():
    from voxtool.tasks.mouth import export as mouth_export

    frontend = _rmvpe_frontend()

    wav = torch.from_numpy(signal(9000)[None])
    if hasattr(mouth_export, "ConvLogMel") and mouth_export.ConvLogMel is not ConvLogMel:
        assert torch.equal(ConvLogMel(MOUTH)(wav), mouth_export.ConvLogMel(MOUTH)(wav).transpose(1, 2))
    if hasattr(frontend, "ConvStftLogMel"):
        cfg = frame_config(RMVPE)
        assert torch.equal(ConvLogMel(cfg)(wav), frontend.ConvStftLogMel(cfg)(wav))


def test_conv_log_mel_exports_to_onnx(tmp_path):
    from voxtool.onnx_export import export_onnx, onnx_metadata, onnx_session, parity

    cfg = MOUTH
    model = ConvLogMel(cfg).eval()
    path = export_onnx(
        model,
        (torch.zeros(1, 16000),),
        tmp_path / "mel.onnx",
        input_names=["waveform"],
        output_names=["mel"],
        dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "mel": {0: "batch", 2: "frames"}},
        metadata={"voxtool.mel": json.dumps(cfg.model_dump())},
    )
    session = onnx_session(path, threads=1)
    assert MelConfig.model_validate(json.loads(onnx_metadata(session)["voxtool.mel"])) == cfg
    x = signal(23456)[None]  # another length than the example: the time axis is dynamic
    diffs = parity(session, {"waveform": x}, {"mel": LogMel(cfg)(torch.from_numpy(x))}, where=path)
    assert diffs["mel"] < 1e-3
    assert [p.name for p in tmp_path.iterdir()] == ["mel.onnx"]  # no temporary file left


# ------------------------------------------------------------------------------------------------ framing


@pytest.mark.parametrize("name", ["mouth", "rmvpe", "short-win"])
def test_chunked_log_mel_equals_whole(name):
    cfg = SETTINGS[name]
    x = signal(40000)
    whole = LogMel(cfg)(torch.from_numpy(x)).numpy()
    assert np.array_equal(log_mel(x, cfg, chunk_frames=7).shape, whole.shape)
    assert np.allclose(log_mel(x, cfg, chunk_frames=7), whole, atol=1e-4)
    streamed = np.concatenate(list(iter_log_mel_chunks(blocks(x, 3001), cfg, 11)), axis=1)
    assert np.allclose(streamed, whole, atol=1e-4)


def test_frame_chunks_cover_every_frame_once():
    cfg = MOUTH
    x = signal(20000)
    info: dict = {}
    padded = pad_edges(x, cfg)
    starts = []
    for start, samples in iter_frame_chunks(blocks(x, 777), cfg, 5, info):
        count = 1 + (len(samples) - cfg.n_fft) // cfg.hop_length
        assert np.array_equal(samples, frame_slice(padded, start, count, cfg))
        starts.append((start, count))
    assert info["samples"] == len(x)
    assert starts[0][0] == 0 and sum(c for _, c in starts) == cfg.n_frames(len(x))
    assert all(a + c == b for (a, c), (b, _) in zip(starts, starts[1:]))


@pytest.mark.parametrize("name", ["mouth", "rmvpe", "rmvpe-uncentred"])
@pytest.mark.parametrize("n", [5000, 1100, 300])
def test_frame_slice_from_audio_equals_padding_everything(name, n):
    cfg = SETTINGS[name]
    x = signal(n)
    padded = pad_edges(x, cfg, extend_short=True)
    for start, count in [(0, 3), (2, 40), (max(0, cfg.n_frames(n) - 4), 9), (cfg.n_frames(n) + 2, 2)]:
        got = frame_slice_from_audio(x, start, count, cfg, extend_short=True)
        assert np.array_equal(got, frame_slice(padded, start, count, cfg)), (start, count)


def test_framing_equals_the_task_copies():
    from voxtool.tasks.mouth import infer as mouth_infer

    frontend = _rmvpe_frontend()

    x = signal(30000)
    if hasattr(mouth_infer, "compute_mel"):
        assert np.array_equal(log_mel(x, MOUTH, 13), mouth_infer.compute_mel(x, MOUTH, 13).T)
    if hasattr(mouth_infer, "iter_mel_chunks"):
        old = np.concatenate(list(mouth_infer.iter_mel_chunks(blocks(x, 4000), MOUTH, 9)))
        assert np.array_equal(np.concatenate(list(iter_log_mel_chunks(blocks(x, 4000), MOUTH, 9)), axis=1), old.T)
    if hasattr(frontend, "pad_signal"):
        for n in (30000, 400, 512, 513):
            assert np.array_equal(pad_edges(x[:n], RMVPE, extend_short=True), frontend.pad_signal(x[:n], 1024))
            for start, count in [(0, 64), (50, 64), (n // 160 - 10, 64)]:
                want = frontend.frame_slice_from_audio(x[:n], max(0, start), count, 160, 1024)
                assert np.array_equal(frame_slice_from_audio(x[:n], max(0, start), count, RMVPE, True), want)


def test_too_short_audio_is_bad_input():
    width = pad_width(MOUTH)
    assert width == 352 + 512
    with pytest.raises(BadInput, match=f"at least {width + 1} needed"):
        log_mel(signal(width), MOUTH)
    with pytest.raises(BadInput, match="too short"):
        list(iter_frame_chunks(blocks(signal(width), 100), MOUTH))
    assert len(pad_edges(signal(10), RMVPE, extend_short=True)) == 513 + 1024


# ------------------------------------------------------------------------------------------------ datasets


def make_dataset(root, meta=None, **lists):
    root.mkdir(parents=True, exist_ok=True)
    meta = {"format": "voxtool-toy-dataset", "format_version": 1, "voxtool_version": "0.1.0"} if meta is None else meta
    (root / "dataset.json").write_text(meta if isinstance(meta, str) else json.dumps(meta), encoding="utf-8")
    for split, entries in lists.items():
        (root / f"{split}.txt").write_text("".join(f"{e}\n" for e in entries), encoding="utf-8")
    return root


def open_toy(root, **kw):
    return PreparedDataset(
        root,
        format="voxtool-toy-dataset",
        task="toy",
        prep="voxtool prep toy",
        version_key="format_version",
        max_version=1,
        **kw,
    )


def test_prepared_dataset_reads_lists(tmp_path):
    root = make_dataset(tmp_path / "ds", train=["items/a.npz", "", "  items/b.npz  "], valid=["items/c.npz"])
    ds = open_toy(root)
    assert ds.meta["format_version"] == 1 and ds.voxtool_version == "0.1.0"
    assert ds.entries("train") == ["items/a.npz", "items/b.npz"]
    assert ds.paths("valid") == [root / "items/c.npz"]
    assert ds.entries("test") == [] and ds.counts() == {"train": 2, "valid": 1}


@pytest.mark.parametrize("entry", ["../outside.npz", "items/../../x.npz", "/etc/passwd", "."])
def test_prepared_dataset_refuses_escaping_entries(tmp_path, entry):
    root = make_dataset(tmp_path / "ds", train=["items/a.npz", entry])
    with pytest.raises(BadInput) as e:
        open_toy(root).entries("train")
    assert str(e.value.where) == str(root / "train.txt")
    assert "leaves the dataset folder" in e.value.problem and "\n" not in e.value.problem


def test_prepared_dataset_refuses_symlink_out(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root = make_dataset(tmp_path / "ds", train=["link/x.npz"])
    (root / "link").symlink_to(outside)
    with pytest.raises(BadInput, match="leaves the dataset folder"):
        open_toy(root).paths("train")


def test_prepared_dataset_missing_split(tmp_path):
    ds = open_toy(make_dataset(tmp_path / "ds", train=["a.npz"]))
    assert ds.entries("valid") == []
    with pytest.raises(BadInput, match="split list not found"):
        ds.entries("valid", required=True)
    with pytest.raises(BadInput, match="unknown split 'dev'"):
        ds.entries("dev")


@pytest.mark.parametrize("meta, problem", [
    ('{"format": "voxtool-toy-dataset",\n "x": ', "invalid JSON"),
    (b"\xff\xfe{".decode("latin-1"), "invalid JSON"),
    ('["a list"]', "not a prepared toy dataset (format None"),
    ({"format": "voxtool-pinyin-dataset"}, "format 'voxtool-pinyin-dataset'"),
    ({"format": "voxtool-toy-dataset", "format_version": 2, "voxtool_version": "9.0"}, "newer than this voxtool"),
    ({"format": "voxtool-toy-dataset", "format_version": "1"}, "must be a positive integer"),
])  # fmt: skip
def test_prepared_dataset_bad_header_is_one_line(tmp_path, meta, problem):
    root = make_dataset(tmp_path / "ds", meta)
    with pytest.raises(BadInput) as e:
        open_toy(root)
    assert problem in e.value.problem and "\n" not in e.value.problem
    assert str(e.value.where) == str(root / "dataset.json")


def test_prepared_dataset_without_header(tmp_path):
    with pytest.raises(BadInput, match=r"no dataset.json; run `voxtool prep toy` first"):
        open_toy(tmp_path)
    ds = open_toy(make_dataset(tmp_path / "old", {"format": "voxtool-toy-dataset"}))  # no version: older files
    assert ds.voxtool_version is None


# ------------------------------------------------------------------------------------------------ outputs


def test_output_formats_resolve():
    formats = OutputFormats(("csv", "npy", "json"))
    assert formats.resolve(None, None) == "csv"
    assert formats.resolve(Path("x.NPY"), None) == "npy"
    assert formats.resolve(Path("folder"), None) == "csv"
    assert formats.resolve(Path("x.npy"), "JSON") == "json"  # --format wins over the suffix
    with pytest.raises(BadInput, match="--format 'xml': choose from csv, npy, json"):
        formats.resolve(None, "xml")
    grids = OutputFormats(("csv", "json", "textgrid"), extensions={"textgrid": ".TextGrid"})
    assert grids.resolve(Path("a.textgrid"), None) == "textgrid" and grids.extension("textgrid") == ".TextGrid"


def test_plan_outputs(tmp_path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    fmt, jobs = plan_outputs([str(wav)], tmp_path / "out.json", OutputFormats(("csv", "npy", "json")))
    assert fmt == "json" and [(j.src, j.dst) for j in jobs] == [(wav, tmp_path / "out.json")]
    with pytest.raises(BadInput):
        plan_outputs([str(wav)], wav, OutputFormats(("csv", "npy", "json")), "csv")  # would overwrite the input


def test_writers_match_the_task_formats(tmp_path):
    times, values = np.arange(3) / 50, np.array([0.1, 0.25, 1 / 3], np.float32)
    write_csv(tmp_path / "m.csv", ["time", "mouth_opening"], zip(times, values), ["{:.6f}", "{:.6f}"])
    assert (
        tmp_path / "m.csv"
    ).read_bytes() == b"time,mouth_opening\n0.000000,0.100000\n0.020000,0.250000\n0.040000,0.333333\n"
    write_csv(tmp_path / "e.csv", ["start", "end"], [], ["{:.3f}", "{:.3f}"])
    assert (tmp_path / "e.csv").read_text() == "start,end\n"
    assert (
        csv_text(["a", "text"], [(1.5, 'he said "hi", then'), (2, "plain")], ["{:.1f}", "{}"])
        == 'a,text\n1.5,"he said ""hi"", then"\n2.0,plain\n'
    )
    write_npy(tmp_path / "m.npy", np.stack([times, values], axis=1))
    assert np.load(tmp_path / "m.npy").dtype == np.float32
    doc = {"fps": 50, "text": "你好"}
    write_json(tmp_path / "a.json", doc)
    assert (tmp_path / "a.json").read_text() == json.dumps(doc)
    write_json(tmp_path / "b.json", doc, indent=1, ensure_ascii=False, trailing_newline=True)
    assert (tmp_path / "b.json").read_text(encoding="utf-8") == json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def test_csv_writer_equals_the_task_copies(tmp_path):
    from voxtool.tasks.mouth import infer as mouth_infer

    if not hasattr(mouth_infer, "write_curve"):
        pytest.skip("mouth writes through voxtool.outputs")
    rng = np.random.default_rng(0)
    times, values = np.arange(50) / 50, rng.random(50).astype(np.float32)
    mouth_infer.write_curve(tmp_path / "old.csv", times, values, 50.0, "csv")
    write_csv(tmp_path / "new.csv", ["time", "mouth_opening"], zip(times, values), ["{:.6f}", "{:.6f}"])
    assert (tmp_path / "old.csv").read_bytes() == (tmp_path / "new.csv").read_bytes()


# ------------------------------------------------------------------------------------------------ ONNX helpers


def test_onnx_session_refuses_bad_files(tmp_path):
    from voxtool.onnx_export import onnx_session

    with pytest.raises(BadInput, match="ONNX model not found"):
        onnx_session(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(BadInput) as e:
        onnx_session(tmp_path / "junk.onnx")
    assert e.value.problem.startswith("cannot load ONNX model (") and "\n" not in e.value.problem


def test_export_failure_is_one_line(tmp_path):
    from voxtool.onnx_export import export_onnx

    class Bad(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("cannot trace this\nsecond line of the exporter's story")

    with pytest.raises(VoxtoolError, match="^ONNX export failed: RuntimeError: cannot trace this$") as e:
        export_onnx(Bad(), (torch.zeros(3),), tmp_path / "bad.onnx", input_names=["x"], output_names=["y"])
    assert "\n" not in str(e.value) and not (tmp_path / "bad.onnx").exists()


# ------------------------------------------------------------------------------------------------ prep pool


def square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("kind", ["thread", "process"])
@pytest.mark.parametrize("workers", [1, 2])
def test_map_items_in_order_and_progress(kind, workers):
    ticks = []
    got = list(map_items(square, range(20), workers, kind=kind, chunksize=3, advance=ticks.append))
    assert got == [x * x for x in range(20)] and ticks == [1] * 20


def test_map_items_as_completed():
    def slow_first(x):
        time.sleep(0.3 if x == 0 else 0.0)
        return x

    got = list(map_items(slow_first, range(4), 2, ordered=False))
    assert sorted(got) == [0, 1, 2, 3] and got[-1] == 0


def test_map_items_error_cancels_the_rest():
    started = []
    lock = threading.Lock()

    def work(x):
        with lock:
            started.append(x)
        if x == 0:
            raise BadInput(f"item{x}", "broken")
        time.sleep(0.05)
        return x

    with pytest.raises(BadInput, match="broken"):
        list(map_items(work, range(200), 2))
    assert len(started) < 200


def test_map_items_stop_cancels_the_rest():
    started = []

    def work(x):
        started.append(x)
        time.sleep(0.01)
        return x

    gen = map_items(work, range(200), 2, ordered=True)
    assert next(gen) == 0
    gen.close()  # the consumer stops (Ctrl-C in its loop, strict mode...): no queued item starts afterwards
    n = len(started)
    time.sleep(0.05)
    assert len(started) == n < 200


def test_map_items_torch_threads_restored():
    before = torch.get_num_threads()
    seen = list(map_items(lambda _: torch.get_num_threads(), range(3), 1, torch_threads=1))
    assert seen == [1, 1, 1] and torch.get_num_threads() == before
