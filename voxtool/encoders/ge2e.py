"""GE2E speaker encoder (Real-Time-Voice-Cloning / DiffVC d-vectors) with the published weights.

    enc = load_ge2e()                                   # the weights inside the resemblyzer wheel
    d = enc.embed_utterance(wav, sr)                    # np.float32 [256], L2-normalised, non-negative
    s = enc.embed_speaker([(wav1, sr1), (wav2, sr2)])   # mean of utterance d-vectors, re-normalised

Weights. DiffVC's `checkpts/spk_encoder/pretrained.pt` (RTVC, step 1,564,501) is the same file that ships in the
`resemblyzer` wheel as `resemblyzer/pretrained.pt`. It is found through the package metadata / import machinery
*without importing resemblyzer* (which would pull in librosa, scipy and webrtcvad at start-up), and loaded with
weights_only=True. Install route on a fresh machine (resemblyzer depends on `webrtcvad`, which has no wheels and
needs a C compiler; `webrtcvad-wheels` provides the same `webrtcvad` module prebuilt):

    pip install webrtcvad-wheels && pip install --no-deps resemblyzer

(voxtool needs `webrtcvad` for the silence trimming and resemblyzer only for its weights file.)

Pipeline (RTVC `encoder/audio.py` + `encoder/inference.py`, the code DiffVC copied):
1. resample to 16 kHz (soxr HQ, as librosa >= 0.10 does), normalise the volume to -30 dBFS, increase only;
2. trim long silences: webrtcvad mode 3 on 30 ms windows, moving average of width 8, rounded, dilated by a
   7-window structuring element (`vad_max_silence_length` + 1, so 3 windows each side);
3. 40-mel power spectrogram, n_fft 400 (25 ms), hop 160 (10 ms), Hann, centred STFT, Slaney mel 0-8 kHz;
4. partials of 160 frames with a step of 80 (50 % overlap); the last one is kept if the waveform covers at
   least 75 % of it (the waveform is zero-padded to the end of the last partial); at least one partial;
5. LSTM(40 -> 256, 3 layers) -> final hidden state of the top layer -> Linear(256, 256) -> ReLU -> L2 norm,
   all partials in one batch; the utterance d-vector is the L2-normalised mean of the partial d-vectors.

STFT padding: DiffVC used librosa 0.6, whose centred STFT pads by reflection; librosa >= 0.10 (so resemblyzer
today) pads with zeros. `pad_mode="reflect"` (default) reproduces DiffVC's training embeddings, "constant" today's
resemblyzer; only the first and last frame differ (d-vectors by up to ~4e-3 per dimension).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from voxtool.errors import BadInput, VoxtoolError

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_STEP = 80  # RTVC/DiffVC: 50 % overlap (resemblyzer's default rate=1.3 gives 77)
MIN_COVERAGE = 0.75
NORM_TARGET_DBFS = -30.0
VAD_WINDOW_MS = 30
VAD_MOVING_AVERAGE = 8
VAD_MAX_SILENCE = 6
EMBED_DIM = 256
INSTALL_ROUTE = "pip install webrtcvad-wheels && pip install --no-deps resemblyzer"
_INT16_MAX = 2**15 - 1
_IGNORED_KEYS = ("similarity_weight", "similarity_bias")  # GE2E loss parameters, not part of the encoder


def default_weights_path() -> Path:
    """`resemblyzer/pretrained.pt` of the installed wheel, located without importing resemblyzer."""
    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec("resemblyzer")  # a top-level find_spec runs no package code
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "pretrained.pt" for p in spec.submodule_search_locations]
    try:
        candidates.append(Path(str(importlib.metadata.distribution("resemblyzer").locate_file("resemblyzer/pretrained.pt"))))
    except importlib.metadata.PackageNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise VoxtoolError(f"the GE2E speaker-encoder weights come from the resemblyzer wheel, which is not installed; "
                       f"install it with: {INSTALL_ROUTE}")


def slaney_mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                       fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) with its defaults (Slaney scale, area-normalised)
    -> float32 [n_mels, n_fft // 2 + 1]. Written out so that embedding needs no librosa import."""
    fmax = sr / 2 if fmax is None else fmax

    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0  # Slaney: linear below 1 kHz, log above
    min_log_mel = min_log_hz / f_sp

    def hz_to_mel(f: float) -> np.ndarray:
        return np.where(f >= min_log_hz, min_log_mel + np.log(max(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def resample_like_librosa(wav: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """librosa.resample(res_type="soxr_hq", fix=True): soxr HQ, length fixed to ceil(N * sr_out / sr_in)."""
    if sr_in == sr_out:
        return wav
    import soxr

    out = soxr.resample(wav, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)
    n = int(np.ceil(len(wav) * sr_out / sr_in))
    return out[:n] if len(out) >= n else np.pad(out, (0, n - len(out)))


def normalize_volume(wav: np.ndarray, target_dbfs: float = NORM_TARGET_DBFS) -> np.ndarray:
    """Scale up to `target_dbfs` RMS (in int16 units, as RTVC); never scale down; silence is left alone."""
    rms = np.sqrt(np.mean((wav * _INT16_MAX) ** 2))
    if not rms > 0:
        return wav
    change = target_dbfs - 20 * np.log10(rms / _INT16_MAX)
    return wav if change < 0 else wav * (10 ** (change / 20))


def trim_long_silences(wav: np.ndarray) -> np.ndarray:
    """RTVC's webrtcvad trim at 16 kHz: (N,) float -> (M,) with M <= N, whole 30 ms windows kept or dropped."""
    try:
        import webrtcvad
    except ImportError:
        raise VoxtoolError(f"the GE2E silence trimming needs webrtcvad; install it with: {INSTALL_ROUTE}") from None

    window = VAD_WINDOW_MS * SAMPLE_RATE // 1000
    wav = wav[: len(wav) - len(wav) % window]
    # RTVC packs with struct.pack("h"), which refuses samples past int16; clipping keeps loud input usable
    pcm = np.clip(np.round(wav * _INT16_MAX), -(2**15), _INT16_MAX).astype("<i2").tobytes()
    vad = webrtcvad.Vad(3)
    flags = np.array([vad.is_speech(pcm[i * 2 : (i + window) * 2], SAMPLE_RATE) for i in range(0, len(wav), window)],
                     dtype=np.float64)
    width = VAD_MOVING_AVERAGE
    padded = np.concatenate([np.zeros((width - 1) // 2), flags, np.zeros(width // 2)])
    summed = np.cumsum(padded)
    summed[width:] = summed[width:] - summed[:-width]
    mask = np.round(summed[width - 1 :] / width).astype(bool)
    # scipy.ndimage.binary_dilation with a centred structuring element of VAD_MAX_SILENCE + 1 ones
    mask = np.convolve(mask.astype(np.int64), np.ones(VAD_MAX_SILENCE + 1, dtype=np.int64), mode="same") > 0
    return wav[np.repeat(mask, window)]


def preprocess_wav(wav: np.ndarray, sr: int) -> np.ndarray:
    """Any-rate mono float waveform (N,) -> float32 16 kHz, volume-normalised, long silences trimmed."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise BadInput(None, f"expected a mono waveform (N,), got shape {wav.shape}")
    if not np.isfinite(wav).all():
        raise BadInput(None, "waveform contains NaN or infinite samples")
    wav = resample_like_librosa(wav, sr)
    return trim_long_silences(normalize_volume(wav)).astype(np.float32, copy=False)


def partial_slices(n_samples: int) -> list[tuple[int, int]]:
    """RTVC `compute_partial_slices(n_samples)` (160 frames, 50 % overlap, 0.75 coverage) -> [(start, stop)] in mel
    frames; the waveform is to be zero-padded to `stop * HOP` of the last one."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    steps = max(1, n_frames - PARTIAL_FRAMES + PARTIAL_STEP + 1)
    slices = [(i, i + PARTIAL_FRAMES) for i in range(0, steps, PARTIAL_STEP)]
    start = slices[-1][0] * HOP
    coverage = (n_samples - start) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(slices) > 1:
        slices = slices[:-1]
    return slices


class SpeakerEncoder(nn.Module):
    """The GE2E network (keys `lstm.*`, `linear.*`) plus RTVC's preprocessing and partial slicing."""

    def __init__(self, pad_mode: str = "reflect"):
        super().__init__()
        if pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode must be 'reflect' or 'constant', not {pad_mode!r}")
        self.pad_mode = pad_mode
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, EMBED_DIM)
        self.relu = nn.ReLU()
        self.register_buffer("mel_basis", torch.from_numpy(slaney_mel_filters()), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.linear.weight.device

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, 40] power mel frames -> [B, 256] non-negative unit-norm d-vectors."""
        _, (hidden, _) = self.lstm(frames)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True)

    def mel_frames(self, wav: torch.Tensor) -> torch.Tensor:
        """[N] preprocessed 16 kHz waveform -> [1 + N // 160, 40] power mel frames (librosa melspectrogram)."""
        spec = torch.stft(wav, N_FFT, HOP, N_FFT, self.window, center=True, pad_mode=self.pad_mode,
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()
        return torch.matmul(self.mel_basis, power).T

    @torch.inference_mode()
    def embed_preprocessed(self, wav: np.ndarray) -> np.ndarray:
        """Already preprocessed 16 kHz float32 (N,) -> float32 [256]: all partials in one forward pass."""
        if len(wav) == 0:
            raise BadInput(None, "no speech left after silence trimming (the clip is silent or too short)")
        slices = partial_slices(len(wav))
        end = slices[-1][1] * HOP
        padded = np.pad(wav, (0, max(0, end - len(wav))))
        frames = self.mel_frames(torch.from_numpy(padded).to(self.device))
        batch = torch.stack([frames[a:b] for a, b in slices])
        partial = self(batch).mean(dim=0)
        return (partial / torch.norm(partial)).float().cpu().numpy()

    def embed_utterance(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """Mono waveform (N,) at `sr` -> float32 [256] L2-normalised d-vector (DiffVC's `get_embed`)."""
        return self.embed_preprocessed(preprocess_wav(wav, sr))

    def embed_speaker(self, wavs: list[tuple[np.ndarray, int]]) -> np.ndarray:
        """[(wav, sr), ...] of one speaker -> float32 [256]: mean of the utterance d-vectors, re-normalised."""
        if not wavs:
            raise BadInput(None, "embed_speaker needs at least one utterance")
        mean = np.mean([self.embed_utterance(w, sr) for w, sr in wavs], axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)


def load_ge2e_state(obj: object, where: object = None) -> dict[str, torch.Tensor]:
    """A checkpoint dict ({"model_state": ...} as RTVC saves it, or a bare state dict) -> the `lstm.*`/`linear.*`
    tensors; the GE2E similarity parameters are dropped, anything else missing or extra is refused."""
    state = obj.get("model_state", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise BadInput(where, "not a GE2E checkpoint (expected a dict with 'model_state')")
    return {k: v for k, v in state.items() if k not in _IGNORED_KEYS}


def load_ge2e(device: str | torch.device = "cpu", weights: str | Path | None = None,
              pad_mode: str = "reflect") -> SpeakerEncoder:
    """The published GE2E encoder in eval mode (weights from `weights`, default the resemblyzer wheel's file)."""
    from voxtool.fileio import load_torch

    path = Path(weights) if weights is not None else default_weights_path()
    state = load_ge2e_state(load_torch(path), path)
    model = SpeakerEncoder(pad_mode=pad_mode)
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or extra or wrong:
        problems = [f"{name}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                    for name, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)) if keys]
        raise BadInput(path, f"not the GE2E speaker-encoder layout ({'; '.join(problems)})")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
