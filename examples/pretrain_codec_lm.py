"""Pretrain the small bundled codec-token TTS LM (`pretrained/codec_lm/`) on the espeak-ng corpus.

Pipeline: `build_tts_corpus` -> the bundled speech tokenizer (`ardm_trl.audio.load_pretrained_tokenizer`, FSQ codes
at the codec frame rate) -> `CodecLMTokenizer` over the characters of the espeak IPA phonemes (saved beside the
model) -> `CodecLMForSpeechSynthesis` trained with the plain `transformers.Trainer` and `CodecLMDataCollator`
(cross-entropy on the speech tokens and end-of-speech). The evaluation samples speech for held-out test sentences,
decodes it with the speech tokenizer and scores it with the independent evaluators of `ardm_trl.rewards` (hama CTC
NLL per phoneme, whisper WER), next to the same figures for the original audio and for the tokenizer's
resynthesis of the ground-truth tokens (the ceiling of any codec LM on these tokens).

Usage:

    # runs of an hour or more on a CPU: cap glibc's allocator, or resident memory keeps growing (docs/performance.md)
    export MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072
    # ... or, ~1.4x faster where jemalloc is installed (the glibc settings spend ~half the CPU time in the kernel):
    export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 MALLOC_CONF=dirty_decay_ms:2000,muzzy_decay_ms:0

    # train for 40 minutes (time-limited; checkpoints in outputs/pretrain_codec_lm), save, evaluate; guided attention
    # is on by default (docs/codec_lm.md). Add --bf16 true only on a CPU with AVX-512 BF16 or a GPU.
    OMP_NUM_THREADS=2 python examples/pretrain_codec_lm.py --max_train_minutes 40 --use_cpu true

    # continue from the bundled weights with a cosine schedule over 1000 steps
    OMP_NUM_THREADS=1 python examples/pretrain_codec_lm.py --init_from pretrained/codec_lm --max_steps 1000 \
        --learning_rate 5e-4 --lr_scheduler_type cosine --per_device_train_batch_size 16 --use_cpu true

    # resume from the last checkpoint for 20 more minutes
    OMP_NUM_THREADS=2 python examples/pretrain_codec_lm.py --max_train_minutes 20 --resume_from_checkpoint true

    # only evaluate the saved model
    python examples/pretrain_codec_lm.py --max_train_minutes 0 --num_eval_samples 32

    # two processes on the CPU (`--cpu` would run one process only)
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        examples/pretrain_codec_lm.py --use_cpu true
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import Dataset
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint
from trl import TrlParser

from ardm_trl.audio import decode_codes, load_speech_tokenizer
from ardm_trl.data.corpus_cache import DEFAULT_CORPUS_CACHE_DIR, tokenize_corpus
from ardm_trl.evaluation import codec_lm_text_gap
from ardm_trl.models.codec_lm import (
    CodecLMConfig,
    CodecLMDataCollator,
    CodecLMForSpeechSynthesis,
    CodecLMTokenizer,
    sample_and_decode,
)
from ardm_trl.trainer import TimeLimitCallback

logger = logging.getLogger("pretrain_codec_lm")

@dataclass
class ScriptArguments:
    num_utterances: int = field(default=3000, metadata={"help": "Corpus size (train + test) of build_tts_corpus."})
    corpus_seed: int = field(default=0, metadata={"help": "Seed of the corpus."})
    speech_tokenizer_path: str | None = field(
        default=None, metadata={"help": "Speech tokenizer folder; default: the bundled one."}
    )
    corpus_cache_dir: str = field(
        default=DEFAULT_CORPUS_CACHE_DIR,
        metadata={"help": "Where the built corpus is saved and reused (shared by the scripts)."},
    )
    data_cache: str = field(
        default="outputs/codec_lm_data/tokens.pt", metadata={"help": "Cache of the tokenized corpus (reused)."}
    )
    model_dir: str = field(default="pretrained/codec_lm", metadata={"help": "Where the final model is saved."})
    text_field: str = field(default="phonemes", metadata={"help": "Corpus column used as the model's text."})
    max_train_minutes: float = field(
        default=40.0, metadata={"help": "Stop training after this many minutes (0: skip training, evaluate only)."}
    )
    num_eval_samples: int = field(default=24, metadata={"help": "Test sentences generated for the evaluation."})
    eval_temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the evaluation."})
    eval_top_k: int | None = field(default=None, metadata={"help": "Top-k of the evaluation sampling."})
    eval_seed: int = field(default=1234, metadata={"help": "Seed of the evaluation samples."})


@dataclass
class CodecLMModelArguments:
    hidden_size: int = field(default=256, metadata={"help": "Width of the Llama backbone."})
    intermediate_size: int = field(default=1024, metadata={"help": "FFN width."})
    num_layers: int = field(default=6, metadata={"help": "Transformer layers."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads."})
    guided_attention_weight: float = field(
        default=1.0, metadata={"help": "Weight of the guided-attention loss (0 = off; see docs/codec_lm.md)."}
    )
    guided_attention_sigma: float = field(default=0.2, metadata={"help": "Width of the guided-attention window."})
    cfg_dropout_prob: float | None = field(
        default=None,
        metadata={"help": "Probability of dropping a training row's text, so that the model learns the text-free "
                  "branch of classifier-free guidance (sample_speech(guidance_scale=w)); default: the config's "
                  "(0 for a fresh model or one trained without it)."},
    )
    init_from: str | None = field(
        default=None,
        metadata={"help": "Start from the weights of this saved codec LM (e.g. pretrained/codec_lm) instead of a fresh "
                  "model; the guided-attention settings above override its config."},
    )


# ------------------------------------------------------------------------------------------------------ evaluation
def evaluate_codec_lm(model, tokenizer: CodecLMTokenizer, speech_tokenizer, rows: dict, num_samples: int,
                      text_field: str, temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
                      metrics: tuple[str, ...] = ("ctc_nll", "wer"), references: bool = True) -> dict:  # fmt: skip
    """Independent intelligibility figures (hama CTC NLL per phoneme, whisper WER in %) of the model's samples on
    the first `num_samples` rows, and, with `references`, of the original audio and of the tokenizer's resynthesis."""
    from ardm_trl.rewards import evaluate_speech

    texts = rows["text"][:num_samples]
    text_ids = [tokenizer.encode(t, add_special_tokens=False) for t in rows[text_field][:num_samples]]
    max_new = int(1.5 * max(len(s) for s in rows["speech_ids"][:num_samples])) + 10
    sr = speech_tokenizer.sampling_rate
    model.eval()
    samples = sample_and_decode(model, text_ids, speech_tokenizer, max_new, temperature, top_k, seed)
    results = {"model": evaluate_speech(samples, sr, texts, metrics=metrics)}
    lengths = [len(w) / sr for w in samples]
    results["model"]["mean_seconds"] = float(np.mean(lengths))
    if references:
        truth = decode_codes(speech_tokenizer, rows["speech_ids"][:num_samples])
        results["tokenizer_resynthesis"] = evaluate_speech(truth, sr, texts, metrics=metrics)
        if "audio" in rows:
            results["original_audio"] = evaluate_speech(rows["audio"][:num_samples], sr, texts, metrics=metrics)
        results["tokenizer_resynthesis"]["mean_seconds"] = float(np.mean([len(w) / sr for w in truth]))
    return results


