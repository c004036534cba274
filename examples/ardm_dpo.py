"""ARDM-DPO on the bundled small ARDM: the DPO baseline of the VGPO paper (Task A, F0 variance), with Best-of-K.

Steps: (1) prompts = corpus sentences with zero-shot voice prompts (another utterance of the same speaker);
(2) preference pairs from `--num_samples` samples per prompt of the base ARDM, ranked by the F0-variance reward
(`build_preference_dataset`, saved in `<output_dir>/preference_data` and reused); (3) `ARDMDPOTrainer`;
(4) before / after table (F0V, WER, SIM, KL) on held-out prompts, in the shape of the paper's Table 1, with an
optional Best-of-K row (`--best_of_k 16`).

Usage:

    # the demo: bundled ARDM (pretrained/ardm) and codec (pretrained/speech_codec)
    accelerate launch examples/ardm_dpo.py

    # another ARDM (a folder with the model and its text_vocab.json), stronger KL regularisation, IPO
    accelerate launch examples/ardm_dpo.py --model_name_or_path outputs/my_ardm --beta 400 --loss_type ipo

    # LoRA on the LM's attention (the reference is the same network with adapters disabled)
    accelerate launch examples/ardm_dpo.py --use_peft --lora_r 16 --lora_alpha 32 --lora_target_modules q_proj v_proj

    # all pairs of 4 samples per prompt that differ by more than 5 Hz; a Best-of-16 row in the table
    accelerate launch examples/ardm_dpo.py --pair_strategy all_pairs --margin 5 --best_of_k 16

    # two processes on the CPU (see ENV-NOTES: `--cpu` silently runs one process); DeepSpeed ZeRO-2 on GPUs
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
        examples/ardm_dpo.py --use_cpu true
    accelerate launch --config_file examples/accelerate_configs/deepspeed_zero2.yaml examples/ardm_dpo.py

    # any ARDMDPOConfig field on the command line or in a YAML file
    accelerate launch examples/ardm_dpo.py --config my_dpo.yaml

The demo overrides some ARDMDPOConfig defaults for its small CPU model (`DEMO_DEFAULTS`; the command line wins).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import PartialState
from datasets import load_from_disk
from transformers import AutoModel
from trl import ModelConfig, TrlParser, get_peft_config

from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data import build_tts_corpus
from ardm_trl.data.prompts import voice_prompt_rows
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.evaluation import evaluate_ardm, score_audio
from ardm_trl.rewards import F0VarianceReward
from ardm_trl.trainer.ardm_dpo_config import ARDMDPOConfig
from ardm_trl.trainer.ardm_dpo_trainer import ARDMDPOTrainer
from ardm_trl.trainer.best_of_k import best_of_k
from ardm_trl.trainer.preference_data import build_preference_dataset

logger = logging.getLogger("ardm_dpo")
REPO = Path(__file__).resolve().parents[1]

DEMO_DEFAULTS = dict(
    model_name_or_path=str(REPO / "pretrained" / "ardm"),
    lora_target_modules=["q_proj", "v_proj"],
    lora_task_type=None,  # a plain LoRA wrapper: the ARDM is not a causal LM with `prepare_inputs_for_generation`
    output_dir="outputs/ardm-dpo-demo",
    max_steps=40,
    per_device_train_batch_size=4,
    learning_rate=5e-5,
    beta=2.0,  # measured: 20 saturates the sigmoid on 120-patch samples (losses up to 21 on wrong pairs)
    num_draws=4,
    logging_steps=1,
    save_strategy="no",
    report_to="none",
    use_cpu=True,
    seed=0,
)


@dataclass
class ScriptArguments:
    codec_name_or_path: str | None = field(default=None, metadata={"help": "The latent codec (bundled one if None)."})
    corpus_utterances: int = field(default=240, metadata={"help": "Size of the espeak corpus built for prompts."})
    num_train_prompts: int = field(default=64, metadata={"help": "Prompts whose samples are paired for training."})
    num_eval_pair_prompts: int = field(default=8, metadata={"help": "Held-out prompts paired for eval accuracy."})
    num_eval_prompts: int = field(default=8, metadata={"help": "Held-out prompts of the before/after table."})
    num_samples: int = field(default=4, metadata={"help": "Samples per prompt of the base model (K)."})
    pair_strategy: str = field(default="best_vs_worst", metadata={"help": "'best_vs_worst' or 'all_pairs'."})
    margin: float = field(default=0.0, metadata={"help": "A pair needs chosen F0V > rejected F0V + margin (Hz)."})
    max_patches: int = field(default=120, metadata={"help": "Maximum patches per sample."})
    min_patches: int = field(default=0, metadata={"help": "The stop head is ignored before this many patches."})
    num_inference_steps: int = field(default=16, metadata={"help": "Denoising steps per patch when sampling."})
    best_of_k: int = field(default=0, metadata={"help": "Add a Best-of-K row to the table (0: none)."})
    rebuild_preference_data: bool = field(default=False, metadata={"help": "Rebuild the pairs even if saved."})
    eval_seed: int = field(default=1234, metadata={"help": "Sampling seed of the before/after evaluation."})


def preference_data(policy, rows, reward, codec, script_args, training_args, generation, name: str):
    """Pairs of the base model's samples, built once on the main process and saved; the other processes load them."""
    path = Path(training_args.output_dir) / name
    state = PartialState()
    with state.main_process_first():
        if path.is_dir() and (not script_args.rebuild_preference_data or not state.is_main_process):
            return load_from_disk(str(path))
        data = build_preference_dataset(
            policy, rows, reward, num_samples=script_args.num_samples, pair_strategy=script_args.pair_strategy,
            margin=script_args.margin, audio_decoder=codec, generator=torch.Generator().manual_seed(training_args.seed),
            **generation,
        )
        if state.is_main_process:
            data.save_to_disk(str(path))
        return data


