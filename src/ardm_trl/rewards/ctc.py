"""CTC log-likelihood of the target text, the intelligibility reward of VGPO's Task B.

The model is the phoneme CTC recogniser shipped inside the `hama` package (16 kHz waveform in; every 20 ms,
log-probabilities over 191 classes: hama's G2P phoneme vocabulary, a word-boundary token `<wb>` and the CTC
blank), and the target is the text's phoneme sequence from hama's own G2P, run word by word (lowercased,
punctuation stripped: whole-sentence G2P and punctuation produce garbage tails) with `<wb>` between words.

    log P(text | audio) = -CTC loss(log_probs, target)            (torch.nn.functional.ctc_loss, sum over frames)
    reward              = log P(text | audio) / N                 (N = target tokens: phonemes + word boundaries)

The metric reported in the tables is its negation, the NLL per token. The raw log-probabilities are used
(temperature 1); hama's own greedy decoder sharpens them (temperature 0.95, blank bias) but that is a decoding
heuristic, not part of the likelihood. A target that cannot be aligned (audio shorter than the phoneme sequence
needs, 20 ms per token) or a text with no phonemes gives `None`.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

import numpy as np
import torch

from .base import SpeechCodec, SpeechReward, resample

__all__ = ["CTCLogLikelihoodReward", "PhonemeCTC", "ctc_log_likelihood", "text_to_phonemes"]

CTC_SAMPLING_RATE = 16000
CTC_FRAME_SECONDS = 0.02


@functools.cache
def _indexed_vocabulary(vocabulary: type) -> type:
    """`vocabulary` (hama's `Vocabulary`) with `encoder_token_to_id` / `decoder_token_to_id` computed once per
    instance instead of on every access."""
    return type(f"Indexed{vocabulary.__name__}", (vocabulary,), {
        "encoder_token_to_id": functools.cached_property(lambda self: {t: i for i, t in enumerate(self.encoder)}),
        "decoder_token_to_id": functools.cached_property(lambda self: {t: i for i, t in enumerate(self.decoder)}),
    })  # fmt: skip


class PhonemeCTC:
    """hama's phoneme recogniser and G2P, wrapped for likelihood scoring (CPU; load once with `PhonemeCTC.get()`)."""

    word_boundary = "<wb>"

    def __init__(self):
        try:
            import hama
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("The CTC reward needs `hama`: pip install 'ardm_trl[speech]'.") from error
        self.asr = hama.ASRModel()
        self.g2p = hama.G2PModel()
        # hama rebuilds its token -> id maps on every lookup (most of its G2P time): the same maps, built once
        self.g2p.vocab.__class__ = _indexed_vocabulary(type(self.g2p.vocab))
        self.tokens: list[str] = list(self.asr.decoder_tokens)
        self.token_to_id = {token: i for i, token in enumerate(self.tokens)}
        self.blank_id = self.asr.blank_id
        self._word_phonemes = functools.lru_cache(maxsize=65536)(self._word_phonemes_uncached)

    @classmethod
    @functools.cache
    def get(cls) -> PhonemeCTC:
        return cls()

    def _word_phonemes_uncached(self, word: str) -> tuple[str, ...]:
        phonemes = (alignment.phoneme for alignment in self.g2p.predict(word, split_delimiter=None).alignments)
        return tuple(p for p in phonemes if p.strip() and p in self.token_to_id and not p.startswith("<"))

    def phonemes(self, text: str) -> list[str]:
        """Target token sequence of `text`: per-word G2P phonemes joined by `<wb>`."""
        out: list[str] = []
        for word in re.sub(r"[^\w' ]+", " ", text.lower().replace("_", " ")).split():
            word_phonemes = self._word_phonemes(word.strip("'"))
            if word_phonemes:
                out.extend(([self.word_boundary] if out else []) + list(word_phonemes))
        return out

    def log_probs(self, waveform: np.ndarray, sampling_rate: int) -> torch.Tensor:
        """Frame log-probabilities `(T, V)` of one waveform (T = one frame per 20 ms)."""
        wav = np.clip(resample(waveform, sampling_rate, CTC_SAMPLING_RATE), -1.0, 1.0)[None]  # (1, S)
        asr = self.asr
        feeds = {asr._waveform_input_name: wav, asr._waveform_lengths_input_name: np.array([wav.shape[1]])}
        log_probs, lengths = asr.session.run([asr._log_probs_output_name, asr._out_lengths_output_name], feeds)
        return torch.from_numpy(np.asarray(log_probs[0, : int(np.asarray(lengths).reshape(-1)[0])]))

    def log_likelihood(self, waveform: np.ndarray, sampling_rate: int, text: str) -> tuple[float, int]:
        """`(log P(text | audio), number of target tokens)`; the log-probability is `-inf` if no alignment exists."""
        target = [self.token_to_id[p] for p in self.phonemes(text)]
        if not target:
            return float("nan"), 0
        log_probs = self.log_probs(waveform, sampling_rate)  # (T, V)
        if log_probs.shape[0] == 0:
            return float("-inf"), len(target)
        loss = torch.nn.functional.ctc_loss(
            log_probs.to(torch.float32)[:, None],  # (T, 1, V)
            torch.tensor([target]),
            torch.tensor([log_probs.shape[0]]),
            torch.tensor([len(target)]),
            blank=self.blank_id,
            reduction="sum",
        )
        return -float(loss), len(target)


    def frame_log_likelihoods(self, waveform: np.ndarray, sampling_rate: int, text: str) -> tuple[np.ndarray, int]:
        """`log P(text | audio)` spread over the recogniser's 20 ms frames, and the number of target tokens.

        Frame `t` gets `sum_k gamma_t(k) log p_t(k)`, its expected log-probability under the posterior over CTC
        alignments (`gamma`, from the CTC loss's gradient), and the frames are rescaled to sum to `log P` exactly (the
        alignment posterior's entropy is spread in proportion). Returns an empty array when no alignment exists.
        """
        target = [self.token_to_id[p] for p in self.phonemes(text)]
        if not target:
            return np.zeros(0, dtype=np.float64), 0
        log_probs = self.log_probs(waveform, sampling_rate).to(torch.float32).requires_grad_(True)  # (T, V)
        if log_probs.shape[0] == 0:
            return np.zeros(0, dtype=np.float64), len(target)
        with torch.enable_grad():  # callers often sample under no_grad
            loss = torch.nn.functional.ctc_loss(log_probs[:, None], torch.tensor([target]),
                                                torch.tensor([log_probs.shape[0]]), torch.tensor([len(target)]),
                                                blank=self.blank_id, reduction="sum")  # fmt: skip
            if not torch.isfinite(loss):
                return np.zeros(0, dtype=np.float64), len(target)
            loss.backward()
        # torch's CTC gradient w.r.t. log-probabilities is `p - gamma` (it assumes a log-softmax input)
        gamma = log_probs.detach().exp() - log_probs.grad  # (T, V) alignment posterior occupancies
        frames = (gamma * log_probs.detach()).sum(-1).double()  # (T,)
        total = frames.sum()
        if total != 0:
            frames = frames * (-float(loss.detach()) / float(total))
        return frames.numpy(), len(target)


def text_to_phonemes(text: str) -> list[str]:
    """The CTC target of `text`: hama G2P phonemes, word by word, joined by `<wb>`."""
    return PhonemeCTC.get().phonemes(text)


def ctc_log_likelihood(
    waveform: np.ndarray, sampling_rate: int, text: str, normalize: Literal["token", "none"] = "token"
) -> float | None:
    """log P(text | audio) under hama's phoneme CTC model, per target token (`normalize="token"`) or in total.

    Returns `None` when `text` has no phonemes or the audio is too short to align with it.
    """
    if normalize not in ("token", "none"):
        raise ValueError(f"`normalize` must be 'token' or 'none', got {normalize!r}.")
    log_likelihood, num_tokens = PhonemeCTC.get().log_likelihood(waveform, sampling_rate, text)
    if num_tokens == 0 or not np.isfinite(log_likelihood):
        return None
    return log_likelihood / num_tokens if normalize == "token" else log_likelihood


class CTCLogLikelihoodReward(SpeechReward):
    """CTC log-likelihood reward (VGPO Task B): `ctc_log_likelihood(audio, prompt)` for each sample.

    The target text of each sample is its prompt (`prompts`), or the dataset column named by `text_column`.

    Args:
        codec ([`SpeechCodec`], *optional*): decodes `completions` when the caller passes no `audio`.
        normalize (`str`, *optional*, defaults to `"token"`): `"token"` (log P / N, the default) or `"none"`.
        text_column (`str`, *optional*): read the target texts from this keyword argument instead of `prompts`.
        name (`str`, *optional*, defaults to `"ctc_log_likelihood"`): the `__name__` trainers log under.
        unaligned_value (`float`, *optional*): returned instead of `None` for a sample too short to align with its
            text (e.g. a generation that stopped early), so that every sample can be ranked or trained on; its
            per-token rewards are this value spread evenly.
    """

    default_name = "ctc_log_likelihood"

    def __init__(
        self,
        codec: SpeechCodec | None = None,
        normalize: Literal["token", "none"] = "token",
        text_column: str | None = None,
        name: str | None = None,
        unaligned_value: float | None = None,
    ):
        super().__init__(codec=codec, name=name)
        self.unaligned_value = unaligned_value
        if normalize not in ("token", "none"):
            raise ValueError(f"`normalize` must be 'token' or 'none', got {normalize!r}.")
        self.normalize = normalize
        self.text_column = text_column
        self.requires_text = text_column is None

    def _texts(self, texts: list[str] | None, num: int, kwargs: dict[str, Any]) -> list[str]:
        if self.text_column is None:
            return texts
        from .base import per_sample_column

        return per_sample_column(kwargs.get(self.text_column), num, self.text_column)

    def score(
        self, waveforms: list[np.ndarray], sampling_rate: int, texts: list[str] | None, **kwargs: Any
    ) -> list[float | None]:
        texts = self._texts(texts, len(waveforms), kwargs)
        scores = [ctc_log_likelihood(wav, sampling_rate, text, self.normalize) for wav, text in zip(waveforms, texts)]
        return [self.unaligned_value if s is None and text_to_phonemes(t) else s for s, t in zip(scores, texts)]

    def score_tokens(
        self,
        waveforms: list[np.ndarray],
        sampling_rate: int,
        texts: list[str] | None,
        token_seconds: float,
        num_tokens: list[int],
        **kwargs: Any,
    ) -> list[np.ndarray | None]:
        """The reward of each sample spread over its tokens: each 20 ms frame's share of `log P(text | audio)`
        ([`PhonemeCTC.frame_log_likelihoods`]) added to the token whose time span holds the frame's centre (frames
        past the last token go to it), divided by the number of target phonemes with `normalize="token"`; the
        tokens sum to the sample's reward. `None` where the reward is `None`."""
        texts = self._texts(texts, len(waveforms), kwargs)
        model = PhonemeCTC.get()
        out: list[np.ndarray | None] = []
        for wav, text, count in zip(waveforms, texts, num_tokens):
            frames, num_targets = model.frame_log_likelihoods(wav, sampling_rate, text)
            if num_targets == 0 or count == 0:
                out.append(None)
                continue
            if frames.size == 0:  # no alignment
                out.append(None if self.unaligned_value is None else np.full(count, self.unaligned_value / count))
                continue
            centres = (np.arange(frames.size) + 0.5) * CTC_FRAME_SECONDS
            index = np.minimum((centres / token_seconds).astype(np.int64), count - 1)
            tokens = np.bincount(index, weights=frames, minlength=count)
            out.append(tokens / num_targets if self.normalize == "token" else tokens)
        return out
