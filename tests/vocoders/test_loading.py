"""`voxtool.vocoders.loading.load_vocoder`: the one mel -> waveform loader the conversion tasks share."""

from __future__ import annotations

import pytest
import torch

from voxtool.errors import BadInput
from voxtool.vocoders.hifigan import HIFIGAN_TINY, Generator
from voxtool.vocoders.loading import load_vocoder
from voxtool.vocoders.mel import MEL_16K_BSHALL, MEL_22K_JIK876


@pytest.fixture()
def published_tiny(tmp_path):
    """A bare generator state dict (the published files' shape), with its plain-weight twin for comparison."""
    torch.manual_seed(0)
    generator = Generator(HIFIGAN_TINY)
    path = tmp_path / "g_tiny.pt"
    torch.save(generator.state_dict(), path)
    return path, generator.eval().remove_weight_norm()


def test_published_generator_gets_the_published_mel_of_its_layout(published_tiny) -> None:
    path, reference = published_tiny
    vocoder = load_vocoder(path, chunk_frames=0)
    assert vocoder.mel == MEL_16K_BSHALL and not vocoder.is_griffinlim
    mel = torch.randn(1, 128, 40) - 4
    with torch.inference_mode():
        expected = reference(mel)[:, 0].numpy()
    assert vocoder.synthesize(mel).shape == (1, 40 * 160)
    assert torch.allclose(torch.from_numpy(vocoder.synthesize(mel)), torch.from_numpy(expected), atol=1e-5)


def test_a_mel_the_generator_cannot_take_is_one_line(published_tiny) -> None:
    path, _ = published_tiny
    with pytest.raises(BadInput, match="generator takes 128 mels at hop 160"):
        load_vocoder(path, mel=MEL_22K_JIK876)


def test_griffinlim_needs_and_keeps_the_callers_mel() -> None:
    vocoder = load_vocoder("griffinlim", mel=MEL_22K_JIK876)
    assert vocoder.is_griffinlim and vocoder.sample_rate == 22050 and vocoder.hop_length == 256
    assert vocoder.synthesize(torch.full((1, 80, 12), -5.0)).shape == (1, 12 * 256)
    with pytest.raises(BadInput, match="mel settings"):
        load_vocoder("GriffinLim")


def test_chunk_frames_range() -> None:
    with pytest.raises(BadInput, match="chunk_frames"):
        load_vocoder("griffinlim", mel=MEL_16K_BSHALL, chunk_frames=-1)
