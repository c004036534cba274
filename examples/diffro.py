"""DiffRO fine-tuning of a codec-token TTS LM (the bundled one by default, or any causal LM whose vocabulary holds a
block of speech tokens, with `--speech_token_layout`) with rewards read from the bundled token reward model (MTR).

The prompts are the texts (espeak IPA phonemes) of `build_tts_corpus`; the codec LM's tokenizer (`CodecLMTokenizer`,
saved beside it) turns them into `text_ids`, which the MTR's CTC head also uses as targets.

Rewards (`--rewards`, comma separated): `ctc` (pronunciation: CTC log P(text | tokens), summed over the sentence;
`--ctc_reduction mean` divides it by the text length), `quality` (predicted DNSMOS) and `attribute:<task>`
(log-probability of a target class, zero-shot control). The target of an attribute reward comes from the dataset
column `target_<task>`, filled from `--targets`: `rate_level=fast` gives every prompt that target,
`rate_level=random` a random class per prompt.

Usage:

    # pronunciation (CTC reward), single process on the CPU
    python examples/diffro.py --output_dir outputs/diffro_ctc --max_steps 200 --per_device_train_batch_size 8

    # zero-shot control: fast speech, keeping the pronunciation reward
    python examples/diffro.py --output_dir outputs/diffro_fast --rewards ctc,attribute:rate_level \
        --targets rate_level=fast --reward_weights 1.0 0.5

    # LoRA on the attention projections (the reference is the same network with adapters disabled)
    python examples/diffro.py --output_dir outputs/diffro_lora --use_peft true --lora_r 16 --lora_alpha 32 \
        --lora_target_modules q_proj v_proj --learning_rate 1e-4

    # two processes on the CPU (`--cpu` silently runs one process; `--multi_gpu` runs two)
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        examples/diffro.py --use_cpu true --output_dir outputs/diffro_ddp

    # GPUs, DeepSpeed ZeRO-2
    accelerate launch --config_file examples/accelerate_configs/deepspeed_zero2.yaml examples/diffro.py \
        --output_dir outputs/diffro_zero2

    # any option from a YAML file
    python examples/diffro.py --config diffro.yaml

    # your own causal LM (e.g. a CosyVoice2-style Qwen2) and where its speech tokens live; the rewards must read its
    # codes (train a token reward model on them: examples/train_token_reward.py), --reward_model_path points at it
    python examples/diffro.py --model_name_or_path my_qwen2_tts --reward_model_path my_token_reward \
        --speech_token_layout '{"codebook_size": 6561, "speech_token_offset": 151646, "eos_token_id": 158207, ...}'
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import ModelConfig, TrlParser, get_peft_config

from ardm_trl.models.codec_lm import SpeechTokenLayout
from ardm_trl.models.token_reward import AttributeReward, CTCReward, QualityReward, TokenRewardModel
from ardm_trl.trainer.diffro_config import DiffROConfig
from ardm_trl.trainer.diffro_trainer import DiffROTrainer

logger = logging.getLogger("diffro")


@dataclass
class ScriptArguments:
    reward_model_path: str = field(
        default="pretrained/token_reward", metadata={"help": "The token reward model (MTR) folder."}
    )
    rewards: str = field(default="ctc", metadata={"help": "Comma-separated rewards: ctc, quality, attribute:<task>."})
    targets: list[str] = field(
        default_factory=list,
        metadata={"help": "Attribute targets `task=class` or `task=random` (fills the `target_<task>` column)."},
    )
    ctc_reduction: str = field(
        default="sum",
        metadata={"help": "CTC reward per sentence (sum) or per text unit (mean).", "choices": ["sum", "mean"]},
    )
    num_utterances: int = field(default=3000, metadata={"help": "Corpus size of build_tts_corpus (prompts)."})
    corpus_seed: int = field(default=0, metadata={"help": "Seed of the corpus (use the pretraining seed)."})
    text_field: str = field(default="phonemes", metadata={"help": "Corpus column holding the model's text."})
    max_prompts: int | None = field(default=None, metadata={"help": "Use at most this many training prompts."})
    speech_token_layout: str | None = field(
        default=None,
        metadata={"help": "JSON of a SpeechTokenLayout (or a path to a .json file) for a model whose config does not "
                          "carry one; the bundled codec LM's config does."},
    )


def build_reward_funcs(script_args: ScriptArguments, reward_model: TokenRewardModel) -> list:
    funcs = []
    for name in [r.strip() for r in script_args.rewards.split(",") if r.strip()]:
        if name == "ctc":
            funcs.append(CTCReward(reward_model, reduction=script_args.ctc_reduction))
        elif name == "quality":
            funcs.append(QualityReward(reward_model))
        elif name.startswith("attribute:"):
            funcs.append(AttributeReward(reward_model, name.split(":", 1)[1]))
        else:
            raise ValueError(f"Unknown reward {name!r}: use ctc, quality or attribute:<task>.")
    return funcs


def build_prompts(script_args: ScriptArguments, tokenizer, reward_model: TokenRewardModel, seed: int) -> dict:
    """Train / test prompt datasets: `prompt` (text), `text_ids`, and one `target_<task>` column per target."""
    from ardm_trl.data import build_tts_corpus

    corpus = build_tts_corpus(script_args.num_utterances, seed=script_args.corpus_seed)
    rng = random.Random(seed)
    targets = dict(t.split("=", 1) for t in script_args.targets)
    splits = {}
    for split, dataset in corpus.items():
        texts = list(dataset[script_args.text_field])
        if split == "train" and script_args.max_prompts:
            texts = texts[: script_args.max_prompts]
        rows = {"prompt": texts, "text_ids": [tokenizer.encode(t, add_special_tokens=False) for t in texts]}
        for task, target in targets.items():
            names = reward_model.config.attribute_labels[task]
            rows[f"target_{task}"] = [rng.choice(names) if target == "random" else target for _ in texts]
        splits[split] = Dataset.from_dict(rows)
    return splits


def main(script_args: ScriptArguments, training_args: DiffROConfig, model_args: ModelConfig) -> None:
    model_path = model_args.model_name_or_path or "pretrained/codec_lm"
    policy = AutoModelForCausalLM.from_pretrained(model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    layout = None
    if script_args.speech_token_layout:
        text = script_args.speech_token_layout
        layout = SpeechTokenLayout.from_dict(json.loads(Path(text).read_text() if text.endswith(".json") else text))
    reward_model = TokenRewardModel.from_pretrained(script_args.reward_model_path)
    reward_funcs = build_reward_funcs(script_args, reward_model)
    data = build_prompts(script_args, tokenizer, reward_model, training_args.seed)

    trainer = DiffROTrainer(
        model=policy,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=data["train"],
        eval_dataset=data.get("test") if training_args.eval_strategy != "no" else None,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        speech_token_layout=layout,  # None: the layout saved in the model's config
    )
    trainer.train()
    trainer.save_model(training_args.output_dir)  # also saves the tokenizer (the processing class)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name="ardm_trl build_tts_corpus")
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = TrlParser((ScriptArguments, DiffROConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
