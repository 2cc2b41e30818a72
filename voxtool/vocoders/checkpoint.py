"""Published HiFi-GAN generator checkpoints -> state dicts in `Generator`'s layout, loaded strictly.

Accepted inputs (a path, or the object `torch.load` returned):
- bshall/hifigan hub files (`hifigan-hubert-soft-*.pt`): a bare generator state dict, maybe with `module.`
  prefixes from DDP; bshall training checkpoints `{"generator": {"model": ..., "optimizer": ...}, ...}`;
- jik876/hifi-gan `save_checkpoint` files (`generator_v1`, DiffVC `checkpts/vocoder/generator`): `{"generator": ...}`;
- a plain state dict / `{"state_dict": ...}` (a voxtool model file).
Weights may be old-style weight norm (`weight_g`, `weight_v`), parametrization style
(`parametrizations.weight.original0/1`) or plain (`weight`, after remove_weight_norm). Everything is turned into
the parametrization layout of a weight-normed `Generator`: plain weights become g = ||w|| (per output slice,
dim 0) and v = w, which gives the same effective weight g * v / ||v|| = w.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from voxtool.errors import BadInput
from voxtool.fileio import few, nested_state_dict
from voxtool.training.modelfile import key_report
from voxtool.vocoders.hifigan import PUBLISHED_GENERATORS, Generator, GeneratorConfig

G_KEY = "parametrizations.weight.original0"  # weight norm magnitude g, shape (out, 1, ..., 1)
V_KEY = "parametrizations.weight.original1"  # weight norm direction v, the weight's shape
_WRAPPERS = ("generator", "model", "state_dict")  # keys under which checkpoints nest the generator's state


@dataclass
class LoadedGenerator:
    """A checkpoint's generator: its config (given or inferred) and a state dict that loads strictly into
    `Generator(config)` (weight-normed)."""

    config: GeneratorConfig
    state_dict: dict[str, torch.Tensor]

    def build(self, remove_weight_norm: bool = True) -> Generator:
        """The generator with these weights, in eval mode; weight norm folded away for inference by default."""
        generator = Generator(self.config)
        generator.load_state_dict(self.state_dict, strict=True)
        generator.eval()
        return generator.remove_weight_norm() if remove_weight_norm else generator


def norm_except_dim0(weight: torch.Tensor) -> torch.Tensor:
    """||w|| over every dim but 0, shaped (out, 1, ..., 1): the g of weight norm with dim=0."""
    return weight.flatten(1).norm(dim=1).reshape(-1, *([1] * (weight.dim() - 1)))


def _unwrap(obj: Any, where: Any) -> dict[str, torch.Tensor]:
    """Follow the known wrapper keys down to a flat {name: tensor} dict."""
    return nested_state_dict(obj, _WRAPPERS, "HiFi-GAN generator", where)


def to_generator_layout(obj: Any, where: Any = None) -> dict[str, torch.Tensor]:
    """Unwrap, strip `module.`, and rename/convert every weight to `parametrizations.weight.original0/1`.

    Keys that are not weights (biases, foreign names) pass through unchanged so a strict load can report them.
    """
    state = _unwrap(obj, where)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}

    def put(key: str, value: torch.Tensor, source: str) -> None:
        if key in out:
            raise BadInput(where, f"{source} duplicates another weight of the same layer (plain and weight-normed "
                                  f"copies in one file)")
        out[key] = value

    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        base = f"{prefix}." if prefix else ""
        if leaf == "weight_g":
            put(base + G_KEY, value, key)
        elif leaf == "weight_v":
            put(base + V_KEY, value, key)
        elif leaf == "weight" and value.dim() >= 2:
            # a weight with weight norm removed: g = ||w||, v = w reproduces it exactly
            put(base + G_KEY, norm_except_dim0(value.float()).to(value.dtype), key)
            put(base + V_KEY, value, key)
        else:
            put(key, value, key)
    return out


def infer_generator_config(state: dict[str, torch.Tensor], where: Any = None) -> GeneratorConfig:
    """The published config whose layout (upsampling and resblock kernels, block type) the state dict has, with
    n_mels and width read from conv_pre's weight. Strides and dilations leave no trace in shapes, so a layout
    that matches no published config needs its config given."""
    conv_pre = state.get(f"conv_pre.{V_KEY}")
    if conv_pre is None or conv_pre.dim() != 3:
        raise BadInput(where, "not a HiFi-GAN generator: no conv_pre weight (keys: "
                              f"{few(sorted(state))})")
    ups = []
    while f"ups.{len(ups)}.{V_KEY}" in state:
        ups.append(state[f"ups.{len(ups)}.{V_KEY}"].shape[-1])
    resblock = "1" if any(".convs1." in k for k in state) else "2"
    for base in PUBLISHED_GENERATORS.values():
        kernels = [state.get(f"resblocks.{j}.{'convs1' if resblock == '1' else 'convs'}.0.{V_KEY}")
                   for j in range(len(base.resblock_kernel_sizes))]
        # absent resblocks do not decide the layout: the strict load reports them as missing
        if (tuple(ups) == base.upsample_kernel_sizes and resblock == base.resblock
                and all(k is None or k.shape[-1] == size for k, size in zip(kernels, base.resblock_kernel_sizes))):
            update = {"n_mels": conv_pre.shape[1], "upsample_initial_channel": conv_pre.shape[0]}
            try:
                return GeneratorConfig.model_validate(base.model_dump() | update)
            except ValueError as e:
                first = str(e).splitlines()[-1].strip()
                raise BadInput(where, f"generator shapes give an invalid config: {first}") from None
    raise BadInput(where, f"generator layout (upsampling kernels {tuple(ups)}, resblock {resblock}) matches no "
                          f"published HiFi-GAN config ({', '.join(PUBLISHED_GENERATORS)}); give its config")


def expected_shapes(config: GeneratorConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a weight-normed `Generator(config)` state dict (built on the meta device: no memory)."""
    with torch.device("meta"):
        generator = Generator(config)
    return {k: tuple(v.shape) for k, v in generator.state_dict().items()}


