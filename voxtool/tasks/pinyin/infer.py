"""Transcription and lyric alignment with a trained pinyin model, and its evaluation on a prepared split.

The ladder: `load_model(path)` once -> `predict(model, audio, sr)` (or `align(model, audio, sr, lyrics)`) ->
`predict_from_file(model, path)` -> `predict_from_files_to_files(model, inputs, out=...)` writing CSV / JSON /
TextGrid (`transcript.py`). `evaluate_dataset(model, data, split)` -> `voxtool.evaluation.EvalResult`.

Times: a boundary between output frames f-1 and f lies at f * frame_s + offset_s (frame_s = hop * stride / sr,
offset_s = centre of output frame 0 minus half a frame); inference never trims, so times are in the file's own
timeline. Without lyrics the decoded tokens are force-aligned too, so both paths give segments the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from voxtool.errors import BadInput, VoxtoolError
from voxtool.evaluation import EvalResult
from voxtool.tasks.pinyin.config import PinyinConfig
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
from voxtool.tasks.pinyin.transcript import FORMATS, Phone, Segment, Transcript, lyrics_for, write_transcript


@dataclass
class LoadedModel:
    """The acoustic model with what inference needs beside it (not a language model: pinyin decodes without one)."""

    net: torch.nn.Module  # QuartzNet: log-mel (B, F, T) + lengths -> log-probabilities (B, T_out, C)
    vocab: Vocab
    config: PinyinConfig
    device: torch.device
    mel: torch.nn.Module  # LogMel: (N,) -> (F, T)
    path: Path | None = None  # the model file it came from (outputs may not replace it)
    precision: str = "32"  # of the network: 32 | bf16 | 16 (resolved from auto by load_model)

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


def load_model(path: str | Path, device: str | torch.device = "cpu", precision: str = "32") -> LoadedModel:
    """A model.pt (or run folder) of task pinyin -> model in eval mode on `device`. `precision` auto (bf16 on a
    CPU with native bf16) | 32 | bf16 | 16: the network's autocast; features and log-probabilities stay fp32."""
    from voxtool.audio.mel import LogMel
    from voxtool.inference_backends import resolve_precision
    from voxtool.tasks.pinyin.model import build_model
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
        net = build_model(cfg, vocab)
    except Exception as e:  # sizes that build no network
        raise BadInput(mf.path, f"model config builds no network ({_first_line(e)})") from None
    load_weights(net, mf.state_dict, mf.path)
    device = torch.device(device)
    net.to(device).eval()
    return LoadedModel(net, vocab, cfg, device, LogMel(cfg.features.mel).to(device), Path(path),
                       resolve_precision(precision, device))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:120]}" if text else type(e).__name__


