"""Loading the small codec and tokenizer checkpoints that ship in the repository's `pretrained/` folder."""

from __future__ import annotations

from pathlib import Path

from .modeling_speech_codec import SpeechCodecModel
from .modeling_speech_tokenizer import SpeechTokenizerModel

__all__ = ["PRETRAINED_CODEC_DIR", "PRETRAINED_TOKENIZER_DIR", "load_pretrained_codec", "load_pretrained_tokenizer"]

# src/ardm_trl/audio/pretrained.py -> repository root
_REPO_ROOT = Path(__file__).resolve().parents[3]
PRETRAINED_CODEC_DIR = _REPO_ROOT / "pretrained" / "speech_codec"
PRETRAINED_TOKENIZER_DIR = _REPO_ROOT / "pretrained" / "speech_tokenizer"


def _resolve(path: str | Path | None, default: Path, what: str) -> Path:
    folder = Path(path) if path is not None else default
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"No {what} checkpoint in {folder} (config.json missing). Run `python examples/pretrain_codec.py` from "
            "the repository root to train one, or pass `path=` to a saved model."
        )
    return folder


def load_pretrained_codec(path: str | Path | None = None) -> SpeechCodecModel:
    """Load the bundled [`SpeechCodecModel`] (`pretrained/speech_codec/`) or the one saved at `path`, in eval mode."""
    return SpeechCodecModel.from_pretrained(_resolve(path, PRETRAINED_CODEC_DIR, "speech codec")).eval()


def load_pretrained_tokenizer(path: str | Path | None = None) -> SpeechTokenizerModel:
    """Load the bundled [`SpeechTokenizerModel`] (`pretrained/speech_tokenizer/`) or the one at `path`, in eval mode."""
    return SpeechTokenizerModel.from_pretrained(_resolve(path, PRETRAINED_TOKENIZER_DIR, "speech tokenizer")).eval()
