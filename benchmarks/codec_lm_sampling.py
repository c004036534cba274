"""Sampling temperature and top-k against the intelligibility of the codec LM's speech, on held-out test sentences.

For every setting `TEMPERATURE:TOP_K` (`none` = no top-k) the codec LM samples speech tokens for the first
`--num_sentences` test sentences once per sampling seed, the speech tokenizer decodes them, and the independent
evaluators score the audio: hama CTC NLL per phoneme and whisper tiny.en WER (%), each as the mean over all samples
(sentences x seeds) with its standard error, and per seed. The same seeds are used for every setting. Results go to
`benchmarks/results/codec_lm_sampling.json` and `.md`.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/codec_lm_sampling.py --data_cache outputs/codec_lm_data/tokens_3k.pt \\
        --settings 1.0:none 0.6:25 --seeds 99 7
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from ardm_trl.evaluation import mean_and_sem
from ardm_trl.models.codec_lm import CodecLMForSpeechSynthesis, CodecLMTokenizer
from ardm_trl.rewards import ctc_log_likelihood, transcribe, word_error_rate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from pretrain_codec_lm import load_speech_tokenizer, sample_and_decode, tokenize_corpus  # noqa: E402

logger = logging.getLogger("codec_lm_sampling")


def score(audio: list[np.ndarray], sampling_rate: int, texts: list[str]) -> dict[str, list[float | None]]:
    """Per-sample hama CTC NLL per phoneme and whisper WER in % (`None` where undefined)."""
    lls = [ctc_log_likelihood(w, sampling_rate, t) for w, t in zip(audio, texts)]
    wers = [word_error_rate(h, t) for h, t in zip(transcribe(audio, sampling_rate), texts)]
    return {"ctc_nll": [-ll if ll is not None and np.isfinite(ll) else None for ll in lls],
            "wer": [None if w is None else 100.0 * w for w in wers]}  # fmt: skip


def summary(values: list[float | None]) -> dict[str, float]:
    mean, sem = mean_and_sem([v for v in values if v is not None])
    return {"mean": mean, "sem": sem}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codec_lm_path", default="pretrained/codec_lm")
    parser.add_argument("--speech_tokenizer_path", default=None)
    parser.add_argument("--num_utterances", type=int, default=3000)
    parser.add_argument("--corpus_seed", type=int, default=0)
    parser.add_argument("--data_cache", default="outputs/codec_lm_data/tokens.pt")
    parser.add_argument("--settings", nargs="+", default=["1.0:none", "0.7:50", "0.6:25"],
                        help="TEMPERATURE:TOP_K pairs; TOP_K 'none' samples from the whole distribution")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[99, 7])
    parser.add_argument("--num_sentences", type=int, default=48)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "codec_lm_sampling.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    speech_tokenizer = load_speech_tokenizer(args.speech_tokenizer_path)
    data = tokenize_corpus(args.num_utterances, args.corpus_seed, speech_tokenizer, args.data_cache,
                           args.speech_tokenizer_path or "bundled")  # fmt: skip
    test = data["test"]
    tokenizer = CodecLMTokenizer.from_pretrained(args.codec_lm_path)
    model = CodecLMForSpeechSynthesis.from_pretrained(args.codec_lm_path).float().eval()
    texts, phonemes = test["text"][: args.num_sentences], test["phonemes"][: args.num_sentences]
    text_ids = [tokenizer.encode(p, add_special_tokens=False) for p in phonemes]
    max_new = int(1.5 * max(len(s) for s in test["speech_ids"][: args.num_sentences])) + 10
    sr = speech_tokenizer.sampling_rate

    results = {"args": vars(args), "settings": {}}
    for setting in args.settings:
        temperature, top_k = setting.split(":")
        start, per_seed, pooled = time.time(), {}, {"ctc_nll": [], "wer": [], "seconds": []}
        for seed in args.seeds:
            audio = sample_and_decode(model, text_ids, speech_tokenizer, max_new, float(temperature),
                                      None if top_k == "none" else int(top_k), seed)  # fmt: skip
            scores = score(audio, sr, texts)
            per_seed[seed] = {key: summary(values)["mean"] for key, values in scores.items()}
            for key, values in scores.items():
                pooled[key] += values
            pooled["seconds"] += [len(w) / sr for w in audio]
        results["settings"][setting] = {
            **{key: summary(values) for key, values in pooled.items()}, "per_seed": per_seed,
            "minutes": (time.time() - start) / 60,
        }  # fmt: skip
        logger.info("%s: %s", setting, results["settings"][setting])

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1))
    lines = [f"Codec LM `{args.codec_lm_path}`, first {args.num_sentences} test sentences x seeds {args.seeds} "
             "(mean ± SE over all samples; per seed in brackets)", "",
             "| temperature : top-k | CTC NLL / phoneme | WER % | duration (s) |", "|---|---|---|---|"]  # fmt: skip
    for setting, r in results["settings"].items():
        nll_seeds = " / ".join(format(s["ctc_nll"], ".2f") for s in r["per_seed"].values())
        wer_seeds = " / ".join(format(s["wer"], ".1f") for s in r["per_seed"].values())
        lines.append(
            f"| {setting} | {r['ctc_nll']['mean']:.2f} ± {r['ctc_nll']['sem']:.2f} ({nll_seeds}) | "
            f"{r['wer']['mean']:.1f} ± {r['wer']['sem']:.1f} ({wer_seeds}) | {r['seconds']['mean']:.2f} |"
        )
    output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    logger.info("results in %s", output)


if __name__ == "__main__":
    main()
