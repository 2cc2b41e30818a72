"""Task plugins from the entry-point group `voxtool.tasks`.

A plugin is a `TaskPlugin`: its task name, a one-line summary, and the commands it adds to each verb
(`{"prep": {"lipsync": fn}, "train": {"mouth": fn}}`). voxtool's own tasks register exactly like third-party
ones. A plugin whose import fails is kept as a broken entry: `voxtool plugins` shows its error and every verb
gets a command under its name that explains the failure instead of running.

Heavy task-specific dependencies are extras of the voxtool distribution (`EXTRAS`): a plugin, or one of its
commands, that fails because one of them is missing says which extra to install (`pip install 'voxtool[pinyin]'`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

GROUP = "voxtool.tasks"
VERBS = ("prep", "train", "ssl", "infer", "convert", "transcribe", "eval", "export")
# top-level module -> the extra of pyproject.toml that installs it
EXTRAS = {"pypinyin": "pinyin", "jiwer": "pinyin", "praatio": "pinyin", "onnx": "export", "onnxruntime": "export",
          "pesq": "quality", "pystoi": "quality", "sklearn": "softvc", "webrtcvad": "diffvc"}


def missing_extra(exc: BaseException) -> str | None:
    """For a ModuleNotFoundError of a module an extra installs: "<module> is not installed (pip install
    'voxtool[<extra>]')"; None for any other exception."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    module = exc.name.split(".")[0]
    extra = EXTRAS.get(module)
    return None if extra is None else f"{module} is not installed (pip install 'voxtool[{extra}]')"


def _naming_the_extra(fn: Callable) -> Callable:
    """`fn` with a missing extra's ModuleNotFoundError turned into one VoxtoolError line naming the extra."""
    if getattr(fn, "_names_the_extra", False):  # discover() may run more than once per process
        return fn

    @functools.wraps(fn)
    def command(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ModuleNotFoundError as exc:
            hint = missing_extra(exc)
            if hint is None:
                raise
            from voxtool.errors import VoxtoolError

            raise VoxtoolError(hint) from exc

    command._names_the_extra = True
    return command


@dataclass
class TaskPlugin:
    name: str
    summary: str
    commands: dict[str, dict[str, Callable]] = field(default_factory=dict)
    version: str | None = None
    config: str | None = None  # "module:ConfigClass", used by `voxtool presets show` to fill in defaults
    # the configs of further preset tasks this plugin trains (`{"hubert-soft": "module:HubertSoftConfig"}`)
    configs: dict[str, str] = field(default_factory=dict)
    # what `voxtool demo` runs: demo(out: Path, quiet: bool) -> exit code (0 = the demo made its point), or
    # "module:function" naming it (imported only when the demo runs, so the plugin stays light)
    demo: Callable[..., int | None] | str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.commands) - set(VERBS)
        if unknown:
            raise ValueError(f"plugin {self.name}: unknown verb(s) {sorted(unknown)}; verbs are {VERBS}")

    def config_for(self, task: str | None) -> str | None:
        """"module:ConfigClass" of a preset whose `task` is `task`, when this plugin trains it."""
        return self.config if task == self.name else self.configs.get(task or "")

    def demo_function(self) -> Callable[..., int | None]:
        """The `demo` callable, importing it when it is given as "module:function"."""
        if not isinstance(self.demo, str):
            return self.demo
        import importlib

        module, _, attr = self.demo.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclass
class LoadedPlugin:
    entry_point: str  # the entry point's name
    source: str  # "module:attr"
    distribution: str
    version: str
    plugin: TaskPlugin | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.plugin is not None


def _entry_points() -> list[metadata.EntryPoint]:
    return sorted(metadata.entry_points(group=GROUP), key=lambda ep: ep.name)


def discover() -> list[LoadedPlugin]:
    """Load every plugin; failures become LoadedPlugin(error=...) and never raise."""
    loaded: list[LoadedPlugin] = []
    seen: set[str] = set()
    for ep in _entry_points():
        if ep.name in seen:  # the same distribution seen twice on sys.path
            continue
        seen.add(ep.name)
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        dist_version = dist.version if dist is not None else "?"
        item = LoadedPlugin(ep.name, ep.value, dist_name, dist_version)
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, TaskPlugin):
                obj = obj()
            if not isinstance(obj, TaskPlugin):
                raise TypeError(f"{ep.value} is a {type(obj).__name__}, not a voxtool TaskPlugin")
            obj.commands = {verb: {name: _naming_the_extra(fn) for name, fn in cmds.items()}
                            for verb, cmds in obj.commands.items()}
            item.plugin = obj
            if obj.version:
                item.version = obj.version
        except Exception as e:  # a broken plugin must not break the CLI
            hint = missing_extra(e)
            item.error = f"{type(e).__name__}: {e}" + (f"; {hint}" if hint else "")
        loaded.append(item)
    return loaded