def best_of_k_metrics(policy, rows, reward, codec, k: int, seed: int, generation) -> dict[str, float]:
    """Table 1's Best-of-K row: the sample of highest reward among `k` per prompt, evaluated like the others."""
    out = best_of_k(policy, rows, reward, num_samples=k, batch_size=1, audio_decoder=codec,
                    generator=torch.Generator().manual_seed(seed), **generation)
    return score_audio(codec.decode_list(out.latents), codec.sampling_rate, out.prompts,
                       [row["prompt_audio"] for row in rows], metrics=("f0v", "wer", "sim"))


def main(script_args: ScriptArguments, training_args: ARDMDPOConfig, model_args: ModelConfig) -> None:
    torch.manual_seed(training_args.seed)
    out_dir = Path(training_args.output_dir)

    # 1. models: the ARDM (policy; the reference is a frozen copy or the policy without adapters) and the codec
    policy = AutoModel.from_pretrained(model_args.model_name_or_path).to(PartialState().device)
    tokenizer = ARDMTextTokenizer.from_pretrained(model_args.model_name_or_path)
    codec = load_pretrained_codec(script_args.codec_name_or_path)
    reward = F0VarianceReward(codec=codec, unvoiced_value=0.0)  # unvoiced samples rank as 0 Hz
    generation = dict(max_patches=script_args.max_patches, min_patches=script_args.min_patches,
                      lm_guidance_scale=training_args.lm_guidance_scale,
                      num_inference_steps=script_args.num_inference_steps)

    # 2. prompts (voice prompts from other utterances of the same speaker) and preference pairs of the base model
    corpus = build_tts_corpus(num_utterances=script_args.corpus_utterances, seed=training_args.seed)
    train_rows = voice_prompt_rows(corpus["train"], codec, tokenizer, limit=script_args.num_train_prompts,
                                   seed=training_args.seed)
    test_rows = voice_prompt_rows(corpus["test"], codec, tokenizer, seed=1,
                                  limit=script_args.num_eval_prompts + script_args.num_eval_pair_prompts)
    eval_rows, pair_rows = test_rows[:script_args.num_eval_prompts], test_rows[script_args.num_eval_prompts:]

    def without_audio(rows):
        return [{k: v for k, v in row.items() if k != "prompt_audio"} for row in rows]

    train_pairs = preference_data(policy, without_audio(train_rows), reward, codec, script_args, training_args,
                                  generation, "preference_data")
    eval_pairs = None
    if pair_rows:
        eval_pairs = preference_data(policy, without_audio(pair_rows), reward, codec, script_args, training_args,
                                     generation, "preference_data_eval")
    logger.info("%d training pairs, %s held-out pairs", len(train_pairs), len(eval_pairs) if eval_pairs else 0)

    state = PartialState()
    results = {}
    if state.is_main_process:
        results["Base"] = evaluate_ardm(policy, eval_rows, codec, seed=script_args.eval_seed, **generation).metrics
        if script_args.best_of_k:
            results[f"Best-of-{script_args.best_of_k}"] = best_of_k_metrics(
                policy, eval_rows, reward, codec, script_args.best_of_k, script_args.eval_seed, generation)

    # 3. ARDM-DPO
    trainer = ARDMDPOTrainer(policy, args=training_args, train_dataset=train_pairs, eval_dataset=eval_pairs,
                             peft_config=get_peft_config(model_args))
    trainer.train()
    held_out = {}
    if eval_pairs is not None:
        trainer.evaluate()  # the implicit reward -beta (e_theta - e_ref) on pairs of unseen prompts
        held_out = trainer.state.log_history[-1]

    # 4. before / after, in the shape of the paper's Table 1
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        after = evaluate_ardm(model, eval_rows, codec, reference=trainer.ref_model, compute_kl=True,
                              seed=script_args.eval_seed, **generation)
        results[f"DPO ({trainer.state.global_step} steps, beta={training_args.beta:g})"] = after.metrics
        lines = ["| Method | F0V (Hz) ↑ | WER (%) ↓ | SIM ↑ | KL ↓ |", "|---|---|---|---|---|"]
        for name, m in results.items():
            if name == "held_out_pairs":
                continue
            kl = m.get("kl")
            lines.append(f"| {name} | {m['f0v']:.2f} | {m['wer']:.1f} | {m.get('sim', float('nan')):.3f} | "
                         f"{'—' if kl is None else f'{kl:.4f}'} |")
        table = "\n".join(lines)
        print(f"\nARDM-DPO F0-variance demo ({len(eval_rows)} held-out prompts, seed {script_args.eval_seed}):")
        print(table)
        if held_out:
            print(f"held-out pairs ({len(eval_pairs)}): implicit-reward accuracy "
                  f"{held_out['eval_rewards/accuracies']:.3f}, margin {held_out['eval_rewards/margins']:.3f}")
            results["held_out_pairs"] = {k: v for k, v in held_out.items() if k.startswith("eval_")}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.md").write_text(table + "\n")
        (out_dir / "results.json").write_text(json.dumps(results, indent=1))

    # 5. save (and push)
    trainer.save_model(str(out_dir / "model"))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(out_dir / "model"))
    trainer.create_model_card(dataset_name=f"F0V preference pairs of espeak corpus prompts ({len(train_pairs)} pairs)")
    if training_args.push_to_hub:
        trainer.push_to_hub()
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = TrlParser((ScriptArguments, ARDMDPOConfig, ModelConfig))
    parser.set_defaults(**DEMO_DEFAULTS)
    main(*parser.parse_args_and_config())
