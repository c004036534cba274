"""Does the MTR's CTC reward rank speech the way the independent evaluator does?

DiffRO's pronunciation reward is the MTR's CTC log-likelihood of the text read from speech tokens; the issue's
evaluator is hama's phoneme CTC model on the decoded audio. This script scores the same utterances both ways, without
training anything: the corpus tokens of held-out test sentences (what the MTR was trained on), and tokens the codec
LM samples for the same sentences (what DiffRO's reward reads), once per sampling seed. It reports the mean NLL per
text unit of each judge and their rank (Spearman) and linear (Pearson) correlation over the utterances. Results go
to `benchmarks/results/mtr_ctc_fidelity.json`.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/mtr_ctc_fidelity.py --data_cache outputs/codec_lm_data/tokens_3k.pt
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from ardm_trl.audio import decode_codes, load_speech_tokenizer
from ardm_trl.data.corpus_cache import tokenize_corpus
from ardm_trl.models.codec_lm import CodecLMForSpeechSynthesis, CodecLMTokenizer, sample_codes
from ardm_trl.models.token_reward import TokenRewardModel
from ardm_trl.rewards import ctc_log_likelihood

ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger("mtr_ctc_fidelity")


@torch.no_grad()
def mtr_nll(mtr: TokenRewardModel, codes: list[list[int]], text_ids: list[list[int]]) -> list[float]:
    """The MTR's CTC negative log-likelihood per text unit of each text given its speech codes, one at a time."""
    nll = []
    for c, t in zip(codes, text_ids):
        c = c or [0]
        ll = mtr.ctc_log_likelihood(torch.tensor([t]), input_ids=torch.tensor([c]),
                                    attention_mask=torch.ones(1, len(c), dtype=torch.long))  # fmt: skip
        nll.append(-float(ll[0]))
    return nll


def agreement(hama: list[float | None], mtr: list[float]) -> dict:
    pairs = [(-h, m) for h, m in zip(hama, mtr) if h is not None and np.isfinite(h)]
    x, y = (list(v) for v in zip(*pairs))
    return {"hama_nll": float(np.mean(x)), "mtr_nll": float(np.mean(y)), "spearman": float(spearmanr(x, y)[0]),
            "pearson": float(pearsonr(x, y)[0]), "n": len(x)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codec_lm_path", default="pretrained/codec_lm")
    parser.add_argument("--reward_model_path", default="pretrained/token_reward")
    parser.add_argument("--num_utterances", type=int, default=3000)
    parser.add_argument("--data_cache", default="outputs/codec_lm_data/tokens.pt")
    parser.add_argument("--num_sentences", type=int, default=48)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "mtr_ctc_fidelity.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    speech_tokenizer = load_speech_tokenizer(None)
    test = tokenize_corpus(args.num_utterances, 0, speech_tokenizer, args.data_cache, "bundled")["test"]
    tokenizer = CodecLMTokenizer.from_pretrained(args.codec_lm_path)
    model = CodecLMForSpeechSynthesis.from_pretrained(args.codec_lm_path).float().eval()
    mtr = TokenRewardModel.from_pretrained(args.reward_model_path).eval()
    n = args.num_sentences
    texts = test["text"][:n]
    text_ids = [tokenizer.encode(p, add_special_tokens=False) for p in test["phonemes"][:n]]
    max_new = int(1.5 * max(len(s) for s in test["speech_ids"][:n])) + 10

    sets = {"corpus tokens": [list(s) for s in test["speech_ids"][:n]]}
    for seed in args.seeds:
        sets[f"codec LM samples, seed {seed}"] = sample_codes(model, text_ids, max_new, 1.0, None, seed)
    results, pooled = {"args": vars(args), "sets": {}}, ([], [])
    for name, codes in sets.items():
        audio = decode_codes(speech_tokenizer, codes)
        hama = [ctc_log_likelihood(w, speech_tokenizer.sampling_rate, t) for w, t in zip(audio, texts)]
        mtr_scores = mtr_nll(mtr, codes, text_ids)
        results["sets"][name] = agreement(hama, mtr_scores)
        if name != "corpus tokens":
            pooled[0].extend(hama), pooled[1].extend(mtr_scores)
        logger.info("%s: %s", name, results["sets"][name])
    results["sets"]["codec LM samples, pooled"] = agreement(*pooled)
    logger.info("pooled samples: %s", results["sets"]["codec LM samples, pooled"])
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
