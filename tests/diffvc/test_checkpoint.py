"""Published checkpoint layouts: `vc_libritts_wodyn.pt` / `vc_vctk_wodyn.pt` (plain DiffVC state dict, 346
tensors) and `enc.pt` (plain FwdDiffusion state dict), rebuilt here at full size from the key/shape table of the
reference note (shared/reference/diffvc.md, section 5), loaded strictly and compared tensor by tensor."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import seeded
from voxtool.errors import BadInput
from voxtool.tasks.diffvc.checkpoint import (
    infer_decoder_section,
    infer_encoder_section,
    load_encoder_state,
    load_vc_state,
)
from voxtool.tasks.diffvc.encoder import FwdDiffusion
from voxtool.tasks.diffvc.model_config import DecoderSection, EncoderSection
from voxtool.tasks.diffvc.vc import DiffVC


def published_encoder_table() -> dict[str, tuple[int, ...]]:
    """FwdDiffusion keys (enc.pt; vc_*.pt has them under `encoder.`): MelEncoder 192 ch, 6 layers, 2 heads,
    window 4 (emb_rel (1, 9, 96)), FFN 768 k3; PostNet 128 ch, 7x7 blocks with GroupNorm."""
    t: dict[str, tuple[int, ...]] = {}

    def conv(name: str, *shape: int) -> None:
        t[f"{name}.weight"], t[f"{name}.bias"] = shape, (shape[0],)

    conv("encoder.init_proj", 192, 80, 1)
    for i in range(3):
        conv(f"encoder.prenet.conv_layers.{i}", 192, 192, 5)
        t[f"encoder.prenet.norm_layers.{i}.gamma"] = t[f"encoder.prenet.norm_layers.{i}.beta"] = (192,)
    conv("encoder.prenet.proj", 192, 192, 1)
    for i in range(6):
        a = f"encoder.encoder.attn_layers.{i}"
        t[f"{a}.emb_rel_k"] = t[f"{a}.emb_rel_v"] = (1, 9, 96)
        for c in "qkvo":
            conv(f"{a}.conv_{c}", 192, 192, 1)
        for n in (1, 2):
            t[f"encoder.encoder.norm_layers_{n}.{i}.gamma"] = t[f"encoder.encoder.norm_layers_{n}.{i}.beta"] = (192,)
        conv(f"encoder.encoder.ffn_layers.{i}.conv_1", 768, 192, 3)
        conv(f"encoder.encoder.ffn_layers.{i}.conv_2", 192, 768, 3)
    conv("encoder.term_proj", 80, 192, 1)
    conv("postnet.init_conv", 128, 1, 1, 1)
    for b in (1, 2):
        conv(f"postnet.res_block.block{b}.block.0", 128, 128, 7, 7)
        conv(f"postnet.res_block.block{b}.block.1", 128)  # GroupNorm weight, bias
    conv("postnet.res_block.res", 128, 128, 1, 1)
    conv("postnet.final_conv", 1, 128, 1, 1)
    return t


def published_decoder_table() -> dict[str, tuple[int, ...]]:
    """`decoder.estimator.*`: time MLP 256 -> 1024 -> 256, RefBlock 1 -> 32 ... 128, cond_block 640 -> 512 -> 128,
    U-Net 130 -> 256 -> 512 -> 1024 (ResnetBlocks, Rezero linear attention 4 x 32, 3x3 stride-2 downs, 4x4
    transposed ups), final block 256 and 1x1 conv to 1 channel."""
    t: dict[str, tuple[int, ...]] = {}
    p = "decoder.estimator."

    def conv(name: str, *shape: int) -> None:
        t[f"{p}{name}.weight"], t[f"{p}{name}.bias"] = shape, (shape[0],)

    def resnet(name: str, dim_in: int, dim_out: int) -> None:
        conv(f"{name}.mlp.1", dim_out, 256)
        conv(f"{name}.block1.block.0", dim_out, dim_in, 3, 3)
        conv(f"{name}.block1.block.1", dim_out)
        conv(f"{name}.block2.block.0", dim_out, dim_out, 3, 3)
        conv(f"{name}.block2.block.1", dim_out)
        if dim_in != dim_out:
            conv(f"{name}.res_conv", dim_out, dim_in, 1, 1)

    def attention(name: str, dim: int) -> None:
        t[f"{p}{name}.fn.g"] = (1,)
        t[f"{p}{name}.fn.fn.to_qkv.weight"] = (384, dim, 1, 1)
        conv(f"{name}.fn.fn.to_out", dim, 128, 1, 1)

    conv("mlp.0", 1024, 256)
    conv("mlp.2", 256, 1024)
    conv("ref_block.mlp1.1", 32, 256)
    conv("ref_block.mlp2.1", 64, 256)
    for name, out, inp in (("block11", 64, 1), ("block12", 64, 32), ("block21", 128, 32), ("block22", 128, 64),
                           ("block31", 256, 64), ("block32", 256, 128)):
        conv(f"ref_block.{name}.0", out, inp, 3, 3)
        conv(f"ref_block.{name}.1", out)  # InstanceNorm affine
    conv("ref_block.final_conv", 128, 128, 1, 1)
    conv("cond_block.0", 512, 640)
    conv("cond_block.2", 128, 512)
    for level, (dim_in, dim_out) in enumerate(((130, 256), (256, 512), (512, 1024))):
        resnet(f"downs.{level}.0", dim_in, dim_out)
        resnet(f"downs.{level}.1", dim_out, dim_out)
        attention(f"downs.{level}.2", dim_out)
        if level < 2:
            conv(f"downs.{level}.3.conv", dim_out, dim_out, 3, 3)
    resnet("mid_block1", 1024, 1024)
    attention("mid_attn", 1024)
    resnet("mid_block2", 1024, 1024)
    for level, dim in enumerate((512, 256)):
        resnet(f"ups.{level}.0", 4 * dim, dim)
        resnet(f"ups.{level}.1", dim, dim)
        attention(f"ups.{level}.2", dim)
        t[f"{p}ups.{level}.3.conv.weight"], t[f"{p}ups.{level}.3.conv.bias"] = (dim, dim, 4, 4), (dim,)
    conv("final_block.block.0", 256, 256, 3, 3)
    conv("final_block.block.1", 256)
    conv("final_conv", 1, 256, 1, 1)
    return t


def published_vc_table() -> dict[str, tuple[int, ...]]:
    return {**{f"encoder.{k}": v for k, v in published_encoder_table().items()}, **published_decoder_table()}


def numel(table: dict[str, tuple[int, ...]], prefix: str = "") -> int:
    return sum(torch.Size(s).numel() for k, s in table.items() if k.startswith(prefix))


def distinct_state(table: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """A tensor per key whose values differ from every other key's (key number + a ramp), cheap at 126 M values
    (torch.randn would take seconds)."""
    offsets = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed)).tolist()
    return {k: torch.arange(torch.Size(shape).numel(), dtype=torch.float32).mul_(1e-7).add_(offsets[i]).reshape(shape)
            for i, (k, shape) in enumerate(table.items())}


@pytest.fixture(scope="module")
def published_vc() -> DiffVC:
    """DiffVC at the published sizes, built once (uninitialised memory: every test loads weights into it)."""
    with torch.device("meta"):
        model = DiffVC(EncoderSection(), DecoderSection())
    return model.to_empty(device="cpu")


def test_the_tables_agree_with_the_notes_counts():
    table = published_vc_table()
    assert len(table) == 346
    assert sum(k.startswith("encoder.") for k in table) == 140 and sum(k.startswith("decoder.") for k in table) == 206
    assert numel(table) == 126_259_128
    assert numel(table, "encoder.") == 8_464_529 and numel(table, "encoder.encoder.") == 6_841_232
    assert numel(table, "encoder.postnet.") == 1_623_297 and numel(table, "decoder.") == 117_794_599
    p = "decoder.estimator."
    split = {"mlp.": 525_568, "ref_block.": 615_840, "cond_block.": 393_856, "downs.": 48_858_883,
             "mid_block1.": 19_143_680, "mid_block2.": 19_143_680, "mid_attn.": 525_313, "ups.": 27_996_930,
             "final_block.": 590_592, "final_conv.": 257}
    assert {k: numel(table, p + k) for k in split} == split


def test_published_vc_loads_strictly_and_tensor_for_tensor(published_vc):
    table = published_vc_table()
    assert {k: tuple(v.shape) for k, v in published_vc.state_dict().items()} == table
    assert sum(p.numel() for p in published_vc.parameters()) == 126_259_128
    assert not list(published_vc.buffers())  # no running stats: 346 tensors, all parameters

    state = distinct_state(table, seeded(1))
    published_vc.load_state_dict(load_vc_state(state, "vc_libritts_wodyn.pt"), strict=True)
    own = published_vc.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in table)
    # DDP prefixes and wrapper dicts give back the same tensors under the same keys
    for wrapped in ({"module." + k: v for k, v in state.items()}, {"state_dict": state},
                    {"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}}):
        loaded = load_vc_state(wrapped, "vc_libritts_wodyn.pt")
        assert loaded.keys() == state.keys() and all(loaded[k] is state[k] for k in state)
    assert infer_encoder_section({k[8:]: v for k, v in state.items() if k.startswith("encoder.")}) == EncoderSection()
    assert infer_decoder_section(state) == DecoderSection()

    # the encoder half of a whole-model file is an encoder checkpoint too
    encoder_state = load_encoder_state(state, "vc_vctk_wodyn.pt")
    assert set(encoder_state) == set(published_encoder_table())
    assert all(torch.equal(encoder_state[k], state["encoder." + k]) for k in encoder_state)


def test_published_enc_pt_loads_strictly(published_vc):
    table = published_encoder_table()
    assert len(table) == 140 and numel(table) == 8_464_529
    state = distinct_state(table, seeded(2))
    encoder: FwdDiffusion = published_vc.encoder
    for wrapped in (state, {"module." + k: v for k, v in state.items()}):
        encoder.load_state_dict(load_encoder_state(wrapped, "logs_enc/enc.pt"), strict=True)
        own = encoder.state_dict()
        assert all(torch.equal(own[k], state[k]) for k in table)
    with pytest.raises(BadInput, match=r"enc\.pt: not a whole DiffVC model.*encoder-only"):
        load_vc_state(state, "enc.pt")


def test_wrong_or_missing_keys_are_bad_input_naming_the_file_and_keys():
    table = published_vc_table()
    state = {k: torch.zeros(()).expand(shape) for k, shape in table.items()}  # shapes without memory
    missing = dict(state)
    del missing["decoder.estimator.mid_attn.fn.g"]
    with pytest.raises(BadInput, match=r"^vc\.pt: not a DiffVC state dict: 1 missing "
                                       r"\(decoder\.estimator\.mid_attn\.fn\.g\)$"):
        load_vc_state(missing, "vc.pt")
    extra = {**state, "decoder.estimator.ref_block.extra.weight": torch.zeros(1), "speaker_id": torch.zeros(1)}
    with pytest.raises(BadInput, match=r"vc\.pt: .*2 unexpected \(decoder\.estimator\.ref_block\.extra\.weight, "
                                       r"speaker_id\)"):
        load_vc_state(extra, "vc.pt")
    wrong = {**state, "encoder.postnet.final_conv.weight": torch.zeros(2, 128, 1, 1)}
    with pytest.raises(BadInput, match=r"vc\.pt: DiffVC weight 'encoder\.postnet\.final_conv\.weight' is "
                                       r"\(2, 128, 1, 1\), expected \(1, 128, 1, 1\)"):
        load_vc_state(wrong, "vc.pt")
    with pytest.raises(BadInput, match=r"vc\.pt: .*does not fit|vc\.pt: DiffVC weight"):
        load_vc_state(state, "vc.pt", decoder=DecoderSection(spk_dim=64))
    enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    del enc["encoder.encoder.attn_layers.5.emb_rel_v"]
    with pytest.raises(BadInput, match=r"enc\.pt: not a DiffVC encoder state dict: 1 missing "
                                       r"\(encoder\.encoder\.attn_layers\.5\.emb_rel_v\)"):
        load_encoder_state(enc, "enc.pt")
    for junk, problem in (([1, 2], "not a DiffVC checkpoint"), ({"step": 3}, "not a DiffVC checkpoint"),
                          ({"a.weight": torch.zeros(1), "b": 1}, "not a DiffVC state dict: 1 of 2 entries is not a tensor")):
        with pytest.raises(BadInput, match=f"^x.pt: {problem}"):
            load_vc_state(junk, "x.pt")


def test_tiny_models_round_trip_through_files(tmp_path):
    """A voxtool-sized model saved and read back by path: sizes inferred from the shapes, tensors equal."""
    encoder = EncoderSection(n_feats=16, channels=32, filters=48, heads=4, layers=3, kernel=5, window_size=2,
                             enc_dim=16)
    decoder = DecoderSection(dec_dim=16, dim_mults=(1, 2), spk_dim=8, spk_embed_dim=12, use_ref_t=False)
    torch.manual_seed(seeded(3))
    model = DiffVC(encoder, decoder)
    path = tmp_path / "vc_7.pt"
    torch.save(model.state_dict(), path)
    state = load_vc_state(path)
    assert infer_encoder_section(load_encoder_state(path)).model_dump() == encoder.model_dump()
    assert infer_decoder_section(state).model_dump() == decoder.model_dump()
    fresh = DiffVC(encoder, decoder)
    fresh.load_state_dict(state, strict=True)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in fresh.state_dict().items())

    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BadInput, match="garbage.pt"):
        load_vc_state(tmp_path / "garbage.pt")
