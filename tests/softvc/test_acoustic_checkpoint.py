"""The acoustic model's key layout (reference note §2 and §4 tables) and strict loading of published files."""

from __future__ import annotations

import pytest
import torch

from voxtool.errors import BadInput
from voxtool.tasks.softvc.checkpoint import load_acoustic
from voxtool.tasks.softvc.config import AcousticSection
from voxtool.tasks.softvc.model import AcousticModel


def published_shapes(in_dim: int, prenet: int) -> dict[str, tuple[int, ...]]:
    """bshall's keys and shapes as listed in the reference note (am:acoustic/model.py), for a soft model with input
    width `in_dim` and encoder prenet width `prenet` (256 units-only; 384 for hubert-pitdyn's 768-d input)."""
    shapes = {
        "encoder.prenet.net.0.weight": (prenet, in_dim), "encoder.prenet.net.0.bias": (prenet,),
        "encoder.prenet.net.3.weight": (prenet, prenet), "encoder.prenet.net.3.bias": (prenet,),
        "encoder.convs.0.weight": (512, prenet, 5), "encoder.convs.0.bias": (512,),
        "encoder.convs.3.weight": (512, 512, 4), "encoder.convs.3.bias": (512,),  # ConvTranspose1d, 2x upsampling
        "encoder.convs.4.weight": (512, 512, 5), "encoder.convs.4.bias": (512,),
        "encoder.convs.7.weight": (512, 512, 5), "encoder.convs.7.bias": (512,),
        "decoder.prenet.net.0.weight": (256, 128), "decoder.prenet.net.0.bias": (256,),
        "decoder.prenet.net.3.weight": (256, 256), "decoder.prenet.net.3.bias": (256,),
        "decoder.lstm1.weight_ih_l0": (3072, 768), "decoder.lstm1.weight_hh_l0": (3072, 768),
        "decoder.proj.weight": (128, 768),
    }
    for i in (1, 2, 3):
        shapes[f"decoder.lstm{i}.weight_ih_l0"] = (3072, 768)
        shapes[f"decoder.lstm{i}.weight_hh_l0"] = (3072, 768)
        shapes[f"decoder.lstm{i}.bias_ih_l0"] = (3072,)
        shapes[f"decoder.lstm{i}.bias_hh_l0"] = (3072,)
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


CASES = [("none", 256, 256, 18_830_336), ("pitdyn", 768, 384, 19_469_568)]


@pytest.mark.parametrize("conditioning,in_dim,prenet,params", CASES)
def test_published_layout_and_size(conditioning, in_dim, prenet, params):
    model = AcousticModel(AcousticSection(conditioning=conditioning, side_path=False))
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == published_shapes(in_dim, prenet)
    assert sum(p.numel() for p in model.parameters()) == params  # the note's counts (bshall; hubert-pitdyn)


@pytest.mark.parametrize("wrap", ["acoustic-model", "module", "bare"])
@pytest.mark.parametrize("conditioning,in_dim,prenet,params", CASES)
def test_published_checkpoint_loads_strictly(tmp_path, conditioning, in_dim, prenet, params, wrap):
    sd = random_state(published_shapes(in_dim, prenet), seed=in_dim)
    if wrap == "acoustic-model":  # bshall's training checkpoint / hub file
        obj = {"acoustic-model": sd, "optimizer": {}, "step": 12000, "loss": 0.3}
    elif wrap == "module":  # DDP-era file
        obj = {"acoustic-model": {f"module.{k}": v for k, v in sd.items()}, "step": 1}
    else:
        obj = sd
    path = tmp_path / "model-best.pt"
    torch.save(obj, path)
    model, meta = load_acoustic(path)
    assert meta.conditioning == conditioning and meta.source == "published" and not model.training
    loaded = model.state_dict()
    assert set(loaded) == set(sd)
    for k, v in sd.items():
        assert torch.equal(loaded[k], v), k
    x = torch.randn(1, 5, in_dim)
    assert model.generate(x).shape == (1, 10, 128)


def test_missing_key_and_discrete_model_are_refused(tmp_path):
    sd = random_state(published_shapes(256, 256), seed=0)
    broken = dict(sd)
    del broken["decoder.proj.weight"]
    torch.save({"acoustic-model": broken}, tmp_path / "a.pt")
    with pytest.raises(BadInput, match=r"a\.pt.*missing \(decoder\.proj\.weight\)"):
        load_acoustic(tmp_path / "a.pt")
    torch.save({"acoustic-model": {**sd, "encoder.embedding.weight": torch.zeros(101, 256)}}, tmp_path / "d.pt")
    with pytest.raises(BadInput, match="discrete"):
        load_acoustic(tmp_path / "d.pt")
    torch.save({"acoustic-model": {**sd, "encoder.prenet.net.0.weight": torch.zeros(256, 300)}}, tmp_path / "w.pt")
    with pytest.raises(BadInput, match="input width 300"):
        load_acoustic(tmp_path / "w.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BadInput, match="junk.pt"):
        load_acoustic(tmp_path / "junk.pt")


def test_voxtool_pitdyn_model_has_a_side_path_and_its_bare_weights_load():
    """A voxtool-trained pitdyn model (side_path, the default) adds its streams past the instance norms through
    `encoder.side` (E x 2 pitdyn_dim); its bare weights load back with the side path, published ones without."""
    section = AcousticSection(conditioning="pitdyn", unit_dim=8, pitdyn_dim=8, encoder_width=24, lstm_width=20,
                              decoder_prenet_width=8, prenet_width=16)
    model = AcousticModel(section).eval()
    assert tuple(model.state_dict()["encoder.side.weight"].shape) == (24, 16)
    x = torch.randn(1, 6, section.in_dim)
    moved = x.clone()
    moved[..., 8:] += 1.0  # the same offset on every frame of both streams: the instance norms alone would erase it
    with torch.no_grad():
        model.encoder.convs[0].weight.zero_()  # nothing passes the input path: any change comes through the side
        assert not torch.allclose(model.encoder(x), model.encoder(moved))
    from voxtool.tasks.softvc.checkpoint import section_from_weights

    sd = model.state_dict()
    assert section_from_weights(sd, None, unit_dim=8)[0].side_path
    assert not section_from_weights({k: v for k, v in sd.items() if "side" not in k}, None, unit_dim=8)[0].side_path


@pytest.mark.parametrize("conditioning", ["explicit", "pitdyn"])
def test_teacher_forcing_matches_generate_when_fed_its_own_output(conditioning):
    """generate() is the teacher-forced forward fed with its own previous frames (same weights, eval mode), also
    with the side paths and explicit's harmonic prior."""
    torch.manual_seed(0)
    section = AcousticSection(conditioning=conditioning, prenet_width=16, encoder_width=24, decoder_prenet_width=8,
                              lstm_width=20, unit_dim=8, pitdyn_dim=8, f0_range_hz=(100.0, 400.0))
    model = AcousticModel(section, n_mels=128).eval()
    x = torch.randn(2, 7, section.in_dim)
    if conditioning == "explicit":  # log-f0 in range, voiced flags 0/1: the harmonic prior is active
        x[..., -3], x[..., -2] = torch.rand(2, 7), (torch.rand(2, 7) > 0.3).float()
        assert model.offset(x).abs().sum() > 0
    free = model.generate(x)
    prev = torch.nn.functional.pad(free[:, :-1], (0, 0, 1, 0))
    with torch.no_grad():
        forced = model(x, prev)
    assert free.shape == (2, 14, 128)
    torch.testing.assert_close(forced, free, rtol=1e-4, atol=1e-5)
