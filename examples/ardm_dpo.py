"""ARDM-DPO on the bundled small ARDM: the DPO baseline of the VGPO paper's tables.

Steps: (1) prompts of a task preset (`ardm_trl.tasks`: Task A, F0 variance of female voices, by default); (2) preference
pairs of the base model's samples, best against worst of `--num_samples` per prompt by the task's reward, sampled the
way the policy samples (`build_preference_dataset`, saved in `<output_dir>/preference_data` and reused), or taken
from a value dataset of `examples/build_value_data.py` (`--pairs_from`); (3) `ARDMDPOTrainer`; (4) Base and ARDM-DPO on
held-out test prompts x sampling seeds, paired per prompt (mean ± standard error, change against Base, KL).

Usage:

    # the demo: bundled ARDM (pretrained/ardm) and codec (pretrained/speech_codec), Task A
    accelerate launch examples/ardm_dpo.py

    # the samples VGPO's value model learned from, as pairs; checkpoints for the KL-reward frontier
    accelerate launch examples/ardm_dpo.py --pairs_from outputs/value_data/f0 --save_steps 20 --max_steps 100

    # another ARDM (a folder with the model and its text_vocab.json), stronger KL regularisation, IPO
    accelerate launch examples/ardm_dpo.py --model_name_or_path outputs/my_ardm --beta 400 --loss_type ipo

    # LoRA on the LM's attention (the reference is the same network with adapters disabled)
    accelerate launch examples/ardm_dpo.py --use_peft --lora_r 16 --lora_alpha 32 --lora_target_modules q_proj v_proj

    # two processes; DeepSpeed ZeRO-2
    accelerate launch --config_file examples/accelerate_configs/multi_gpu.yaml examples/ardm_dpo.py
    accelerate launch --config_file examples/accelerate_configs/deepspeed_zero2.yaml examples/ardm_dpo.py

    # any ARDMDPOConfig field on the command line or in a YAML file
    accelerate launch examples/ardm_dpo.py --config my_dpo.yaml

The demo overrides some ARDMDPOConfig defaults for its small CPU model (`DEMO_DEFAULTS`; the command line wins).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import PartialState
from datasets import load_from_disk
from transformers import AutoModel
from trl import ModelConfig, TrlParser, get_peft_config

from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.evaluation import score_samples
from ardm_trl.models.ardm import sampling_settings, set_sampling_settings
from ardm_trl.tables import MethodResult, ResultsTable, write_run_info
from ardm_trl.tasks import get_task, task_prompts
from ardm_trl.trainer.ardm_dpo_config import ARDMDPOConfig
from ardm_trl.trainer.ardm_dpo_trainer import ARDMDPOTrainer
from ardm_trl.trainer.preference_data import build_preference_dataset, pairs_from_groups
from ardm_trl.zero3 import zero3_init_disabled

logger = logging.getLogger("ardm_dpo")
REPO = Path(__file__).resolve().parents[1]

DEMO_DEFAULTS = dict(
    model_name_or_path=str(REPO / "pretrained" / "ardm"),
    lora_target_modules=["q_proj", "v_proj"],
    lora_task_type=None,  # a plain LoRA wrapper: the ARDM is not a causal LM with `prepare_inputs_for_generation`
    output_dir="outputs/ardm-dpo-demo",
    max_steps=40,
    per_device_train_batch_size=4,
    learning_rate=1e-4,
    lr_scheduler_type="cosine",
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
    task: str = field(default="f0", metadata={"help": "Task preset: 'f0' (Task A), 'ctc' (Task B) or 'pitch'."})
    corpus_utterances: int = field(default=3000, metadata={"help": "Size of the espeak corpus of the prompts."})
    num_train_prompts: int = field(default=64, metadata={"help": "Prompts whose samples are paired for training."})
    num_eval_prompts: int = field(default=32, metadata={"help": "Held-out prompts of the before/after table."})
    eval_seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "Sampling seeds of the table."})
    num_samples: int = field(default=4, metadata={"help": "Samples per prompt of the base model (K)."})
    pair_strategy: str = field(default="best_vs_worst", metadata={"help": "'best_vs_worst' or 'all_pairs'."})
    margin: float = field(default=0.0, metadata={"help": "A pair needs chosen reward > rejected reward + margin."})
    pairs_from: str | None = field(default=None, metadata={"help": "A value dataset folder (chunk-*.pt) to pair."})
    temperature: float = field(default=0.25, metadata={"help": "Sampling temperature of pairs and evaluation."})
    lm_guidance_scale_sampling: float = field(default=1.5, metadata={"help": "LM guidance of pairs and evaluation."})
    rebuild_preference_data: bool = field(default=False, metadata={"help": "Rebuild the pairs even if saved."})
    skip_evaluation: bool = field(default=False, metadata={"help": "Train and save only (tables evaluate later)."})


def preference_data(policy, rows, reward, codec, script_args, training_args, sampling):
    """Pairs of the base model's samples, built once on the main process and saved; the other processes load them."""
    path = Path(training_args.output_dir) / "preference_data"
    state = PartialState()
    with state.main_process_first():
        if path.is_dir() and (not script_args.rebuild_preference_data or not state.is_main_process):
            return load_from_disk(str(path))
        if script_args.pairs_from:
            chunks = sorted(Path(script_args.pairs_from).glob("chunk-*.pt"))
            samples = [row for chunk in chunks for row in torch.load(chunk, weights_only=False)]
            data = pairs_from_groups(samples, script_args.pair_strategy, script_args.margin)
        else:
            data = build_preference_dataset(
                policy, rows, reward, num_samples=script_args.num_samples, pair_strategy=script_args.pair_strategy,
                margin=script_args.margin, audio_decoder=codec,
                generator=torch.Generator().manual_seed(training_args.seed), **sampling,
            )  # fmt: skip
        if state.is_main_process:
            data.save_to_disk(str(path))
        return data


