"""Published RMVPE checkpoint layouts: unwrap containers and prefixes, read the size off the shapes, load strictly.

Accepted: a plain state dict (RVC ``rmvpe.pt``, fp16, no ``unet.tf.*``), ``{'model': sd}`` (yxlllc/Teco, with
``unet.tf.*``), ``{'state_dict': sd}`` and the voxtool model file; ``module.`` (DDP) and ``_orig_mod.``
(torch.compile) prefixes are stripped and tensors cast to fp32.
"""

from __future__ import annotations

import re

import torch

from voxtool.pitch.rmvpe_model import E2E0
from voxtool.pitch.settings import RmvpeArch
from voxtool.training.modelfile import key_report

WRAPPER_PREFIXES = ("module.", "_orig_mod.")


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


def load_state_dict_any(obj, arch: RmvpeArch | None = None) -> tuple[E2E0, str]:
    """Build an E2E0 from any supported checkpoint object and load it strictly.

    ``arch`` None reads the size from the tensor shapes. Tensors are cast to fp32 (RVC stores fp16).
    Raises ValueError with a key report when the keys or shapes do not fit.
    """
    sd, notes = unwrap_state_dict(obj)
    dtypes = {v.dtype for v in sd.values() if v.is_floating_point()}
    try:
        arch = arch or infer_arch(sd)
    except (KeyError, IndexError, ValueError) as exc:  # ValueError: pydantic's, for sizes out of range
        text = str(exc).strip().splitlines()
        raise ValueError(f"not an RMVPE state dict ({text[0] if text else type(exc).__name__})") from None
    if arch.with_tf != any(k.startswith("unet.tf.") for k in sd):
        arch = RmvpeArch(**{**arch.to_dict(), "with_tf": not arch.with_tf})
    try:
        with torch.device("meta"):  # no random init of ~90 M weights that are replaced right away
            model = E2E0(arch)
    except ValueError as exc:
        raise ValueError(f"not an RMVPE state dict ({exc})") from None
    expected = list(model.state_dict().keys())
    # num_batches_tracked is not used in eval and some exporters drop it: fill it instead of failing.
    # A cast of a whole state dict to fp16 also turns the counter into a float: it is a count, cast it back.
    for k in expected:
        if k.endswith("num_batches_tracked"):
            sd[k] = sd[k].long() if k in sd else torch.zeros((), dtype=torch.long)
    report = key_report(expected, sd, shown=5, template="{count} {kind} keys (e.g. {names})")
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
