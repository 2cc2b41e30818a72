"""RMVPE E2E0 network with the module names of the published checkpoints.

The attribute names below (``unet.encoder.layers.{i}.conv.{j}.conv.{0,1,3,4}``, ``fc.0.gru``, ...) are the
state-dict keys of RVC's ``rmvpe.pt``, yxlllc's ``model.pt`` and DDP training outputs, so those files load
strictly. See ``load_state_dict_any`` for the container / prefix / dtype handling.

Shapes: mel ``[B, n_mels, T]`` (T a multiple of ``2 ** n_levels``) -> salience ``[B, T, 360]`` in (0, 1).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

N_BINS = 360
BN_MOMENTUM = 0.01  # PyTorch convention (= 0.99 in Keras terms), as published


@dataclass(frozen=True)
class RmvpeArch:
    """Network size. Defaults are the published E2E0(n_blocks=4, n_gru=1, kernel_size=(2,2))."""

    n_mels: int = 128
    n_blocks: int = 4  # ConvBlockRes per encoder/intermediate/decoder block
    n_levels: int = 5  # encoder/decoder levels (each halves time and mel axes)
    n_inter: int = 4  # intermediate blocks at the bottleneck
    base_channels: int = 16  # channels of the first encoder level (doubles per level)
    n_gru: int = 1  # BiGRU layers (0 = linear head only)
    gru_hidden: int = 256
    with_tf: bool = False  # build the unused "timbre filter" (yxlllc/Teco checkpoints carry its keys)

    @property
    def frame_multiple(self) -> int:
        """The number of frames fed to the U-Net must be a multiple of this."""
        return 2**self.n_levels

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RmvpeArch:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class ConvBlockRes(nn.Module):
    """Two 3x3 conv-BN-ReLU plus a residual (1x1 conv with bias when widths differ). [B,Ci,H,W] -> [B,Co,H,W]"""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.conv(x) + residual


class ResEncoderBlock(nn.Module):
    """n_blocks ConvBlockRes, then optional 2x2 average pooling. Returns (skip, pooled) or x."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool, n_blocks: int):
        super().__init__()
        self.conv = nn.ModuleList(
            [ConvBlockRes(in_channels, out_channels)]
            + [ConvBlockRes(out_channels, out_channels) for _ in range(n_blocks - 1)]
        )
        self.pool = nn.AvgPool2d(kernel_size=(2, 2)) if pool else None

    def forward(self, x: torch.Tensor):
        for block in self.conv:
            x = block(x)
        if self.pool is None:
            return x
        return x, self.pool(x)


class Encoder(nn.Module):
    """BN on the input then ``n_levels`` pooling blocks. [B,1,T,M] -> ([B,C*2^(L-1),T/2^L,M/2^L], skips)"""

    def __init__(self, arch: RmvpeArch):
        super().__init__()
        self.bn = nn.BatchNorm2d(1, momentum=BN_MOMENTUM)
        channels = [1] + [arch.base_channels * 2**i for i in range(arch.n_levels)]
        self.layers = nn.ModuleList(
            ResEncoderBlock(channels[i], channels[i + 1], True, arch.n_blocks) for i in range(arch.n_levels)
        )
        self.skip_channels = channels[1:]

    def forward(self, x: torch.Tensor):
        skips = []
        x = self.bn(x)
        for layer in self.layers:
            skip, x = layer(x)
            skips.append(skip)
        return x, skips


