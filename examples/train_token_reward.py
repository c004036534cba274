"""Train the bundled multi-task token reward model (`pretrained/token_reward/`, DiffRO's MTR) on the corpus tokens.

Inputs: the speech-tokenizer codes of `build_tts_corpus` (the cache written by `examples/pretrain_codec_lm.py`).
Targets: the phoneme characters (the codec LM tokenizer's text units, so `text_ids` serve both models) for the CTC
head; `gender`, `pitch_level` and `rate_level` for the attribute heads; the DNSMOS (overall MOS) of the tokens'
decoded audio for the quality head, on `--num_quality_labels` training utterances (DNSMOS costs ~0.3 CPU-s per
clip). With `--num_generated N` and a codec LM, N samples of the codec LM are added as quality-only rows (their
DNSMOS spreads the quality range beyond clean resynthesis). The test split (held-out sentences and voices) gives the
per-task figures written to `eval_results.json` and the model card.

Usage:

    # runs of an hour or more on a CPU: cap glibc's allocator, or resident memory keeps growing (docs/performance.md)
    export MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072
    # ... or, ~1.4x faster where jemalloc is installed (the glibc settings spend ~half the CPU time in the kernel):
    export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:2000,muzzy_decay_ms:0

    # 20 minutes of training, then evaluation; saves to pretrained/token_reward
    OMP_NUM_THREADS=2 python examples/train_token_reward.py --max_train_minutes 20

    # weigh the tasks differently (JSON), add 200 codec-LM samples as quality rows
    python examples/train_token_reward.py --task_weights '{"ctc": 1.0, "quality": 0.5}' --num_generated 200

    # two processes on the CPU
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        examples/train_token_reward.py --use_cpu true
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from trl import TrlParser

from ardm_trl.audio import decode_codes, load_speech_tokenizer
from ardm_trl.data.corpus_cache import tokenize_corpus
from ardm_trl.models.codec_lm import CodecLMForSpeechSynthesis, CodecLMTokenizer, sample_codes
from ardm_trl.models.token_reward import TokenRewardConfig, TokenRewardModel
from ardm_trl.trainer import TimeLimitCallback
from ardm_trl.trainer.token_reward_config import TokenRewardTrainingConfig
from ardm_trl.trainer.token_reward_trainer import TokenRewardTrainer

logger = logging.getLogger("train_token_reward")


@dataclass
class ScriptArguments:
    num_utterances: int = field(default=3000, metadata={"help": "Corpus size (use the codec LM's)."})
    corpus_seed: int = field(default=0, metadata={"help": "Seed of the corpus (use the codec LM's)."})
    speech_tokenizer_path: str | None = field(default=None, metadata={"help": "Default: the bundled tokenizer."})
    codec_lm_path: str = field(
        default="pretrained/codec_lm", metadata={"help": "Codec LM (its tokenizer gives the text units)."}
    )
    data_cache: str = field(default="outputs/codec_lm_data/tokens.pt", metadata={"help": "Tokenized corpus cache."})
    quality_cache: str = field(default="outputs/codec_lm_data/quality.pt", metadata={"help": "DNSMOS label cache."})
    model_dir: str = field(default="pretrained/token_reward", metadata={"help": "Where the final model is saved."})
    text_field: str = field(default="phonemes", metadata={"help": "Corpus column used as the CTC text."})
    num_quality_labels: int = field(default=600, metadata={"help": "Training utterances scored with DNSMOS."})
    num_generated: int = field(default=0, metadata={"help": "Codec-LM samples added as quality-only rows."})
    max_train_minutes: float = field(default=20.0, metadata={"help": "Stop training after this many minutes."})
    hidden_size: int = field(default=256, metadata={"help": "Encoder width."})
    num_layers: int = field(default=4, metadata={"help": "Encoder layers."})
    num_heads: int = field(default=4, metadata={"help": "Encoder attention heads."})


def dnsmos_labels(waveforms: list[np.ndarray], sampling_rate: int) -> list[float | None]:
    from ardm_trl.rewards import dnsmos

    scores = dnsmos(waveforms, sampling_rate, max_windows=1)
    return [None if s is None else s["ovrl_mos"] for s in scores]


def quality_rows(script_args: ScriptArguments, data: dict, speech_tokenizer, tokenizer) -> dict:
    """DNSMOS of decoded ground-truth tokens (first `num_quality_labels` train rows, test rows) and of codec-LM
    samples (cached)."""
    cache = Path(script_args.quality_cache)
    key = {"data": data["key"], "n": script_args.num_quality_labels, "generated": script_args.num_generated}
    if cache.is_file() and (cached := torch.load(cache, weights_only=False))["key"] == key:
        return cached
    start, sr = time.time(), speech_tokenizer.sampling_rate
    out = {"key": key}
    n_test = min(len(data["test"]["text"]), script_args.num_quality_labels)
    for split, n in (("train", script_args.num_quality_labels), ("test", n_test)):
        decoded = []
        for i in range(0, n, 32):
            ids = [torch.tensor(s) for s in data[split]["speech_ids"][i : min(i + 32, n)]]
            decoded.extend(speech_tokenizer.decode_list(ids))
        out[split] = dnsmos_labels(decoded, sr)
    out["generated"] = {"speech_ids": [], "quality": []}
    if script_args.num_generated > 0:
        lm = CodecLMForSpeechSynthesis.from_pretrained(script_args.codec_lm_path).eval()
        texts = data["train"][script_args.text_field][-script_args.num_generated :]
        text_ids = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
        max_new = int(1.5 * max(len(s) for s in data["train"]["speech_ids"])) + 10
        codes = [c if c else [0] for c in sample_codes(lm, text_ids, max_new, seed=0)]
        out["generated"]["speech_ids"] = codes
        for i in range(0, len(codes), 16):
            out["generated"]["quality"].extend(dnsmos_labels(decode_codes(speech_tokenizer, codes[i : i + 16]), sr))
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, cache)
    logger.info("DNSMOS labels computed in %.0f s", time.time() - start)
    return out


def build_dataset(split_rows: dict, quality: list, tokenizer, text_field: str, extra: dict | None = None) -> Dataset:
    n = len(split_rows["text"])
    rows = {
        "speech_ids": list(split_rows["speech_ids"]),
        "text_ids": [tokenizer.encode(t, add_special_tokens=False) for t in split_rows[text_field]],
        "gender": list(split_rows["gender"]),
        "pitch_level": list(split_rows["pitch_level"]),
        "rate_level": list(split_rows["rate_level"]),
        "quality": list(quality) + [None] * (n - len(quality)),
    }
    if extra and extra["speech_ids"]:
        m = len(extra["speech_ids"])
        rows["speech_ids"] += extra["speech_ids"]
        rows["quality"] += extra["quality"]
        for column in ("text_ids", "gender", "pitch_level", "rate_level"):
            rows[column] += [None] * m
    return Dataset.from_dict(rows)


def main(script_args: ScriptArguments, training_args: TokenRewardTrainingConfig) -> None:
    speech_tokenizer = load_speech_tokenizer(script_args.speech_tokenizer_path)
    data = tokenize_corpus(script_args.num_utterances, script_args.corpus_seed, speech_tokenizer,
                           script_args.data_cache, script_args.speech_tokenizer_path or "bundled")  # fmt: skip
    if (Path(script_args.codec_lm_path) / "tokenizer_config.json").is_file():
        tokenizer = CodecLMTokenizer.from_pretrained(script_args.codec_lm_path)
    else:
        logger.warning(
            "no codec LM tokenizer in %s: building the text units from the corpus", script_args.codec_lm_path
        )
        texts = data["train"][script_args.text_field] + data["test"][script_args.text_field]
        tokenizer = CodecLMTokenizer.from_texts(texts, codebook_size=speech_tokenizer.codebook_size)
    quality = quality_rows(script_args, data, speech_tokenizer, tokenizer)
    train = build_dataset(data["train"], quality["train"], tokenizer, script_args.text_field, quality["generated"])
    test = build_dataset(data["test"], quality["test"], tokenizer, script_args.text_field)

    model = TokenRewardModel(TokenRewardConfig(
        codebook_size=speech_tokenizer.codebook_size,
        num_text_units=tokenizer.text_vocab_size,
        attribute_labels={"gender": ["female", "male"], "pitch_level": ["low", "mid", "high"],
                          "rate_level": ["slow", "normal", "fast"]},
        encoder_config={"hidden_size": script_args.hidden_size, "intermediate_size": 4 * script_args.hidden_size,
                        "num_hidden_layers": script_args.num_layers, "num_attention_heads": script_args.num_heads},
    ))  # fmt: skip
    logger.info("token reward model: %.2f M parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    trainer = TokenRewardTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=test,
        callbacks=[TimeLimitCallback(script_args.max_train_minutes)],
    )
    trainer.evaluate()
    before = trainer.state.log_history[-1]
    trainer.train()
    trainer.evaluate()
    after = trainer.state.log_history[-1]
    if not trainer.accelerator.is_main_process:
        return
    model_dir = Path(script_args.model_dir)
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(model_dir)
    keys = [k for k in after if (k.startswith("eval_") and "/" in k) or k in ("eval_quality_mae", "eval_ctc_nll")]
    known = [q for q in quality["test"] if q is not None]
    results = {
        "before_training": {k: before.get(k) for k in keys},
        "held_out": {k: after[k] for k in keys},
        "quality_baseline_mae": float(np.mean(np.abs(np.array(known) - np.mean(known)))) if known else None,
        "train_steps": trainer.state.global_step,
    }
    (model_dir / "eval_results.json").write_text(json.dumps(results, indent=1))
    from ardm_trl.trainer.base import render_model_card

    card = render_model_card("token_reward.md", model_name=model_dir.name, num_utterances=script_args.num_utterances,
                             attributes="gender, pitch_level, rate_level", train_steps=trainer.state.global_step,
                             results=json.dumps(results, indent=1))  # fmt: skip
    (model_dir / "README.md").write_text(card)
    logger.info("held-out evaluation: %s", json.dumps(results, indent=1))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = TrlParser((ScriptArguments, TokenRewardTrainingConfig))
    parser.set_defaults(output_dir="outputs/train_token_reward", per_device_train_batch_size=32,
                        per_device_eval_batch_size=64, learning_rate=5e-4, warmup_steps=100, weight_decay=0.01,
                        lr_scheduler_type="cosine", num_train_epochs=1000, logging_steps=50, save_steps=1000,
                        save_total_limit=1, report_to="none")  # fmt: skip
    script_args, training_args = parser.parse_args_and_config()
    main(script_args, training_args)
