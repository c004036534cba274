"""Does the MTR's gradient w.r.t. its one-hot input point uphill in token space? (DiffRO's premise, measured.)

DiffRO moves the policy along `d R / d y`, the gradient of the reward model's output w.r.t. the (straight-through)
one-hot token vectors `y`. That gradient is only useful if its first-order prediction of a token substitution,
`dR_lin = G[i, b] - G[i, a]` (position `i`, sampled token `a` -> candidate `b`), tells which substitutions raise the
reward. This script samples speech from the codec LM for held-out sentences and, at random positions, substitutes the
LM's own top-k alternatives one at a time, comparing the predicted change with the actual change of the MTR's CTC
log-likelihood (per text unit). It also applies, per sequence, the `n` substitutions the gradient ranks best (one per
position) against `n` random ones from the same candidates. It trains nothing.

Usage:

    OMP_NUM_THREADS=1 python benchmarks/mtr_gradient_fidelity.py --reward_model_path pretrained/token_reward \
        --output benchmarks/results/mtr_gradient_fidelity.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from ardm_trl.audio import load_speech_tokenizer
from ardm_trl.data.corpus_cache import tokenize_corpus
from ardm_trl.models.codec_lm import CodecLMForSpeechSynthesis, CodecLMTokenizer
from ardm_trl.models.token_reward import TokenRewardModel
from ardm_trl.models.token_reward.collator_token_reward import pad_text_ids

ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger("mtr_gradient_fidelity")


def ctc_reward(mtr: TokenRewardModel, text: torch.Tensor, codes: torch.LongTensor, chunk: int = 64) -> torch.Tensor:
    """MTR CTC log-likelihood per text unit of each row of `codes` `(N, T)` for one text `(1, U)`."""
    out = []
    with torch.no_grad():
        for i in range(0, len(codes), chunk):
            part = codes[i : i + chunk]
            out.append(mtr.ctc_log_likelihood(text.expand(len(part), -1), input_ids=part))
    return torch.cat(out)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    return float(np.corrcoef(rank(x), rank(y))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codec_lm_path", default="pretrained/codec_lm")
    parser.add_argument("--reward_model_path", default="pretrained/token_reward")
    parser.add_argument("--num_utterances", type=int, default=3000, help="corpus size (its test split is used)")
    parser.add_argument("--data_cache", default="outputs/codec_lm_data/tokens_3k.pt")
    parser.add_argument("--num_sentences", type=int, default=8)
    parser.add_argument("--positions", type=int, default=32, help="random positions probed per sequence")
    parser.add_argument("--top_k", type=int, default=8, help="LM alternatives tried at each position")
    parser.add_argument("--num_edits", type=int, default=8, help="substitutions applied at once in the ascent test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "mtr_gradient_fidelity.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    speech_tokenizer = load_speech_tokenizer(None)
    data = tokenize_corpus(args.num_utterances, 0, speech_tokenizer, args.data_cache, "bundled")["test"]
    tokenizer = CodecLMTokenizer.from_pretrained(args.codec_lm_path)
    lm = CodecLMForSpeechSynthesis.from_pretrained(args.codec_lm_path).eval()
    mtr = TokenRewardModel.from_pretrained(args.reward_model_path).eval()
    mtr.requires_grad_(False)
    codebook = mtr.config.codebook_size

    text_ids = [tokenizer.encode(p, add_special_tokens=False) for p in data["phonemes"][: args.num_sentences]]
    sample = lm.sample_speech(text_ids, max_new_tokens=300, generator=torch.Generator().manual_seed(args.seed))
    predicted, actual, ascent = [], [], []
    for row, ids in enumerate(text_ids):
        mask = sample.code_mask[row]
        codes = sample.speech_ids[row][mask]
        logits = sample.logits[row][mask][:, :codebook]
        text = pad_text_ids([ids])
        one_hot = torch.nn.functional.one_hot(codes, codebook).float()[None].requires_grad_(True)
        reward = mtr.ctc_log_likelihood(text, soft_tokens=one_hot)
        (grad,) = torch.autograd.grad(reward.sum(), one_hot)
        grad = grad[0]
        base = float(reward.detach())

        positions = rng.choice(len(codes), size=min(args.positions, len(codes)), replace=False)
        edits, lin = [], []
        for i in positions:
            order = logits[i].topk(args.top_k + 1).indices.tolist()
            for b in [c for c in order if c != int(codes[i])][: args.top_k]:
                edits.append((int(i), b))
                lin.append(float(grad[i, b] - grad[i, codes[i]]))
        variants = codes.repeat(len(edits), 1)
        for k, (i, b) in enumerate(edits):
            variants[k, i] = b
        delta = (ctc_reward(mtr, text, variants) - base).numpy()
        predicted.extend(lin)
        actual.extend(delta.tolist())

        # ascent: the best-ranked substitution at each of num_edits positions vs random ones from the same candidates
        lin_arr = np.asarray(lin)
        per_position: dict[int, list[int]] = {}
        for k, (i, _) in enumerate(edits):
            per_position.setdefault(i, []).append(k)
        best = sorted((max(ks, key=lambda k: lin_arr[k]) for ks in per_position.values()), key=lambda k: -lin_arr[k])
        chosen = best[: args.num_edits]
        random_pick = [int(rng.choice(ks)) for ks in list(per_position.values())[: args.num_edits]]
        pair = codes.repeat(2, 1)
        for row_k, picks in enumerate((chosen, random_pick)):
            for k in picks:
                i, b = edits[k]
                pair[row_k, i] = b
        gain = (ctc_reward(mtr, text, pair) - base).tolist()
        ascent.append({"gradient_ranked": gain[0], "random": gain[1], "base": base})
        logger.info("sentence %d: base %.3f, gradient-ranked edits %+.3f, random edits %+.3f", row, base, *gain)

    predicted_arr, actual_arr = np.asarray(predicted), np.asarray(actual)
    sign_agree = float(np.mean(np.sign(predicted_arr) == np.sign(actual_arr)))
    results = {
        "args": vars(args),
        "num_substitutions": len(actual),
        "pearson": float(np.corrcoef(predicted_arr, actual_arr)[0, 1]),
        "spearman": spearman(predicted_arr, actual_arr),
        "sign_agreement": sign_agree,
        "actual_delta_mean": float(actual_arr.mean()),
        "actual_delta_std": float(actual_arr.std()),
        "predicted_delta_std": float(predicted_arr.std()),
        "ascent": ascent,
        "ascent_mean": {k: float(np.mean([a[k] for a in ascent])) for k in ("gradient_ranked", "random")},
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    summary = {k: v for k, v in results.items() if k not in ("ascent", "args")}
    logger.info("%s", json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
