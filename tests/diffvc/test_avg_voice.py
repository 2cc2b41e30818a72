"""Average-voice statistics: the notebook's frame mapping, per-bin medians and modes, TextGrid reading, k-means
units; and on the synthetic parallel corpus, how speaker-independent the phone and k-means targets are."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from voxtool.errors import BadInput
from voxtool.tasks.diffvc import avg_voice
from voxtool.tasks.diffvc.synth import write_textgrid


def test_interval_frames_follow_the_notebook():
    sr, hop = 22050, 256
    intervals = [(0.0, 0.1, "sil"), (0.1, 0.25, "AA"), (0.25, 10.0, "S"), (10.0, 11.0, "M")]
    got = avg_voice.interval_frames(intervals, 40, sr, hop)
    expect = [(int(s * sr) // hop, min(int(e * sr) // hop + 1, 40), p) for s, e, p in intervals[:3]]
    assert got == expect  # the last one starts past the mel and is dropped
    assert got[0][1] == got[1][0] + 1  # neighbours overlap by one frame, as in DiffVC


def test_mode_is_scipy_mode_of_rounded_medians():
    from scipy import stats

    rng = np.random.default_rng(0)
    n_mels, frames = 6, 400
    mel = np.round(rng.normal(-4, 1.5, (n_mels, frames)), 2).astype(np.float32)
    cuts = np.sort(rng.choice(np.arange(1, frames), 60, replace=False))
    bounds = np.concatenate([[0], cuts, [frames]])
    segments = [(int(a), int(b), "xy"[k % 2]) for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    medians = avg_voice.segment_medians(mel, segments)
    st = avg_voice.UnitStats(n_mels)
    st.add(segments, medians)
    vectors = st.vectors()
    for label in "xy":
        ref = np.stack([np.round(np.median(mel[:, a:b], axis=1), 1) for a, b, p in segments if p == label])
        expect = stats.mode(ref, axis=0, keepdims=False).mode  # ties: the smallest value
        np.testing.assert_allclose(vectors[label], expect, atol=1e-6)
    assert st.segments == {"x": 31, "y": 30}


def test_average_voice_overwrites_in_order_and_keeps_the_rest():
    mel = np.arange(2 * 10, dtype=np.float32).reshape(2, 10)
    vectors = {"a": np.array([1.0, 2.0], np.float32), "b": np.array([-1.0, -2.0], np.float32)}
    out = avg_voice.average_voice(mel, [(0, 4, "a"), (3, 6, "b"), (6, 8, "zz")], vectors)
    np.testing.assert_array_equal(out[:, :3], [[1] * 3, [2] * 3])
    np.testing.assert_array_equal(out[:, 3:6], [[-1] * 3, [-2] * 3])  # the later interval wins frame 3
    np.testing.assert_array_equal(out[:, 6:], mel[:, 6:])  # no statistics for "zz", no interval after 8


def test_read_phone_intervals(tmp_path):
    from praatio import textgrid

    path = tmp_path / "a.TextGrid"
    write_textgrid(path, [(0.0, 0.2, "sil"), (0.2, 0.5, "AA1"), (0.6, 0.8, "spn")], 1.0)
    got = avg_voice.read_phone_intervals(path)
    assert got[:2] == [(0.0, 0.2, "sil"), (0.2, 0.5, "AA1")]
    assert got[2] == (0.5, 0.6, "sil")  # a blank interval is silence (MFA 2, pinyin TextGrids)
    assert avg_voice.unknown_phones(got) == ["spn"]

    tg = textgrid.Textgrid()  # MFA 2 with several speakers names tiers "<speaker> - phones"
    tg.addTier(textgrid.IntervalTier("s1 - phones", [(0.0, 0.3, "ɑː")], 0, 1.0))
    tg.save(str(path), format="short_textgrid", includeBlankSpaces=True)
    assert avg_voice.read_phone_intervals(path)[0] == (0.0, 0.3, "ɑː")  # any inventory
    with pytest.raises(BadInput, match="no 'segments' tier"):
        avg_voice.read_phone_intervals(path, tier="segments")
    path.write_text("not a textgrid", encoding="utf-8")
    with pytest.raises(BadInput, match="cannot read the TextGrid"):
        avg_voice.read_phone_intervals(path)


def test_unit_runs_and_speaker_norm():
    assert avg_voice.unit_runs(np.array([3, 3, 1, 1, 1, 3])) == [(0, 2, "u3"), (2, 5, "u1"), (5, 6, "u3")]
    assert avg_voice.unit_runs(np.array([], dtype=int)) == []
    rng = np.random.default_rng(0)
    norm = avg_voice.SpeakerNorm()
    a, b = rng.normal(5, 3, (300, 4)), rng.normal(-2, 0.5, (200, 4))
    norm.add("a", a[:100])
    norm.add("a", a[100:])
    norm.add("b", b)
    for spk, x in (("a", a), ("b", b)):
        z = norm.apply(spk, x)
        np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(z.std(0), 1, atol=1e-4)


def _pairs(corpus, dataset):
    """Parallel utterances (same content and timing) of two different speakers: their (mel, avg_mel) items."""
    by = {(u.speaker, u.content_id): u for u in corpus.utterances}
    speakers = [v.name for v in corpus.voices]
    for cid in range(len(corpus.contents)):
        for a, b in itertools.combinations(speakers, 2):
            za = np.load(dataset / "items" / a / f"{by[a, cid].wav.stem}.npz")
            zb = np.load(dataset / "items" / b / f"{by[b, cid].wav.stem}.npz")
            yield (za["mel"], za["avg_mel"]), (zb["mel"], zb["avg_mel"])


def _cross_speaker(corpus, dataset) -> tuple[float, float]:
    """(mean |avg_mel_A - avg_mel_B|, mean |mel_A - mel_B|) over parallel pairs of different speakers."""
    d_avg, d_mel = [], []
    for (ma, aa), (mb, ab) in _pairs(corpus, dataset):
        d_avg.append(np.abs(aa - ab).mean())
        d_mel.append(np.abs(ma - mb).mean())
    return float(np.mean(d_avg)), float(np.mean(d_mel))


def test_phone_targets_are_speaker_independent(diffvc_corpus, diffvc_phone_dataset):
    """With exact alignments, two voices saying the same thing get the same target, the unseen voice included."""
    d_avg, d_mel = _cross_speaker(diffvc_corpus, diffvc_phone_dataset)
    assert d_mel > 0.5  # the voices really differ
    assert d_avg < 0.02 * d_mel


def test_kmeans_targets_are_speaker_independent(diffvc_corpus, diffvc_kmeans_dataset, tmp_path):
    """Without alignments, k-means units of VTLN-warped, speaker-normalised MFCCs give parallel utterances of
    different voices nearly the same target (measured 0.03-0.05 of their mel distance on four corpora); without the
    warp the units follow the tract length and keep 0.34-0.52 of it."""
    from tests.diffvc.conftest import _prep

    d_avg, d_mel = _cross_speaker(diffvc_corpus, diffvc_kmeans_dataset)
    assert d_avg < 0.2 * d_mel
    _prep(diffvc_corpus, tmp_path / "plain", avg_units="kmeans", clusters=12, vtln=False)
    plain_avg, _ = _cross_speaker(diffvc_corpus, tmp_path / "plain")
    assert d_avg < 0.5 * plain_avg


def test_units_one_speaker_dominates_are_dropped():
    """Three speakers share units around (0, 0) and (5, 0); a third cluster at (0, 5) is speaker b's alone: it is
    dropped (b's share 1.0 > 2/3), its frames map to the nearest shared unit, and a speaker with twice the frames does
    not make a shared unit look dominated."""
    from voxtool.tasks.diffvc.avg_voice import balance_limit, fit_units, speaker_shares

    rng = np.random.default_rng(0)
    shared = [np.array([0.0, 0.0]), np.array([5.0, 0.0])]
    frames, speakers = [], []
    for spk, n in (("a", 200), ("b", 100), ("c", 100)):
        for centre in shared:
            frames.append(centre + 0.1 * rng.standard_normal((n, 2)))
            speakers += [spk] * n
    frames.append(np.array([0.0, 5.0]) + 0.1 * rng.standard_normal((60, 2)))
    speakers += ["b"] * 60
    frames, speakers = np.concatenate(frames), np.array(speakers)
    assert balance_limit(3) == pytest.approx(2 / 3) and balance_limit(100) == pytest.approx(0.505)
    units = fit_units(frames, 3, seed=0, speakers=speakers)
    assert len(units.centers) == 2 and list(units.dropped.values()) == [1.0]
    own = units.predict(np.array([[0.2, 4.8]]))[0]
    assert own == units.predict(np.array([[0.0, 0.0]]))[0]  # nearest shared unit: (0, 0)
    # a has twice b's and c's frames, spread the same way over the two units: equal shares
    shares = speaker_shares(np.array([0, 0, 0, 0, 1, 1, 1, 1, 2]), np.array(list("aabcaabcd")), 3)
    np.testing.assert_allclose(shares[:2], np.tile([1 / 3, 1 / 3, 1 / 3, 0.0], (2, 1)))
    np.testing.assert_allclose(shares[2], [0.0, 0.0, 0.0, 1.0])
    everything = fit_units(frames, 3, seed=0)  # without speakers nothing is dropped
    assert len(everything.centers) == 3 and not everything.dropped
