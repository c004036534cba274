"""Can DiffRO raise its own reward at all? A few fixed prompts, many steps, with and without the KL penalty.

Trains the codec LM with `DiffROTrainer` and the MTR's CTC reward on `--num_prompts` training sentences repeated to
fill each batch (no new sentences from step to step), and reports the reward curve, its least-squares slope per step
with a t statistic, and the KL to the reference. Nothing is evaluated on held-out speech: this isolates the
optimisation from generalisation (`docs/diffro_trainer.md`, "Why the CTC reward does not rise").

Usage:

    OMP_NUM_THREADS=1 python benchmarks/diffro_fixed_prompts.py --beta 0.01 --max_steps 160 \
        --output benchmarks/results/fixed_prompts/beta0.01.json
    OMP_NUM_THREADS=1 python benchmarks/diffro_fixed_prompts.py --beta 0 --max_steps 80 \
        --output benchmarks/results/fixed_prompts/beta0.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from ardm_trl.audio import load_speech_tokenizer
from ardm_trl.data.corpus_cache import tokenize_corpus
from ardm_trl.models.codec_lm import CodecLMForSpeechSynthesis, CodecLMTokenizer
from ardm_trl.models.token_reward import CTCReward, TokenRewardModel
from ardm_trl.trainer.diffro_config import DiffROConfig
from ardm_trl.trainer.diffro_trainer import DiffROTrainer

ROOT = Path(__file__).resolve().parents[1]

logger = logging.getLogger("diffro_fixed_prompts")


def trend(values: list[float]) -> dict[str, float]:
    """Least-squares slope per step of `values` and its t statistic (slope / standard error)."""
    y = np.asarray(values, dtype=float)
    x = np.arange(len(y), dtype=float)
    if len(y) < 3:
        return {"slope_per_step": float("nan"), "t": float("nan")}
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    stderr = residual.std(ddof=2) / np.sqrt(((x - x.mean()) ** 2).sum())
    return {"slope_per_step": float(slope), "t": float(slope / stderr) if stderr > 0 else float("inf")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codec_lm_path", default="pretrained/codec_lm")
    parser.add_argument("--reward_model_path", default="pretrained/token_reward")
    parser.add_argument("--num_utterances", type=int, default=3000)
    parser.add_argument("--data_cache", default="outputs/codec_lm_data/tokens_3k.pt")
    parser.add_argument("--num_prompts", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_steps", type=int, default=80)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--beta", type=float, default=0.01)
    parser.add_argument("--max_new_tokens", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "fixed_prompts" / "run.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    torch.manual_seed(args.seed)

    speech_tokenizer = load_speech_tokenizer(None)
    data = tokenize_corpus(args.num_utterances, 0, speech_tokenizer, args.data_cache, "bundled")
    tokenizer = CodecLMTokenizer.from_pretrained(args.codec_lm_path)
    policy = CodecLMForSpeechSynthesis.from_pretrained(args.codec_lm_path)
    mtr = TokenRewardModel.from_pretrained(args.reward_model_path)
    prompts = data["train"]["phonemes"][: args.num_prompts] * args.batch_size
    rows = {"prompt": prompts, "text_ids": [tokenizer.encode(p, add_special_tokens=False) for p in prompts]}
    config = DiffROConfig(
        output_dir=str(ROOT / "outputs" / "diffro_fixed_prompts"), per_device_train_batch_size=args.batch_size,
        max_steps=args.max_steps, learning_rate=args.learning_rate, beta=args.beta,
        max_new_tokens=args.max_new_tokens, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
        seed=args.seed,
    )  # fmt: skip
    # per unit, as in the documented run (2026-12-02); the library default is now the sum
    trainer = DiffROTrainer(
        policy, [CTCReward(mtr, reduction="mean")], args=config, train_dataset=Dataset.from_dict(rows)
    )
    trainer.train()

    history = [entry for entry in trainer.state.log_history if "reward" in entry]
    rewards = [entry["reward"] for entry in history]
    kls = [entry.get("kl", 0.0) for entry in history]
    window = max(1, len(rewards) // 4)
    results = {
        "args": vars(args),
        "reward": rewards,
        "kl": kls,
        "reward_trend": trend(rewards),
        "reward_by_quarter": [float(np.mean(rewards[i : i + window])) for i in range(0, len(rewards), window)],
        "kl_by_quarter": [float(np.mean(kls[i : i + window])) for i in range(0, len(kls), window)],
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    logger.info("%s", json.dumps({k: v for k, v in results.items() if k not in ("args", "reward", "kl")}, indent=1))


if __name__ == "__main__":
    main()
