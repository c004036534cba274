"""Loading the small bundled checkpoints (codec, speech tokenizer, ARDM, ...) that ship in the repository's
`pretrained/` folder.

The weights are part of the git repository, not of the Python package: an installed `ardm_trl` finds them through
the environment variable `ARDM_TRL_PRETRAINED` (a folder holding the bundled subfolders, e.g. `<clone>/pretrained`),
and a source checkout finds its own `pretrained/` folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..zero3 import zero3_init_disabled
from .modeling_speech_codec import SpeechCodecModel
from .modeling_speech_tokenizer import SpeechTokenizerModel

__all__ = [
    "PRETRAINED_CODEC_DIR", "PRETRAINED_ENV_VAR", "PRETRAINED_TOKENIZER_DIR", "bundled_model_dir",
    "load_pretrained_codec", "load_pretrained_tokenizer",
]  # fmt: skip

PRETRAINED_ENV_VAR = "ARDM_TRL_PRETRAINED"
REPOSITORY_URL = "https://github.com/ardm-trl/ardm_trl"
# src/ardm_trl/audio/pretrained.py -> repository root (meaningful in a source checkout only)
_CHECKOUT_PRETRAINED = Path(__file__).resolve().parents[3] / "pretrained"
PRETRAINED_CODEC_DIR = _CHECKOUT_PRETRAINED / "speech_codec"
PRETRAINED_TOKENIZER_DIR = _CHECKOUT_PRETRAINED / "speech_tokenizer"


def bundled_model_dir(name: str) -> Path:
    """The folder of the bundled checkpoint `name` (`"ardm"`, `"speech_codec"`, `"speech_tokenizer"`,
    `"value_pitch"`, `"codec_lm"`, `"token_reward"`): under `$ARDM_TRL_PRETRAINED` if set, else under the source
    checkout's `pretrained/`. Raises `FileNotFoundError` naming where the weights come from when neither holds it."""
    candidates = []
    if os.environ.get(PRETRAINED_ENV_VAR):
        candidates.append(Path(os.environ[PRETRAINED_ENV_VAR]).expanduser() / name)
    candidates.append(_CHECKOUT_PRETRAINED / name)
    for folder in candidates:
        if (folder / "config.json").is_file():
            return folder
    raise FileNotFoundError(
        f"The bundled '{name}' checkpoint is not in {' or '.join(str(c) for c in candidates)}. The bundled weights "
        f"ship in the repository's `pretrained/` folder, not in the Python package: clone {REPOSITORY_URL} and set "
        f"{PRETRAINED_ENV_VAR}=<clone>/pretrained (or work inside the clone), or pass the path of a saved model."
    )


def _resolve(path: str | Path | None, name: str, what: str) -> Path:
    if path is None:
        return bundled_model_dir(name)
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"No {what} checkpoint in {folder} (config.json missing): pass the folder a "
                                "`save_pretrained` wrote, or leave `path` out for the bundled one.")  # fmt: skip
    return folder


def load_pretrained_codec(path: str | Path | None = None) -> SpeechCodecModel:
    """Load the bundled [`SpeechCodecModel`] ([`bundled_model_dir`]`("speech_codec")`) or the one saved at `path`,
    in eval mode."""
    with zero3_init_disabled():  # frozen: never sharded by DeepSpeed ZeRO-3
        return SpeechCodecModel.from_pretrained(_resolve(path, "speech_codec", "speech codec")).eval()


def load_pretrained_tokenizer(path: str | Path | None = None) -> SpeechTokenizerModel:
    """Load the bundled [`SpeechTokenizerModel`] ([`bundled_model_dir`]`("speech_tokenizer")`) or the one at
    `path`, in eval mode."""
    with zero3_init_disabled():  # frozen: never sharded by DeepSpeed ZeRO-3
        return SpeechTokenizerModel.from_pretrained(_resolve(path, "speech_tokenizer", "speech tokenizer")).eval()
