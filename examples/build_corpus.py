"""Build the espeak-ng multi-speaker English TTS corpus and save it with `datasets.DatasetDict.save_to_disk`.

Usage:

    python examples/build_corpus.py --num_utterances 1000 --seed 0 --output_dir data/tts_corpus
    python examples/build_corpus.py --num_utterances 5000 --hard_fraction 0.3 --sampling_rate 16000 \
        --output_dir data/tts_corpus_16k

Then `datasets.load_from_disk("data/tts_corpus")` gives the "train" and "test" splits described in docs/data.md.
"""

import logging
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from ardm_trl.data import build_tts_corpus


@dataclass
class CorpusArguments:
    output_dir: str = field(default="data/tts_corpus", metadata={"help": "Where to save the DatasetDict."})
    num_utterances: int = field(default=1000, metadata={"help": "Utterances in train and test together."})
    seed: int = field(default=0, metadata={"help": "Seed of every random choice."})
    test_fraction: float = field(default=0.1, metadata={"help": "Fraction of utterances and sentences in test."})
    num_test_voices: int = field(default=4, metadata={"help": "Voices that speak only in the test split."})
    hard_fraction: float = field(default=0.15, metadata={"help": "Probability of a repetitive (hard) sentence."})
    sampling_rate: int | None = field(default=None, metadata={"help": "Resample to this rate (default 22050)."})


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    (args,) = HfArgumentParser(CorpusArguments).parse_args_into_dataclasses()
    corpus = build_tts_corpus(
        num_utterances=args.num_utterances,
        seed=args.seed,
        test_fraction=args.test_fraction,
        num_test_voices=args.num_test_voices,
        hard_fraction=args.hard_fraction,
        sampling_rate=args.sampling_rate,
    )
    corpus.save_to_disk(args.output_dir)
    for split, dataset in corpus.items():
        hours = sum(dataset["duration"]) / 3600
        logging.info("%s: %d utterances, %.2f h, %d voices", split, len(dataset), hours, len(set(dataset["voice"])))


if __name__ == "__main__":
    main()
