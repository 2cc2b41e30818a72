"""DiffVC's networks learn synthetic voices in seconds (tiny sizes, one CPU thread).

Synthetic corpus: 16 "mel bins"; 5 phones, each a fixed spectrum; 4 speakers, each a smooth spectral offset (its
"timbre") and a d-vector. An utterance is a run of phones of 3-7 frames; the speaker's mel is phone spectrum +
speaker offset + a little noise, and its average-voice target is the phone spectrum alone. So:
- the encoder has to strip the speaker from the mel (baselines: the untrained encoder, and the identity, whose
  error is exactly the speaker offset);
- the decoder has to put a speaker back from the d-vector / reference (baselines: the untrained decoder, and the
  zero-score guess, whose loss is E z^2 = 1);

- a conversion (speaker A's mel, speaker B's d-vector and reference) sampled by a decoder that predicts v (as
  diffvc-tiny's) is closer to B's mel than the encoder's prior mean is (slow). With the published score loss it is
  not at this size (docs/diffvc.md, "Measured").
"""

from __future__ import annotations

import copy

import pytest
import torch

from tests.conftest import seeded
from voxtool.tasks.diffvc.encoder import FwdDiffusion, masked_mse, sequence_mask
from voxtool.tasks.diffvc.model_config import DecoderSection, EncoderSection
from voxtool.tasks.diffvc.vc import DiffVC

N_FEATS, FRAMES, PHONES, SPEAKERS, EMBED = 8, 24, 5, 4, 8
ENC = EncoderSection(n_feats=N_FEATS, channels=32, filters=64, heads=2, layers=2, enc_dim=8)
DEC = DecoderSection(dec_dim=16, dim_mults=(1, 2), spk_dim=8, spk_embed_dim=EMBED)
CONVERT_STEPS = 300  # ~20 s on one core
CONVERT_SAMPLER_STEPS = 6  # ML-6, the default of `convert diffvc`
ENCODER_STEPS = 100  # ~3 s
DECODER_STEPS = 100  # ~9 s
BATCH = 16
SCALE = 3.0  # log-mel-like spreads: phone spectra ~3 per bin, speaker offsets of RMS ~2


