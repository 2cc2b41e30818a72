"""The `voxtool` command: verbs from DESIGN.md, task commands mounted from plugins.

This layer is thin: commands parse options and call importable functions. Nothing here imports torch at
module level, so `voxtool --help` stays fast. Errors from anywhere below become one line on stderr
(`error: <file>: <problem>`) with exit code 2 for bad input/usage and 1 for runtime failures.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
import typer.main

from voxtool import __version__, console
from voxtool.errors import BatchFailed, Interrupted, VoxtoolError
from voxtool.plugins import VERBS, LoadedPlugin, discover

VERB_HELP = {
    "prep": "Prepare datasets from raw corpora.",
    "train": "Train a model (supervised).",
    "ssl": "Train with unlabeled data (semi-supervised).",
    "infer": "Run a model on audio files.",
    "convert": "Convert voices.",
    "transcribe": "Transcribe speech or singing.",
    "eval": "Evaluate a model on a prepared dataset.",
    "export": "Export a model (e.g. ONNX).",
}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"voxtool {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or log lines.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """voxtool: singing and speech ML from the command line. `voxtool VERB TASK [ARGS]`."""
    console.set_quiet(quiet)
    console.set_debug(debug)


def _broken_command(item: LoadedPlugin):
    def broken() -> None:
        raise VoxtoolError(f"plugin '{item.entry_point}' ({item.source}) failed to load: {item.error}")

    broken.__doc__ = f"[unavailable] plugin failed to load: {item.error}"
    return broken


def build_app(plugins: list[LoadedPlugin] | None = None) -> typer.Typer:
    app = typer.Typer(
        name="voxtool",
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    plugins = discover() if plugins is None else plugins
    verbs = {v: typer.Typer(help=VERB_HELP[v], no_args_is_help=True) for v in VERBS}
    taken: set[tuple[str, str]] = set()
    for item in plugins:
        if item.plugin is None:
            for verb in VERBS:
                if (verb, item.entry_point) not in taken:
                    taken.add((verb, item.entry_point))
                    verbs[verb].command(name=item.entry_point)(_broken_command(item))
            continue
        for verb, commands in item.plugin.commands.items():
            for name, fn in commands.items():
                if (verb, name) in taken:  # first plugin wins; `voxtool plugins` shows the clash
                    item.error = (item.error or "") + f" clash: '{verb} {name}' already taken;"
                    continue
                taken.add((verb, name))
                verbs[verb].command(name=name)(fn)
    for verb in VERBS:
        app.add_typer(verbs[verb], name=verb, rich_help_panel="Verbs")

    app.command("plugins", rich_help_panel="Tools")(_plugins_command(plugins))
    presets_app = typer.Typer(help="List and show presets.", no_args_is_help=True)
    presets_app.command("list")(presets_list)
    presets_app.command("show")(presets_show(plugins))
    app.add_typer(presets_app, name="presets", rich_help_panel="Tools")
    app.command("doctor", rich_help_panel="Tools")(doctor)
    app.command("demo", rich_help_panel="Tools")(_demo_command(plugins))
    return app


def _plugins_command(plugins: list[LoadedPlugin]):
    def plugins_cmd(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
        """List task plugins, their versions and commands (or why they failed to load)."""
        rows = []
        for p in plugins:
            commands = [] if p.plugin is None else [f"{v} {n}" for v, cmds in p.plugin.commands.items() for n in cmds]
            rows.append(
                {
                    "name": p.entry_point,
                    "distribution": p.distribution,
                    "version": p.version,
                    "status": "ok" if p.ok and not p.error else ("broken" if not p.ok else "warning"),
                    "summary": p.plugin.summary if p.plugin else "",
                    "commands": commands,
                    "error": p.error,
                }
            )
        if json_out:
            console.emit_json(rows)
            return
        console.print_table(
            "voxtool plugins",
            ["task", "version", "status", "commands", "summary / error"],
            [
                [r["name"], f"{r['distribution']} {r['version']}", r["status"], ", ".join(r["commands"]),
                 r["error"] if r["error"] else r["summary"]]
                for r in rows
            ],
        )

    return plugins_cmd


def presets_list(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the presets shipped with voxtool."""
    from voxtool.presets import list_presets, read_toml

    rows = [[name, read_toml(path).get("task", "?"), str(path)] for name, path in list_presets().items()]
    if json_out:
        console.emit_json([{"name": n, "task": t, "path": p} for n, t, p in rows])
    else:
        console.print_table("presets", ["name", "task", "path"], rows)


