"""The VGPO paper's two tasks at small scale, as presets the examples, the demo and the benchmarks share: which
corpus the prompts come from, how the prompts are split (train / validation / test), the reward, and how the policy
samples in RL.

- Task A (`"f0"`): F0 variance, expressiveness (paper Table 1).
- Task B (`"ctc"`): CTC log-likelihood of the text (hama's phoneme recogniser), on a corpus rich in hard, repetitive
  sentences (paper Table 3).
- Pitch control (`"pitch"`): the pitch level in semitones (a clipped mean of the voiced frames), a reward that a codec
  round trip keeps and whose value is learnable from a few thousand samples (not in the paper; the demo's task).

Prompt splits: `"train"` rows come from the corpus' train split (sentences and voices the bundled ARDM was trained
on); `"validation"` and `"test"` from its test split (held-out sentences, half of them in held-out voices), divided by
sentence: even `sentence_id` -> validation, odd -> test. Settings are chosen on validation prompts and reported on test
prompts; no sentence is in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .data.corpus_cache import DEFAULT_CORPUS_CACHE_DIR, load_or_build_corpus
from .data.prompts import voice_prompt_rows

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SpeechTask:
    """A task preset.

    Args:
        name (`str`): `"f0"`, `"ctc"` or `"pitch"`.
        title (`str`): the paper's name for it.
        hard_fraction (`float`): share of hard repetitive sentences in its corpus.
        max_patches (`int`): rollout length limit (patches of the bundled ARDM: 4 frames at ~43 Hz, ~93 ms).
        value_source (`str`): where Alg. 1's value model learns the reward: `"corpus"` (the paper's Task A: corpus
            audio) or `"samples"` (Task B: the base model's own samples, group-normalised).
        min_voice_pitch (`str`, *optional*): keep only utterances of this espeak pitch level or higher
            (`"mid"`, `"high"`): the voices whose pitch the bundled codec keeps (see `docs/rewards.md`).
        gender (`str`, *optional*): keep only voices of this gender (`"female"`, `"male"`).
        f0_outlier_semitones (`float`, *optional*): for the `"f0"` task, voiced frames further than this from the
            sample's median F0 count as unvoiced in its reward and its F0V column ([`~ardm_trl.rewards.f0_variance`]).
    """

    name: str
    title: str
    hard_fraction: float
    max_patches: int
    value_source: str
    min_voice_pitch: str | None = None
    gender: str | None = None
    f0_outlier_semitones: float | None = None

    def columns(self, with_error_rate: bool = False) -> list[Any]:
        """The table columns of the task ([`~ardm_trl.tables.MetricColumn`]): its reward's evaluation metric first,
        then the intelligibility (hama CTC NLL per phoneme) and speaker similarity (SIM), and with `with_error_rate`
        whisper's WER (Task A) or CER (Task B), as in the paper's tables."""
        from .tables import MetricColumn

        reward = {"f0": MetricColumn(self.f0_metric, "F0V (Hz) ↑", ".1f"), "pitch": MetricColumn("pitch", "Pitch (st) ↑", ".2f"),
                  "ctc": None}[self.name]  # fmt: skip
        columns = [MetricColumn("ctc_nll", "CTC NLL ↓", ".3f", False), MetricColumn("sim", "SIM ↑", ".3f")]
        if reward is not None:
            columns.insert(0, reward)
        if with_error_rate:
            key = "cer" if self.name == "ctc" else "wer"
            columns.append(MetricColumn(key, f"{key.upper()} (%) ↓", ".1f", False))
        return columns

    @property
    def f0_metric(self) -> str:
        """The [`~ardm_trl.rewards.score_speech`] metric that equals the `"f0"` task's reward: `"f0v"`, or
        `"f0v_robust"` where the task drops outlier frames."""
        return "f0v" if self.f0_outlier_semitones is None else "f0v_robust"

    def reward(self, codec: Any) -> Any:
        """The task's reward function, reading samples through `codec`."""
        from .rewards import CTCLogLikelihoodReward, F0VarianceReward, PitchLevelReward

        if self.name == "ctc":
            # a sample too short to say its text gets a poor score (5 nats per phoneme; corpus audio scores ~0.85)
            return CTCLogLikelihoodReward(codec=codec, unaligned_value=-5.0)
        if self.name == "pitch":
            return PitchLevelReward(codec=codec, unvoiced_value=0.0)
        # a sample with no voiced frames has no F0 movement: 0 rather than no reward, so every sample can be ranked
        return F0VarianceReward(codec=codec, unvoiced_value=0.0, outlier_semitones=self.f0_outlier_semitones)


TASKS: dict[str, SpeechTask] = {
    "ctc": SpeechTask("ctc", "Task B: CTC likelihood on hard sentences (VGPO paper, Table 3)", hard_fraction=0.9,
                      max_patches=64, value_source="samples"),
    # F0V survives the bundled codec's round trip on female voices once the tracker's octave jumps are dropped
    # (benchmarks/f0_reliability.py): Task A uses them
    "f0": SpeechTask("f0", "Task A: F0 variance (VGPO paper, Table 1), female voices", hard_fraction=0.15,
                     max_patches=48, value_source="samples", gender="female", f0_outlier_semitones=6.0),
    "pitch": SpeechTask("pitch", "Pitch control: speak higher (semitones above 100 Hz), high voices", hard_fraction=0.15,
                        max_patches=48, value_source="samples", min_voice_pitch="high"),
}

_PITCH_ORDER = ("low", "mid", "high")


def get_task(name: str) -> SpeechTask:
    """The preset called `name` (`"f0"`, `"ctc"` or `"pitch"`)."""
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}: use one of {sorted(TASKS)}.")
    return TASKS[name]


