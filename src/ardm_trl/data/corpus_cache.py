"""A corpus built once and kept on disk, and its audio read in batches of NumPy arrays: what the pretraining scripts
need to encode tens of thousands of utterances without holding them as Python lists of floats (20,000 utterances
read through `dataset["audio"]` took over 24 GB and were killed for memory)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CORPUS_CACHE_DIR = "outputs/corpora"
"""Where the example and benchmark scripts keep built corpora, so that each corpus is built once for all of them."""


def load_or_build_corpus(
    cache_dir: str | Path, num_utterances: int, seed: int, sampling_rate: int, hard_fraction: float = 0.15
):
    """`build_tts_corpus(num_utterances, seed=seed, sampling_rate=sampling_rate, hard_fraction=hard_fraction)`, saved
    under `cache_dir` (one folder per argument set, written whole before it is named) and loaded from there when it
    exists. Processes that ask for the same corpus at the same time share one build (a file lock): the others wait.

    Args:
        cache_dir (`str` or `Path`): folder that holds the saved corpora.
        num_utterances (`int`): utterances in both splits together.
        seed (`int`): seed of the corpus.
        sampling_rate (`int`): sampling rate of the audio.
        hard_fraction (`float`, *optional*, defaults to `0.15`): share of hard repetitive sentences (the split of
            sentences and voices depends on `seed` only).

    Returns:
        `datasets.DatasetDict`: splits `"train"` and `"test"` (see [`build_tts_corpus`]).
    """
    import datasets
    from filelock import FileLock  # a dependency of transformers and datasets

    suffix = "" if hard_fraction == 0.15 else f"_hard{hard_fraction:g}"
    folder = Path(cache_dir) / f"corpus_{num_utterances}_{seed}_{sampling_rate}{suffix}"
    if folder.is_dir():
        return datasets.load_from_disk(str(folder))
    folder.parent.mkdir(parents=True, exist_ok=True)
    # processes that ask for the same corpus at once: one builds it, the others wait and then load it
    with FileLock(str(folder) + ".lock"):
        if not folder.is_dir():
            _build_into(folder, num_utterances, seed, sampling_rate, hard_fraction)
    return datasets.load_from_disk(str(folder))  # memory-mapped: the caller does not hold the audio in memory


def _build_into(folder: Path, num_utterances: int, seed: int, sampling_rate: int, hard_fraction: float) -> None:
    from .corpus import build_tts_corpus

    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # left by a run killed while building or saving
    staging = partial / "staging"
    staging.mkdir(parents=True)
    # synthesised straight into Arrow files: the memory holds one chunk of audio, not the corpus
    corpus = build_tts_corpus(num_utterances, seed=seed, sampling_rate=sampling_rate, hard_fraction=hard_fraction,
                              arrow_dir=staging)
    saved = partial / "corpus"
    corpus.save_to_disk(str(saved))
    del corpus
    saved.rename(folder)  # a killed run leaves only the .partial folder, which is never loaded
    shutil.rmtree(partial)


def iter_audio(dataset, indices: Sequence[int], batch_size: int = 32):
    """Yield `(indices, waveforms)` batches of `dataset`'s `audio` column as float32 NumPy arrays."""
    numpy_view = dataset.with_format("numpy", columns=["audio"])
    for start in range(0, len(indices), batch_size):
        chunk = [int(i) for i in indices[start : start + batch_size]]
        audio = numpy_view[chunk]["audio"]
        yield chunk, [np.array(a, dtype=np.float32) for a in audio]  # writable copies: arrow buffers are read-only


def encode_audio(dataset, encode_list: Callable[[list[np.ndarray]], list[Any]], batch_size: int = 32) -> list:
    """`encode_list` applied to every waveform of `dataset` in batches of similar durations (less padding).

    Args:
        dataset (`datasets.Dataset`): a corpus split with `audio` and `duration` columns.
        encode_list (`Callable`): maps a list of waveforms to a list of encodings (e.g. `codec.encode_list`).
        batch_size (`int`, *optional*, defaults to `32`): waveforms per call.

    Returns:
        `list`: the encodings, in the dataset's row order.
    """
    order = np.argsort(np.asarray(dataset["duration"]), kind="stable")
    encoded: list[Any] = [None] * len(dataset)
    for chunk, waveforms in iter_audio(dataset, order, batch_size):
        for i, x in zip(chunk, encode_list(waveforms)):
            encoded[i] = x
    return encoded


def load_audio(dataset, limit: int | None = None) -> list[np.ndarray]:
    """The first `limit` (default: all) waveforms of `dataset` as float32 NumPy arrays."""
    indices = range(len(dataset) if limit is None else min(limit, len(dataset)))
    return [a for _, batch in iter_audio(dataset, indices, batch_size=256) for a in batch]


