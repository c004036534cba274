"""A character-level text tokenizer for ARDM text conditions (espeak IPA phoneme strings or plain text).

The vocabulary is the set of characters seen when it was built, plus `<pad>` (id 0, the ARDM's
`text_pad_token_id`) and `<unk>` (id 1). It is a `transformers.PreTrainedTokenizer`: `save_pretrained` writes
`text_vocab.json` (and the usual `tokenizer_config.json`) beside the model, `AutoTokenizer.from_pretrained` loads it
from an ARDM folder, and the trainers save it with the model when given as `processing_class`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from transformers import AddedToken, PreTrainedTokenizer

TEXT_VOCAB_NAME = "text_vocab.json"
PAD_TOKEN_ID, UNK_TOKEN_ID = 0, 1


class ARDMTextTokenizer(PreTrainedTokenizer):
    """
    Characters <-> ids for [`~ardm_trl.models.ardm.ARDMForSpeechSynthesis`]. `encode(text)` gives one string's ids
    (no special tokens are added); calling the tokenizer on one string or a list pads a batch into the ARDM's inputs
    `text_input_ids` and `text_attention_mask` `(B, T)` (right padding with `<pad>`, id 0).

    Args:
        vocab_file (`str`, *optional*): `text_vocab.json` written by `save_pretrained`.
        characters (`list[str]`, *optional*): the vocabulary after the special tokens, one character per id (in
            this order), when not loading a file; see [`~ARDMTextTokenizer.from_texts`].
        pad_token (`str`, *optional*, defaults to `"<pad>"`): id 0.
        unk_token (`str`, *optional*, defaults to `"<unk>"`): id 1; characters not in the vocabulary map to it.
    """

    vocab_files_names = {"vocab_file": TEXT_VOCAB_NAME}
    model_input_names = ["input_ids", "attention_mask"]  # transformers pads by these names; `__call__` renames
    padding_side = "right"

    def __init__(
        self,
        vocab_file: str | None = None,
        characters: list[str] | None = None,
        pad_token: str = "<pad>",
        unk_token: str = "<unk>",
        **kwargs: Any,
    ):
        if isinstance(vocab_file, (list, tuple)):
            raise TypeError("The first argument is the vocabulary file (`text_vocab.json`); pass a list of characters "
                            "as `characters=`.")  # fmt: skip
        if vocab_file is not None:
            with open(vocab_file, encoding="utf-8") as f:
                content = json.load(f)
            characters = content["characters"]
            pad_token, unk_token = content.get("pad_token", pad_token), content.get("unk_token", unk_token)
        if characters is None:
            raise ValueError("Pass `characters` or a `vocab_file`; see `ARDMTextTokenizer.from_texts`.")
        characters = list(characters)
        if any(len(c) != 1 for c in characters):
            raise ValueError("`characters` must be single characters; build the tokenizer with `from_texts`.")
        if len(set(characters)) != len(characters):
            raise ValueError("`characters` must not repeat a character.")
        pad_token, unk_token = str(pad_token), str(unk_token)
        self.id_to_token = [pad_token, unk_token, *characters]
        self.token_to_id = {token: index for index, token in enumerate(self.id_to_token)}
        self._added_tokens_decoder = {
            PAD_TOKEN_ID: AddedToken(pad_token, special=True, normalized=False),
            UNK_TOKEN_ID: AddedToken(unk_token, special=True, normalized=False),
        }
        super().__init__(pad_token=pad_token, unk_token=unk_token, **kwargs)

    @classmethod
    def from_texts(cls, texts: Iterable[str], **kwargs: Any) -> ARDMTextTokenizer:
        """Build the vocabulary from the characters of `texts` (sorted, so the ids do not depend on text order)."""
        return cls(characters=sorted({c for text in texts for c in text}), **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """`PreTrainedTokenizer.from_pretrained`, with a clear error when a local folder holds no `text_vocab.json`."""
        path = str(pretrained_model_name_or_path)
        if os.path.isdir(path) and not os.path.isfile(os.path.join(path, kwargs.get("subfolder") or "",
                                                                    TEXT_VOCAB_NAME)):  # fmt: skip
            raise ValueError(f"No {TEXT_VOCAB_NAME} in {path}: save the tokenizer there with `save_pretrained` first "
                             "(the trainers do so when given it as `processing_class`).")  # fmt: skip
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.token_to_id)

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return list(text)

    def _convert_token_to_id(self, token: str) -> int:
        return self.token_to_id.get(token, UNK_TOKEN_ID)

    def _convert_id_to_token(self, index: int) -> str:
        return self.id_to_token[index]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        os.makedirs(save_directory, exist_ok=True)
        name = (filename_prefix + "-" if filename_prefix else "") + TEXT_VOCAB_NAME
        path = os.path.join(save_directory, name)
        content = {"pad_token": self.id_to_token[0], "unk_token": self.id_to_token[1],
                   "characters": self.id_to_token[2:]}  # fmt: skip
        with open(path, "w", encoding="utf-8") as f:
            json.dump(content, f, ensure_ascii=False, indent=1)
        return (path,)

    # ------------------------------------------------------------------ the ARDM's inputs
    def __call__(self, text: str | list[str], return_tensors: str | None = "pt", **kwargs: Any) -> Any:
        """Right-padded `text_input_ids` and `text_attention_mask` `(B, T)` of one string or a list of strings (a
        `BatchEncoding`; tensors by default). Further keyword arguments go to `PreTrainedTokenizer.__call__`."""
        texts = [text] if isinstance(text, str) else list(text)
        kwargs.setdefault("padding", True)
        encoded = super().__call__(texts, return_tensors=return_tensors, add_special_tokens=False, **kwargs)
        renamed = {"input_ids": "text_input_ids", "attention_mask": "text_attention_mask"}
        return encoded.__class__({renamed.get(k, k): v for k, v in encoded.items()}, tensor_type=return_tensors)

    def batch_encode(self, texts: Iterable[str]) -> list[list[int]]:
        """Ids of each string (unpadded)."""
        return [self.encode(text, add_special_tokens=False) for text in texts]


__all__ = ["ARDMTextTokenizer", "TEXT_VOCAB_NAME"]
