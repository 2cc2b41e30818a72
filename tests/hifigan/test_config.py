"""Presets and config: the sections are the library's configs, presets match the published vocoders."""

from __future__ import annotations

import pytest

from voxtool.errors import BadInput
from voxtool.presets import load_config
from voxtool.tasks.hifigan.config import HifiganConfig
from voxtool.vocoders.hifigan import VOCODER_16K, VOCODER_22K, VOCODER_TINY, GeneratorConfig
from voxtool.vocoders.mel import MelSettings


def test_sections_are_the_library_configs():
    cfg = HifiganConfig()
    assert type(cfg.generator) is GeneratorConfig and type(cfg.mel) is MelSettings
    assert cfg.generator == VOCODER_16K.generator
    assert cfg.mel == VOCODER_16K.mel


def test_partial_sections_keep_the_16k_values():
    cfg = HifiganConfig.model_validate({"generator": {"upsample_initial_channel": 64}, "mel": {"log_floor": 1e-4}})
    assert cfg.generator == VOCODER_16K.generator.model_copy(update={"upsample_initial_channel": 64})
    assert cfg.mel == VOCODER_16K.mel.model_copy(update={"log_floor": 1e-4})


@pytest.mark.parametrize("preset,vocoder", [("hifigan-16k", VOCODER_16K), ("hifigan-22k", VOCODER_22K),
                                            ("hifigan-tiny", VOCODER_TINY)])
def test_presets_are_the_published_vocoders_and_training(preset, vocoder):
    cfg = load_config(HifiganConfig, preset, task="hifigan")
    assert cfg.generator == vocoder.generator and cfg.mel == vocoder.mel
    t = cfg.train
    assert (t.optimizer, t.betas, t.schedule, t.decay_rate) == ("adamw", (0.8, 0.99), "step", 0.999)
    assert (t.best_metric, t.best_mode) == ("valid/mel_l1", "min")
    assert (cfg.loss.mel, cfg.loss.feature_matching) == (45.0, 2.0)
    if preset != "hifigan-tiny":
        assert t.lr == 2e-4 and cfg.discriminator.width == 1.0
    assert cfg.data.segment_samples % cfg.mel.hop_length == 0


def test_inconsistent_presets_are_refused():
    with pytest.raises(BadInput, match="segment_samples"):
        load_config(HifiganConfig, "hifigan-16k", ["data.segment_samples=8001"], task="hifigan")
    with pytest.raises(BadInput, match="n_mels"):
        load_config(HifiganConfig, "hifigan-16k", ["mel.n_mels=80"], task="hifigan")
    with pytest.raises(BadInput, match="hop"):
        load_config(HifiganConfig, "hifigan-22k", ["generator.upsample_rates=[10, 4, 2, 2]",
                                                    "generator.upsample_kernel_sizes=[20, 8, 4, 4]"], task="hifigan")


def test_cli_config_and_vocoder_settings_import_no_torch():
    import subprocess
    import sys

    code = ("import sys, voxtool.tasks.hifigan.cli, voxtool.tasks.hifigan.config, voxtool.vocoders.settings; "
            "import voxtool.vocoders as v; v.MelSettings, v.GeneratorConfig, v.VOCODER_16K; "
            "print('torch' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
