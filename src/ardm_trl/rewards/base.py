"""The calling convention shared by every reward function, and the helpers that enforce it.

A reward function is called the way TRL calls `reward_funcs`:

    reward_func(prompts=..., completions=..., audio=..., sampling_rate=..., **dataset_columns) -> list[float | None]

`completions` are the generated samples (continuous latents `(F_i, D)` or speech-token ids `(F_i,)`). When the
trainer has already decoded them it passes the waveforms as `audio` at `sampling_rate`; otherwise the reward
decodes `completions` with the codec it was built with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

__all__ = ["SpeechCodec", "SpeechReward", "as_waveform", "finite_or_none", "resample", "per_sample_column"]


@runtime_checkable
class SpeechCodec(Protocol):
    """What a reward needs from a codec: decode a list of generated samples to waveforms.

    `ardm_trl.audio.SpeechCodecModel` satisfies it; so does any object with these two members.
    """

    sampling_rate: int

    def decode_list(self, latents: list[torch.Tensor]) -> list[np.ndarray]: ...


def finite_or_none(value: Any) -> float | None:
    """`float(value)`, or `None` when the value is missing, NaN or infinite (a reward is never NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def as_waveform(waveform: Any, name: str = "audio") -> np.ndarray:
    """Return a float32 mono 1-D numpy array from a numpy array, a tensor or a list.

    `(T,)`, `(1, T)` and `(T, 1)` are accepted; anything else raises a `ValueError`.
    """
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().to("cpu", torch.float32).numpy()
    array = np.asarray(waveform, dtype=np.float32)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must hold mono waveforms of shape (T,), got an array of shape {array.shape}.")
    return array


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono float32 waveform with `torchaudio.functional.resample` (band-limited sinc)."""
    if int(orig_sr) == int(target_sr):
        return waveform
    if waveform.size == 0:  # an empty sample (e.g. a model that stopped at once): torchaudio cannot resample it
        return np.zeros(0, dtype=np.float32)
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(waveform)), int(orig_sr), int(target_sr))
    return out.numpy()


def per_sample_column(values: Any, num_samples: int, name: str) -> list[Any]:
    """Check that a per-sample keyword argument (a dataset column) has one entry per sample."""
    if values is None:
        raise ValueError(f"This reward needs the per-sample keyword argument `{name}=` (a dataset column).")
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, torch.Tensor)):
        raise ValueError(f"`{name}` must be a list with one entry per sample, got {type(values).__name__}.")
    if len(values) != num_samples:
        raise ValueError(f"`{name}` has {len(values)} entries but there are {num_samples} samples.")
    return list(values)


class SpeechReward:
    """Base class of the reward callables: validates the call and turns it into waveforms.

    Subclasses set `default_name` (logged by trainers as `rewards/<name>`), set `requires_text = True` when they
    read the target texts (`prompts`), and implement [`~SpeechReward.score`].

    Args:
        codec ([`SpeechCodec`], *optional*):
            Decodes `completions` to waveforms when the caller does not pass `audio`.
        name (`str`, *optional*):
            Overrides `__name__`, e.g. to log two differently configured copies of one reward.
    """

    default_name: str = "speech_reward"
    requires_text: bool = False

    def __init__(self, codec: SpeechCodec | None = None, name: str | None = None):
        if codec is not None and not isinstance(codec, SpeechCodec):
            raise ValueError(
                f"`codec` must have a `sampling_rate` attribute and a `decode_list(list[Tensor])` method, "
                f"got {type(codec).__name__}."
            )
        self.codec = codec
        self.__name__ = name or self.default_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.__name__!r})"

    def __call__(
        self,
        prompts: list[str] | None = None,
        completions: list[torch.Tensor] | None = None,
        audio: list[np.ndarray] | None = None,
        sampling_rate: int | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        waveforms, sampling_rate = self.resolve_audio(prompts, completions, audio, sampling_rate)
        if self.requires_text:
            prompts = per_sample_column(prompts, len(waveforms), "prompts")
            if not all(isinstance(text, str) for text in prompts):
                raise ValueError(f"{self.__name__}: `prompts` must be the target texts (a list of `str`).")
        scores = self.score(waveforms, sampling_rate, prompts, **kwargs)
        if len(scores) != len(waveforms):  # a subclass bug, not a user error
            raise RuntimeError(f"{self.__name__} returned {len(scores)} scores for {len(waveforms)} samples.")
        return [finite_or_none(score) for score in scores]

    def resolve_audio(
        self,
        prompts: list[str] | None,
        completions: list[torch.Tensor] | None,
        audio: list[np.ndarray] | None,
        sampling_rate: int | None,
    ) -> tuple[list[np.ndarray], int]:
        """Return the samples as float32 mono waveforms and their sampling rate, decoding through the codec if
        needed. Raises a `ValueError` on inconsistent lengths or when there is nothing to score."""
        if audio is not None:
            if sampling_rate is None:
                raise ValueError(f"{self.__name__}: `audio=` was given without `sampling_rate=`.")
            waveforms = [as_waveform(wav) for wav in per_sample_column(audio, len(audio), "audio")]
        elif completions is not None:
            if self.codec is None:
                raise ValueError(
                    f"{self.__name__} got `completions` but no `audio`, and was built without a codec: pass the "
                    f"decoded waveforms as `audio=` (with `sampling_rate=`) or build the reward with `codec=`."
                )
            waveforms = [as_waveform(wav) for wav in self.codec.decode_list(list(completions))]
            sampling_rate = self.codec.sampling_rate
        else:
            raise ValueError(f"{self.__name__} needs `audio=` (with `sampling_rate=`) or `completions=` to score.")
        if int(sampling_rate) <= 0:
            raise ValueError(f"`sampling_rate` must be a positive integer, got {sampling_rate}.")
        for other, name in ((completions, "completions"), (prompts, "prompts")):
            if other is not None and len(other) != len(waveforms):
                raise ValueError(f"{self.__name__}: {len(waveforms)} samples to score but {len(other)} `{name}`.")
        return waveforms, int(sampling_rate)

    def score(
        self, waveforms: list[np.ndarray], sampling_rate: int, texts: list[str] | None, **kwargs: Any
    ) -> list[float | None]:
        """Score decoded waveforms (float32 mono at `sampling_rate`); `kwargs` are the extra dataset columns."""
        raise NotImplementedError

    def token_rewards(
        self,
        prompts: list[str] | None = None,
        completions: list[torch.Tensor] | None = None,
        audio: list[np.ndarray] | None = None,
        sampling_rate: int | None = None,
        token_seconds: float | None = None,
        num_tokens: list[int] | None = None,
        **kwargs: Any,
    ) -> list[np.ndarray | None]:
        """The reward of each sample spread over its tokens (the ARDM's patches, `token_seconds` long each), for
        value models trained on rewards-to-go (`ValueConfig.value_target="reward_to_go"`): one array of
        `num_tokens[i]` values per sample whose sum is the sample's reward, or `None` where the reward is `None`.
        Rewards without a per-token decomposition raise `NotImplementedError`."""
        if token_seconds is None or token_seconds <= 0:
            raise ValueError(f"`token_seconds` must be > 0, got {token_seconds}.")
        waveforms, sampling_rate = self.resolve_audio(prompts, completions, audio, sampling_rate)
        if num_tokens is None or len(num_tokens) != len(waveforms):
            raise ValueError("`num_tokens` must give the number of tokens of every sample.")
        if self.requires_text:
            prompts = per_sample_column(prompts, len(waveforms), "prompts")
        return self.score_tokens(waveforms, sampling_rate, prompts, token_seconds, list(num_tokens), **kwargs)

    def score_tokens(
        self,
        waveforms: list[np.ndarray],
        sampling_rate: int,
        texts: list[str] | None,
        token_seconds: float,
        num_tokens: list[int],
        **kwargs: Any,
    ) -> list[np.ndarray | None]:
        """Per-token rewards of decoded waveforms (see [`token_rewards`])."""
        raise NotImplementedError(
            f"{self.__name__} has no per-token decomposition: train the value model on the whole reward "
            "(`value_target='reward'`)."
        )