@torch.no_grad()
def emissions(model: LoadedModel, audio: np.ndarray, sr: int, *, chunk_seconds: float | None = None) -> np.ndarray:
    """Mono audio (N,) at `sr` -> log-probabilities (T_out, C) as float32 numpy.

    A file longer than `chunk_seconds` (default `chunked.CHUNK_SECONDS`, 120 s; 0 = never) plus the network's
    receptive field on both sides runs in overlapping windows whose kept cores equal the whole-file pass (float
    rounding aside; `voxtool.tasks.pinyin.chunked`), so memory stops growing with duration; shorter files go
    through in one piece as before."""
    from voxtool.audio.io import resample
    from voxtool.devices import autocast
    from voxtool.tasks.pinyin import chunked

    wav = resample(np.asarray(audio, dtype=np.float32), sr, model.sample_rate)
    mel_cfg = model.config.features.mel
    n_fft = mel_cfg.n_fft
    if wav.size < n_fft // 2:  # the centred STFT's reflect padding needs n_fft // 2 samples
        wav = np.pad(wav, (0, n_fft // 2 - wav.size))
    wav_t = torch.from_numpy(np.ascontiguousarray(wav)).to(model.device)
    seconds = chunked.CHUNK_SECONDS if chunk_seconds is None else chunk_seconds
    core = max(0, round(seconds * mel_cfg.sample_rate / mel_cfg.hop_length))
    windows = chunked.plan(mel_cfg.n_frames(wav.size), model.config.model, core)
    if len(windows) > 1:
        feats = chunked.log_mel(model.mel, wav_t, core)
        lp = chunked.chunked_emissions(model.net, feats, windows, lambda: autocast(model.device, model.precision))
        return lp.cpu().numpy()
    feats = model.mel(wav_t)[None]  # (1, F, T)
    lens = torch.tensor([feats.shape[-1]], device=model.device)
    with autocast(model.device, model.precision):
        log_probs, out_lens = model.net(feats, lens)
    return log_probs[0, : int(out_lens[0])].float().cpu().numpy()


def _segments(log_probs: np.ndarray, ids: list[int], groups: list[tuple[list[int], str, str]], model: LoadedModel,
              duration: float, boundaries: str = "posterior") -> list[Segment]:
    """Force-align `ids` and cut segments: groups = (target indices, pinyin label, text label).

    A segment starts at its first token's first frame and ends where the token after it (normally its `|`)
    starts, so blank frames after a CTC spike stay with the segment (long sung vowels keep their length).
    boundaries = "ctc": token starts from the Viterbi CTC path; "posterior" (default): from the blank-free
    re-segmentation (`blank_free_starts`), which moves boundaries off CTC's late spikes. Scores always come from
    the CTC path."""
    blank = model.vocab.blank
    path = forced_align(log_probs, ids, blank)
    spans = token_spans(path, log_probs, ids)
    if boundaries == "posterior":
        starts = blank_free_starts(log_probs, ids, blank)
    elif boundaries == "ctc":
        starts = [sp.start for sp in spans]
    else:
        raise BadInput(None, f"--boundaries must be posterior or ctc, not '{boundaries}'")
    T = log_probs.shape[0]

    def t(frame: int) -> float:
        return float(min(duration, max(0.0, frame * model.frame_s + model.offset_s)))

    out = []
    for idx, pinyin, text in groups:
        first, last = idx[0], idx[-1]
        nxt = last + 1
        end_frame = starts[nxt] if nxt < len(starts) else T
        phones = []
        for k, j in enumerate(idx):
            p_end = starts[idx[k + 1]] if k + 1 < len(idx) else end_frame
            phones.append(Phone(round(t(starts[j]), 4), round(t(max(p_end, starts[j] + 1)), 4),
                                model.vocab.tokens[ids[j]]))
        score = float(np.mean([spans[j].score for j in idx]))
        out.append(Segment(round(t(starts[first]), 4), round(t(max(end_frame, starts[first] + 1)), 4),
                           pinyin, text, round(score, 4), phones))
    return out


def predict(model: LoadedModel, audio: np.ndarray, sr: int, *, beam: int = 1, lyrics: str | list[Unit] | None = None,
            boundaries: str = "posterior") -> Transcript:
    """Mono audio (N,) at `sr` -> Transcript. Without `lyrics`: decode (greedy, or prefix beam search with
    `beam` > 1), one segment per decoded syllable; with them: `align`."""
    if lyrics is not None:
        return align(model, audio, sr, lyrics, boundaries=boundaries)
    lp = emissions(model, audio, sr)
    duration = len(audio) / sr
    ids = greedy_decode(lp, model.vocab.blank) if beam <= 1 else prefix_beam_search(lp, beam, model.vocab.blank)
    tokens = model.vocab.decode(ids)
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
    return Transcript(duration, _segments(lp, ids, groups, model, duration, boundaries))


def align(model: LoadedModel, audio: np.ndarray, sr: int, text: str | list[Unit], *, boundaries: str = "posterior"
          ) -> Transcript:
    """Known lyrics (Hanzi, tone-numbered pinyin, or units) -> one segment per character (unit) with start/end
    and per-phone times."""
    if isinstance(text, list):
        units = text
    elif looks_like_pinyin(text):
        units = pinyin_to_units(" ".join(text.split()))
    else:
        units = text_to_units(text, latin=model.config.text.latin, tone_sandhi=model.config.text.tone_sandhi)
    tokens = units_to_tokens(units)
    ids = model.vocab.encode(tokens)
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
    lp = emissions(model, audio, sr)
    duration = len(audio) / sr
    try:
        segs = _segments(lp, ids, groups, model, duration, boundaries)
    except AlignmentError as e:
        raise VoxtoolError(f"cannot align: {e}") from None
    for s in segs:
        s.phones = [p for p in s.phones if p.phone != SEP]
    return Transcript(duration, segs, aligned=True)


# ----------------------------------------------------------------------------------------------- files

def predict_from_file(model: LoadedModel, path: Path, *, beam: int = 1, lyrics: str | None = None,
                      boundaries: str = "posterior") -> Transcript:
    """An audio file -> Transcript (lyrics that cannot be read as text or aligned are a BadInput naming it)."""
    from voxtool.audio.io import load_audio

    audio = load_audio(path, sr=model.sample_rate)
    if lyrics is None:
        return predict(model, audio, model.sample_rate, beam=beam, boundaries=boundaries)
    try:
        return align(model, audio, model.sample_rate, lyrics, boundaries=boundaries)
    except TextError as e:
        raise BadInput(path, f"lyrics: {e}") from None
    except VoxtoolError as e:
        raise BadInput(path, str(e)) from None


def predict_from_files_to_files(model: str | Path | LoadedModel, inputs: list[str], *, out: Path | None = None,
                                text: Path | None = None, beam: int = 1, fmt: str | None = None, device="cpu",
                                skip_existing: bool = False, boundaries: str = "posterior", advance=None,
                                fail_fast: bool = True, precision: str = "32"):
    """Files / folders / globs -> one transcript file per input (a model path is loaded once, after every input
    and output was checked). Returns what was written (`voxtool.batch.BatchResults`).

    `fail_fast=False` goes on past a failing input (reported on stderr, an entry with "error" in the results);
    see `voxtool.batch.run_jobs`. `advance(1)` per file."""
    from voxtool.batch import run_jobs
    from voxtool.inputs import protected_paths
    from voxtool.outputs import plan_outputs

    model_path = model.path if isinstance(model, LoadedModel) else model
    fmt_name, jobs = plan_outputs(inputs, out, FORMATS, fmt, skip_existing=skip_existing,
                                  protect=protected_paths(model_path, text))
    if text is not None:  # problems common to every input: before the model loads, not once per file
        if not Path(text).exists():
            raise BadInput(text, "lyrics file or folder not found")
        if Path(text).is_file() and len(jobs) > 1:
            raise BadInput(text, "one lyrics file for several inputs; give a folder mirroring the inputs")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device, precision)

    def work(job) -> dict:
        lyrics = lyrics_for(job.src, [str(i) for i in inputs], Path(text), len(jobs)) if text else None
        tr = predict_from_file(loaded, job.src, beam=beam, lyrics=lyrics, boundaries=boundaries)
        write_transcript(tr, job.dst, fmt_name, job.src)
        return {"input": str(job.src), "output": str(job.dst), "pinyin": tr.pinyin,
                "segments": len(tr.segments), "aligned": tr.aligned}

    return run_jobs(jobs, work, fail_fast=fail_fast, advance=advance, out=out)


def evaluate_dataset(model: str | Path | LoadedModel, data: Path, split: str = "test", *, device="cpu",
                     limit: int = 0, advance=None, beam: int = 1) -> EvalResult:
    """Error rates of `model` on a prepared split (greedy, or prefix beam search with `beam` > 1).

    metrics: ter, ser, ser_toneless, loss, blank_share (over the split) and utterances (how many);
    items: per utterance {name (its item path), reference, hypothesis, ter, ser, ser_toneless, blank_share}."""
    from voxtool.tasks.pinyin.data import SPLITS, PinyinDataset
    from voxtool.tasks.pinyin.metrics import evaluate_items

    if split not in SPLITS:
        raise BadInput(None, f"--split {split!r}: choose test, valid or train")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    ds = PinyinDataset(data, split)
    if len(ds) == 0:
        raise BadInput(data, f"the {split} split is empty")
    header_mel = ds.header["features"]["mel"]
    if header_mel != loaded.config.features.mel.model_dump():
        raise BadInput(data, "dataset features differ from the model's; prepare it with the model's preset")
    n = len(ds) if not limit else min(limit, len(ds))
    metrics, rows = evaluate_items(loaded.net, [ds[i] for i in range(n)], loaded.vocab, loaded.device, beam=beam,
                                   advance=advance)
    metrics["utterances"] = n
    return EvalResult(metrics, [{"name": ds.entries[i], **row} for i, row in enumerate(rows)])