def encode_corpus_cached(
    cache: str | Path,
    key: dict[str, Any],
    num_utterances: int,
    seed: int,
    sampling_rate: int,
    encode_list: Callable[[list[np.ndarray]], list[Any]],
    columns: Sequence[str],
    encoded_column: str,
    corpus_cache_dir: str | Path = DEFAULT_CORPUS_CACHE_DIR,
) -> dict:
    """The corpus `build_tts_corpus(num_utterances, seed)` at `sampling_rate` (kept in `corpus_cache_dir`, see
    [`load_or_build_corpus`]) with every utterance encoded by `encode_list`, cached in the file `cache` and reused
    while the stored `key` equals `key` (so the key must name everything the encodings depend on).

    Args:
        cache (`str` or `Path`): the cache file (a `torch.save` dict; written under a temporary name and renamed, so a
            killed run never leaves half a file).
        key (`dict`): what the cached encodings depend on (corpus size, seed, encoder).
        num_utterances (`int`): utterances in both splits together.
        seed (`int`): seed of the corpus.
        sampling_rate (`int`): sampling rate of the audio the encoder takes.
        encode_list (`Callable`): maps a list of waveforms to a list of encodings (see [`encode_audio`]).
        columns (`Sequence[str]`): corpus columns kept beside the encodings.
        encoded_column (`str`): name of the encodings' column.
        corpus_cache_dir (`str` or `Path`, *optional*): where the built corpora are kept.

    Returns:
        `dict`: `"key"`, `"sampling_rate"` and, per split (`"train"`, `"test"`), lists of the `columns`, the
        encodings under `encoded_column` and, for the test split, the original `"audio"`.
    """
    import logging
    import time

    import torch

    logger = logging.getLogger(__name__)
    cache = Path(cache)
    if cache.is_file():
        data = torch.load(cache, weights_only=False)
        if data["key"] == key:
            logger.info("reusing the encoded corpus in %s", cache)
            return data
    start = time.time()
    corpus = load_or_build_corpus(corpus_cache_dir, num_utterances, seed, sampling_rate)
    data = {"key": key, "sampling_rate": sampling_rate}
    for split, dataset in corpus.items():
        with torch.no_grad():
            encoded = encode_audio(dataset, encode_list)
        rows = {column: list(dataset[column]) for column in columns}
        rows[encoded_column] = encoded
        if split == "test":
            rows["audio"] = load_audio(dataset)  # kept for the evaluations' reference rows
        data[split] = rows
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(cache.name + ".partial")
    torch.save(data, partial)
    partial.replace(cache)
    logger.info("corpus encoded in %.0f s: %s", time.time() - start, {s: len(data[s][columns[0]]) for s in corpus})
    return data


TOKEN_CORPUS_COLUMNS = ("text", "phonemes", "voice", "gender", "pitch_level", "rate_level", "unseen_voice")
"""Label columns that [`tokenize_corpus`] keeps beside the speech tokens."""


def tokenize_corpus(
    num_utterances: int,
    seed: int,
    speech_tokenizer,
    cache: str | Path,
    tokenizer_key: str = "bundled",
    corpus_cache_dir: str | Path = DEFAULT_CORPUS_CACHE_DIR,
) -> dict:
    """[`encode_corpus_cached`] with a speech tokenizer: the codec LM's and the reward model's view of the corpus,
    reused while the corpus size, seed and `tokenizer_key` match.

    Args:
        num_utterances (`int`): utterances in both splits together.
        seed (`int`): seed of the corpus.
        speech_tokenizer ([`~ardm_trl.audio.SpeechTokenizerModel`]): encodes the audio (`encode_list`) at its
            `sampling_rate`.
        cache (`str` or `Path`): the cache file.
        tokenizer_key (`str`, *optional*, defaults to `"bundled"`): names the tokenizer in the cache key (pass its
            path when it is not the bundled one).
        corpus_cache_dir (`str` or `Path`, *optional*): where the built corpora are kept.

    Returns:
        `dict`: `"key"`, `"sampling_rate"` and, per split, lists of the [`TOKEN_CORPUS_COLUMNS`], `"speech_ids"` (codes
        per utterance) and, for the test split, the original `"audio"`.
    """
    key = {"num_utterances": num_utterances, "seed": seed, "tokenizer": tokenizer_key}
    return encode_corpus_cached(
        cache, key, num_utterances, seed, speech_tokenizer.sampling_rate,
        lambda waves: [x.tolist() for x in speech_tokenizer.encode_list(waves)], TOKEN_CORPUS_COLUMNS, "speech_ids",
        corpus_cache_dir,
    )  # fmt: skip


LATENT_CORPUS_COLUMNS = ("text", "phonemes", "voice", "pitch_level", "unseen_voice")
"""Label columns that [`encode_latent_corpus`] keeps beside the codec latents."""


def encode_latent_corpus(
    num_utterances: int,
    seed: int,
    codec,
    cache: str | Path,
    codec_key: str = "bundled",
    corpus_cache_dir: str | Path = DEFAULT_CORPUS_CACHE_DIR,
) -> dict:
    """[`encode_corpus_cached`] with the latent codec: the ARDM's view of the corpus, reused while the corpus size,
    seed, `codec_key` and the codec's weights match.

    Args:
        num_utterances (`int`): utterances in both splits together.
        seed (`int`): seed of the corpus.
        codec ([`~ardm_trl.audio.SpeechCodecModel`]): encodes the audio (`encode_list`) at its `sampling_rate`.
        cache (`str` or `Path`): the cache file.
        codec_key (`str`, *optional*, defaults to `"bundled"`): names the codec in the cache key (pass its path when
            it is not the bundled one); a fingerprint of its weights is part of the key too.
        corpus_cache_dir (`str` or `Path`, *optional*): where the built corpora are kept.

    Returns:
        `dict`: `"key"`, `"sampling_rate"` and, per split, lists of the [`LATENT_CORPUS_COLUMNS`], `"latents"` (float
        tensors `(F_i, D)` on the CPU) and, for the test split, the original `"audio"`.
    """
    fingerprint = float(sum(p.double().sum() for p in codec.state_dict().values()))
    key = {"num_utterances": num_utterances, "seed": seed, "codec": codec_key, "codec_fingerprint": fingerprint}
    return encode_corpus_cached(
        cache, key, num_utterances, seed, codec.sampling_rate,
        lambda waves: [x.float().cpu() for x in codec.encode_list(waves)], LATENT_CORPUS_COLUMNS, "latents",
        corpus_cache_dir,
    )  # fmt: skip
