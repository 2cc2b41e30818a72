"""Long inputs in pieces: cut points at the quietest moments, context around each piece, cross-faded joins.

`convert softvc` runs HuBERT, f0 estimation, the LSTM acoustic model and the vocoder on one piece at a time, so
memory stays flat in the input's duration. A piece boundary must not click, so three things work together:

1. `plan_chunks` puts each cut at the quietest 20 ms frame (smoothed RMS over ~100 ms) between `min_seconds` and
   `max_seconds` after the previous cut: at a pause when the input has one, else at the softest moment.
2. Every piece is converted with `context` samples of the neighbouring audio on each side (HuBERT's transformer
   and the LSTM see the surroundings, so the frames near the cut are rendered as in a whole-file pass).
3. `CrossFader` joins the pieces' outputs with an equal-gain linear cross-fade of `2 * fade` samples centred on
   the cut; both sides render the same stretch of audio there.

All positions are in samples at 16 kHz and multiples of `hop` (320, one HuBERT unit), so every piece's units lie on
the whole file's unit grid. `convert_in_pieces` drives a piece converter over a whole input; `write_stream` writes
the stream to a file atomically, resampled on the fly (soxr), so neither holds the whole output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HOP = 320
DEFAULT_MIN_SECONDS = 8.0
DEFAULT_MAX_SECONDS = 16.0
DEFAULT_CONTEXT_SECONDS = 1.0
DEFAULT_FADE_SAMPLES = 640  # 40 ms each side of a cut


@dataclass(frozen=True)
class Chunk:
    """One piece: output samples [start, end) are kept; the model sees [lo, hi) (start/end plus context)."""

    start: int
    end: int
    lo: int
    hi: int


def frame_rms(audio: np.ndarray, hop: int = HOP) -> np.ndarray:
    """(T,) -> (ceil(T / hop),) linear RMS per hop-sized frame (the last one zero-padded)."""
    n = -(-len(audio) // hop)
    padded = np.zeros(n * hop, dtype=np.float64)
    padded[: len(audio)] = audio
    return np.sqrt(np.mean(padded.reshape(n, hop) ** 2, axis=1))


def plan_chunks(audio: np.ndarray, sr: int = 16000, min_seconds: float = DEFAULT_MIN_SECONDS,
                max_seconds: float = DEFAULT_MAX_SECONDS, context_seconds: float = DEFAULT_CONTEXT_SECONDS,
                hop: int = HOP) -> list[Chunk]:
    """Cut (T,) audio into pieces of `min_seconds`..`max_seconds` at its quietest frames (module doc).

    Audio no longer than `max_seconds` is one piece without context. Starts and ends are multiples of `hop`
    except the last end, which is T."""
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    total = len(audio)
    max_frames = max(1, int(max_seconds * sr) // hop)
    min_frames = max(1, int(min_seconds * sr) // hop)
    context = int(context_seconds * sr) // hop * hop
    n_frames = -(-total // hop)
    if n_frames <= max_frames:
        return [Chunk(0, total, 0, total)]
    # ~100 ms smoothing: a cut lands in a pause, not in the gap between two glottal pulses
    loud = np.convolve(frame_rms(audio, hop), np.ones(5) / 5, mode="same")
    cuts = [0]
    while n_frames - cuts[-1] > max_frames:
        a, b = cuts[-1] + min_frames, min(cuts[-1] + max_frames, n_frames - 1)
        cuts.append(a + int(np.argmin(loud[a : b + 1])))
    bounds = [c * hop for c in cuts] + [total]
    return [Chunk(s, e, max(0, s - context), min(total, e + context)) for s, e in zip(bounds[:-1], bounds[1:])]


class CrossFader:
    """Joins the converted pieces into one stream: `push(chunk, wav)` with `wav` covering [chunk.lo, chunk.hi)
    yields the finished samples in order; `flush()` yields the rest. Holds at most `fade` samples between pieces.
    """

    def __init__(self, fade: int = DEFAULT_FADE_SAMPLES):
        self.fade = fade
        self.tail: np.ndarray | None = None  # the previous piece's output over [cut - fade, cut + fade)

    def push(self, chunk: Chunk, wav: np.ndarray) -> Iterator[np.ndarray]:
        """`wav` (hi - lo,) is the piece's output over [lo, hi); yields output samples from the previous cut's
        fade on, up to this piece's own cut minus the fade (kept for the next piece)."""
        if len(wav) != chunk.hi - chunk.lo:
            raise ValueError(f"piece output has {len(wav)} samples for {chunk.hi - chunk.lo} input samples")
        pos = chunk.start  # absolute sample where this piece's output starts
        if self.tail is not None:
            f = len(self.tail) // 2
            if chunk.start - f < chunk.lo:
                raise ValueError("a piece needs at least `fade` samples of context before its start")
            mine = wav[chunk.start - f - chunk.lo : chunk.start + f - chunk.lo]
            ramp = (np.arange(2 * f, dtype=np.float32) + 0.5) / (2 * f)
            yield (self.tail * (1.0 - ramp) + mine * ramp).astype(np.float32)
            pos, self.tail = chunk.start + f, None
        f_next = max(0, min(self.fade, chunk.hi - chunk.end, chunk.end - pos))
        yield wav[pos - chunk.lo : chunk.end - f_next - chunk.lo]
        if f_next:
            self.tail = np.asarray(wav[chunk.end - f_next - chunk.lo : chunk.end + f_next - chunk.lo], np.float32)

    def flush(self) -> Iterator[np.ndarray]:
        """The rest when the last piece had context after its end (a stream cut short): up to that cut."""
        if self.tail is not None:
            yield self.tail[: len(self.tail) // 2]
            self.tail = None


def convert_in_pieces(audio: np.ndarray, convert: Callable[[np.ndarray], np.ndarray], min_seconds: float =
                      DEFAULT_MIN_SECONDS, max_seconds: float = DEFAULT_MAX_SECONDS, context_seconds: float =
                      DEFAULT_CONTEXT_SECONDS, sr: int = 16000, hop: int = HOP) -> Iterator[np.ndarray]:
    """(T,) audio -> `convert`ed output (T,) in order: `convert` maps a piece (a multiple of `hop` samples, the
    input zero-padded to whole hops) to as many output samples; pieces from `plan_chunks`, joined by `CrossFader`."""
    total = len(audio)
    padded = np.pad(np.asarray(audio, np.float32), (0, -total % hop))
    fader, emitted = CrossFader(), 0
    for chunk in plan_chunks(padded, sr, min_seconds, max_seconds, context_seconds, hop):
        for part in fader.push(chunk, convert(padded[chunk.lo : chunk.hi])):
            part = part[: total - emitted]
            emitted += len(part)
            yield part
    for part in fader.flush():
        part = part[: total - emitted]
        emitted += len(part)
        yield part


def write_stream(dst: Path, parts: Iterable[np.ndarray], total: int, sr_in: int, sr_out: int,
                 subtype: str = "PCM_16") -> int:
    """Write mono `parts` (`total` samples at `sr_in`) to `dst` at `sr_out` (soxr's streaming resampler), clipped to
    [-1, 1], atomically -> samples written: exactly round(total * sr_out / sr_in)."""
    import soundfile as sf

    from voxtool.fileio import atomic_path

    want = int(round(total * sr_out / sr_in))
    stream = None
    if sr_out != sr_in:
        import soxr

        stream = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")
    written = 0
    with atomic_path(dst) as tmp, sf.SoundFile(str(tmp), "w", sr_out, 1, subtype=subtype,
                                               format=Path(dst).suffix.lstrip(".").upper() or "WAV") as f:
        def put(block: np.ndarray) -> None:
            nonlocal written
            block = block[: want - written]
            f.write(np.clip(block, -1.0, 1.0))
            written += len(block)

        for part in parts:
            put(stream.resample_chunk(np.asarray(part, np.float32), last=False) if stream is not None else part)
        if stream is not None:
            put(stream.resample_chunk(np.zeros(0, np.float32), last=True))
        if written < want:  # the resampler's last block can fall a sample short
            f.write(np.zeros(want - written, np.float32))
            written = want
    return written
