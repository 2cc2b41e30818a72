"""`voxtool prep diffvc DIR OUT`: a speaker-per-folder corpus -> mels, d-vectors and average-voice targets.

    OUT/dataset.json                 format "voxtool-diffvc-dataset" v1: mel settings, avg_units, units and their
                                     statistics, speakers with their split, skipped files with the reason
    OUT/train.txt valid.txt unseen.txt
    OUT/items/<speaker>/<name>.npz   mel f32 [80, F] (HiFi-GAN 22.05 kHz, MEL_22K_JIK876), avg_mel f32 [80, F],
                                     embed f32 [256] (GE2E of the utterance), spk_embed f32 [256] (the speaker's
                                     mean d-vector over its train items; over all its items for unseen speakers),
                                     speaker (0-d str)

Passes (each parallel over `workers` threads): (1) decode, mel, d-vector, item written without its target, the
segment statistics of seen speakers gathered; for k-means units (2) each speaker's VTLN factor fitted on the long-term
spectra of pass 1, the MFCCs of the warped mels sampled, speaker-normalised and clustered, then (3) the unit
statistics gathered; (last) every item rewritten with avg_mel and spk_embed.
Statistics come from the seen (train + valid) speakers only, so unseen speakers stay unseen. Every file is
written atomically and dataset.json last: a killed run leaves no dataset.json (run it again).
"""

from __future__ import annotations

import io
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voxtool.errors import BadInput, VoxtoolError
from voxtool.tasks.diffvc import avg_voice, vtln
from voxtool.tasks.diffvc.corpus import Corpus, TextGridIndex, Utterance, discover, split_speakers, split_valid

DATASET_FORMAT = "voxtool-diffvc-dataset"
FORMAT_VERSION = 1
MAX_CLUSTER_FRAMES = 200_000  # frames sampled for k-means (enough for K of a few hundred)


@dataclass
class PrepOptions:
    alignments: Path | None = None  # TextGrid folder -> phone targets
    avg_units: str = "phones"  # "phones" | "kmeans"
    clusters: int = 64
    shared_units: bool = True  # drop k-means units one speaker dominates (avg_voice.fit_units)
    vtln: bool = True  # k-means features on vocal-tract-length-normalised mels (vtln.py)
    tier: str = "phones"
    unseen: list[str] | None = None
    unseen_fraction: float = 0.0
    valid_fraction: float = 0.05
    workers: int = 1
    seed: int = 0
    mic: str = "mic2"


