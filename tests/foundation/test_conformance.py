"""Every task has the same shape (docs/architecture.md, "Anatomy of a task"), and heavy extras stay optional.

`check_task_shape(task, module_root)` lists the breaches of the template for one task plugin:
- `<root>.<task>.config` imports without torch (checked in a fresh interpreter);
- the plugin's `config=` names a class in that config module;
- `<root>.<task>.infer` has the torchcrepe ladder load_model -> predict -> predict_from_file ->
  predict_from_files_to_files, and `evaluate_dataset` is in infer.py or evaluate.py;
- a `<task>-tiny` preset exists and validates with the plugin's config class.
It runs over every installed plugin whose module is under `voxtool.tasks`, and is shown to catch a toy package
that breaks each rule (and to pass a toy package that keeps them).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from voxtool.plugins import GROUP, TaskPlugin, discover

LADDER = ("load_model", "predict", "predict_from_file", "predict_from_files_to_files")
EXTRA_MODULES = ("pypinyin", "jiwer", "praatio", "onnx", "onnxruntime")


def _import(name: str):
    try:
        return importlib.import_module(name), None
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
            return None, None  # the module itself does not exist
        return None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - any import failure is a breach to report
        return None, f"{type(exc).__name__}: {exc}"


def _plugin(task: str) -> TaskPlugin:
    for item in discover():
        if item.entry_point == task:
            if item.plugin is None:
                raise AssertionError(f"plugin {task} failed to load: {item.error}")
            return item.plugin
    raise AssertionError(f"no installed plugin {task!r}")


def check_task_shape(task: str, module_root: str = "voxtool.tasks", *, plugin: TaskPlugin | None = None,
                     preset: str | Path | None = None, sys_path: tuple[str, ...] = ()) -> list[str]:
    """The template's breaches of task `task` (an empty list when it conforms). `plugin` defaults to the installed
    entry point of that name; `preset` to the named preset `<task>-tiny`; `sys_path` is prepended in the
    subprocess that imports the config module."""
    plugin = plugin or _plugin(task)
    package = f"{module_root}.{task}"
    problems: list[str] = []

    # config.py: the whole config, importable without torch
    config_module = f"{package}.config"
    code = (f"import sys; sys.path[:0] = {list(map(str, sys_path))!r}; import {config_module}; "
            "assert 'torch' not in sys.modules, 'imports torch'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if out.returncode:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        reason = "imports torch" if "imports torch" in last else f"cannot be imported ({last})"
        problems.append(f"config: {config_module} {reason}")

    # the plugin's config= names a class in config.py
    config_cls = None
    target = plugin.config or ""
    if not target.startswith(f"{config_module}:"):
        problems.append(f"config: the plugin's config= is {plugin.config!r}, not a class in {config_module}")
    else:
        module, error = _import(config_module)
        config_cls = getattr(module, target.split(":", 1)[1], None) if module else None
        if config_cls is None:
            problems.append(f"config: {target} not found" + (f" ({error})" if error else ""))

    # infer.py: the ladder; evaluate_dataset in infer.py or evaluate.py
    infer, error = _import(f"{package}.infer")
    if infer is None:
        problems.append(f"infer: {package}.infer " + (f"cannot be imported ({error})" if error else "is missing"))
    missing = [name for name in LADDER if not callable(getattr(infer, name, None))]
    if missing:
        problems.append(f"infer: missing {', '.join(missing)}")
    evaluate, _ = _import(f"{package}.evaluate")
    if not any(callable(getattr(m, "evaluate_dataset", None)) for m in (infer, evaluate)):
        problems.append(f"evaluate_dataset: in neither {package}.infer nor {package}.evaluate")

    # a <task>-tiny preset that validates with the config class
    from voxtool.errors import BadInput
    from voxtool.presets import load_config

    preset = preset or f"{task}-tiny"
    try:
        if config_cls is not None:
            load_config(config_cls, preset, task=task)
        else:
            from voxtool.presets import find_preset

            find_preset(preset)
    except BadInput as exc:
        problems.append(f"preset: {task}-tiny: {exc}")
    return problems


def builtin_tasks() -> list[str]:
    return sorted(item.entry_point for item in discover() if item.source.startswith("voxtool.tasks."))


def test_the_builtin_tasks_are_found():
    assert {"mouth", "rmvpe", "pinyin", "hifigan"} <= set(builtin_tasks())


@pytest.mark.parametrize("task", builtin_tasks())
def test_task_has_the_template_shape(task):
    problems = check_task_shape(task)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------- the check itself

GOOD_CONFIG = '''
from voxtool.presets import StrictModel


class ModelSection(StrictModel):
    width: int = 4


class {Name}Config(StrictModel):
    model: ModelSection = ModelSection()
'''
LADDER_SRC = "".join(f"def {name}(*a, **k):\n    return None\n\n\n" for name in (*LADDER, "evaluate_dataset"))


def fake_tasks(root: Path) -> Path:
    """`fake_vt/tasks/good` (conforms) and `fake_vt/tasks/bad` (breaks every rule) under `root/site`."""
    site = root / "site"
    for pkg in ("fake_vt", "fake_vt/tasks", "fake_vt/tasks/good", "fake_vt/tasks/bad"):
        (site / pkg).mkdir(parents=True)
        (site / pkg / "__init__.py").write_text("")
    good = site / "fake_vt/tasks/good"
    (good / "config.py").write_text(GOOD_CONFIG.format(Name="Good"))
    (good / "infer.py").write_text(LADDER_SRC)
    (root / "good-tiny.toml").write_text('task = "good"\n[model]\nwidth = 2\n')
    bad = site / "fake_vt/tasks/bad"
    (bad / "config.py").write_text("import torch  # a heavy import in the config module\n"
                                   + GOOD_CONFIG.format(Name="Bad"))
    (bad / "infer.py").write_text("def predict(*a, **k):\n    return None\n")  # no ladder, no evaluate_dataset
    return site


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    site = fake_tasks(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [m for m in sys.modules if m.startswith("fake_vt")]:
        del sys.modules[name]


def test_check_passes_a_conforming_toy_task(fake_site, tmp_path):
    plugin = TaskPlugin(name="good", summary="conforms", config="fake_vt.tasks.good.config:GoodConfig")
    assert check_task_shape("good", "fake_vt.tasks", plugin=plugin, preset=tmp_path / "good-tiny.toml",
                            sys_path=(str(fake_site),)) == []


def test_check_names_every_breach_of_a_toy_task(fake_site, tmp_path):
    plugin = TaskPlugin(name="bad", summary="breaks the template", config="fake_vt.tasks.bad.train:BadConfig")
    problems = check_task_shape("bad", "fake_vt.tasks", plugin=plugin, sys_path=(str(fake_site),))
    text = "\n".join(problems)
    assert "fake_vt.tasks.bad.config imports torch" in text
    assert "config= is 'fake_vt.tasks.bad.train:BadConfig', not a class in fake_vt.tasks.bad.config" in text
    assert "infer: missing load_model, predict_from_file, predict_from_files_to_files" in text
    assert "evaluate_dataset: in neither" in text
    assert "preset: bad-tiny" in text and "unknown preset 'bad-tiny'" in text
    assert len(problems) == 5, problems
    # a preset that does not validate with the config class is a breach too
    (tmp_path / "bad-tiny.toml").write_text('task = "bad"\n[model]\nwidth = "wide"\n')
    good = TaskPlugin(name="good", summary="", config="fake_vt.tasks.good.config:GoodConfig")
    (tmp_path / "good-tiny.toml").write_text('task = "good"\n[model]\nwidth = "wide"\n')
    problems = check_task_shape("good", "fake_vt.tasks", plugin=good, preset=tmp_path / "good-tiny.toml",
                                sys_path=(str(fake_site),))
    assert len(problems) == 1 and problems[0].startswith("preset: good-tiny") and "model.width" in problems[0]


# ------------------------------------------------------------------------------------- extras

NEEDS_PYPINYIN = '''
raise ModuleNotFoundError("No module named 'pypinyin'", name="pypinyin")
'''
NEEDS_ONNX = '''
from voxtool.plugins import TaskPlugin


def export() -> None:
    """Export (needs onnxruntime)."""
    import onnxruntime  # noqa: F401  (made to fail by the test)


plugin = TaskPlugin(name="needy", summary="needs the export extra", commands={"export": {"needy": export}})
'''


@pytest.fixture
def extra_plugins(tmp_path, monkeypatch):
    """Two plugins: one failing at import for want of pypinyin, one whose command lacks onnxruntime."""
    from importlib import metadata

    import voxtool.plugins as plugins

    (tmp_path / "needs_pypinyin.py").write_text(NEEDS_PYPINYIN)
    (tmp_path / "needs_onnx.py").write_text(NEEDS_ONNX)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ModuleNotFoundError
    eps = [metadata.EntryPoint("lyrics", "needs_pypinyin:plugin", GROUP),
           metadata.EntryPoint("needy", "needs_onnx:plugin", GROUP)]
    monkeypatch.setattr(plugins, "_entry_points", lambda: eps)
    yield
    for name in ("needs_pypinyin", "needs_onnx"):
        sys.modules.pop(name, None)


def test_a_plugin_missing_its_extra_names_the_extra(extra_plugins):
    loaded = {item.entry_point: item for item in discover()}
    assert not loaded["lyrics"].ok
    assert loaded["lyrics"].error.endswith("pypinyin is not installed (pip install 'voxtool[pinyin]')")


def test_a_command_missing_its_extra_names_the_extra(extra_plugins, capsys):
    from voxtool.cli import main

    code = main(["export", "needy"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "error: onnxruntime is not installed (pip install 'voxtool[export]')"


def test_extras_are_optional_for_help_pitch_and_mouth():
    """With the pinyin and export extras' modules unimportable: `voxtool --help` works, every built-in plugin
    loads, and the rmvpe, mouth and hifigan training paths import."""
    code = textwrap.dedent(f"""
        import sys
        for name in {EXTRA_MODULES!r}:
            sys.modules[name] = None  # import raises ModuleNotFoundError
        from voxtool.cli import main
        from voxtool.plugins import discover
        broken = [(i.entry_point, i.error) for i in discover() if not i.ok]
        assert not broken, broken
        assert main(["--help"]) == 0
        import voxtool.tasks.rmvpe.train, voxtool.tasks.mouth.train, voxtool.tasks.hifigan.train
        import voxtool.tasks.rmvpe.infer, voxtool.tasks.mouth.infer, voxtool.tasks.hifigan.infer
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_pyproject_keeps_heavy_stacks_in_extras():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    assert not any(name in core for name in EXTRA_MODULES)
    extras = project["optional-dependencies"]
    assert {"pinyin", "export", "all", "test"} <= set(extras)
    (everything,) = extras["all"]  # "voxtool[a,b,...]": every extra but `test`
    assert set(everything.removeprefix("voxtool[").removesuffix("]").split(",")) == set(extras) - {"all", "test"}
    from voxtool.plugins import EXTRAS

    distribution = {"sklearn": "scikit-learn"}  # modules whose distribution has another name
    for module, extra in EXTRAS.items():
        assert any(dep.lower().startswith(distribution.get(module, module)) for dep in extras[extra]), (module, extra)


def _task_imports(source: str) -> set[str]:
    """The voxtool tasks a module's source imports (`voxtool.tasks.<name>` in an import statement)."""
    import re

    return set(re.findall(r"^\s*(?:from|import)\s+voxtool\.tasks\.(\w+)", source, flags=re.M))


def test_no_task_imports_another_task_and_no_layer_imports_a_task():
    """What two tasks need lives below both (docs/architecture.md); the check itself is shown to catch a breach."""
    assert _task_imports("x = 1\n    from voxtool.tasks.hifigan.data import split_names\n") == {"hifigan"}
    root = Path(__file__).resolve().parents[2] / "voxtool"
    breaches = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        own = rel.parts[1] if rel.parts[0] == "tasks" and len(rel.parts) > 2 else None
        allowed = {own} if own else set()
        if rel.parts[0] == "tasks" and len(rel.parts) == 2:
            continue  # voxtool/tasks/__init__.py
        if rel.parts[0] not in ("tasks",) and rel.name in ("cli.py", "plugins.py"):
            continue  # the CLI layer mounts the tasks
        for task in _task_imports(path.read_text(encoding="utf-8")) - allowed:
            breaches.append(f"{rel} imports voxtool.tasks.{task}")
    assert not breaches, breaches
