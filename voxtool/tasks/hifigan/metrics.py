"""Vocoder quality: L1 between the full-band loss log-mels (`MelSettings.for_loss()`) of real and vocoded audio."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def item_mel_l1(generator: torch.nn.Module, wav: np.ndarray, mel: np.ndarray, loss_mel: torch.nn.Module,
                device: torch.device) -> float:
    """Mean |loss_mel(generator(mel)) - loss_mel(wav)| of one item: mel (n_mels, T), wav (T * hop,)."""
    fake = generator(torch.from_numpy(mel)[None].to(device)).float()[0, 0]  # (T * hop,)
    real = torch.from_numpy(wav).to(device)
    return float(torch.mean(torch.abs(loss_mel(fake) - loss_mel(real))))


@torch.no_grad()
def mel_l1(generator: torch.nn.Module, dataset, loss_mel: torch.nn.Module, device: torch.device,
           max_items: int = 0, max_frames: int = 0) -> float:
    """Mean over items of `item_mel_l1` on a `VocoderDataset`; items whole or cut to `max_frames` frames."""
    scores = []
    for i in range(len(dataset) if not max_items else min(max_items, len(dataset))):
        wav, mel = dataset[i]
        if max_frames:
            mel, wav = mel[:, :max_frames], wav[: max_frames * dataset.hop]
        scores.append(item_mel_l1(generator, wav, mel, loss_mel, device))
    return float(np.mean(scores)) if scores else float("nan")