def load_generator_state(obj: Any, config: GeneratorConfig | None = None, where: Any = None) -> LoadedGenerator:
    """A published or voxtool generator checkpoint -> (config, state dict in `Generator`'s weight-normed layout).

    `obj` is a path or a loaded object. Without `config` it is inferred (`infer_generator_config`). A file that
    is not this generator is a BadInput with a report of missing and unexpected keys; shapes that do not fit the
    config are a BadInput naming the first mismatch.
    """
    if isinstance(obj, (str, os.PathLike)):
        from voxtool.fileio import load_torch

        where = where if where is not None else obj
        obj = load_torch(obj)
    state = to_generator_layout(obj, where)
    if config is None:
        config = infer_generator_config(state, where)
    expected = expected_shapes(config)
    report = key_report(expected, state)
    if report:
        raise BadInput(where, f"not a HiFi-GAN generator of this config: {report}")
    wrong = [k for k, shape in expected.items() if tuple(state[k].shape) != shape]
    if wrong:
        first = wrong[0]
        raise BadInput(where, f"weights do not fit the config (n_mels {config.n_mels}, "
                              f"{config.upsample_initial_channel} channels, hop {config.hop_length}): {first} is "
                              f"{tuple(state[first].shape)}, expected {expected[first]}"
                              f"{f' (and {len(wrong) - 1} more)' if len(wrong) > 1 else ''}")
    return LoadedGenerator(config, {k: state[k].float() for k in expected})


def load_generator(obj: Any, config: GeneratorConfig | None = None, where: Any = None,
                   remove_weight_norm: bool = True) -> Generator:
    """`load_generator_state(...).build(...)`: a ready generator in eval mode."""
    return load_generator_state(obj, config, where).build(remove_weight_norm)
