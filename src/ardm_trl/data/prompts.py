"""Prompt rows for the RL trainers and evaluations: target text (as phoneme ids), a zero-shot voice prompt taken from
another utterance of the same speaker, and the columns reward functions read."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import numpy as np
import torch


def speaker_key(row: dict[str, Any]) -> tuple[str, str]:
    """A speaker is an espeak voice at one pitch level: what a voice prompt can carry."""
    return row["voice"], row.get("pitch_level", "")


@torch.no_grad()
def encode_latents(codec, waveforms: list[np.ndarray], batch_size: int = 16) -> list[torch.Tensor]:
    """Codec latents `(F_i, D)` of each waveform (batched)."""
    out: list[torch.Tensor] = []
    for start in range(0, len(waveforms), batch_size):
        out.extend(t.cpu() for t in codec.encode_list(list(waveforms[start:start + batch_size])))
    return out


def voice_prompt_rows(
    split,
    codec,
    tokenizer,
    text_column: str = "phonemes",
    prompt_frames: int = 48,
    seed: int = 0,
    include_target_latents: bool = False,
    limit: int | None = None,
    targets: list[int] | None = None,
) -> list[dict[str, Any]]:
    """One row per utterance of a corpus split (`ardm_trl.data.build_tts_corpus`), ready for the trainers.

    Each row has `prompt` (the text), `text_input_ids` (`tokenizer.encode(row[text_column])`), `prompt_latents`
    (the first `prompt_frames` codec frames of another utterance of the same speaker: a zero-shot voice prompt),
    `prompt_audio` (that utterance, `{"array", "sampling_rate"}`, the reference of speaker similarity), the corpus
    labels (`voice`, `gender`, `pitch_level`, `rate_level`, `is_hard`) and, with `include_target_latents`, the
    utterance's own `latents` (value training on corpus audio, Task A).

    `targets` restricts the rows to these indices of `split` (`limit` then draws from them), while voice prompts are
    still drawn from the whole split: a validation subset gets prompts from utterances outside it.
    """
    rng = random.Random(seed)
    indices = list(range(len(split))) if targets is None else list(targets)
    if limit is not None:
        rng.shuffle(indices)
        indices = sorted(indices[:limit])
    rows = [split[i] for i in range(len(split))]
    by_speaker: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_speaker[speaker_key(row)].append(i)
    needed = set(indices)
    sources = {}
    for i in indices:
        others = [j for j in by_speaker[speaker_key(rows[i])] if j != i] or [i]
        sources[i] = rng.choice(others)
        needed.add(sources[i])
    order = sorted(needed)
    latents = dict(zip(order, encode_latents(codec, [np.asarray(rows[j]["audio"], dtype=np.float32) for j in order])))
    out = []
    for i in indices:
        row, source = rows[i], rows[sources[i]]
        record = {
            "prompt": row["text"],
            "text_input_ids": tokenizer.encode(row[text_column]),
            "prompt_latents": latents[sources[i]][:prompt_frames],
            "prompt_audio": {"array": np.asarray(source["audio"], dtype=np.float32),
                             "sampling_rate": int(source["sampling_rate"])},
        }
        for column in ("voice", "gender", "pitch_level", "rate_level", "is_hard"):
            if column in row:
                record[column] = row[column]
        if include_target_latents:
            record["latents"] = latents[i]
        out.append(record)
    return out


def prompt_rows_from_text(
    texts: list[str],
    voice_clips: list[np.ndarray],
    sampling_rate: int,
    codec,
    tokenizer,
    prompt_frames: int = 48,
    phonemize_text: bool = True,
    language: str = "en-us",
) -> list[dict[str, Any]]:
    """Prompt rows from raw texts and voice clips (one per text, any sampling rate): what the RL trainers, Best-of-K
    and the evaluations take.

    Each row has `prompt` (the text), `text_input_ids` (the tokenizer's ids of its espeak IPA phonemes, the bundled
    ARDM's text; `phonemize_text=False` tokenises the text as it is, for a model trained on plain text),
    `prompt_latents` (the clip's first `prompt_frames` codec frames; the codec resamples the clip) and `prompt_audio`
    (the clip, the reference of speaker similarity).
    """
    from .espeak import phonemize

    if len(texts) != len(voice_clips):
        raise ValueError(f"{len(texts)} texts but {len(voice_clips)} voice clips: give one clip per text.")
    clips = [np.asarray(c, dtype=np.float32).reshape(-1) for c in voice_clips]
    latents = [t.cpu() for t in codec.encode_list(clips, sampling_rate=sampling_rate)]
    rows = []
    for text, clip, latent in zip(texts, clips, latents):
        units = phonemize(text, language) if phonemize_text else text
        rows.append({
            "prompt": text,
            "text_input_ids": tokenizer.encode(units),
            "prompt_latents": latent[:prompt_frames],
            "prompt_audio": {"array": clip, "sampling_rate": int(sampling_rate)},
        })  # fmt: skip
    return rows


def speaker_index(columns: dict[str, list]) -> dict[str, list[int]]:
    """Row indices of each speaker of a split given as columns (`"voice"`, `"pitch_level"` lists, as
    [`~ardm_trl.data.corpus_cache.encode_latent_corpus`] returns them)."""
    speakers: dict[str, list[int]] = defaultdict(list)
    for i, (voice, pitch) in enumerate(zip(columns["voice"], columns["pitch_level"])):
        speakers[f"{voice}|{pitch}"].append(i)
    return speakers


def pick_prompt(
    columns: dict[str, list],
    speakers: dict[str, list[int]],
    index: int,
    rng: random.Random,
    min_frames: int,
    max_frames: int,
) -> tuple[torch.Tensor | None, int | None]:
    """A zero-shot voice prompt for row `index`: a random chunk of `min_frames` to `max_frames` latent frames of another
    utterance of the same speaker, and that utterance's index; `(None, None)` if the speaker has one utterance."""
    speaker = f"{columns['voice'][index]}|{columns['pitch_level'][index]}"
    others = [j for j in speakers[speaker] if j != index]
    if not others:
        return None, None
    source = rng.choice(others)
    latents = columns["latents"][source]
    length = min(rng.randint(min_frames, max_frames), latents.shape[0])
    start = rng.randint(0, latents.shape[0] - length)
    return latents[start : start + length], source


def choose_eval_prompts(
    columns: dict[str, list], num_samples: int, seed: int, min_frames: int = 32, max_frames: int = 64
) -> tuple[list[int], tuple, tuple]:
    """The evaluation rows of a test split (seeded), each with a voice prompt from [`pick_prompt`]: `(row indices,
    prompt latents, index of each prompt's source utterance)`. Only speakers with two or more utterances are drawn."""
    rng = random.Random(seed)
    speakers = speaker_index(columns)
    candidates = [i for i in range(len(columns["text"]))
                  if len(speakers[f"{columns['voice'][i]}|{columns['pitch_level'][i]}"]) > 1]  # fmt: skip
    chosen = rng.sample(candidates, min(num_samples, len(candidates)))
    prompts, sources = zip(*(pick_prompt(columns, speakers, i, rng, min_frames, max_frames) for i in chosen))
    return chosen, prompts, sources


__all__ = ["choose_eval_prompts", "encode_latents", "pick_prompt", "speaker_index", "speaker_key", "voice_prompt_rows"]
