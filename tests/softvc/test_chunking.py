"""Long inputs in pieces (voxtool.tasks.softvc.chunking): cuts land in pauses, the pieces cover the input, and the
converted output does not click at a cut (spectral flux at the cuts within the ordinary frames' distribution)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import seeded
from tests.softvc.test_convert import tiny_chain
from voxtool.tasks.softvc import chunking, synth


@pytest.fixture(scope="module")
def units_only(tmp_path_factory):
    return tiny_chain(tmp_path_factory.mktemp("chain"), "none")


def spectral_flux(wav: np.ndarray, n_fft: int = 512, hop: int = 160) -> np.ndarray:
    """(T,) -> (frames - 1,) RMS difference of log-magnitude spectra between neighbouring STFT frames."""
    spec = torch.stft(torch.from_numpy(np.ascontiguousarray(wav)), n_fft, hop, window=torch.hann_window(n_fft),
                      return_complex=True).abs().numpy()
    return np.sqrt(np.mean(np.diff(np.log(spec + 1e-4), axis=1) ** 2, axis=0))


def boundary_flux(wav: np.ndarray, cuts: list[int], hop: int = 160, reach: int = 3) -> tuple[list[float], np.ndarray]:
    """(the largest flux within `reach` frames of each cut, the flux of every other frame)."""
    flux = spectral_flux(wav, hop=hop)
    near = {k for c in cuts for k in range(c // hop - reach, c // hop + reach)}
    ordinary = np.array([f for i, f in enumerate(flux) if i not in near])
    return [float(flux[max(0, c // hop - reach) : c // hop + reach].max()) for c in cuts], ordinary


def test_chunk_boundaries_do_not_click(units_only):
    """Continuous singing cut every 1.5-2.5 s: the flux at each cut stays within the ordinary frames' 99th
    percentile. The same pieces converted without context and joined bare do click (the check can fail)."""
    from voxtool.tasks.softvc.infer import convert_piece, load_model, predict

    hubert, model = units_only
    conv = load_model(model, hubert, "griffinlim", device="cpu")
    conv.vocoder.generator.n_iter = 8  # Griffin-Lim: fewer iterations, same interface
    conv.min_seconds, conv.max_seconds, conv.context_seconds = 1.5, 2.5, 0.5
    phones, melody = synth.corpus_item(seeded(5), 0, 6.0)
    x = synth.render(phones, melody, synth.voice(0), noise_seed=1)
    chunks = chunking.plan_chunks(x, 16000, 1.5, 2.5, 0.5)
    cuts = [c.start for c in chunks[1:]]
    assert len(cuts) >= 2
    y, _ = predict(x, 16000, conv)
    assert len(y) == len(x)
    at_cuts, ordinary = boundary_flux(y, cuts)
    limit = float(np.percentile(ordinary, 99))
    assert max(at_cuts) <= limit, (at_cuts, limit)
    bare = np.concatenate([convert_piece(x[c.start : c.end], conv) for c in chunks])
    bare_cuts, bare_ordinary = boundary_flux(bare, cuts)
    assert max(bare_cuts) > float(np.percentile(bare_ordinary, 99))


def test_plan_chunks_cuts_in_pauses_and_covers_everything():
    rng = np.random.default_rng(seeded(3))
    x = (0.1 * rng.standard_normal(16000 * 40)).astype(np.float32)
    pauses = [(11.0, 11.3), (23.5, 23.8), (33.0, 33.2)]
    for a, b in pauses:
        x[int(a * 16000) : int(b * 16000)] *= 1e-3
    chunks = chunking.plan_chunks(x, 16000, 8.0, 16.0, 1.0)
    assert chunks[0].start == 0 and chunks[-1].end == len(x)
    for prev, nxt in zip(chunks, chunks[1:]):
        assert prev.end == nxt.start and nxt.start % 320 == 0
        assert nxt.lo == nxt.start - 16000 and prev.hi == prev.end + 16000
        assert any(a * 16000 <= nxt.start <= b * 16000 for a, b in pauses), nxt.start / 16000
    assert all(8 * 16000 <= c.end - c.start <= 16 * 16000 for c in chunks[:-1])
    fader = chunking.CrossFader()
    joined = np.concatenate([p for c in chunks for p in fader.push(c, x[c.lo : c.hi])] + list(fader.flush()))
    np.testing.assert_allclose(joined, x, atol=1e-6)  # identical pieces cross-fade back into the input
    assert chunking.plan_chunks(x[:16000], 16000) == [chunking.Chunk(0, 16000, 0, 16000)]
