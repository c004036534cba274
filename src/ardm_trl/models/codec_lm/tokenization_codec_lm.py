"""Character-level tokenizer of the codec LM's unified vocabulary (text units, special tokens, speech tokens)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from transformers import AddedToken, PreTrainedTokenizer

from .configuration_codec_lm import CodecLMConfig

VOCAB_FILES_NAMES = {"vocab_file": "text_units.json"}


class CodecLMTokenizer(PreTrainedTokenizer):
    """
    Tokenizer of [`CodecLMForSpeechSynthesis`]: one text unit per character (espeak IPA phonemes or plain text), the
    special tokens of [`CodecLMConfig`] at their fixed ids, and speech tokens written `<|s_123|>`.

    `tokenizer("həloʊ")["input_ids"]` is the model prompt `<bos> h ə l o ʊ <speech>`;
    `tokenizer.encode(text, add_special_tokens=False)` gives the bare text units (the `text_ids` of a dataset).
    Decoding a generated sequence with `skip_special_tokens=True` gives its speech tokens as a string, and
    [`~CodecLMTokenizer.speech_codes`] turns ids back into codes. This makes the model usable by code written for
    text LMs (TRL's `GRPOTrainer`, `pipeline`-style `generate`).

    Args:
        vocab_file (`str`, *optional*): `text_units.json` written by `save_pretrained`.
        units (`list[str]`, *optional*): the text units (single characters), when not loading a file. Unit 0 is
            `unk_token`; characters outside the vocabulary map to it.
        codebook_size (`int`, *optional*, defaults to 1000): number of speech codes.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | None = None,
        units: list[str] | None = None,
        codebook_size: int = 1000,
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        bos_token: str = "<bos>",
        speech_start_token: str = "<speech>",
        eos_token: str = "<eos>",
        **kwargs,
    ):
        if vocab_file is not None:
            with open(vocab_file, encoding="utf-8") as f:
                content = json.load(f)
            units, codebook_size = content["units"], content["codebook_size"]
        if units is None:
            raise ValueError(
                "Pass `units` (the text characters) or a `vocab_file`; see `CodecLMTokenizer.from_texts`."
            )
        unk_token, pad_token, bos_token = str(unk_token), str(pad_token), str(bos_token)
        speech_start_token, eos_token = str(speech_start_token), str(eos_token)
        units = list(units)
        if not units or units[0] != unk_token:
            units = [unk_token, *[u for u in units if u != unk_token]]
        if any(len(u) != 1 for u in units[1:]) or len(set(units)) != len(units):
            raise ValueError(
                "`units` must be distinct single characters (build them with `CodecLMTokenizer.from_texts`)."
            )
        self.units = units
        self.unit_to_id = {u: i for i, u in enumerate(units)}
        self.codebook_size = int(codebook_size)
        self.layout = CodecLMConfig(text_vocab_size=len(units), codebook_size=self.codebook_size, lm_config={})
        specials = {
            self.layout.pad_token_id: pad_token,
            self.layout.bos_token_id: bos_token,
            self.layout.speech_start_token_id: speech_start_token,
            self.layout.eos_token_id: eos_token,
        }
        self._added_tokens_decoder = {i: AddedToken(t, special=True, normalized=False) for i, t in specials.items()}
        self.speech_start_token = speech_start_token
        super().__init__(
            unk_token=unk_token,
            pad_token=pad_token,
            bos_token=bos_token,
            eos_token=eos_token,
            codebook_size=self.codebook_size,
            speech_start_token=speech_start_token,
            extra_special_tokens=[speech_start_token],
            **{k: v for k, v in kwargs.items() if k not in ("extra_special_tokens", "additional_special_tokens")},
        )

    @classmethod
    def from_texts(cls, texts: Iterable[str], codebook_size: int = 1000, **kwargs) -> CodecLMTokenizer:
        """Build the unit vocabulary from the characters of `texts` (sorted, so ids do not depend on the order)."""
        return cls(
            units=["<unk>", *sorted({c for text in texts for c in text})], codebook_size=codebook_size, **kwargs
        )

    # ------------------------------------------------------------------ vocabulary
    @property
    def text_vocab_size(self) -> int:
        return len(self.units)

    @property
    def speech_token_offset(self) -> int:
        return self.layout.speech_token_offset

    @property
    def speech_start_token_id(self) -> int:
        return self.layout.speech_start_token_id

    @property
    def vocab_size(self) -> int:
        return self.layout.vocab_size

    def get_vocab(self) -> dict[str, int]:
        vocab = {self._convert_id_to_token(i): i for i in range(self.vocab_size)}
        vocab.update(self.added_tokens_encoder)
        return vocab

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return list(text)

    def _convert_token_to_id(self, token: str) -> int:
        if token.startswith("<|s_") and token.endswith("|>"):
            return self.speech_token_offset + int(token[4:-2])
        return self.unit_to_id.get(token, 0)

    def _convert_id_to_token(self, index: int) -> str:
        if index < self.text_vocab_size:
            return self.units[index]
        if self.speech_token_offset <= index < self.speech_token_offset + self.codebook_size:
            return f"<|s_{index - self.speech_token_offset}|>"
        return self._added_tokens_decoder[index].content

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """`<bos> text <speech>`: the prompt of the codec LM (pairs are not supported)."""
        if token_ids_1 is not None:
            raise ValueError("CodecLMTokenizer encodes single texts only.")
        return [self.bos_token_id, *token_ids_0, self.speech_start_token_id]

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens=False) -> list[int]:
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens=True)
        return [1] + [0] * len(token_ids_0) + [1]

    def speech_codes(self, ids: Iterable[int]) -> list[int]:
        """The speech codes among `ids` (unified ids), in order; everything else (text, specials) dropped."""
        offset = self.speech_token_offset
        return [int(i) - offset for i in ids if offset <= int(i) < offset + self.codebook_size]

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        os.makedirs(save_directory, exist_ok=True)
        name = (filename_prefix + "-" if filename_prefix else "") + VOCAB_FILES_NAMES["vocab_file"]
        path = os.path.join(save_directory, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"units": self.units, "codebook_size": self.codebook_size}, f, ensure_ascii=False, indent=1)
        return (path,)


__all__ = ["CodecLMTokenizer"]