def presets_show(plugins: list[LoadedPlugin]):
    def show(
        name: Annotated[str, typer.Argument(help="Preset name or TOML path.")],
        set_: Annotated[list[str], typer.Option("--set", help="Override key.path=value (repeatable).")] = [],  # noqa: B006
    ) -> None:
        """Print a preset fully resolved (base merged, overrides applied, defaults filled in) as TOML."""
        import importlib

        from voxtool.presets import apply_overrides, dump_toml, resolve_preset, validate

        data = resolve_preset(name)
        task = data.pop("task", None)
        data = apply_overrides(data, set_)
        config_path = None
        for p in plugins:
            if p.plugin is not None and p.plugin.config_for(task):
                config_path = p.plugin.config_for(task)
        if config_path:
            module, _, attr = config_path.partition(":")
            config_cls = getattr(importlib.import_module(module), attr)
            typer.echo(dump_toml(validate(config_cls, data, f"preset {name}"), task=task), nl=False)
        else:
            import tomli_w

            typer.echo(tomli_w.dumps({"task": task, **data} if task else data), nl=False)

    return show


def doctor(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Report Python, torch, device backends and optional packages."""
    import importlib
    import platform
    from importlib import metadata

    import torch

    from voxtool.devices import probe_backends, visible_env

    info: dict = {
        "voxtool": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "backends": probe_backends(),
        "visible_devices_env": visible_env(),
        "packages": {},
    }
    for pkg in ("numpy", "librosa", "soundfile", "soxr", "pyworld", "tensorboard", "onnx", "onnxruntime",
                "mir_eval", "pypinyin", "jiwer", "praatio", "matplotlib", "schedulefree"):
        try:
            version = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            version = None
        status = "missing"
        if version:
            try:
                importlib.import_module(pkg)
                status = "ok"
            except Exception as e:  # e.g. pyworld without pkg_resources
                status = f"import fails: {type(e).__name__}: {e}"
        info["packages"][pkg] = {"version": version, "status": status}
    if json_out:
        console.emit_json(info)
        return
    console.print_table(
        "voxtool doctor",
        ["item", "value"],
        [["voxtool", info["voxtool"]], ["python", info["python"]], ["platform", info["platform"]],
         ["torch", f"{info['torch']} (cuda build: {info['torch_cuda_build']})"]],
    )
    console.print_table(
        "device backends",
        ["device", "package", "installed", "devices", "DDP backend"],
        [[b["device"], b["package"], "yes" if b["installed"] else "no", b["count"], b["ddp_backend"]]
         for b in info["backends"]],
    )
    console.print_table(
        "packages", ["package", "version", "status"],
        [[k, v["version"] or "-", v["status"]] for k, v in info["packages"].items()],
    )


def _demo_command(plugins: list[LoadedPlugin]):
    """`voxtool demo`: the demo of the first task plugin that provides one (`TaskPlugin.demo`)."""
    provider = next((p.plugin for p in plugins if p.plugin is not None and p.plugin.demo is not None), None)

    def demo(
        out: Annotated[Path, typer.Option("--out", help="Folder for the demo's dataset, run and outputs.")] = Path("demo-out"),
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or log lines.")] = False,
    ) -> None:
        if provider is None:
            raise VoxtoolError("no installed task plugin provides a demo")
        console.set_quiet(quiet)
        code = provider.demo_function()(out=out, quiet=quiet)
        if code:
            raise typer.Exit(code)

    demo.__doc__ = ("End-to-end demo on synthetic data (no task plugin provides one)." if provider is None else
                    f"End-to-end demo of the {provider.name} task on synthetic data: {provider.summary}.")
    return demo


def _click_kind(exc: BaseException) -> str | None:
    """Typer vendors its own click: recognise its exceptions (and plain click's) by class name along the MRO."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    for kind in ("Exit", "Abort", "NoArgsIsHelpError", "UsageError", "ClickException"):
        if kind in names:
            return kind
    return None


def _option_name(param) -> str:
    """`--long-name` of an option (its first long flag), `NAME` of an argument."""
    opts = list(getattr(param, "opts", None) or [])
    if getattr(param, "param_type_name", "") == "argument" or not opts:
        return (getattr(param, "name", None) or "argument").upper()
    longs = [o for o in opts if o.startswith("--")]
    return (longs or opts)[0]


def _sentence(text: str) -> str:
    """A click/typer message as the problem part of one error line: no trailing period, lower-case start."""
    text = " ".join(str(text).split()).rstrip(".")
    text = text.replace("Input should be ", "must be ")
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def format_usage_error(exc: BaseException) -> str:
    """A click/typer UsageError -> `<option>: <problem>` (the part after `error: `), one line."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    message = str(getattr(exc, "message", "") or "")
    param = getattr(exc, "param", None)
    if "MissingParameter" in names:
        kind = getattr(exc, "param_type", None) or getattr(param, "param_type_name", None) or "value"
        where = _option_name(param) if param is not None else "argument"
        return f"{where}: required {kind} is missing"
    if "BadParameter" in names:
        if param is not None:
            where = _option_name(param)
        else:
            hint = getattr(exc, "param_hint", None)
            where = (hint if isinstance(hint, str) else " / ".join(hint or [])).strip("'") or "value"
        return f"{where}: {_sentence(message)}"
    if "NoSuchOption" in names:
        name = getattr(exc, "option_name", "?")
        maybe = sorted(getattr(exc, "possibilities", None) or [])
        return f"{name}: no such option" + (f" (did you mean {' or '.join(maybe)}?)" if maybe else "")
    if "BadOptionUsage" in names:
        name = getattr(exc, "option_name", "?")
        problem = message.replace(f"Option '{name}' ", "").replace(f"option '{name}' ", "")
        return f"{name}: {_sentence(problem)}"
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or "voxtool"
    for pattern, problem in (
        (r"No such command '(.*)'", "no such command (see '{path} --help')"),
        (r"Got unexpected extra argument(?:s|\(s\))? \((.*)\)", "unexpected extra argument"),
    ):
        found = re.match(pattern, message)
        if found:
            return f"{found.group(1)}: {problem.format(path=path)}"
    return f"{path}: {_sentence(message)}"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Every failure is one line on stderr (a traceback only with --debug).

    The click command is driven directly (make_context + invoke) rather than through Typer's standalone main,
    so usage errors, Ctrl-C and our own exceptions all reach the formatting here.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if "--debug" in args:
        console.set_debug(True)
    try:
        command = typer.main.get_command(build_app())
        with command.make_context("voxtool", args) as ctx:
            result = command.invoke(ctx)
        return result if isinstance(result, int) else 0
    except Interrupted as e:
        console.interrupted_line(str(e))
        return e.exit_code
    except BatchFailed as e:  # every failed input already has its line
        return e.exit_code
    except VoxtoolError as e:
        if console.is_debug():
            traceback.print_exc()
        console.error_line(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        console.interrupted_line()
        return 130
    except BrokenPipeError:  # e.g. `voxtool ... --json | head`: stop quietly
        try:  # the interpreter's final flush of stdout must not fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except Exception as e:  # anything unexpected: one line, traceback only with --debug
        kind = _click_kind(e)
        if kind == "Exit":
            return getattr(e, "exit_code", 0)
        if kind == "Abort":
            console.interrupted_line()
            return 130
        if kind == "NoArgsIsHelpError":  # `voxtool` / `voxtool infer` alone: the help text
            e.show()
            return getattr(e, "exit_code", 2)
        if kind == "UsageError":
            if console.is_debug():
                traceback.print_exc()
            console.error_line(format_usage_error(e))
            return 2
        if kind == "ClickException":
            console.error_line(_sentence(e.format_message()))
            return getattr(e, "exit_code", 1)
        if console.is_debug():
            traceback.print_exc()
        console.error_line(f"unexpected {type(e).__name__}: {e} (run with --debug for the traceback)")
        return 1