class Intermediate(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, n_inter: int, n_blocks: int):
        super().__init__()
        self.layers = nn.ModuleList(
            [ResEncoderBlock(in_channels, out_channels, False, n_blocks)]
            + [ResEncoderBlock(out_channels, out_channels, False, n_blocks) for _ in range(n_inter - 1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class TimbreFilter(nn.Module):
    """One ConvBlockRes per skip. Built (so its keys load) but never applied by E2E0, as published."""

    def __init__(self, skip_channels: list[int]):
        super().__init__()
        self.layers = nn.ModuleList(ConvBlockRes(c, c) for c in skip_channels)


class ResDecoderBlock(nn.Module):
    """Transposed-conv upsampling x2, concat with the skip, n_blocks ConvBlockRes. [B,Ci,H,W] -> [B,Co,2H,2W]"""

    def __init__(self, in_channels: int, out_channels: int, n_blocks: int):
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 3, (2, 2), 1, (1, 1), bias=False),
            nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )
        self.conv2 = nn.ModuleList(
            [ConvBlockRes(out_channels * 2, out_channels)]
            + [ConvBlockRes(out_channels, out_channels) for _ in range(n_blocks - 1)]
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for block in self.conv2:
            x = block(x)
        return x


class Decoder(nn.Module):
    def __init__(self, in_channels: int, n_levels: int, n_blocks: int):
        super().__init__()
        self.layers = nn.ModuleList(
            ResDecoderBlock(in_channels // 2**i, in_channels // 2 ** (i + 1), n_blocks) for i in range(n_levels)
        )

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for layer, skip in zip(self.layers, reversed(skips)):
            x = layer(x, skip)
        return x


class DeepUnet0(nn.Module):
    def __init__(self, arch: RmvpeArch):
        super().__init__()
        self.encoder = Encoder(arch)
        bottom = arch.base_channels * 2**arch.n_levels
        self.intermediate = Intermediate(bottom // 2, bottom, arch.n_inter, arch.n_blocks)
        if arch.with_tf:
            self.tf = TimbreFilter(self.encoder.skip_channels)
        self.decoder = Decoder(bottom, arch.n_levels, arch.n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BiGRU(nn.Module):
    def __init__(self, in_features: int, hidden: int, num_layers: int):
        super().__init__()
        self.gru = nn.GRU(in_features, hidden, num_layers=num_layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class E2E0(nn.Module):
    """Mel ``[B, n_mels, T]`` -> salience ``[B, T, 360]``; T must be a multiple of ``arch.frame_multiple``."""

    def __init__(self, arch: RmvpeArch | None = None):
        super().__init__()
        self.arch = arch or RmvpeArch()
        a = self.arch
        if a.n_mels % a.frame_multiple:
            raise ValueError(f"n_mels={a.n_mels} must be divisible by 2**n_levels={a.frame_multiple}")
        self.unet = DeepUnet0(a)
        self.cnn = nn.Conv2d(a.base_channels, 3, 3, padding=1)
        if a.n_gru:
            self.fc = nn.Sequential(
                BiGRU(3 * a.n_mels, a.gru_hidden, a.n_gru),
                nn.Linear(2 * a.gru_hidden, N_BINS),
                nn.Dropout(0.25),
                nn.Sigmoid(),
            )
        else:
            self.fc = nn.Sequential(nn.Linear(3 * a.n_mels, N_BINS), nn.Dropout(0.25), nn.Sigmoid())

    def forward(self, mel: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """Salience ``[B, T, 360]``; ``logits=True`` skips the sigmoid (a numerically safe BCE under autocast)."""
        x = mel.transpose(-1, -2).unsqueeze(1)  # [B, 1, T, M]
        x = self.cnn(self.unet(x))  # [B, 3, T, M]
        x = x.transpose(1, 2).flatten(-2)  # [B, T, 3*M]; feature = channel * M + mel_bin
        for layer in list(self.fc)[:-1]:
            x = layer(x)
        return x if logits else torch.sigmoid(x)


# ---------------------------------------------------------------------------------------------------------
# Checkpoint layouts
# ---------------------------------------------------------------------------------------------------------

WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LoadedCheckpoint:
    state_dict: dict[str, torch.Tensor]
    layout: str  # human description, e.g. "plain state dict, fp16, no tf"
    arch: RmvpeArch


def unwrap_state_dict(obj) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Return the flat state dict inside a checkpoint object and notes on what was unwrapped.

    Handles a plain dict of tensors (RVC), ``{'model': sd}`` (yxlllc/Teco), ``{'state_dict': sd}`` and the
    voxtool model file; strips ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes.
    """
    notes = []
    if not isinstance(obj, dict):
        raise ValueError(f"expected a dict, found {type(obj).__name__}")
    if obj.get("format") == "voxtool-model" and isinstance(obj.get("state_dict"), dict):
        notes.append("voxtool model file")
        obj = obj["state_dict"]
    else:
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                notes.append(f"{{'{key}': ...}} wrapper")
                obj = obj[key]
                break
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise ValueError("no tensors found")
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
            notes.append(f"'{prefix}' prefix")
    return sd, notes


def _max_index(sd: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    found = [int(m.group(1)) for k in sd if (m := rx.match(k))]
    return max(found) + 1 if found else 0


def infer_arch(sd: dict[str, torch.Tensor]) -> RmvpeArch:
    """Read the network size off a state dict's shapes; falls back to the published sizes per field."""
    d = RmvpeArch()
    kw: dict = {}
    w0 = sd.get("unet.encoder.layers.0.conv.0.conv.0.weight")
    if w0 is not None:
        kw["base_channels"] = int(w0.shape[0])
    kw["n_levels"] = _max_index(sd, r"unet\.encoder\.layers\.(\d+)\.") or d.n_levels
    kw["n_inter"] = _max_index(sd, r"unet\.intermediate\.layers\.(\d+)\.") or d.n_inter
    kw["n_blocks"] = _max_index(sd, r"unet\.encoder\.layers\.0\.conv\.(\d+)\.") or d.n_blocks
    kw["n_gru"] = _max_index(sd, r"fc\.0\.gru\.weight_ih_l(\d+)$")
    if kw["n_gru"]:
        kw["gru_hidden"] = int(sd["fc.0.gru.weight_hh_l0"].shape[1])
        kw["n_mels"] = int(sd["fc.0.gru.weight_ih_l0"].shape[1]) // 3
    elif "fc.0.weight" in sd:
        kw["n_mels"] = int(sd["fc.0.weight"].shape[1]) // 3
    else:
        kw["n_gru"] = d.n_gru
    kw["with_tf"] = any(k.startswith("unet.tf.") for k in sd)
    return RmvpeArch(**{**d.to_dict(), **kw})


def key_report(expected: list[str], found: list[str], shown: int = 5) -> str:
    """One line naming the first few missing and unexpected keys."""
    missing = [k for k in expected if k not in set(found)]
    unexpected = [k for k in found if k not in set(expected)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:shown])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:shown])})")
    return "; ".join(parts)


def load_state_dict_any(obj, arch: RmvpeArch | None = None) -> tuple[E2E0, str]:
    """Build an E2E0 from any supported checkpoint object and load it strictly.

    ``arch`` None reads the size from the tensor shapes. Tensors are cast to fp32 (RVC stores fp16).
    Raises ValueError with a key report when the keys or shapes do not fit.
    """
    sd, notes = unwrap_state_dict(obj)
    dtypes = {v.dtype for v in sd.values() if v.is_floating_point()}
    try:
        arch = arch or infer_arch(sd)
    except (KeyError, IndexError) as exc:
        raise ValueError(f"not an RMVPE state dict ({exc})") from None
    if arch.with_tf != any(k.startswith("unet.tf.") for k in sd):
        arch = RmvpeArch(**{**arch.to_dict(), "with_tf": not arch.with_tf})
    try:
        with torch.device("meta"):  # no random init of ~90 M weights that are replaced right away
            model = E2E0(arch)
    except ValueError as exc:
        raise ValueError(f"not an RMVPE state dict ({exc})") from None
    expected = list(model.state_dict().keys())
    # num_batches_tracked is not used in eval and some exporters drop it: fill it instead of failing.
    for k in expected:
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros((), dtype=torch.long)
    report = key_report(expected, list(sd.keys()))
    if report:
        raise ValueError(f"keys do not match RMVPE E2E0: {report}")
    for k, v in model.state_dict().items():  # the first bad weight, with both shapes, on one line
        if tuple(sd[k].shape) != tuple(v.shape):
            got, want = (", ".join(map(str, s)) for s in (sd[k].shape, v.shape))
            raise ValueError(f"weight '{k}' has shape ({got}) in the file; RMVPE E2E0 expects ({want})")
        if v.is_floating_point() != sd[k].is_floating_point():
            raise ValueError(f"weight '{k}' is {sd[k].dtype} in the file; RMVPE E2E0 expects {v.dtype}")
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ValueError(f"shapes do not match RMVPE E2E0: {' '.join(first[1:3])}") from None
    short = {torch.float16: "fp16", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float64: "fp64"}
    dtype_name = "/".join(sorted(short.get(d, str(d)) for d in dtypes))
    layout = ", ".join(notes + [dtype_name, "with tf" if arch.with_tf else "no tf"])
    return model, layout
