"""Transcription and lyric alignment with a trained pinyin model.

Layers: `load_model(path)` once -> `transcribe(audio, sr, model, beam)` / `align(audio, sr, model, text)` ->
`transcribe_file(path, ...)` -> `transcribe_files(jobs, ...)` writing CSV / JSON / TextGrid.

Times: a boundary between output frames f-1 and f lies at f * frame_s + offset_s (frame_s = hop * stride / sr,
offset_s = centre of output frame 0 minus half a frame); inference never trims, so times are in the file's own
timeline. Without lyrics the decoded tokens are force-aligned too, so both paths give segments the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from voxtool.errors import BadInput, VoxtoolError
from voxtool.fileio import atomic_path, write_text_atomic
from voxtool.tasks.pinyin.decode import (
    AlignmentError,
    blank_free_starts,
    forced_align,
    greedy_decode,
    prefix_beam_search,
    token_spans,
)
from voxtool.tasks.pinyin.tokens import (
    SEP,
    TextError,
    Unit,
    Vocab,
    group_label,
    looks_like_pinyin,
    pinyin_to_units,
    text_to_units,
    units_to_tokens,
)


@dataclass
class LoadedModel:
    model: torch.nn.Module
    vocab: Vocab
    config: object  # PinyinConfig
    device: torch.device
    mel: torch.nn.Module

    @property
    def sample_rate(self) -> int:
        return self.config.features.mel.sample_rate

    @property
    def frame_s(self) -> float:
        m = self.config.features.mel
        return m.hop_length * self.config.model.stride / m.sample_rate

    @property
    def offset_s(self) -> float:
        m = self.config.features.mel
        centre0 = (self.config.model.stride - 1) / 2 * m.hop_length / m.sample_rate
        return centre0 - self.frame_s / 2


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """A model.pt (or run folder) of task pinyin -> model in eval mode on `device`."""
    from voxtool.audio.mel import LogMel
    from voxtool.tasks.pinyin.train import PinyinConfig, build_model
    from voxtool.training.modelfile import load_model_file, load_weights

    mf = load_model_file(path, task="pinyin")
    try:
        cfg = PinyinConfig.model_validate(mf.config)
        vocab = Vocab.from_dict(mf.meta["vocab"]) if "vocab" in mf.meta else Vocab()
    except Exception as e:  # pydantic.ValidationError or a garbled vocab
        raise BadInput(mf.path, f"model config is not a pinyin config ({_first_line(e)})") from None
    if vocab.tokens != Vocab().tokens:
        raise BadInput(mf.path, f"token inventory {vocab.version} is not this voxtool's")
    try:
        model = build_model(cfg, vocab)
    except Exception as e:  # sizes that build no network
        raise BadInput(mf.path, f"model config builds no network ({_first_line(e)})") from None
    load_weights(model, mf.state_dict, mf.path)
    device = torch.device(device)
    model.to(device).eval()
    return LoadedModel(model, vocab, cfg, device, LogMel(cfg.features.mel).to(device))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:120]}" if text else type(e).__name__


@torch.no_grad()
def emissions(audio: np.ndarray, sr: int, lm: LoadedModel) -> np.ndarray:
    """Mono audio (N,) at `sr` -> log-probabilities (T_out, C) as float32 numpy."""
    from voxtool.audio.io import resample

    wav = resample(np.asarray(audio, dtype=np.float32), sr, lm.sample_rate)
    if wav.size < lm.config.features.mel.n_fft // 2:
        wav = np.pad(wav, (0, lm.config.features.mel.n_fft // 2 - wav.size))
    feats = lm.mel(torch.from_numpy(np.ascontiguousarray(wav)).to(lm.device))[None]
    lens = torch.tensor([feats.shape[-1]], device=lm.device)
    log_probs, out_lens = lm.model(feats, lens)
    return log_probs[0, : int(out_lens[0])].float().cpu().numpy()


@dataclass
class Phone:
    start: float
    end: float
    phone: str


@dataclass
class Segment:
    start: float
    end: float
    pinyin: str
    text: str = ""
    score: float = 0.0  # mean log-probability of its tokens on their own frames (low = suspicious)
    phones: list[Phone] = field(default_factory=list)


@dataclass
class Transcript:
    duration: float
    segments: list[Segment]
    aligned: bool = False  # True: segments come from given lyrics

    @property
    def pinyin(self) -> str:
        return " ".join(s.pinyin for s in self.segments)

    def to_dict(self) -> dict:
        return {"duration": round(self.duration, 4), "pinyin": self.pinyin, "aligned": self.aligned,
                "segments": [asdict(s) for s in self.segments]}


def _segments(log_probs: np.ndarray, ids: list[int], groups: list[tuple[list[int], str, str]], lm: LoadedModel,
              duration: float, boundaries: str = "posterior") -> list[Segment]:
    """Force-align `ids` and cut segments: groups = (target indices, pinyin label, text label).

    A segment starts at its first token's first frame and ends where the token after it (normally its `|`)
    starts, so blank frames after a CTC spike stay with the segment (long sung vowels keep their length).
    boundaries = "ctc": token starts from the Viterbi CTC path; "posterior" (default): from the blank-free
    re-segmentation (`blank_free_starts`), which moves boundaries off CTC's late spikes. Scores always come from
    the CTC path."""
    path = forced_align(log_probs, ids, lm.vocab.blank)
    spans = token_spans(path, log_probs, ids)
    if boundaries == "posterior":
        starts = blank_free_starts(log_probs, ids, lm.vocab.blank)
    elif boundaries == "ctc":
        starts = [sp.start for sp in spans]
    else:
        raise BadInput(None, f"--boundaries must be posterior or ctc, not '{boundaries}'")
    T = log_probs.shape[0]

    def t(frame: int) -> float:
        return float(min(duration, max(0.0, frame * lm.frame_s + lm.offset_s)))

    out = []
    for idx, pinyin, text in groups:
        first, last = idx[0], idx[-1]
        nxt = last + 1
        end_frame = starts[nxt] if nxt < len(starts) else T
        phones = []
        for k, j in enumerate(idx):
            p_end = starts[idx[k + 1]] if k + 1 < len(idx) else end_frame
            phones.append(Phone(round(t(starts[j]), 4), round(t(max(p_end, starts[j] + 1)), 4),
                                lm.vocab.tokens[ids[j]]))
        score = float(np.mean([spans[j].score for j in idx]))
        out.append(Segment(round(t(starts[first]), 4), round(t(max(end_frame, starts[first] + 1)), 4),
                           pinyin, text, round(score, 4), phones))
    return out


def transcribe(audio: np.ndarray, sr: int, lm: LoadedModel, beam: int = 1, boundaries: str = "posterior"
               ) -> Transcript:
    """Decode (greedy, or prefix beam search with `beam` > 1) -> one segment per decoded syllable."""
    lp = emissions(audio, sr, lm)
    duration = len(audio) / sr
    ids = greedy_decode(lp, lm.vocab.blank) if beam <= 1 else prefix_beam_search(lp, beam, lm.vocab.blank)
    tokens = lm.vocab.decode(ids)
    groups = []
    cur: list[int] = []
    for j, tok in enumerate(tokens + [SEP]):
        if tok == SEP:
            if cur:
                syl = [tokens[k] for k in cur]
                groups.append((cur, group_label(syl), ""))
            cur = []
        else:
            cur.append(j)
    if not groups:
        return Transcript(duration, [])
    return Transcript(duration, _segments(lp, ids, groups, lm, duration, boundaries))


def align(audio: np.ndarray, sr: int, lm: LoadedModel, text: str | list[Unit], boundaries: str = "posterior"
          ) -> Transcript:
    """Known lyrics (Hanzi, tone-numbered pinyin, or units) -> one segment per character (unit) with start/end
    and per-phone times."""
    if isinstance(text, list):
        units = text
    elif looks_like_pinyin(text):
        units = pinyin_to_units(" ".join(text.split()))
    else:
        units = text_to_units(text, latin=lm.config.text.latin, tone_sandhi=lm.config.text.tone_sandhi)
    tokens = units_to_tokens(units)
    ids = lm.vocab.encode(tokens)
    groups = []
    j = 1  # after the leading `|`
    for u in units:
        idx = []
        for k, s in enumerate(u.syllables):
            idx.extend(range(j, j + len(s.tokens)))
            j += len(s.tokens) + 1  # the syllable's tokens and the `|` after it
            if k + 1 < len(u.syllables):
                idx.append(j - 1)  # a `|` inside a multi-syllable unit (spelled letters) belongs to it
        groups.append((idx, " ".join(s.pinyin for s in u.syllables), u.text))
    lp = emissions(audio, sr, lm)
    duration = len(audio) / sr
    try:
        segs = _segments(lp, ids, groups, lm, duration, boundaries)
    except AlignmentError as e:
        raise VoxtoolError(f"cannot align: {e}") from None
    for s in segs:
        s.phones = [p for p in s.phones if p.phone != SEP]
    return Transcript(duration, segs, aligned=True)


# ----------------------------------------------------------------------------------------------- files

FORMATS = {".csv": "csv", ".json": "json", ".textgrid": "textgrid"}


def format_for(path: Path, fmt: str | None) -> str:
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS.values():
            raise BadInput(None, f"--format must be csv, json or textgrid, not '{fmt}'")
        return fmt
    return FORMATS.get(path.suffix.lower(), "csv")


def write_csv(tr: Transcript, path: Path) -> None:
    head = "start,end,pinyin,text\n" if tr.aligned else "start,end,pinyin\n"
    rows = []
    for s in tr.segments:
        row = f"{s.start:.3f},{s.end:.3f},{s.pinyin}"
        rows.append(row + (f",{s.text}" if tr.aligned else ""))
    write_text_atomic(path, head + "".join(r + "\n" for r in rows))


def write_json(tr: Transcript, path: Path, source: Path | None = None) -> None:
    d = tr.to_dict()
    if source is not None:
        d = {"file": str(source), **d}
    write_text_atomic(path, json.dumps(d, ensure_ascii=False, indent=1) + "\n")


def _tier_entries(items: list[tuple[float, float, str]], duration: float) -> list[tuple[float, float, str]]:
    """Non-overlapping, non-empty intervals within [0, duration] (praatio rejects anything else)."""
    out = []
    last = 0.0
    for start, end, label in items:
        start = max(start, last)
        end = min(end, duration)
        if end - start > 1e-4:
            out.append((start, end, label))
            last = end
    return out


def write_textgrid(tr: Transcript, path: Path) -> None:
    from praatio import textgrid

    dur = max(tr.duration, max((s.end for s in tr.segments), default=0.0), 1e-3)
    tg = textgrid.Textgrid()
    tiers = [("pinyin", [(s.start, s.end, s.pinyin) for s in tr.segments])]
    if tr.aligned:
        tiers.insert(0, ("characters", [(s.start, s.end, s.text) for s in tr.segments]))
    tiers.append(("phones", [(p.start, p.end, p.phone) for s in tr.segments for p in s.phones]))
    for name, entries in tiers:
        tg.addTier(textgrid.IntervalTier(name, _tier_entries(entries, dur), 0, dur))
    with atomic_path(path) as tmp:
        tg.save(str(tmp), format="long_textgrid", includeBlankSpaces=True)


def write_transcript(tr: Transcript, path: Path, fmt: str, source: Path | None = None) -> None:
    if fmt == "json":
        write_json(tr, path, source)
    elif fmt == "textgrid":
        write_textgrid(tr, path)
    else:
        write_csv(tr, path)


def read_lyrics(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(path, f"cannot read lyrics ({e})") from None


def transcribe_file(src: Path, lm: LoadedModel, beam: int = 1, lyrics: str | None = None,
                    boundaries: str = "posterior") -> Transcript:
    from voxtool.audio.io import load_audio

    audio = load_audio(src, sr=lm.sample_rate)
    if lyrics is None:
        return transcribe(audio, lm.sample_rate, lm, beam, boundaries)
    try:
        return align(audio, lm.sample_rate, lm, lyrics, boundaries)
    except TextError as e:
        raise BadInput(src, f"lyrics: {e}") from None
    except VoxtoolError as e:
        raise BadInput(src, str(e)) from None


def _lyrics_for(src: Path, inputs: list[str], text: Path, n_jobs: int) -> str:
    """The lyrics of `src`: `text` itself (a file), or text/<path relative to its input folder>.txt."""
    if text.is_file():
        if n_jobs != 1:
            raise BadInput(text, "one lyrics file for several inputs; give a folder mirroring the inputs")
        return read_lyrics(text)
    if not text.is_dir():
        raise BadInput(text, "lyrics file or folder not found")
    rel = Path(src.name)
    for i in inputs:
        root = Path(i)
        if root.is_dir():
            try:
                rel = src.resolve().relative_to(root.resolve())
                break
            except ValueError:
                continue
    path = text / rel.with_suffix(".txt")
    if not path.is_file():
        raise BadInput(path, f"no lyrics for {src}")
    return read_lyrics(path)


def transcribe_paths(inputs: list[str], out: Path | None, model: str | Path, *, text: Path | None = None,
                     beam: int = 1, fmt: str | None = None, device="cpu", skip_existing: bool = False,
                     boundaries: str = "posterior", advance=None, fail_fast: bool = True) -> list[dict]:
    """Files / folders / globs -> one output per input (model loaded once). Returns what was written.

    `fail_fast=False` goes on past a failing input (reported on stderr, an entry with "error" in the returned
    `voxtool.batch.BatchResults`); see `voxtool.batch.run_jobs`."""
    from voxtool.batch import run_jobs
    from voxtool.inputs import expand_inputs, protected_paths

    fmt_name = format_for(Path(out) if out is not None else Path("x.csv"), fmt)
    ext = {"csv": ".csv", "json": ".json", "textgrid": ".TextGrid"}[fmt_name]
    jobs = expand_inputs(inputs, out, ext, skip_existing=skip_existing, protect=protected_paths(model, text))
    if text is not None:  # problems common to every input: before the model loads, not once per file
        if not Path(text).exists():
            raise BadInput(text, "lyrics file or folder not found")
        if Path(text).is_file() and len(jobs) > 1:
            raise BadInput(text, "one lyrics file for several inputs; give a folder mirroring the inputs")
    lm = load_model(model, device)

    def work(job) -> dict:
        lyrics = _lyrics_for(job.src, [str(i) for i in inputs], Path(text), len(jobs)) if text else None
        tr = transcribe_file(job.src, lm, beam=beam, lyrics=lyrics, boundaries=boundaries)
        write_transcript(tr, job.dst, fmt_name, job.src)
        return {"input": str(job.src), "output": str(job.dst), "pinyin": tr.pinyin,
                "segments": len(tr.segments), "aligned": tr.aligned}

    return run_jobs(jobs, work, fail_fast=fail_fast, advance=advance, out=out)


def evaluate_dataset(model: str | Path, data: Path, split: str = "test", beam: int = 1, limit: int = 0,
                     device="cpu") -> dict[str, float]:
    """Error rates of `model` on a prepared split (greedy or beam)."""
    from voxtool.tasks.pinyin.data import SPLITS, PinyinDataset
    from voxtool.tasks.pinyin.train import evaluate_model

    if split not in SPLITS:
        raise BadInput(None, f"--split {split!r}: choose test, valid or train")
    lm = load_model(model, device)
    ds = PinyinDataset(data, split)
    if len(ds) == 0:
        raise BadInput(data, f"the {split} split is empty")
    header_mel = ds.header["features"]["mel"]
    if header_mel != lm.config.features.mel.model_dump():
        raise BadInput(data, "dataset features differ from the model's; prepare it with the model's preset")
    n = len(ds) if not limit else min(limit, len(ds))
    metrics = evaluate_model(lm.model, [ds[i] for i in range(n)], lm.vocab, lm.device, beam=beam)
    metrics["utterances"] = n
    return metrics
