"""R^3-MOE's own model files: a bare state dict with `config.yaml` beside it, as the original's `eval.py`, GUI and
`export_onnx.py` read them (`experiments/<exp>/ema_model_8.pt` + `config.yaml` [+ `spk_mapping.json`]).

    model = load_original(Path("experiments/1212s2k/ema_model_8.pt"))   # -> infer.MouthModel
    cfg = read_original_config(Path("experiments/1212s2k/config.yaml"))  # -> OriginalConfig

`config.yaml` holds two tables:
- `dataset_args`: sample_rate, win_size (= n_fft), hop_size, mel_bins, f_min, f_max (null = sample_rate / 2);
- `model_args`: in_dims (= mel_bins), conv_dims, hidden_dims, n_layers, conv_dropout, num_speakers, vmin, vmax.

The front-end built from it is the original's `PitchAdjustableMelSpectrogram` at inference: reflect padding of
(win - hop) // 2 samples, a centred (reflect) STFT with a Hann window of win samples, magnitude, librosa's Slaney
mel filters, ln clamped at 1e-5. The original pads (win - hop + 1) // 2 on the right; voxtool's `MelConfig` pads
both sides alike, which is the same when win - hop is even (every published config: 1024 - 320). When it is odd,
only the last n_fft / hop frames can differ slightly.

The state dict's keys are voxtool's module names (`input_stack.*`, `rnn.*`, `output_proj.{0,2}.*`, `k_filter.weight`
(num_speakers, 1)), so the weights load strictly after checking them against the config. The per-singer gains
are kept (`infer mouth --speaker NAME` with `spk_mapping.json` beside the file); v2025's 1-D `k_filter`
(a plain multiplier) is dropped, as the original's inference drops every gain.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voxtool.audio.mel_config import MelConfig
from voxtool.errors import BadInput
from voxtool.tasks.mouth.config import ModelSection, default_mel

CONFIG_NAME = "config.yaml"
SPEAKERS_NAME = "spk_mapping.json"
DATASET_KEYS = ("sample_rate", "win_size", "hop_size", "mel_bins", "f_min", "f_max")
MODEL_KEYS = ("conv_dims", "hidden_dims", "n_layers", "conv_dropout", "vmin", "vmax")


@dataclass
class OriginalConfig:
    """What a `config.yaml` describes: the front-end, the model sizes and the target range."""

    mel: MelConfig
    model: ModelSection
    vmin: float
    vmax: float


# --------------------------------------------------------------------------------------------- config.yaml


def _scalar(text: str) -> Any:
    """One YAML scalar of the kind `yaml.safe_dump` writes for these configs."""
    text = text.strip()
    if text in ("", "null", "~", "Null", "NULL"):
        return None
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_simple_yaml(text: str) -> dict[str, Any]:
    """Nested mappings of scalars (what the original's `config.yaml` holds), without PyYAML. Lists, anchors and
    flow style are not part of these files and raise ValueError."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict]] = [(-1, root)]
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#") or line.strip() == "---":
            continue
        m = re.match(r"^( *)([^:\s][^:]*):(?:\s+(.*))?$", line)
        if not m or line.lstrip().startswith("- "):
            raise ValueError(f"line {line_no}: not a 'key: value' line")
        indent, key, value = len(m.group(1)), m.group(2).strip(), m.group(3)
        while indent <= stack[-1][0]:
            stack.pop()
        table = stack[-1][1]
        if value is None or not value.strip():
            table[key] = {}
            stack.append((indent, table[key]))
        else:
            table[key] = _scalar(value)
    return root


def read_config_yaml(path: Path) -> dict[str, Any]:
    """`config.yaml` -> dict (PyYAML's safe loader when installed, else `parse_simple_yaml`); one-line errors."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInput(path, "config.yaml not found: the original's model files need the config.yaml their "
                             "training wrote beside them") from None  # fmt: skip
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(path, f"cannot read ({type(e).__name__})") from None
    try:
        try:
            import yaml
        except ImportError:
            doc = parse_simple_yaml(text)
        else:
            doc = yaml.safe_load(text)
    except Exception as e:  # yaml.YAMLError, ValueError
        raise BadInput(path, f"not valid YAML ({str(e).strip().splitlines()[0][:100]})") from None
    if not isinstance(doc, dict):
        raise BadInput(path, "not a YAML mapping with dataset_args and model_args")
    return doc


def read_original_config(path: Path) -> OriginalConfig:
    """The original's `config.yaml` -> OriginalConfig; a missing or ill-typed field is one BadInput line."""
    doc = read_config_yaml(path)
    data, model = doc.get("dataset_args"), doc.get("model_args")
    if not isinstance(data, dict) or not isinstance(model, dict):
        raise BadInput(path, "needs the tables dataset_args and model_args (the original's config.yaml)")
    missing = [f"dataset_args.{k}" for k in DATASET_KEYS if k not in data]
    missing += [f"model_args.{k}" for k in MODEL_KEYS if k not in model]
    if missing:
        raise BadInput(path, f"lacks {', '.join(missing)}")
    if model.get("in_dims") not in (None, data["mel_bins"]):
        raise BadInput(path, f"model_args.in_dims {model['in_dims']} differs from dataset_args.mel_bins "
                             f"{data['mel_bins']}")  # fmt: skip
    try:
        mel = MelConfig.model_validate({
            **default_mel().model_dump(), "sample_rate": data["sample_rate"], "n_fft": data["win_size"], "win_length": None,
            "hop_length": data["hop_size"], "n_mels": data["mel_bins"], "f_min": data["f_min"] or 0.0,
            "f_max": data["f_max"], "pad": (int(data["win_size"]) - int(data["hop_size"])) // 2,
        })  # fmt: skip
        section = ModelSection(
            n_mels=data["mel_bins"], conv_dims=model["conv_dims"], hidden_dims=model["hidden_dims"],
            n_layers=model["n_layers"], conv_dropout=model["conv_dropout"],
            num_speakers=int(model.get("num_speakers") or 0), speaker_gain=bool(model.get("num_speakers")),
            vmin=model["vmin"], vmax=model["vmax"],
        )  # fmt: skip
        vmin, vmax = float(model["vmin"]), float(model["vmax"])
    except (ValueError, TypeError) as e:  # pydantic.ValidationError is a ValueError
        raise BadInput(path, f"invalid setting ({str(e).strip().splitlines()[0][:60]}: "
                             f"{' '.join(str(e).split())[-90:]})") from None  # fmt: skip
    if int(data["win_size"]) < int(data["hop_size"]):
        raise BadInput(path, "dataset_args.win_size must not be smaller than hop_size")
    if not vmax > vmin:
        raise BadInput(path, "model_args.vmax must be greater than vmin")
    return OriginalConfig(mel, section, vmin, vmax)


# --------------------------------------------------------------------------------------------- weights


def unwrap_state_dict(obj: Any) -> dict | None:
    """A bare state dict of the original (also `{'model_state_dict': ...}`, as its GUI accepts, and DDP's
    `module.` prefix) -> {key: tensor}; None when `obj` is not one."""
    import torch

    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    state = {str(k).removeprefix("module."): v for k, v in obj.items()}
    return state if "input_stack.0.weight" in state and "rnn.weight_ih_l0" in state else None


def check_against_weights(cfg: OriginalConfig, state: dict, config_path: Path) -> None:
    """One BadInput line naming the first `config.yaml` value the weights' shapes contradict."""
    first = state["input_stack.0.weight"]
    layers = sum(1 for k in state if re.fullmatch(r"rnn\.weight_ih_l\d+", k))
    checks = [
        ("dataset_args.mel_bins", cfg.model.n_mels, int(first.shape[1]), "input channels of input_stack.0.weight"),
        ("model_args.conv_dims", cfg.model.conv_dims, int(first.shape[0]), "output channels of input_stack.0.weight"),
        ("model_args.hidden_dims", cfg.model.hidden_dims, int(state["rnn.weight_hh_l0"].shape[1]),
         "the hidden size of rnn.weight_hh_l0"),
        ("model_args.n_layers", cfg.model.n_layers, layers, "rnn layers (rnn.weight_ih_l*)"),
    ]  # fmt: skip
    gains = state.get("k_filter.weight")
    if gains is not None and gains.dim() == 2 and cfg.model.num_speakers:
        checks.append(("model_args.num_speakers", cfg.model.num_speakers, int(gains.shape[0]), "rows of k_filter"))
    for name, said, found, what in checks:
        if said != found:
            raise BadInput(config_path, f"contradicts the weights in the same folder: {name} is {said}, but the "
                                        f"weights have {found} {what}")  # fmt: skip


def read_speaker_mapping(path: Path) -> dict[str, int]:
    """`spk_mapping.json` ({singer name: id}) -> dict; {} when absent; a garbled file is a BadInput."""
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as e:
        raise BadInput(path, f"unreadable speaker mapping ({type(e).__name__})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in doc.values()):
        raise BadInput(path, "a speaker mapping must be a JSON object of singer name -> integer id")
    return {str(k): int(v) for k, v in doc.items()}


def load_original(path: Path, state: dict | None = None, device: str = "cpu", **runtime):
    """The original's `ema_model_N.pt` (its `config.yaml` beside it) -> `runtime.MouthModel` on `device`
    (`runtime`: its precision, backend and threads)."""
    from voxtool.devices import resolve_device
    from voxtool.fileio import load_torch
    from voxtool.tasks.mouth.model import BiLSTMCurveEstimator
    from voxtool.tasks.mouth.runtime import MouthModel
    from voxtool.training.modelfile import load_weights

    path = Path(path)
    if state is None:
        state = unwrap_state_dict(load_torch(path))
        if state is None:
            raise BadInput(path, "neither a voxtool model file nor an R^3-MOE state dict")
    config_path = path.with_name(CONFIG_NAME)
    if not config_path.is_file():
        raise BadInput(path, f"an R^3-MOE state dict needs its {CONFIG_NAME} beside it (not found: {config_path})")
    cfg = read_original_config(config_path)
    check_against_weights(cfg, state, config_path)
    gains = state.get("k_filter.weight")
    keep_gains = gains is not None and gains.dim() == 2
    section = cfg.model.model_copy(update={"speaker_gain": keep_gains,
                                           "num_speakers": int(gains.shape[0]) if keep_gains else 0})
    model = BiLSTMCurveEstimator(section, cfg.vmin, cfg.vmax)
    load_weights(model, state, path, ignore_unexpected=() if keep_gains else ("k_filter",))
    speakers = read_speaker_mapping(path.with_name(SPEAKERS_NAME)) if keep_gains else {}
    meta = {"mel": cfg.mel.model_dump(), "value_range": [cfg.vmin, cfg.vmax], "speakers": speakers,
            "source": "R^3-MOE", "target": "jaw-minus-close"}  # fmt: skip
    dev = resolve_device(device).torch
    model.to(dev).eval()
    return MouthModel(model, cfg.mel, dev, meta, **runtime)


def config_yaml_text(mel: MelConfig, model: ModelSection, vmin: float, vmax: float) -> str:
    """The original's `config.yaml` for a voxtool model (keys sorted, as `yaml.safe_dump` writes them)."""
    def value(v: Any) -> str:
        return "null" if v is None else str(v)

    dataset = {"f_max": mel.f_max, "f_min": mel.f_min, "hop_size": mel.hop_length, "mel_bins": mel.n_mels,
               "sample_rate": mel.sample_rate, "win_size": mel.win}  # fmt: skip
    model_args = {"conv_dims": model.conv_dims, "conv_dropout": model.conv_dropout, "hidden_dims": model.hidden_dims,
                  "in_dims": model.n_mels, "n_layers": model.n_layers, "num_speakers": model.num_speakers,
                  "vmax": float(vmax), "vmin": float(vmin)}  # fmt: skip
    lines = ["dataset_args:", *(f"  {k}: {value(v)}" for k, v in dataset.items()), "model_args:",
             *(f"  {k}: {value(v)}" for k, v in model_args.items())]  # fmt: skip
    return "\n".join(lines) + "\n"
