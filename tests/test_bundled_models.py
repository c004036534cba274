"""Where the bundled checkpoints are found: `$ARDM_TRL_PRETRAINED` (an installed package), else the source
checkout's `pretrained/`; a clear error naming both and where the weights come from when neither holds them."""

import shutil

import pytest

from ardm_trl.audio import pretrained


def test_the_environment_variable_wins_and_loads(tmp_path, monkeypatch):
    shutil.copytree(pretrained.bundled_model_dir("speech_codec"), tmp_path / "speech_codec")
    monkeypatch.setenv(pretrained.PRETRAINED_ENV_VAR, str(tmp_path))
    assert pretrained.bundled_model_dir("speech_codec") == tmp_path / "speech_codec"
    assert pretrained.load_pretrained_codec().config.latent_dim > 0


def test_an_installed_package_without_the_weights_says_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "_CHECKOUT_PRETRAINED", tmp_path / "site-packages" / "pretrained")
    monkeypatch.setenv(pretrained.PRETRAINED_ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="ARDM_TRL_PRETRAINED=<clone>/pretrained") as error:
        pretrained.load_pretrained_codec()
    assert "github.com/ardm-trl/ardm_trl" in str(error.value) and str(tmp_path / "empty") in str(error.value)
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        pretrained.load_pretrained_codec(tmp_path)