# ------------------------------------------------------------------------------------------------------ training
def write_model_card(model_dir: Path, results: dict, script_args: ScriptArguments, steps: int) -> None:
    from ardm_trl.trainer.base import render_model_card

    card = render_model_card(
        "codec_lm.md",
        model_name=model_dir.name,
        num_utterances=script_args.num_utterances,
        train_steps=steps,
        results=json.dumps(results, indent=1),
    )
    (model_dir / "README.md").write_text(card)


def main(script_args: ScriptArguments, training_args: TrainingArguments, model_args: CodecLMModelArguments) -> None:
    speech_tokenizer = load_speech_tokenizer(script_args.speech_tokenizer_path)
    data = tokenize_corpus(script_args.num_utterances, script_args.corpus_seed, speech_tokenizer,
                           script_args.data_cache, script_args.speech_tokenizer_path or "bundled",
                           script_args.corpus_cache_dir)  # fmt: skip
    model_dir = Path(script_args.model_dir)
    texts = data["train"][script_args.text_field] + data["test"][script_args.text_field]
    if (model_dir / "config.json").is_file() and script_args.max_train_minutes == 0:
        model = CodecLMForSpeechSynthesis.from_pretrained(model_dir)
        tokenizer = CodecLMTokenizer.from_pretrained(model_dir)
    elif model_args.init_from:
        model = CodecLMForSpeechSynthesis.from_pretrained(model_args.init_from)
        tokenizer = CodecLMTokenizer.from_pretrained(model_args.init_from)
        model.config.guided_attention_weight = model_args.guided_attention_weight
        model.config.guided_attention_sigma = model_args.guided_attention_sigma
        if model_args.cfg_dropout_prob is not None:
            model.config.cfg_dropout_prob = model_args.cfg_dropout_prob
    else:
        tokenizer = CodecLMTokenizer.from_texts(texts, codebook_size=speech_tokenizer.codebook_size)
        config = CodecLMConfig(
            text_vocab_size=tokenizer.text_vocab_size,
            codebook_size=speech_tokenizer.codebook_size,
            lm_config={
                "hidden_size": model_args.hidden_size,
                "intermediate_size": model_args.intermediate_size,
                "num_hidden_layers": model_args.num_layers,
                "num_attention_heads": model_args.num_heads,
                "num_key_value_heads": model_args.num_heads,
            },  # fmt: skip
            guided_attention_weight=model_args.guided_attention_weight,
            guided_attention_sigma=model_args.guided_attention_sigma,
            cfg_dropout_prob=model_args.cfg_dropout_prob or 0.0,
        )
        model = CodecLMForSpeechSynthesis(config)
    logger.info("codec LM: %.2f M parameters", sum(p.numel() for p in model.parameters()) / 1e6)

    steps = 0
    if script_args.max_train_minutes > 0:

        def rows(split):
            return Dataset.from_dict({
                "text_ids": [tokenizer.encode(t, add_special_tokens=False) for t in data[split][script_args.text_field]],
                "speech_ids": data[split]["speech_ids"],
            })  # fmt: skip

        trainer = Trainer(
            model=model,
            args=training_args,
            data_collator=CodecLMDataCollator(model.config, text_dropout_prob=model.config.cfg_dropout_prob),
            train_dataset=rows("train"),
            eval_dataset=rows("test") if training_args.eval_strategy != "no" else None,
            processing_class=tokenizer,
            callbacks=[TimeLimitCallback(script_args.max_train_minutes)],
        )
        resume = training_args.resume_from_checkpoint
        if resume in ("true", "True", True):
            resume = get_last_checkpoint(training_args.output_dir)
        trainer.train(resume_from_checkpoint=resume)
        steps = trainer.state.global_step
        if trainer.accelerator.is_main_process:
            model_dir.mkdir(parents=True, exist_ok=True)
            trainer.save_model(str(model_dir))
        trainer.accelerator.wait_for_everyone()
        if not trainer.accelerator.is_main_process:
            return
        model = trainer.accelerator.unwrap_model(trainer.model)

    if script_args.num_eval_samples > 0:
        model = model.float().eval()
        results = evaluate_codec_lm(model, tokenizer, speech_tokenizer, data["test"], script_args.num_eval_samples,
                                    script_args.text_field, script_args.eval_temperature, script_args.eval_top_k,
                                    script_args.eval_seed)  # fmt: skip
        # teacher-forced cross-entropy of 64 test utterances with their own text vs the next one's: what the text
        # is worth to the model (ardm_trl.evaluation.codec_lm_text_gap)
        test = data["test"]
        gap_rows = [{"text_ids": tokenizer.encode(t, add_special_tokens=False), "speech_ids": s}
                    for t, s in zip(test[script_args.text_field][:64], test["speech_ids"][:64])]  # fmt: skip
        results["teacher_forced_ce"] = codec_lm_text_gap(model, gap_rows)
        results["train_steps"] = steps
        logger.info("evaluation: %s", json.dumps(results, indent=1))
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "eval_results.json").write_text(json.dumps(results, indent=1))
        write_model_card(model_dir, results, script_args, steps)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = TrlParser((ScriptArguments, TrainingArguments, CodecLMModelArguments))
    parser.set_defaults(output_dir="outputs/pretrain_codec_lm", per_device_train_batch_size=32, learning_rate=5e-4,
                        warmup_steps=200, lr_scheduler_type="cosine", weight_decay=0.01, logging_steps=25,
                        save_steps=500, save_total_limit=2, num_train_epochs=1000, report_to="none",
                        dataloader_num_workers=0, remove_unused_columns=False)  # fmt: skip
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