def split_rows(
    corpus: Any, split: str, min_voice_pitch: str | None = None, gender: str | None = None
) -> tuple[Any, list[int]]:
    """The corpus split a prompt split lives in, and the indices of its rows (see the module docstring), optionally
    only voices at `min_voice_pitch` or higher and of `gender`."""
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    rows = corpus["train" if split == "train" else "test"]
    keep_pitch = None if min_voice_pitch is None else set(_PITCH_ORDER[_PITCH_ORDER.index(min_voice_pitch):])
    parity = {"validation": 0, "test": 1}.get(split)
    labels = zip(rows["sentence_id"], rows["pitch_level"], rows["gender"])
    indices = [i for i, (sentence, pitch, voice_gender) in enumerate(labels)
               if (parity is None or sentence % 2 == parity) and (keep_pitch is None or pitch in keep_pitch)
               and (gender is None or voice_gender == gender)]  # fmt: skip
    return rows, indices


def task_prompts(
    task: SpeechTask | str,
    split: str,
    codec: Any,
    tokenizer: Any,
    limit: int | None = None,
    corpus_utterances: int = 3000,
    seed: int = 0,
    include_target_latents: bool = False,
    corpus_cache_dir: str = DEFAULT_CORPUS_CACHE_DIR,
) -> list[dict[str, Any]]:
    """Prompt rows of `split` for `task`: texts with zero-shot voice prompts from the same speaker
    ([`~ardm_trl.data.voice_prompt_rows`]), from the corpus `build_tts_corpus(corpus_utterances, seed=0)` with the
    task's hard-sentence share (built once and cached in `corpus_cache_dir`).

    Args:
        task ([`SpeechTask`] or `str`): the task.
        split (`str`): `"train"`, `"validation"` or `"test"`.
        codec: the speech codec (voice prompts are its latents).
        tokenizer: the ARDM's text tokenizer.
        limit (`int`, *optional*): at most this many rows (a seeded random subset).
        corpus_utterances (`int`, *optional*, defaults to `3000`): size of the corpus (both splits).
        seed (`int`, *optional*, defaults to `0`): seed of the subset and of the voice-prompt choice (the corpus
            itself always uses seed 0, the bundled ARDM's split).
        include_target_latents (`bool`, *optional*, defaults to `False`): add each utterance's own `latents`.
        corpus_cache_dir (`str`, *optional*): where built corpora are kept.
    """
    task = get_task(task) if isinstance(task, str) else task
    corpus = load_or_build_corpus(corpus_cache_dir, corpus_utterances, 0, codec.sampling_rate,
                                  hard_fraction=task.hard_fraction)  # fmt: skip
    rows, indices = split_rows(corpus, split, task.min_voice_pitch, task.gender)
    if len(indices) == 0:
        raise ValueError(f"The {split!r} split of task {task.name!r} is empty in a corpus of {corpus_utterances} "
                         "utterances (the task keeps only some voices): build a larger corpus (`corpus_utterances`).")
    return voice_prompt_rows(rows, codec, tokenizer, limit=limit, seed=seed, targets=indices,
                             include_target_latents=include_target_latents)  # fmt: skip


__all__ = ["SPLITS", "TASKS", "SpeechTask", "get_task", "split_rows", "task_prompts"]
