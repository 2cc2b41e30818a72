"""The command line: verbs, tools, plugins (installed and broken), errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import run_voxtool

VERBS = ["prep", "train", "ssl", "infer", "convert", "transcribe", "eval", "export"]


def test_help_lists_verbs_without_importing_torch():
    code = (
        "import sys\nfrom voxtool.cli import main\n"
        "rc = main(['--help'])\n"
        "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for verb in VERBS + ["plugins", "presets", "doctor", "demo"]:
        assert verb in out.stdout
    assert out.stdout.strip().endswith("NOTORCH 0")


def test_version():
    out = run_voxtool("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("voxtool 0.")


def test_plugins_lists_third_party_and_broken(toy_site):
    out = run_voxtool("plugins", "--json", extra_path=[toy_site])
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["toy"]["status"] == "ok"
    assert rows["toy"]["version"] == "0.3.1"
    assert "train toy" in rows["toy"]["commands"] and "infer toy" in rows["toy"]["commands"]
    assert rows["broken"]["status"] == "broken"
    assert "not-installed-anywhere" in rows["broken"]["error"]


def test_broken_plugin_commands_explain_failure(toy_site):
    out = run_voxtool("infer", "broken", extra_path=[toy_site])
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: plugin 'broken'")
    assert "not-installed-anywhere" in lines[0]
    # the rest of the CLI still works
    assert run_voxtool("train", "toy", "--help", extra_path=[toy_site]).returncode == 0


def test_unknown_command_is_usage_error():
    out = run_voxtool("train", "nonexistent-task")
    assert out.returncode == 2


def test_bad_preset_value_exit_2_with_key_path(toy_site, tmp_path):
    out = run_voxtool("train", "toy", "--runs-dir", str(tmp_path), "--exp", "x", "--set", "train.lr=-1",
                      extra_path=[toy_site])
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: preset ") and "train.lr" in lines[0]
    assert not (tmp_path / "x").exists()  # nothing started, nothing written


def test_unknown_preset_key_and_wrong_type(toy_site, tmp_path):
    out = run_voxtool("train", "toy", "--runs-dir", str(tmp_path), "--set", "model.widht=3", extra_path=[toy_site])
    assert out.returncode == 2 and "model.widht" in out.stderr
    out = run_voxtool("train", "toy", "--runs-dir", str(tmp_path), "--set", "train.steps=many", extra_path=[toy_site])
    assert out.returncode == 2 and "train.steps" in out.stderr


def test_missing_backend_is_exit_2(toy_site, tmp_path):
    out = run_voxtool("train", "toy", "--runs-dir", str(tmp_path), "--device", "sdaa", extra_path=[toy_site])
    assert out.returncode == 2
    assert "torch_sdaa" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_doctor_json():
    out = run_voxtool("doctor", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    devices = {b["device"]: b for b in info["backends"]}
    assert devices["cpu"]["count"] == 1
    assert devices["sdaa"]["package"] == "torch_sdaa"
    assert info["packages"]["pyworld"]["status"] == "ok"  # pkg_resources is present (setuptools<81)


def test_presets_list_and_show(toy_site):
    out = run_voxtool("presets", "list", "--json")
    assert out.returncode == 0
    names = {p["name"] for p in json.loads(out.stdout)}
    assert "mouth-tiny" in names or names  # shipped presets (tasks add theirs)
    toml_path = toy_site / "voxtool_toy" / "toy.toml"
    out = run_voxtool("presets", "show", str(toml_path), "--set", "train.steps=7", extra_path=[toy_site])
    assert out.returncode == 0, out.stderr
    assert 'task = "toy"' in out.stdout and "steps = 7" in out.stdout
    assert "ema_decay = 0.0" in out.stdout  # defaults filled in from the pydantic model


def test_option_decorators_resolve_postponed_annotations():
    """Plugins written with `from __future__ import annotations` keep their options under the decorators."""
    import typer
    from typer.testing import CliRunner

    namespace: dict = {}
    exec(
        "from __future__ import annotations\n"
        "from pathlib import Path\nfrom typing import Annotated\nimport typer\n"
        "from voxtool.options import common_flags, train_command\n"
        "@common_flags\n"
        "def infer(src: Annotated[Path, typer.Argument()], fps: Annotated[int, typer.Option()] = 50) -> None:\n"
        "    print('fps', fps, src.name)\n"
        "@train_command\n"
        "def train(data: Annotated[Path, typer.Argument()], *, opts) -> None:\n"
        "    print('steps', opts.steps, 'exp', opts.exp)\n",
        namespace,
    )
    app = typer.Typer()
    app.command("infer")(namespace["infer"])
    app.command("train")(namespace["train"])
    runner = CliRunner()
    out = runner.invoke(app, ["infer", "a.wav", "--fps", "30", "--quiet"])
    assert out.exit_code == 0 and "fps 30 a.wav" in out.output
    out = runner.invoke(app, ["train", "d", "--steps", "5", "--exp", "e"])
    assert out.exit_code == 0 and "steps 5 exp e" in out.output
