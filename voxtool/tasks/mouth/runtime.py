"""The mouth model at inference: `MouthModel` (a loaded network, its precision and backend) and the chunked
forward pass over a log-mel (`predict_mel_chunks`, `predict_mel`), below the `infer.py` ladder.

Long inputs run in equal windows (`voxtool.windows.plan_windows`): cores of `chunk_frames` with `context_frames` of
log-mel on both sides, `batch_size` windows per forward pass. A bidirectional LSTM over a batch of rows does the
same arithmetic per frame as over one long row, but as matrix-matrix products instead of matrix-vector ones, which
the CPU runs about twice as fast per frame (benchmarks/compare.py). The GroupNorm after the first convolution uses
the whole file's statistics (a first pass), so windows differ from a whole-file pass only by what the LSTM would
have remembered from beyond the context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from voxtool.audio.mel_config import MelConfig
from voxtool.errors import BadInput
from voxtool.tasks.mouth.config import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_FRAMES, DEFAULT_CONTEXT_FRAMES
from voxtool.tasks.mouth.model import BiLSTMCurveEstimator
from voxtool.windows import plan_windows


class _CurveGraph(nn.Module):
    """The network with given GroupNorm moments, for ONNX: (mel (B, F, T), mean (B, G), var (B, G)) -> (B, T)."""

    def __init__(self, net: BiLSTMCurveEstimator):
        super().__init__()
        self.net = net

    def forward(self, mel: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        return self.net.back(self.net.normalize_groups(self.net.front(mel), mean, var))


@dataclass
class MouthModel:
    """A loaded model with the feature settings it was trained on. `gain`: a per-singer gain k applied to every
    curve, (y - p0) k + p0 on the normalised scale (`use_speaker`, `use_average_gain`); None: the generic curve."""

    model: BiLSTMCurveEstimator
    mel_cfg: MelConfig
    device: torch.device
    meta: dict[str, Any]
    gain: float | None = None
    precision: str = "32"  # 32 | bf16 | 16 | auto (bf16 on a CPU with native bf16)
    backend: str = "torch"  # torch | onnx (onnxruntime on the CPU, `voxtool.inference_backends.OnnxNetwork`)
    threads: int = 0  # onnxruntime intra-op threads (0: one per core)

    def __post_init__(self):
        from voxtool.inference_backends import OnnxNetwork, resolve_runtime

        self.precision = resolve_runtime(self.backend, self.precision, self.device)
        self._onnx = None
        if self.backend == "onnx":
            g = self.model.cfg.n_groups
            example = (torch.zeros(1, self.model.cfg.n_mels, 8), torch.zeros(1, g), torch.ones(1, g))
            dynamic = {"mel": {0: "batch", 2: "frames"}, "mean": {0: "batch"}, "var": {0: "batch"}}
            self._onnx = OnnxNetwork(_CurveGraph(self.model), example, ["mel", "mean", "var"], dynamic, self.threads)

    @property
    def fps(self) -> float:
        return self.mel_cfg.sample_rate / self.mel_cfg.hop_length

    @property
    def speakers(self) -> dict[str, int]:
        """Singers whose gains the model holds: name -> id ({} without per-singer gains)."""
        if self.model.k_filter is None:
            return {}
        return {str(k): int(v) for k, v in (self.meta.get("speakers") or {}).items()}

    def _gains(self, ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return self.model.speaker_gain(torch.tensor(ids, device=self.device)).float().cpu()

    def _need_gains(self, option: str) -> None:
        if self.model.k_filter is None:
            raise BadInput(None, f"{option}: this model has no per-singer gains (trained without model.speaker_gain)")

    def use_speaker(self, name: str | None) -> None:
        """Apply training singer `name`'s learned gain from now on (None: the generic curve); BadInput if unknown."""
        if name is None:
            self.gain = None
            return
        self._need_gains("--speaker")
        known = self.speakers
        if name not in known:
            shown = ", ".join(sorted(known)[:8]) + (", ..." if len(known) > 8 else "")
            raise BadInput(None, f"--speaker {name!r} is not a training singer of this model "
                                 f"(known: {shown or 'none recorded'})")  # fmt: skip
        if not 0 <= known[name] < self.model.k_filter.num_embeddings:
            raise BadInput(None, f"--speaker {name!r}: id {known[name]} has no gain in the model")
        self.gain = float(self._gains([known[name]])[0])

    def use_average_gain(self) -> None:
        """Apply the mean gain of the training singers (`meta.train_speakers`; every row when not recorded, as
        for the original's files, whose gains are all training singers'): the generic curve at a typical face's
        scale instead of the arbitrary scale the gains leave it at."""
        self._need_gains("--average-gain")
        names = self.meta.get("train_speakers")
        known = self.speakers
        ids = [known[n] for n in names if n in known] if names else list(range(self.model.k_filter.num_embeddings))
        self.gain = float(self._gains(ids).mean())

    def curve(self, mel: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        """(B, F, T) log-mel -> (B, T) curve in target units (float32), with `gain` when set. `stats` (B, G, 3): the
        whole file's GroupNorm statistics (`BiLSTMCurveEstimator.group_stats`), None: this input's own."""
        from voxtool.devices import autocast

        if self._onnx is not None:
            if stats is None:
                stats = self.model.group_stats(self.model.front(mel))
            y = self._onnx(mel, *self.model.group_moments(stats))
        else:
            with autocast(self.device, self.precision):
                y = self.model(mel, stats).float()
        if self.gain is not None:
            p0 = self.model.p0
            y = (y - p0) * self.gain + p0
        return self.model.denormalize(y)



class _FrameWindow:
    """Frames [start, end) of a stream of (n_mels, t) chunks in memory; `fill` reads on, `drop` forgets."""

    def __init__(self, chunks: Iterable[np.ndarray]):
        self._chunks = iter(chunks)
        self._buf: np.ndarray | None = None
        self.start = 0
        self.done = False

    @property
    def end(self) -> int:
        return self.start + (0 if self._buf is None else self._buf.shape[1])

    def fill(self, stop: int) -> None:
        while not self.done and self.end < stop:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.done = True
            else:
                self._buf = chunk if self._buf is None else np.concatenate([self._buf, chunk], axis=1)

    def get(self, lo: int, hi: int) -> np.ndarray:
        """Frames [lo, hi) as a contiguous (n_mels, hi - lo) array."""
        if self._buf is None:
            return np.zeros((0, 0), dtype=np.float32)
        return np.ascontiguousarray(self._buf[:, lo - self.start : hi - self.start])

    def drop(self, lo: int) -> None:
        if self._buf is not None and lo > self.start:
            self._buf = self._buf[:, lo - self.start :].copy()
            self.start = lo


@torch.inference_mode()
def predict_mel_chunks(
    model: MouthModel,
    chunks: Callable[[], Iterable[np.ndarray]],
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    context_frames: int = DEFAULT_CONTEXT_FRAMES,
    keep_mel: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A log-mel given as a stream of (n_mels, t) chunks -> ((T,) curve in target units, the (n_mels, T) log-mel
    or None).

    `chunks()` starts the stream afresh; it is read twice when T > chunk_frames + 2 x context_frames (the GroupNorm
    statistics of the whole file first, then the BiLSTM windows, `batch_size` per forward pass), and only the
    frames of one batch of windows are in memory at a time (plus the whole log-mel with `keep_mel`)."""
    net, dev = model.model, model.device
    win = _FrameWindow(chunks())
    win.fill(chunk_frames + 2 * context_frames + 1)
    if win.done and win.end <= chunk_frames + 2 * context_frames:  # one window: the whole file in one pass
        mel = win.get(0, win.end)
        curve = model.curve(torch.from_numpy(mel).to(dev)[None])[0].cpu().numpy()
        return curve, (mel if keep_mel else None)
    # pass 1: GroupNorm statistics of the first conv layer over the whole file (1-frame halo for the k3 conv)
    stats = None
    a = 0
    while True:
        win.fill(a + chunk_frames + 1)
        t = win.end
        if a >= t:
            break
        b = min(t, a + chunk_frames)
        lo, hi = max(0, a - 1), min(t, b + 1)
        h = net.front(torch.from_numpy(win.get(lo, hi)).to(dev)[None])[..., a - lo : a - lo + (b - a)]
        s = net.group_stats(h)
        stats = s if stats is None else stats + s
        win.drop(b - 1)
        a = b
    total = a
    # pass 2: equal windows (cores with context on both sides), a batch per forward pass; keep the cores
    length, windows = plan_windows(total, chunk_frames, context_frames, balance=True)
    win = _FrameWindow(chunks())
    out = np.empty(total, dtype=np.float32)
    kept: list[np.ndarray] = []
    for i in range(0, len(windows), batch_size):
        group = windows[i : i + batch_size]
        win.fill(group[-1].start + length)
        if win.end < group[-1].start + length:
            raise BadInput(None, "the audio changed while it was being read")
        mels = np.stack([win.get(w.start, w.start + length) for w in group])
        y = model.curve(torch.from_numpy(mels).to(dev), stats.expand(len(group), -1, -1)).cpu().numpy()
        for row, w in enumerate(group):
            out[w.core_start : w.core_stop] = w.core(y[row])
            if keep_mel:
                kept.append(win.get(w.core_start, w.core_stop))
        if i + batch_size < len(windows):
            win.drop(windows[i + batch_size].start)
    return out, (np.concatenate(kept, axis=1) if keep_mel else None)


def predict_mel(
    model: MouthModel,
    mel: np.ndarray,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    context_frames: int = DEFAULT_CONTEXT_FRAMES,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """(n_mels, T) log-mel -> (T,) curve in target units; in batched windows when T > chunk + 2 x context."""
    mel = np.asarray(mel, dtype=np.float32)

    def chunks():
        return (mel[:, a : a + chunk_frames] for a in range(0, mel.shape[1], chunk_frames))

    return predict_mel_chunks(model, chunks, chunk_frames, context_frames, batch_size=batch_size)[0]