@dataclass
class PrepSummary:
    out: Path
    layout: str
    avg_units: str
    units: list[str]
    speakers: dict[str, dict]
    splits: dict[str, int]
    seconds: float
    skipped: list[tuple[str, str]] = field(default_factory=list)
    vtln: dict[str, float] | None = None  # k-means with VTLN: each speaker's warp factor


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    from voxtool.fileio import atomic_write

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with atomic_write(path, "wb") as f:
        f.write(buf.getvalue())


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class _Prep:
    """State shared by the passes (the models are read-only, so the worker threads share them)."""

    def __init__(self, corpus: Corpus, out: Path, opts: PrepOptions, unseen: set[str]):
        from voxtool.encoders.ge2e import load_ge2e
        from voxtool.vocoders.mel import MEL_22K_JIK876, VocoderLogMel

        self.corpus, self.out, self.opts = corpus, out, opts
        self.settings = MEL_22K_JIK876
        self.mel_fn = VocoderLogMel(MEL_22K_JIK876).eval()
        self.ge2e = load_ge2e()
        self.tg = TextGridIndex(opts.alignments, corpus.speakers) if opts.avg_units == "phones" else None
        self.sample_per_item = max(1, MAX_CLUSTER_FRAMES // len(corpus.utterances))
        self.unseen = unseen
        self.stats = avg_voice.UnitStats(self.settings.n_mels)  # gathered as items are done, not kept per item
        self.warps: dict[str, float] = {}  # k-means: each speaker's VTLN factor (1 without VTLN)
        self.centers: np.ndarray | None = None  # mel bin centres (Hz), set where VTLN warps
        self._lock = threading.Lock()

    def gather(self, u: Utterance, segments: list[avg_voice.Segment], medians: np.ndarray) -> None:
        if u.speaker not in self.unseen:  # statistics of the seen speakers only
            with self._lock:
                self.stats.add(segments, medians)

    def path(self, u: Utterance) -> Path:
        return self.out / u.item

    def segments_of(self, u: Utterance, n_frames: int) -> list[avg_voice.Segment]:
        tg = self.tg.find(u)
        if tg is None:
            raise BadInput(u.path, f"no TextGrid for it in {self.opts.alignments} (excluded)")
        intervals = avg_voice.read_phone_intervals(tg, self.opts.tier)
        unknown = avg_voice.unknown_phones(intervals)
        if unknown:
            raise BadInput(u.path, f"its alignment has unknown-word phones ({', '.join(unknown)}) (excluded)")
        return avg_voice.interval_frames(intervals, n_frames, self.settings.sample_rate, self.settings.hop_length)

    def first_pass(self, u: Utterance) -> dict:
        """Decode, mel, d-vector, item without target -> what the statistics need."""
        import torch

        from voxtool.audio.io import load_audio_channels, resample

        s = self.settings
        if self.tg is not None and self.tg.find(u) is None:  # before decoding anything
            raise BadInput(u.path, f"no TextGrid for it in {self.opts.alignments} (excluded)")
        data, sr = load_audio_channels(u.path)
        wav = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
        wav22 = resample(wav, sr, s.sample_rate)
        wav22 = wav22[: len(wav22) // s.hop_length * s.hop_length]
        if len(wav22) == 0:
            raise BadInput(u.path, "shorter than one mel frame")
        with torch.inference_mode():
            mel = self.mel_fn(torch.from_numpy(wav22)).numpy()
        try:
            embed = self.ge2e.embed_utterance(wav, sr)
        except BadInput as e:
            raise BadInput(u.path, e.problem) from None
        result: dict = {"utt": u, "frames": mel.shape[1], "seconds": len(wav) / sr, "embed": embed}
        if self.tg is not None:
            segments = self.segments_of(u, mel.shape[1])
            self.gather(u, segments, avg_voice.segment_medians(mel, segments))
        else:  # the long-term average spectrum, for the speaker's VTLN factor
            result["spectrum"] = vtln.active_sum(mel)
        _write_npz(self.path(u), mel=mel.astype(np.float32), embed=embed.astype(np.float32), speaker=np.array(u.speaker))
        return result

    def fit_warps(self, done: list[dict]) -> None:
        """Every speaker's VTLN factor: the seen speakers' fitted together, each unseen one to their reference."""
        sums: dict[str, tuple[np.ndarray, int]] = {}
        for r in done:
            total, n = r.pop("spectrum")
            old = sums.get(r["utt"].speaker, (0.0, 0))
            sums[r["utt"].speaker] = (old[0] + total, old[1] + n)
        spectra = {spk: total / max(n, 1) for spk, (total, n) in sums.items()}
        if not self.opts.vtln:
            self.warps = dict.fromkeys(spectra, 1.0)
            return
        s = self.settings
        self.centers = vtln.mel_centers_hz(s.n_mels, s.f_min, s.f_max)
        seen = {k: v for k, v in spectra.items() if k not in self.unseen}
        self.warps, reference = vtln.fit_warps(seen, self.centers)
        for spk in self.unseen & spectra.keys():
            self.warps[spk] = vtln.fit_warp(spectra[spk], reference, self.centers)

    def features(self, u: Utterance, mel: np.ndarray) -> np.ndarray:
        """MFCCs + deltas [F, D] of the speaker's warped mel (not yet speaker-normalised)."""
        alpha = self.warps[u.speaker]
        return avg_voice.mfcc_features(mel if alpha == 1.0 else vtln.warp_mel(mel, alpha, self.centers))

    def feature_moments(self, u: Utterance) -> dict:
        """The utterance's feature moments, and a seeded sample of its frames for the clustering."""
        feats = self.features(u, _read_npz(self.path(u))["mel"]).astype(np.float64)
        pick = np.random.default_rng([self.opts.seed, zlib.crc32(u.item.encode())]).permutation(len(feats))
        return {"utt": u, "moments": (feats.sum(0), np.square(feats).sum(0), len(feats)),
                "sample": feats[np.sort(pick[: self.sample_per_item])].astype(np.float32)}

    def units_of(self, u: Utterance, mel: np.ndarray, norm: avg_voice.SpeakerNorm, km) -> list[avg_voice.Segment]:
        feats = norm.apply(u.speaker, self.features(u, mel))
        return avg_voice.unit_runs(km.predict(feats))

    def kmeans_stats(self, u: Utterance, norm: avg_voice.SpeakerNorm, km) -> None:
        mel = _read_npz(self.path(u))["mel"]
        segments = self.units_of(u, mel, norm, km)
        self.gather(u, segments, avg_voice.segment_medians(mel, segments))

    def final_pass(self, u: Utterance, vectors: dict, spk_embed: np.ndarray, norm=None, km=None) -> None:
        item = _read_npz(self.path(u))
        mel = item["mel"]
        segments = self.segments_of(u, mel.shape[1]) if km is None else self.units_of(u, mel, norm, km)
        item["avg_mel"] = avg_voice.average_voice(mel, segments, vectors)
        item["spk_embed"] = spk_embed.astype(np.float32)
        _write_npz(self.path(u), **item)


def _run(fn: Callable, items: list, opts: PrepOptions, advance: Callable | None, skipped: list | None = None) -> list:
    """fn over items in the worker pool; with `skipped`, BadInputs become (path, reason) entries there."""
    from voxtool.prep_pool import map_items

    def guarded(u):
        try:
            return fn(u)
        except BadInput as e:
            if skipped is None:
                raise
            return ("skip", e.where or str(u.path), e.problem)

    out = []
    for r in map_items(guarded, items, opts.workers, kind="thread", ordered=True, advance=advance,
                       torch_threads=1 if opts.workers > 1 else None):
        if isinstance(r, tuple) and r and r[0] == "skip":
            skipped.append((r[1], r[2]))
        else:
            out.append(r)
    return out


def prepare(corpus_dir: Path, out: Path, opts: PrepOptions, advance: Callable | None = None) -> PrepSummary:
    """Write the dataset (see the module docstring); bad files are skipped with a reason."""
    from voxtool import __version__
    from voxtool.fileio import ensure_output_dir, write_text_atomic
    from voxtool.outputs import write_json

    if opts.avg_units not in ("phones", "kmeans"):
        raise BadInput(None, f"--avg-units {opts.avg_units!r}: choose phones or kmeans")
    if opts.avg_units == "phones" and opts.alignments is None:
        raise BadInput(None, "phone targets need --alignments TG_DIR (MFA or `voxtool transcribe pinyin` "
                             "TextGrids); without alignments use --avg-units kmeans")
    corpus = discover(corpus_dir, opts.mic)
    speakers = corpus.speakers
    unseen = split_speakers(speakers, opts.unseen, opts.unseen_fraction, opts.seed)
    ensure_output_dir(out)
    for stale in ("dataset.json", "train.txt", "valid.txt", "unseen.txt"):  # a re-run is unfinished until the end
        (out / stale).unlink(missing_ok=True)
    state = _Prep(corpus, out, opts, unseen)
    skipped: list[tuple[str, str]] = list(corpus.ignored)
    done = _run(state.first_pass, corpus.utterances, opts, advance, skipped)
    if not done:
        raise VoxtoolError(f"no usable utterance in {corpus_dir} ({len(skipped)} skipped; see the reasons above)")
    seen_done = [r for r in done if r["utt"].speaker not in unseen]
    if not seen_done:
        raise VoxtoolError("every usable utterance belongs to an unseen speaker; nothing to train on")
    stats = state.stats
    norm = km = None
    if state.tg is None:
        state.fit_warps(done)
        feats = _run(state.feature_moments, [r["utt"] for r in done], opts, advance)
        norm = avg_voice.SpeakerNorm()
        for f in feats:
            norm.add_moments(f["utt"].speaker, *f["moments"])
        seen_feats = [f for f in feats if f["utt"].speaker not in unseen]
        sample = [norm.apply(f["utt"].speaker, f["sample"]) for f in seen_feats]
        speakers = np.concatenate([[f["utt"].speaker] * len(f["sample"]) for f in seen_feats])
        km = avg_voice.fit_units(np.concatenate(sample), opts.clusters, opts.seed,
                                 speakers if opts.shared_units else None)
        _run(lambda u: state.kmeans_stats(u, norm, km), [r["utt"] for r in seen_done], opts, advance)
    vectors = stats.vectors()

    seen_items = [r["utt"].item for r in seen_done]
    valid = split_valid(seen_items, opts.valid_fraction, opts.seed)
    spk_embed = {}
    for spk in {r["utt"].speaker for r in done}:
        rows = [r["embed"] for r in done if r["utt"].speaker == spk and r["utt"].item not in valid]
        mean = np.mean(rows or [r["embed"] for r in done if r["utt"].speaker == spk], axis=0)
        spk_embed[spk] = mean / np.linalg.norm(mean)
    _run(lambda u: state.final_pass(u, vectors, spk_embed[u.speaker], norm, km), [r["utt"] for r in done], opts,
         advance)

    lists = {"train": [i for i in seen_items if i not in valid], "valid": [i for i in seen_items if i in valid],
             "unseen": [r["utt"].item for r in done if r["utt"].speaker in unseen]}
    for split, entries in lists.items():
        write_text_atomic(out / f"{split}.txt", "".join(f"{e}\n" for e in entries))
    spk_meta = {}
    for r in done:
        spk = r["utt"].speaker
        spk_meta.setdefault(spk, {"items": 0, "split": "unseen" if spk in unseen else "train", "seconds": 0.0})
        spk_meta[spk]["items"] += 1
        spk_meta[spk]["seconds"] = round(spk_meta[spk]["seconds"] + r["seconds"], 3)
    seconds = float(sum(r["seconds"] for r in done))
    meta = {
        "format": DATASET_FORMAT, "format_version": FORMAT_VERSION, "voxtool_version": __version__,
        "mel": state.settings.model_dump(), "avg_units": opts.avg_units, "units": stats.labels,
        "unit_stats": stats.summary(),
        "alignments": {"folder": str(opts.alignments), "tier": opts.tier} if state.tg is not None else None,
        "kmeans": {"clusters": opts.clusters, "features": f"{avg_voice.MFCC_COEFFS} MFCCs + deltas"
                   f"{' of VTLN-warped mels' if opts.vtln else ''}, per-speaker mean/variance normalised",
                   "vtln": {spk: round(a, 4) for spk, a in sorted(state.warps.items())} if opts.vtln else None,
                   "ids": km.ids.tolist(), "centers": np.round(km.centers, 4).tolist(),
                   "dropped": {f"u{k}": v for k, v in km.dropped.items()}} if km else None,
        "ge2e": {"weights": "resemblyzer/pretrained.pt (RTVC step 1564501)", "stft_pad": state.ge2e.pad_mode,
                 "partial_frames": 160, "partial_step": 80, "min_coverage": 0.75},
        "corpus": {"root": str(corpus_dir), "layout": corpus.layout},
        "speakers": dict(sorted(spk_meta.items())), "items": len(done), "seconds": round(seconds, 3),
        "splits": {k: len(v) for k, v in lists.items()}, "seed": opts.seed,
        "skipped": [{"input": p, "reason": r} for p, r in skipped],
    }
    write_json(out / "dataset.json", meta, indent=1, trailing_newline=True)
    return PrepSummary(out, corpus.layout, opts.avg_units, stats.labels, meta["speakers"], meta["splits"], seconds,
                       skipped, meta["kmeans"]["vtln"] if km else None)
