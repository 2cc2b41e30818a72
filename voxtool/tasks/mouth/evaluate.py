"""`voxtool eval mouth`: a model's metrics on a prepared dataset split (whole files, as validation does)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from voxtool.errors import BadInput
from voxtool.tasks.mouth.infer import load_model
from voxtool.tasks.mouth.runtime import MouthModel, predict_mel

if TYPE_CHECKING:
    from voxtool.evaluation import EvalResult


def evaluate_dataset(
    model: str | Path | MouthModel,
    data: Path,
    split: str = "valid",
    *,
    device: str = "cpu",
    limit: int = 0,
    advance: Callable[..., None] | None = None,
) -> EvalResult:
    """Metrics of a model on a prepared dataset split, whole files as the training validation does.

    `EvalResult.metrics`: loss (MSE on the normalised scale), mae, r2, pearson over the split (see `metrics`);
    `.items`: one row per file with its name, frames and the same metrics."""
    from voxtool.evaluation import EvalResult
    from voxtool.tasks.mouth.data import SPLITS, MouthDataset
    from voxtool.tasks.mouth.metrics import curve_metrics

    if split not in SPLITS:
        raise BadInput(None, f"--split {split!r}: choose {', '.join(SPLITS)}")
    loaded = model if isinstance(model, MouthModel) else load_model(model, device)
    if not isinstance(loaded, MouthModel):
        raise BadInput(model, "eval needs a model.pt or run folder: the dataset holds log-mels, an ONNX graph "
                              "takes waveforms")  # fmt: skip
    ds = MouthDataset(data)
    if ds.mel_cfg != loaded.mel_cfg:
        raise BadInput(data, "dataset features differ from the model's (prepared with other mel settings)")
    items = ds.load_split(split, limit)
    if not items or items[0].curve is None:
        raise BadInput(data, f"split '{split}' is empty" if not items else "an unlabeled dataset cannot be scored")
    lo, hi = loaded.model.value_range.tolist()
    preds, rows = [], []
    for item in items:
        pred = predict_mel(loaded, item.mel)
        preds.append(pred)
        rows.append({"name": item.path, "frames": len(pred), **curve_metrics([pred], [item.curve], lo, hi)})
        if advance:
            advance(1)
    return EvalResult(curve_metrics(preds, [it.curve for it in items], lo, hi), rows)
