"""A multi-speaker English TTS corpus spoken by espeak-ng, as a `datasets.DatasetDict`.

Every utterance is a shipped sentence ([`load_sentences`]) spoken by one espeak-ng voice at one pitch level and one
speaking-rate level. The split holds out sentences *and* voices:

- a `test_fraction` of the sentences (normal and hard ones alike) is reserved for the test split: a test sentence
  never appears in train;
- `num_test_voices` voices (half female, half male) are reserved too: they speak only in the test split. Test
  utterances are spoken half by these unseen voices and half by the train voices (`unseen_voice` column).

Everything is deterministic given `seed`: the sentence, voice, pitch and rate choices come from one
`random.Random(seed)`, and each espeak-ng call is bit-exact reproducible ([`synthesize`]).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .espeak import phonemize, synthesize, voice_gender
from .sentences import load_sentences

__all__ = ["DEFAULT_PITCH_LEVELS", "DEFAULT_RATE_LEVELS", "DEFAULT_VOICES", "build_tts_corpus", "default_voices"]

logger = logging.getLogger(__name__)

# American and British English, with the female (f1-f5) and male (m1-m7) variants of espeak-ng. Note that espeak-ng
# has no "en-gb" voice name in this build ("en" is British English), and that it ignores a variant given to
# "en-gb" in builds that accept the name.
DEFAULT_VOICES: tuple[str, ...] = tuple(
    [f"en-us+f{i}" for i in range(1, 6)]
    + [f"en-us+m{i}" for i in range(1, 8)]
    + [f"en+f{i}" for i in range(1, 6)]
    + [f"en+m{i}" for i in range(1, 8)]
)
# label -> inclusive range of espeak base pitch (0-100) / rate (words per minute); gaps keep the labels separable.
DEFAULT_PITCH_LEVELS: dict[str, tuple[int, int]] = {"low": (20, 32), "mid": (44, 56), "high": (68, 80)}
DEFAULT_RATE_LEVELS: dict[str, tuple[int, int]] = {"slow": (120, 140), "normal": (165, 185), "fast": (215, 240)}
_CHUNK_ROWS = 500  # utterances per Arrow chunk while building


def default_voices() -> list[str]:
    """The 24 default voices: `en-us+f1..f5`, `en-us+m1..m7`, `en+f1..f5`, `en+m1..m7`."""
    return list(DEFAULT_VOICES)


@dataclass
class _Utterance:
    split: str
    sentence_id: int
    text: str
    is_hard: bool
    voice: str
    unseen_voice: bool
    pitch: int
    pitch_level: str
    rate: int
    rate_level: str


def _hold_out_voices(voices: list[str], num_test_voices: int, rng: random.Random) -> list[str]:
    """Pick `num_test_voices` voices, alternating female and male when both exist."""
    by_gender = {"female": [v for v in voices if voice_gender(v) == "female"],
                 "male": [v for v in voices if voice_gender(v) == "male"]}  # fmt: skip
    for pool in by_gender.values():
        rng.shuffle(pool)
    held_out = []
    order = ["female", "male"]
    while len(held_out) < num_test_voices:
        pool = by_gender[order[len(held_out) % 2]] or by_gender[order[(len(held_out) + 1) % 2]]
        held_out.append(pool.pop())
    return held_out


def _plan(
    num_utterances: int,
    seed: int,
    voices: list[str],
    test_fraction: float,
    num_test_voices: int,
    hard_fraction: float,
    pitch_levels: dict[str, tuple[int, int]],
    rate_levels: dict[str, tuple[int, int]],
) -> list[_Utterance]:
    """Decide every utterance (text, voice, prosody, split) before any audio is made."""
    rng = random.Random(seed)
    normal, hard = load_sentences("normal"), load_sentences("hard")
    sentences = normal + hard  # sentence_id indexes load_sentences("all")
    pools: dict[tuple[str, bool], list[int]] = {}
    for is_hard, ids in ((False, list(range(len(normal)))), (True, list(range(len(normal), len(sentences))))):
        rng.shuffle(ids)
        num_test = max(1, round(test_fraction * len(ids)))
        pools["test", is_hard], pools["train", is_hard] = ids[:num_test], ids[num_test:]
    cursors = {key: 0 for key in pools}

    test_voices = _hold_out_voices(voices, num_test_voices, rng)
    train_voices = [v for v in voices if v not in test_voices]
    num_test_utterances = round(test_fraction * num_utterances) if test_fraction > 0 else 0

    plan = []
    for index in range(num_utterances):
        split = "test" if index < num_test_utterances else "train"
        is_hard = rng.random() < hard_fraction
        pool = pools[split, is_hard]
        sentence_id = pool[cursors[split, is_hard] % len(pool)]  # cycle through the pool when it runs out
        cursors[split, is_hard] += 1
        unseen = split == "test" and bool(test_voices) and (index % 2 == 0 or not train_voices)
        voice = rng.choice(test_voices if unseen else train_voices)
        pitch_level = rng.choice(list(pitch_levels))
        rate_level = rng.choice(list(rate_levels))
        plan.append(
            _Utterance(
                split=split,
                sentence_id=sentence_id,
                text=sentences[sentence_id],
                is_hard=is_hard,
                voice=voice,
                unseen_voice=unseen,
                pitch=rng.randint(*pitch_levels[pitch_level]),
                pitch_level=pitch_level,
                rate=rng.randint(*rate_levels[rate_level]),
                rate_level=rate_level,
            )  # fmt: skip
        )
    return plan


def _voice_language(voice: str) -> str:
    return voice.split("+", 1)[0]


def _validate(
    num_utterances: int,
    voices: list[str],
    test_fraction: float,
    num_test_voices: int,
    hard_fraction: float,
    levels: dict[str, dict[str, tuple[int, int]]],
) -> None:
    if num_utterances < 1:
        raise ValueError(f"`num_utterances` must be at least 1, got {num_utterances}.")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must lie in [0, 1), got {test_fraction}.")
    if not 0.0 <= hard_fraction <= 1.0:
        raise ValueError(f"`hard_fraction` must lie in [0, 1], got {hard_fraction}.")
    if len(set(voices)) != len(voices) or not voices:
        raise ValueError(f"`voices` must be a non-empty list of distinct espeak-ng voice names, got {voices}.")
    if test_fraction > 0 and not 0 <= num_test_voices < len(voices):
        raise ValueError(
            f"`num_test_voices` ({num_test_voices}) must be smaller than the number of voices ({len(voices)}) so "
            "that some voices remain for training; pass fewer test voices or more voices."
        )
    for name, table in levels.items():
        if not table or any(
            not (isinstance(r, tuple | list) and len(r) == 2 and r[0] <= r[1]) for r in table.values()
        ):
            raise ValueError(f"`{name}` must map labels to (low, high) ranges with low <= high, got {table}.")


def build_tts_corpus(
    num_utterances: int = 1000,
    seed: int = 0,
    voices: list[str] | None = None,
    test_fraction: float = 0.1,
    num_test_voices: int = 4,
    hard_fraction: float = 0.15,
    pitch_levels: dict[str, tuple[int, int]] | None = None,
    rate_levels: dict[str, tuple[int, int]] | None = None,
    sampling_rate: int | None = None,
    trim_silence: bool = True,
    arrow_dir: str | Path | None = None,
):
    """Build a multi-speaker English TTS corpus with espeak-ng.

    Args:
        num_utterances (`int`, *optional*, defaults to `1000`): utterances in both splits together.
        seed (`int`, *optional*, defaults to `0`): seed of every random choice; the corpus is a pure function of
            the arguments.
        voices (`list[str]`, *optional*): espeak-ng voices to use; defaults to [`default_voices`] (24 voices).
        test_fraction (`float`, *optional*, defaults to `0.1`): fraction of the utterances, and of the sentences,
            that go to the test split.
        num_test_voices (`int`, *optional*, defaults to `4`): voices held out of train (half female, half male);
            they speak half of the test utterances.
        hard_fraction (`float`, *optional*, defaults to `0.15`): probability that an utterance uses a hard
            (repetitive, VGPO task B) sentence.
        pitch_levels (`dict[str, tuple[int, int]]`, *optional*): label -> inclusive range of espeak pitch (0-100);
            defaults to `DEFAULT_PITCH_LEVELS` (low 20-32, mid 44-56, high 68-80).
        rate_levels (`dict[str, tuple[int, int]]`, *optional*): label -> inclusive range of words per minute;
            defaults to `DEFAULT_RATE_LEVELS` (slow 120-140, normal 165-185, fast 215-240).
        sampling_rate (`int`, *optional*): resample the audio to this rate with torchaudio; defaults to espeak's
            22050 Hz.
        trim_silence (`bool`, *optional*, defaults to `True`): cut leading and trailing silence down to 50 ms.
        arrow_dir (`str` or `Path`, *optional*): write each split to an Arrow file in this (existing) folder while it
            is synthesised, `_CHUNK_ROWS` utterances at a time, and return memory-mapped datasets over those files:
            the memory then holds one chunk of audio, not the corpus (what tens of thousands of utterances need; the
            files must outlive the datasets). By default the corpus is built in memory.

    Returns:
        `datasets.DatasetDict`: splits `"train"` and `"test"` with columns `audio` (float32 list), `sampling_rate`,
        `text`, `phonemes` (espeak IPA for the voice's language), `voice`, `gender`, `pitch`, `rate`,
        `pitch_level`, `rate_level`, `sentence_id` (index into `load_sentences("all")`), `is_hard`,
        `unseen_voice` (test utterances by a held-out voice) and `duration` (seconds).
    """
    import datasets

    voices = list(voices) if voices is not None else default_voices()
    pitch_levels = dict(pitch_levels or DEFAULT_PITCH_LEVELS)
    rate_levels = dict(rate_levels or DEFAULT_RATE_LEVELS)
    levels = {"pitch_levels": pitch_levels, "rate_levels": rate_levels}
    _validate(num_utterances, voices, test_fraction, num_test_voices, hard_fraction, levels)
    if not all(0 <= lo <= hi <= 100 for lo, hi in pitch_levels.values()):
        raise ValueError(f"`pitch_levels` ranges must lie in [0, 100] (espeak pitch), got {pitch_levels}.")
    if not all(80 <= lo <= hi <= 450 for lo, hi in rate_levels.values()):
        raise ValueError(f"`rate_levels` ranges must lie in [80, 450] words per minute, got {rate_levels}.")

    plan = _plan(
        num_utterances, seed, voices, test_fraction, num_test_voices if test_fraction > 0 else 0, hard_fraction,
        pitch_levels, rate_levels,
    )  # fmt: skip
    features = _corpus_features()
    phoneme_cache: dict[tuple[str, str], str] = {}
    rows: dict[str, dict[str, list]] = {"train": {}, "test": {}}
    # rows move into Arrow tables every `_CHUNK_ROWS` utterances, so the audio is held about once (24,000 utterances
    # of Python-side arrays plus their concatenated copy did not fit in 24 GB)
    sinks = {split: _TableSink(split, features, arrow_dir) for split in ("train", "test")}
    for utterance in plan:
        waveform, rate = synthesize(utterance.text, utterance.voice, utterance.pitch, utterance.rate)
        if trim_silence:
            waveform = _trim(waveform, rate)
        if sampling_rate is not None and sampling_rate != rate:
            waveform = _resample(waveform, rate, sampling_rate)
            rate = sampling_rate
        key = (utterance.text, _voice_language(utterance.voice))
        if key not in phoneme_cache:
            phoneme_cache[key] = phonemize(*key)
        row = {
            "audio": waveform.astype(np.float32),
            "sampling_rate": rate,
            "text": utterance.text,
            "phonemes": phoneme_cache[key],
            "voice": utterance.voice,
            "gender": voice_gender(utterance.voice),
            "pitch": utterance.pitch,
            "rate": utterance.rate,
            "pitch_level": utterance.pitch_level,
            "rate_level": utterance.rate_level,
            "sentence_id": utterance.sentence_id,
            "is_hard": utterance.is_hard,
            "unseen_voice": utterance.unseen_voice,
            "duration": len(waveform) / rate,
        }
        columns = rows[utterance.split]
        for column, value in row.items():
            columns.setdefault(column, []).append(value)
        if len(columns["audio"]) >= _CHUNK_ROWS:
            sinks[utterance.split].add(_to_table(columns, features))
            rows[utterance.split] = {}

    splits = {}
    for split, columns in rows.items():
        if columns:
            sinks[split].add(_to_table(columns, features))
        splits[split] = sinks[split].dataset()
    logger.info("Built a TTS corpus: %d train / %d test utterances.", len(splits["train"]), len(splits["test"]))
    return datasets.DatasetDict(splits)



def _corpus_features():
    import datasets

    return datasets.Features(
        {
            "audio": datasets.Sequence(datasets.Value("float32")),
            "sampling_rate": datasets.Value("int32"),
            "text": datasets.Value("string"),
            "phonemes": datasets.Value("string"),
            "voice": datasets.Value("string"),
            "gender": datasets.Value("string"),
            "pitch": datasets.Value("int32"),
            "rate": datasets.Value("int32"),
            "pitch_level": datasets.Value("string"),
            "rate_level": datasets.Value("string"),
            "sentence_id": datasets.Value("int32"),
            "is_hard": datasets.Value("bool"),
            "unseen_voice": datasets.Value("bool"),
            "duration": datasets.Value("float32"),
        }
    )


class _TableSink:
    """Collects the Arrow chunks of one split: in memory, or appended to `<arrow_dir>/<split>.arrow` (an Arrow
    stream, the format `datasets` memory-maps)."""

    def __init__(self, split: str, features, arrow_dir: str | Path | None):
        self.features = features
        self.tables: list = []
        self.path = Path(arrow_dir) / f"{split}.arrow" if arrow_dir is not None else None
        self.writer = None
        self.num_rows = 0

    def add(self, table) -> None:
        import pyarrow as pa

        self.num_rows += table.num_rows
        if self.path is None:
            self.tables.append(table)
            return
        if self.writer is None:
            self.writer = pa.ipc.new_stream(str(self.path), table.schema)
        self.writer.write_table(table)

    def dataset(self):
        import datasets
        import pyarrow as pa

        if self.num_rows == 0:
            return datasets.Dataset.from_dict({name: [] for name in self.features}, features=self.features)
        if self.path is None:
            table = datasets.table.InMemoryTable(pa.concat_tables(self.tables))
            return datasets.Dataset(table, info=datasets.DatasetInfo(features=self.features))
        self.writer.close()
        return datasets.Dataset.from_file(str(self.path), info=datasets.DatasetInfo(features=self.features))


def _to_table(columns: dict[str, list], features):
    """Arrow table of `columns` (10x faster than `Dataset.from_dict` on lists of arrays). Empties the `audio` list of
    `columns` once it is copied into one array."""
    import pyarrow as pa

    arrays = []
    for name, feature in features.items():
        if name == "audio":
            lengths = np.array([0] + [len(a) for a in columns[name]], dtype=np.int64)
            values = np.concatenate(columns[name], dtype=np.float32)
            columns[name].clear()  # free the per-utterance arrays: at most two copies of the chunk's audio
            offsets = pa.array(np.cumsum(lengths).astype(np.int32))
            arrays.append(pa.ListArray.from_arrays(offsets, pa.array(values)))
        else:
            arrays.append(pa.array(columns[name], type=feature.pa_type))
    return pa.Table.from_arrays(arrays, schema=features.arrow_schema)


def _trim(waveform: np.ndarray, sample_rate: int, threshold: float = 1e-3, keep_seconds: float = 0.05) -> np.ndarray:
    """Cut leading and trailing samples quieter than `threshold`, keeping `keep_seconds` of margin."""
    loud = np.flatnonzero(np.abs(waveform) > threshold)
    if loud.size == 0:
        return waveform
    margin = int(keep_seconds * sample_rate)
    return waveform[max(0, loud[0] - margin) : loud[-1] + 1 + margin]


def _resample(waveform: np.ndarray, orig_freq: int, new_freq: int) -> np.ndarray:
    import torch
    import torchaudio

    resampled = torchaudio.functional.resample(torch.from_numpy(waveform), orig_freq, new_freq)
    return resampled.numpy()
