"""Bad input and faults on the command line (issue 9, section 4A), one class of defect per section:

1. an output never replaces an input or a model (checked before any work);
2. every numeric option has a range, checked while parsing;
3. usage errors are one line `error: <option>: <problem>`, exit 2;
4. one bad file does not stop a batch (every file tried, one line each, --json still printed, exit 2; --fail-fast);
5. Ctrl-C says what was finished, exits 130 and leaves no half-written file.

Commands run in-process through `voxtool.cli.main` (the same code path as the `voxtool` executable) with tiny
untrained models, so the whole file takes seconds.
"""

from __future__ import annotations

import json
import os
import re
import typing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voxtool.cli import main

SR = 16000


def tone(path: Path, seconds: float = 1.5, freq: float = 220.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


def run(capsys, *args: str) -> tuple[int, list[str], str]:
    """(exit code, stderr lines, stdout) of `voxtool ARGS` run in this process."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of atomic writes (voxtool.fileio names them '.<stem>.*.tmp*')."""
    return [p for p in folder.rglob(".*") if ".tmp" in p.name]


# ------------------------------------------------------------------------------------------- tiny models


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Untrained tiny models of each task in the files inference reads (a run folder for mouth)."""
    from voxtool.pitch.rmvpe_model import E2E0
    from voxtool.pitch.settings import RmvpeArch
    from voxtool.tasks.mouth.config import ModelSection, default_mel
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator
    from voxtool.tasks.pinyin.config import PinyinConfig
    from voxtool.tasks.pinyin.model import build_model
    from voxtool.tasks.pinyin.tokens import Vocab
    from voxtool.training.modelfile import save_model_file

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    mouth_cfg = ModelSection(conv_dims=8, hidden_dims=8, n_layers=1, n_groups=4)
    mouth = BiLSTMCurveEstimator(mouth_cfg, 0.0, 1.0)
    (root / "mouth-run").mkdir()
    save_model_file(root / "mouth-run" / "model.pt", "mouth", {"model": mouth_cfg.model_dump(mode="json")},
                    mouth.state_dict(), meta={"value_range": [0.0, 1.0], "mel": default_mel().model_dump(mode="json")})
    (root / "mouth-run" / "config.toml").write_text('task = "mouth"\n')
    rmvpe = E2E0(RmvpeArch(n_blocks=1, n_levels=3, n_inter=1, base_channels=4, gru_hidden=8))
    torch.save(rmvpe.state_dict(), root / "rmvpe.pt")  # the published layout: arch read from the shapes
    from voxtool.presets import load_config

    pinyin_cfg = load_config(PinyinConfig, "pinyin-tiny", task="pinyin")
    vocab = Vocab()
    save_model_file(root / "pinyin.pt", "pinyin", pinyin_cfg.model_dump(mode="json"),
                    build_model(pinyin_cfg, vocab).state_dict(), meta={"vocab": vocab.to_dict()})
    return {"mouth": root / "mouth-run", "rmvpe": root / "rmvpe.pt", "pinyin": root / "pinyin.pt"}


INFER = {  # command line up to the inputs, and the options after them
    "mouth": (["infer", "mouth"], ["--device", "cpu"]),
    "rmvpe": (["infer", "rmvpe"], ["--device", "cpu"]),
    "pinyin": (["transcribe", "pinyin"], ["--device", "cpu"]),
}


def infer_args(task: str, inputs: list, model: Path, *extra) -> list:
    head, tail = INFER[task]
    return [*head, *inputs, "--model", model, *tail, *extra]


# ------------------------------------------------------------------------------------- 1. overwrites


@pytest.mark.parametrize("task", ["mouth", "rmvpe", "pinyin"])
def test_out_naming_the_input_or_the_model_is_refused_before_any_work(task, tmp_path, capsys):
    wav = tone(tmp_path / "song.wav")
    model = tmp_path / "model.pt"
    model.write_bytes(b"a precious model; never loaded, because the check comes first")
    before = {p: p.read_bytes() for p in (wav, model)}
    for target, role in ((wav, "input"), (model, "model")):
        code, err, out = run(capsys, *infer_args(task, [wav], model, "--out", target))
        assert code == 2, err
        assert err == [f"error: {target}: would overwrite the {role} {target}; choose another --out"]
        assert out == ""
    assert {p: p.read_bytes() for p in before} == before


def test_run_folder_files_are_protected(models, tmp_path, capsys):
    wav = tone(tmp_path / "song.wav")
    run_dir = models["mouth"]
    before = {p: p.read_bytes() for p in run_dir.iterdir()}
    for name in ("model.pt", "config.toml"):
        code, err, _ = run(capsys, *infer_args("mouth", [wav], run_dir, "--out", run_dir / name))
        assert code == 2 and len(err) == 1 and "would overwrite the" in err[0] and str(run_dir) in err[0], err
    code, err, _ = run(capsys, "export", "mouth", "--model", run_dir, "--out", run_dir / "model.pt")
    assert code == 2 and err[0].startswith(f"error: {run_dir / 'model.pt'}: would overwrite the model"), err
    assert {p: p.read_bytes() for p in run_dir.iterdir()} == before
    # a new file in the run folder is fine
    code, err, _ = run(capsys, *infer_args("mouth", [wav], run_dir, "--out", tmp_path / "curve.csv"))
    assert code == 0, err


@pytest.mark.parametrize("verb", ["mouth", "rmvpe"])
def test_export_out_naming_the_model_is_refused(verb, tmp_path, capsys):
    model = tmp_path / "m.onnx" if verb == "rmvpe" else tmp_path / "m.pt"
    model.write_bytes(b"precious")
    code, err, _ = run(capsys, "export", verb, "--model", model, "--out", model)
    assert code == 2 and err == [f"error: {model}: would overwrite the model {model}; choose another --out"]
    assert model.read_bytes() == b"precious"


def test_lyrics_file_is_protected(tmp_path, capsys):
    wav = tone(tmp_path / "a.wav")
    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text("ni3 hao3\n", encoding="utf-8")
    code, err, _ = run(capsys, "transcribe", "pinyin", wav, "--model", tmp_path / "m.pt", "--text", lyrics,
                       "--out", lyrics)
    assert code == 2 and "would overwrite the input" in err[0] and lyrics.read_text(encoding="utf-8") == "ni3 hao3\n"


def test_check_outputs_sees_links_and_mirrored_outputs(tmp_path):
    from voxtool.errors import BadInput
    from voxtool.inputs import check_outputs, expand_inputs

    wav = tone(tmp_path / "in" / "a.wav")
    hard = tmp_path / "hard.csv"
    os.link(wav, hard)
    with pytest.raises(BadInput, match="would overwrite the input"):
        check_outputs([hard], [wav])
    soft = tmp_path / "soft.csv"
    soft.symlink_to(wav)
    with pytest.raises(BadInput, match="would overwrite the input"):
        check_outputs([soft], [wav])
    # a directory batch whose mirrored outputs land on another input
    (tmp_path / "out").mkdir()
    other = tmp_path / "out" / "notes.csv"
    other.write_text("keep me\n")
    with pytest.raises(BadInput, match="would overwrite the input"):
        expand_inputs([str(tmp_path / "in"), str(other)], tmp_path / "out", ".csv")
    assert other.read_text() == "keep me\n"
    # protect= covers a model file and every existing file of a run folder
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"x")
    (run_dir / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(BadInput, match="would overwrite the model"):
        expand_inputs([str(wav)], run_dir / "last.pt", ".csv", protect=[run_dir])
    with pytest.raises(BadInput, match="would overwrite the run folder file"):
        expand_inputs([str(wav)], run_dir / "metrics.jsonl", ".csv", protect=[run_dir])
    assert expand_inputs([str(wav)], run_dir / "new.csv", ".csv", protect=[run_dir])[0].dst == run_dir / "new.csv"


def test_prep_output_folder_may_not_be_an_input(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "valid.txt").write_text("keep\n")
    for args in (["prep", "lipsync", src, src], ["prep", "unlabeled", src, src], ["prep", "pitch", src, src],
                 ["prep", "tsv", src, src]):
        code, err, _ = run(capsys, *args)
        assert code == 2 and err == [f"error: {src}: is the input {src} itself; choose another output folder"], err
    # a list file inside OUT would be rewritten by prep
    out = tmp_path / "out"
    out.mkdir()
    (out / "valid.txt").write_text("mine\n")
    code, err, _ = run(capsys, "prep", "lipsync", src, out, "--valid", out / "valid.txt")
    assert code == 2 and "lies inside the output folder" in err[0]
    code, err, _ = run(capsys, "prep", "unlabeled", src, out, "--like", out)
    assert code == 2 and "is the input" in err[0]
    assert (src / "valid.txt").read_text() == "keep\n" and (out / "valid.txt").read_text() == "mine\n"


# ------------------------------------------------------------------------------------- 2. ranges


def _numeric(annotation) -> bool:
    return any(a in (int, float) for a in (typing.get_args(annotation) or (annotation,)))


def test_every_numeric_option_of_every_command_has_a_range():
    import typer.main

    from voxtool.cli import build_app

    unbounded = []

    def walk(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
        for param in getattr(command, "params", []):
            descriptor = getattr(param, "type_descriptor", None)
            if descriptor is not None and _numeric(descriptor.annotation):
                if param.min is None or param.max is None:
                    unbounded.append(f"voxtool {' '.join(path)} {param.opts[0]}")

    walk(typer.main.get_command(build_app()), [])
    assert not unbounded, unbounded


@pytest.mark.parametrize("args, option", [
    (["infer", "mouth", "missing.wav", "--model", "m.pt", "--fps", "1e9"], "--fps"),
    (["infer", "rmvpe", "missing.wav", "--model", "m.pt", "--batch-size", "100000"], "--batch-size"),
    (["transcribe", "pinyin", "missing.wav", "--model", "m.pt", "--beam", "0"], "--beam"),
    (["train", "mouth", "missing", "--steps", "100000000000"], "--steps"),
    (["train", "rmvpe", "missing", "--nproc-per-node", "100000"], "--nproc-per-node"),
    (["prep", "tsv", "a.tsv", "out", "--workers", "100000"], "--workers"),
    (["export", "mouth", "--model", "m.pt", "--out", "m.onnx", "--sample-rate", "1"], "--sample-rate"),
])
def test_absurd_values_stop_before_any_work(args, option, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the inputs do not exist: the option must be refused before they are looked at
    code, err, out = run(capsys, *args)
    assert code == 2
    assert len(err) == 1 and re.fullmatch(rf"error: {option}: must be (greater|less) than or equal to \S+", err[0])
    assert out == "" and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------- 3. usage errors


@pytest.mark.parametrize("args, line", [
    (["infer", "mouth", "a.wav", "--model", "m", "--fps", "abc"], r"error: --fps: must be a valid number.*"),
    (["infer", "mouth", "a.wav"], r"error: --model: required option is missing"),
    (["infer", "mouth", "--model", "m"], r"error: INPUTS: required argument is missing"),
    (["infer", "mouth", "a.wav", "--model", "m", "--fsp", "3"], r"error: --fsp: no such option \(did you mean --fps\?\)"),
    (["infer", "mouth", "a.wav", "--model"], r"error: --model: requires an argument"),
    (["train", "no-such-task"], r"error: no-such-task: no such command \(see 'voxtool train --help'\)"),
    (["eval", "mouth", "a", "b", "--model", "m"], r"error: b: unexpected extra argument"),
    (["infer", "rmvpe", "a.wav", "--model", "m", "--threshold", "2"], r"error: --threshold: must be less than or equal to 1"),
])
def test_usage_errors_are_one_line(args, line, capsys):
    code, err, out = run(capsys, *args)
    assert code == 2
    assert len(err) == 1 and re.fullmatch(line, err[0]), err
    assert "Usage:" not in out + "\n".join(err)


def test_help_still_works(capsys):
    code, _, out = run(capsys, "infer", "mouth", "--help")
    assert code == 0 and "--fail-fast" in out and "--fps" in out


# ------------------------------------------------------------------------------------- 4. batches


def bad_folder(root: Path) -> Path:
    """in/a.wav (fine), in/b.wav (not audio), in/c.wav (fine): sorted, so the bad one is in the middle."""
    tone(root / "in" / "a.wav")
    (root / "in" / "b.wav").write_bytes(b"RIFF but not really a wav file")
    tone(root / "in" / "c.wav", freq=330.0)
    return root / "in"


@pytest.mark.parametrize("task", ["mouth", "rmvpe", "pinyin"])
def test_one_bad_file_does_not_stop_the_batch(task, models, tmp_path, capsys):
    src = bad_folder(tmp_path)
    out = tmp_path / "out"
    code, err, stdout = run(capsys, *infer_args(task, [src], models[task], "--out", out, "--json"))
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"error: {src / 'b.wav'}: cannot read audio"), err
    results = json.loads(stdout)
    assert [Path(r["input"]).name for r in results] == ["a.wav", "b.wav", "c.wav"]
    assert results[1]["output"] is None and results[1]["error"].startswith("cannot read audio")
    assert "error" not in results[0] and "error" not in results[2]
    written = sorted(p.name for p in out.iterdir())
    assert written == ["a.csv", "c.csv"], written
    # --fail-fast: the old behaviour, stop at the first bad file
    out2 = tmp_path / "out2"
    code, err, stdout = run(capsys, *infer_args(task, [src], models[task], "--out", out2, "--json", "--fail-fast"))
    assert code == 2 and len(err) == 1 and "b.wav: cannot read audio" in err[0] and stdout == ""
    assert sorted(p.name for p in out2.iterdir()) == ["a.csv"]


def test_library_default_is_still_fail_fast(models, tmp_path):
    from voxtool.errors import BadInput
    from voxtool.inputs import expand_inputs
    from voxtool.tasks.mouth.infer import load_model, predict_from_files_to_files

    src = bad_folder(tmp_path)
    with pytest.raises(BadInput, match="cannot read audio"):
        predict_from_files_to_files(expand_inputs([str(src)], tmp_path / "out", ".csv"), load_model(models["mouth"]))


def test_run_jobs_records_failures_and_exit_codes(capsys):
    from voxtool.batch import run_jobs
    from voxtool.errors import BadInput, BatchFailed, VoxtoolError
    from voxtool.inputs import Job

    jobs = [Job(Path(f"{n}.wav"), Path(f"{n}.csv")) for n in "abcd"]

    def work(job):
        if job.src.stem == "b":
            raise BadInput(None, "too short")
        if job.src.stem == "c":
            raise VoxtoolError("cannot align")
        return {"input": str(job.src), "output": str(job.dst)}

    results = run_jobs(jobs, work, fail_fast=False)
    assert capsys.readouterr().err.splitlines() == ["error: b.wav: too short", "error: c.wav: cannot align"]
    assert [r.get("error") for r in results] == [None, "too short", "cannot align", None]
    assert len(results.ok) == 2 and results.exit_code == 2
    with pytest.raises(BatchFailed) as info:
        results.raise_if_failed()
    assert info.value.exit_code == 2
    with pytest.raises(BadInput, match="too short") as info:
        run_jobs(jobs, work, fail_fast=True)
    assert info.value.where == "b.wav"


# ------------------------------------------------------------------------------------- 5. Ctrl-C


def test_ctrl_c_in_a_batch_says_what_was_written(models, tmp_path, capsys, monkeypatch):
    """Ctrl-C while the third of four files is being written: two outputs, no partial third, exit 130."""
    import voxtool.tasks.rmvpe.infer as rmvpe_infer
    from voxtool.fileio import atomic_write

    for name in "abcd":
        tone(tmp_path / "in" / f"{name}.wav")
    real = rmvpe_infer.write_track
    calls = []

    def write_then_stop(path, track, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            with atomic_write(path, "w") as f:
                f.write("time,f0\n0.000,")  # half a file...
                raise KeyboardInterrupt  # ...when the user presses Ctrl-C
        return real(path, track, *args, **kwargs)

    monkeypatch.setattr(rmvpe_infer, "write_track", write_then_stop)
    out = tmp_path / "out"
    code, err, stdout = run(capsys, *infer_args("rmvpe", [tmp_path / "in"], models["rmvpe"], "--out", out, "--json"))
    assert code == 130
    assert err == [f"interrupted: 2 of 4 files written to {out}"]
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"] and not leftovers(out)


def test_ctrl_c_during_prep_says_how_far_it_got(tmp_path, capsys, monkeypatch):
    import voxtool.tasks.rmvpe.data as rmvpe_data
    from voxtool.tasks.rmvpe.synth import write_csv_dataset

    write_csv_dataset(tmp_path / "src", n_train=4, n_test=1, seconds=0.5)
    real = rmvpe_data.prepare_item
    calls = []

    def prepare_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(rmvpe_data, "prepare_item", prepare_then_stop)
    out = tmp_path / "data"
    code, err, _ = run(capsys, "prep", "pitch", tmp_path / "src", out)
    assert code == 130 and len(err) == 1, err
    assert err[0].startswith(f"interrupted: 2 of 5 items prepared in {out}; ")
    assert not (out / "dataset.json").exists() and not leftovers(out)


def test_ctrl_c_anywhere_is_one_line_and_130(capsys, monkeypatch):
    import voxtool.cli as cli

    def doctor() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "doctor", doctor)
    code, err, _ = run(capsys, "doctor")
    assert code == 130 and err == ["interrupted"]


def test_plot_paths_are_checked_too(tmp_path, capsys):
    wav = tone(tmp_path / "song.wav")
    model = tmp_path / "model.pt"
    model.write_bytes(b"precious")
    for plot in (model, wav):  # not a .png: a folder would be needed, and these are files
        code, err, _ = run(capsys, "infer", "mouth", wav, "--model", model, "--out", tmp_path / "c.csv", "--plot", plot)
        assert code == 2 and err == [f"error: {plot}: --plot must be a folder (or, with one input, a .png file)"]
    png = tmp_path / "model.png"
    png.write_bytes(b"an input image")
    code, err, _ = run(capsys, "infer", "mouth", wav, png, "--model", model, "--out", tmp_path / "o", "--plot", png)
    assert code == 2 and "--plot must be a folder" in err[0]
    assert model.read_bytes() == b"precious" and not (tmp_path / "c.csv").exists()
