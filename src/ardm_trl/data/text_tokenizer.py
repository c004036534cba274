"""A character-level text tokenizer for ARDM text conditions (espeak IPA phoneme strings or plain text).

The vocabulary is the set of characters seen when it was built, plus `<pad>` (id 0, the ARDM's
`text_pad_token_id`) and `<unk>` (id 1). It saves as one JSON file beside the model, so a checkpoint folder holds
everything needed to turn text into `text_input_ids`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import torch

TEXT_VOCAB_NAME = "text_vocab.json"


class ARDMTextTokenizer:
    """Characters <-> ids. `encode` turns strings into id lists; calling the tokenizer pads a batch for the ARDM.

    Args:
        characters (`list[str]`): the vocabulary after the special tokens, one character per id (in this order).
        pad_token (`str`, *optional*, defaults to `"<pad>"`): id 0.
        unk_token (`str`, *optional*, defaults to `"<unk>"`): id 1; characters not in the vocabulary map to it.
    """

    vocab_file_name = TEXT_VOCAB_NAME

    def __init__(self, characters: list[str], pad_token: str = "<pad>", unk_token: str = "<unk>"):
        if any(len(c) != 1 for c in characters):
            raise ValueError("`characters` must be single characters; build the tokenizer with `from_texts`.")
        if len(set(characters)) != len(characters):
            raise ValueError("`characters` must not repeat a character.")
        self.pad_token, self.unk_token = pad_token, unk_token
        self.id_to_token = [pad_token, unk_token, *characters]
        self.token_to_id = {token: index for index, token in enumerate(self.id_to_token)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], **kwargs) -> ARDMTextTokenizer:
        """Build the vocabulary from the characters of `texts` (sorted, so the ids do not depend on text order)."""
        return cls(sorted({c for text in texts for c in text}), **kwargs)

    @property
    def pad_token_id(self) -> int:
        return 0

    @property
    def unk_token_id(self) -> int:
        return 1

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, texts: str | list[str]) -> list[int] | list[list[int]]:
        """Ids of one string (`list[int]`) or of each string of a list (`list[list[int]]`)."""
        if isinstance(texts, str):
            return [self.token_to_id.get(c, self.unk_token_id) for c in texts]
        return [self.encode(text) for text in texts]

    def decode(self, ids: Iterable[int]) -> str:
        """The string of `ids`, padding dropped (unknown characters come back as `unk_token`)."""
        return "".join(self.id_to_token[int(i)] for i in ids if int(i) != self.pad_token_id)

    def __call__(self, texts: str | list[str]) -> dict[str, torch.Tensor]:
        """Right-padded `text_input_ids` `(B, T)` and `text_attention_mask` `(B, T)`, the ARDM's text inputs."""
        ids = self.encode([texts] if isinstance(texts, str) else list(texts))
        longest = max((len(x) for x in ids), default=0)
        input_ids = torch.full((len(ids), longest), self.pad_token_id, dtype=torch.long)
        for row, sequence in enumerate(ids):
            input_ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        return {"text_input_ids": input_ids, "text_attention_mask": input_ids.ne(self.pad_token_id).long()}

    def save_pretrained(self, save_directory: str | os.PathLike) -> str:
        """Write `text_vocab.json` into `save_directory`; returns its path."""
        os.makedirs(save_directory, exist_ok=True)
        path = os.path.join(save_directory, self.vocab_file_name)
        content = {"pad_token": self.pad_token, "unk_token": self.unk_token, "characters": self.id_to_token[2:]}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(content, f, ensure_ascii=False, indent=1)
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> ARDMTextTokenizer:
        """Load the tokenizer saved by `save_pretrained` in `directory`."""
        path = os.path.join(directory, cls.vocab_file_name)
        if not os.path.isfile(path):
            raise ValueError(f"No {cls.vocab_file_name} in {directory}: save one with `save_pretrained` first.")
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
        return cls(content["characters"], pad_token=content["pad_token"], unk_token=content["unk_token"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


__all__ = ["ARDMTextTokenizer", "TEXT_VOCAB_NAME"]