def main(script_args: ScriptArguments, training_args: ARDMDPOConfig, model_args: ModelConfig) -> None:
    torch.manual_seed(training_args.seed)
    out_dir = Path(training_args.output_dir)
    task = get_task(script_args.task)

    # 1. models and prompts
    with zero3_init_disabled():  # whole: it samples the pairs (DeepSpeed ZeRO-3 shards it when the trainer starts)
        policy = AutoModel.from_pretrained(model_args.model_name_or_path).to(PartialState().device)
    tokenizer = ARDMTextTokenizer.from_pretrained(model_args.model_name_or_path)
    codec = load_pretrained_codec(script_args.codec_name_or_path)
    reward = task.reward(codec)
    sampling = sampling_settings(policy, temperature=script_args.temperature, max_patches=task.max_patches,
                                 lm_guidance_scale=script_args.lm_guidance_scale_sampling)  # fmt: skip
    set_sampling_settings(policy, **{k: v for k, v in sampling.items() if k != "max_patches"})
    with PartialState().main_process_first():  # the first process builds and caches the corpus, the others load it
        train_rows = task_prompts(task, "train", codec, tokenizer, limit=script_args.num_train_prompts,
                                  corpus_utterances=script_args.corpus_utterances, seed=training_args.seed)
        eval_rows = task_prompts(task, "test", codec, tokenizer, limit=script_args.num_eval_prompts,
                                 corpus_utterances=script_args.corpus_utterances)  # fmt: skip

    # 2. preference pairs
    start = time.perf_counter()
    train_pairs = preference_data(policy, [{k: v for k, v in r.items() if k != "prompt_audio"} for r in train_rows],
                                  reward, codec, script_args, training_args, sampling)  # fmt: skip
    logger.info("%d training pairs", len(train_pairs))
    columns = task.columns()
    metrics = [c.key for c in columns]
    state = PartialState()
    before = None
    if state.is_main_process and not script_args.skip_evaluation:
        policy.eval()
        before = score_samples(policy, eval_rows, codec, script_args.eval_seeds, metrics, **sampling)

    # 3. ARDM-DPO (the loss's LM guidance is the sampling one unless --lm_guidance_scale is given)
    policy.train()
    trainer = ARDMDPOTrainer(policy, args=training_args, train_dataset=train_pairs, processing_class=tokenizer,
                             peft_config=get_peft_config(model_args))  # the tokenizer is saved with the model
    trainer.train()
    train_seconds = time.perf_counter() - start

    # 4. before / after on held-out prompts, paired (under DeepSpeed ZeRO-3 on a whole copy, gathered by every process)
    command = "accelerate launch examples/ardm_dpo.py " + " ".join(sys.argv[1:])
    model = trainer.whole_policy()
    if trainer.accelerator.is_main_process and before is not None:
        model.eval()
        after = score_samples(model, eval_rows, codec, script_args.eval_seeds, metrics, reference=trainer.ref_model,
                              compute_kl=True, **sampling)  # fmt: skip
        table = ResultsTable(f"ARDM-DPO: {task.title}", columns, before.prompt_ids, before.seeds,
                             meta={"command": command})  # fmt: skip
        table.add(MethodResult("Base", before.scores))
        table.add(MethodResult(f"ARDM-DPO (β={training_args.beta:g})", after.scores, kl=after.kl,
                               train_seconds=train_seconds))  # fmt: skip
        table.save(out_dir / "results.json")
        print(table.markdown())

    # 5. save (and push)
    trainer.save_model(str(out_dir / "model"))
    if trainer.accelerator.is_main_process:
        write_run_info(out_dir / "model", train_seconds, command, task=task.name, sampling=sampling,
                       pairs=len(train_pairs))  # fmt: skip
    trainer.create_model_card(dataset_name=f"{task.title}: preference pairs ({len(train_pairs)} pairs)")
    if training_args.push_to_hub:
        trainer.push_to_hub()
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = TrlParser((ScriptArguments, ARDMDPOConfig, ModelConfig))
    parser.set_defaults(**DEMO_DEFAULTS)
    main(*parser.parse_args_and_config())
