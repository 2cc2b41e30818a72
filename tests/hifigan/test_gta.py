"""prep hifigan --mels-from: ground-truth-aligned mels replace the computed ones; mismatches are skipped."""

from __future__ import annotations

import json

import numpy as np

from tests.conftest import seeded

from .conftest import write_clips


def test_gta_mels_pair_by_relative_path(tmp_path, voxtool_cli):
    wavs = tmp_path / "wavs"
    write_clips(wavs / "spk1", 3, seeded(4), seconds=(0.5, 0.8))
    write_clips(wavs / "spk2", 2, seeded(5), seconds=(0.5, 0.8))
    import soundfile as sf

    mels = tmp_path / "pred"
    frames = {}
    for wav in sorted(wavs.rglob("*.wav")):
        rel = wav.relative_to(wavs).with_suffix(".npy")
        frames[rel.as_posix()] = sf.info(wav).frames // 160
        (mels / rel.parent).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    gta = {}
    for rel, n in frames.items():
        gta[rel] = rng.normal(-6, 1, (128, n)).astype(np.float32)
        np.save(mels / rel, gta[rel])
    np.save(mels / "spk1/clip01.npy", gta["spk1/clip01.npy"][:, :-3])  # 3 frames short
    np.save(mels / "spk2/clip00.npy", np.zeros((80, frames["spk2/clip00.npy"]), np.float32))  # wrong n_mels
    (mels / "spk2/clip01.npy").unlink()  # missing
    out = tmp_path / "data"
    result = voxtool_cli("prep", "hifigan", str(wavs), str(out), "--preset", "hifigan-tiny", "--mels-from",
                         str(mels), "--valid-fraction", "0", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["items"] == {"train": 2, "valid": 0}
    reasons = {s["input"].split("wavs/")[1]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"spk1/clip01.wav", "spk2/clip00.wav", "spk2/clip01.wav"}
    assert "frames" in reasons["spk1/clip01.wav"] and "the wav has" in reasons["spk1/clip01.wav"]
    assert "80 mels" in reasons["spk2/clip00.wav"] and "no predicted mel" in reasons["spk2/clip01.wav"]
    assert (out / "skipped.tsv").read_text().count("\n") == 4
    assert json.loads((out / "dataset.json").read_text())["gta_mels"] == str(mels)
    for rel in ("spk1/clip00", "spk1/clip02"):
        item = np.load(out / "items" / f"{rel.replace('/', '_')}.npz")
        np.testing.assert_array_equal(item["mel"], gta[f"{rel}.npy"])  # the predicted mel, not a computed one
        assert len(item["wav"]) == item["mel"].shape[1] * 160

    # nothing usable: exit 2, the reasons in skipped.tsv
    empty = tmp_path / "empty"
    empty.mkdir()
    result = voxtool_cli("prep", "hifigan", str(wavs / "spk2"), str(tmp_path / "none"), "--preset", "hifigan-tiny",
                         "--mels-from", str(empty))
    assert result.returncode == 2 and "no usable audio" in result.stderr
    assert (tmp_path / "none" / "skipped.tsv").read_text().count("no predicted mel") == 2