class Voices:
    """The synthetic corpus (see the module docstring), drawn from one seed."""

    def __init__(self, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.g = g
        self.phones = SCALE * torch.randn(PHONES, N_FEATS, generator=g)
        bins = torch.linspace(0, 1, N_FEATS)
        # smooth offsets of RMS ~0.8 SCALE: a tilt and a slow ripple per speaker
        tilt = (torch.rand(SPEAKERS, 1, generator=g) * 2 - 1) * 1.2
        phase = torch.rand(SPEAKERS, 1, generator=g) * 6.28
        self.offsets = SCALE * (tilt * (bins - 0.5) * 2 + 0.7 * torch.sin(6.28 * bins + phase))
        self.embeds = torch.nn.functional.normalize(torch.randn(SPEAKERS, EMBED, generator=g), dim=1)

    def utterance_phones(self) -> torch.Tensor:
        """[FRAMES] phone ids in runs of 3-7 frames."""
        ids = []
        while len(ids) < FRAMES:
            ids += [int(torch.randint(PHONES, (1,), generator=self.g))] * int(torch.randint(3, 8, (1,), generator=self.g))
        return torch.tensor(ids[:FRAMES])

    def render(self, phone_ids: torch.Tensor, speaker: torch.Tensor, noise: float = 0.05 * SCALE) -> torch.Tensor:
        """[B, FRAMES] phone ids, [B] speakers -> mels [B, N_FEATS, FRAMES]."""
        mel = self.phones[phone_ids].transpose(1, 2) + self.offsets[speaker][:, :, None]
        return mel + noise * torch.randn(mel.shape, generator=self.g)

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        ids = torch.stack([self.utterance_phones() for _ in range(size)])
        speaker = torch.randint(SPEAKERS, (size,), generator=self.g)
        return {"ids": ids, "speaker": speaker, "mel": self.render(ids, speaker),
                "avg": self.phones[ids].transpose(1, 2), "embed": self.embeds[speaker]}


def train_encoder(voices: Voices, seed: int) -> FwdDiffusion:
    torch.manual_seed(seed)
    encoder = FwdDiffusion(ENC)
    optimiser = torch.optim.Adam(encoder.parameters(), lr=2e-3)
    mask = torch.ones(BATCH, 1, FRAMES)
    for _ in range(ENCODER_STEPS):
        b = voices.batch(BATCH)
        loss = encoder.compute_loss(b["mel"], b["avg"], mask)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return encoder.eval()


def with_ref(voices: Voices, b: dict) -> dict:
    """The reference: the same speaker saying other phones (a stand-in for another crop of the utterance)."""
    return {**b, "ref": voices.render(torch.stack([voices.utterance_phones() for _ in b["ids"]]), b["speaker"])}


def train_decoder(vc: DiffVC, voices: Voices, steps: int, lr: float = 2e-3) -> None:
    """Decoder steps as `train diffvc` takes them: DiffVC.compute_loss on (target, reference, d-vector), Adam on
    the trainable (decoder) parameters, grad-clip 1.0."""
    params = [p for p in vc.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=lr)
    lengths = torch.full((BATCH,), FRAMES)
    vc.train()
    for _ in range(steps):
        b = with_ref(voices, voices.batch(BATCH))
        loss, _ = vc.compute_loss(b["mel"], lengths, b["ref"], b["embed"])
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
    vc.eval()


def held_out(seed: int) -> Voices:
    """The same phones and speakers as `voices`, fresh utterances and noise."""
    fresh = Voices(seeded(100))
    fresh.g.manual_seed(seeded(seed))
    return fresh


@pytest.fixture(scope="module")
def voices() -> Voices:
    return Voices(seeded(100))


@pytest.fixture(scope="module")
def encoders(voices) -> tuple[FwdDiffusion, FwdDiffusion]:
    """(untrained, trained) encoders, same initialisation."""
    torch.manual_seed(seeded(5))
    untrained = FwdDiffusion(ENC).eval()
    return untrained, train_encoder(voices, seeded(5))


@pytest.fixture(scope="module")
def decoders(voices, encoders) -> tuple[DiffVC, DiffVC]:
    """(untrained, trained for DECODER_STEPS) DiffVC with the trained encoder frozen, as `train diffvc` runs it
    (the Trainer's train.freeze switches requires_grad off)."""
    torch.manual_seed(seeded(6))
    vc = DiffVC(ENC, DEC)
    vc.encoder.load_state_dict(encoders[1].state_dict())
    vc.encoder.requires_grad_(False)
    untrained = copy.deepcopy(vc).eval()
    train_decoder(vc, voices, DECODER_STEPS)
    return untrained, vc


def test_encoder_learns_the_average_voice(encoders):
    """Held-out masked MSE to the average-voice target, against the untrained encoder and the identity (which keeps
    the speaker). Measured: trained ~0.16, identity ~5, untrained ~8."""
    untrained, trained = encoders
    data = held_out(999)
    b = data.batch(48)
    lengths = torch.randint(FRAMES // 2, FRAMES + 1, (48,), generator=data.g)
    mask = sequence_mask(lengths, FRAMES).unsqueeze(1).float()
    with torch.no_grad():
        before = masked_mse(untrained(b["mel"], mask), b["avg"], mask).item()
        after = masked_mse(trained(b["mel"], mask), b["avg"], mask).item()
    identity = masked_mse(b["mel"], b["avg"], mask).item()
    print(f"encoder held-out MSE: untrained {before:.3f}, identity {identity:.3f}, trained {after:.3f}")
    assert after < 0.25 * identity and after < 0.1 * before


def decoder_eval_loss(vc: DiffVC, b: dict, seed: int) -> tuple[float, float]:
    """(loss, zero-score loss) averaged over t in {0.1, 0.3, 0.5, 0.7, 0.9} with fixed noise (eval mode)."""
    mask = torch.ones(len(b["mel"]), 1, FRAMES)
    mean, mean_ref = vc.average_voice(b["mel"], mask), vc.average_voice(b["ref"], mask)
    losses, zero = [], []
    with torch.no_grad():
        for t in (0.1, 0.3, 0.5, 0.7, 0.9):
            torch.manual_seed(seed)
            losses.append(vc.decoder.loss_t(b["mel"], mask, mean, b["ref"], mask, mean_ref, b["embed"],
                                            torch.full((len(mask),), t)).item())
            torch.manual_seed(seed)
            zero.append((torch.randn_like(b["mel"]) ** 2).mean().item())
    return sum(losses) / len(losses), sum(zero) / len(zero)


def test_decoder_denoising_loss_falls(decoders):
    """Fixed-noise diffusion loss on held-out utterances, against the untrained decoder and the zero-score guess
    (loss = E z^2 = 1). Measured: untrained ~1.15, trained ~0.2-0.25."""
    untrained, trained = decoders
    data = held_out(777)
    b = with_ref(data, data.batch(32))
    before, zero_score = decoder_eval_loss(untrained, b, seeded(8))
    after, _ = decoder_eval_loss(trained, b, seeded(8))
    print(f"decoder fixed-noise loss: untrained {before:.3f}, zero score {zero_score:.3f}, trained {after:.3f}")
    assert after < 0.6 * zero_score and after < 0.6 * before


@pytest.fixture(scope="module")
def converting_decoder(voices, encoders) -> DiffVC:
    """A DiffVC predicting v, trained for CONVERT_STEPS (the trained encoder frozen)."""
    torch.manual_seed(seeded(6))
    vc = DiffVC(ENC, DEC.model_copy(update={"prediction": "v"}))
    vc.encoder.load_state_dict(encoders[1].state_dict())
    vc.encoder.requires_grad_(False)
    train_decoder(vc, voices, CONVERT_STEPS)
    return vc


@pytest.mark.slow
def test_sampled_mel_is_closer_to_the_target_than_the_prior_mean(voices, converting_decoder):
    """Held-out phones spoken by speaker A, converted to another speaker B (B's d-vector, a reference of B saying
    other phones; ML sampler, CONVERT_SAMPLER_STEPS steps): the sample's MSE to B's noise-free mel of the same phones
    is below that of the encoder's prior mean (the average voice, which lacks B's timbre), and below the sample's
    MSE to A's mel (it is B it renders, not A)."""
    data = held_out(555)
    g = data.g
    n = 32
    ids = torch.stack([data.utterance_phones() for _ in range(n)])
    source = torch.randint(SPEAKERS, (n,), generator=g)
    target = (source + 1 + torch.randint(SPEAKERS - 1, (n,), generator=g)) % SPEAKERS
    x = data.render(ids, source)
    ref = data.render(torch.stack([data.utterance_phones() for _ in range(n)]), target)
    clean = data.phones[ids].transpose(1, 2)
    target_mel, source_mel = clean + data.offsets[target][:, :, None], clean + data.offsets[source][:, :, None]
    lengths, mask = torch.full((n,), FRAMES), torch.ones(n, 1, FRAMES)
    vc = converting_decoder
    prior_mean = vc.average_voice(x, mask)
    generator = torch.Generator().manual_seed(seeded(9))
    _, sample = vc.convert(x, lengths, ref, lengths, data.embeds[target], CONVERT_SAMPLER_STEPS, "ml",
                           generator=generator)
    to_target, to_source = masked_mse(sample, target_mel, mask).item(), masked_mse(sample, source_mel, mask).item()
    prior_to_target = masked_mse(prior_mean, target_mel, mask).item()
    print(f"MSE to B: sample {to_target:.3f}, prior mean {prior_to_target:.3f}; sample to A {to_source:.3f}")
    assert to_target < 0.6 * prior_to_target and to_target < 0.6 * to_source
