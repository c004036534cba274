"""VGPO on the bundled small ARDM: the library's main demo.

Usage:

    # the demo: the bundled ARDM, codec and pitch value model; VGPO (Alg. 3) on the `pitch` task (speak higher: pitch
    # level in semitones), then Base and VGPO on 43 held-out test prompts x 3 sampling seeds, paired per prompt
    accelerate launch examples/vgpo.py

    # the same on the validation split (how the demo's settings were chosen)
    accelerate launch examples/vgpo.py --eval_split validation --num_eval_prompts 24

    # Task A's reward (F0 variance), with a value model trained first on corpus audio (Alg. 1; no bundled one)
    accelerate launch examples/vgpo.py --task f0 --value_model_name_or_path none

    # the paper's full recipe: online value updates on rewards-to-go, adversarial distribution matching
    accelerate launch examples/vgpo.py --online_value_update true --value_target reward_to_go --use_adm true

    # LoRA on the LM's attention (the reference is the same network with adapters disabled)
    accelerate launch examples/vgpo.py --use_peft --lora_r 16 --lora_target_modules q_proj v_proj

    # two processes (or GPUs); DeepSpeed ZeRO-2
    accelerate launch --config_file examples/accelerate_configs/multi_gpu.yaml examples/vgpo.py
    accelerate launch --config_file examples/accelerate_configs/deepspeed_zero2.yaml examples/vgpo.py

    # any VGPOConfig field on the command line or in a YAML file
    accelerate launch examples/vgpo.py --w_kl 0.5 --max_steps 60 --save_steps 20
    accelerate launch examples/vgpo.py --config my_vgpo.yaml

The demo overrides some VGPOConfig defaults for its small CPU model (`DEMO_DEFAULTS`; the command line wins). Rollouts
sample at the task's setting (temperature 0.25, LM guidance 1.5: the bundled model is intelligible there), which the
trained policy keeps in its `generation_config`. The before/after table (reward, CTC NLL, SIM, KL; mean ± standard
error and the paired change against Base) is printed and written with WAV samples and the reward / KL curves to
`--output_dir`.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import torch
from accelerate import PartialState
from transformers import AutoModel
from trl import TrlParser

from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.evaluation import score_samples
from ardm_trl.models.ardm import set_sampling_settings
from ardm_trl.tables import MethodResult, ResultsTable, write_run_info
from ardm_trl.tasks import get_task, task_prompts
from ardm_trl.trainer import ValueConfig, VGPOConfig, VGPOTrainer, train_value_model
from ardm_trl.zero3 import zero3_init_disabled

logger = logging.getLogger("vgpo")
REPO = Path(__file__).resolve().parents[1]

DEMO_DEFAULTS = {
    "output_dir": "outputs/vgpo-demo",
    "max_steps": "40",  # lr, steps, w_kl: chosen on the validation split (docs/quickstart.md)
    "per_device_train_batch_size": "4",
    "num_generations": "4",
    "learning_rate": "1e-4",
    "lr_scheduler_type": "cosine",  # ends where it converged: a constant rate leaves the last step a random draw
    "warmup_steps": "2",
    "w_kl": "0.015625",  # 2^-6, inside the paper's Task A range 2^-4 ... 2^-8
    "num_draws": "4",
    "temperature": "0.25",
    "lm_guidance_scale": "1.5",
    "group_normalize": "true",
    "logging_steps": "4",
    "score_logged_steps_only": "true",  # the loss uses only the value model's gradient: decode and score logged steps
    "save_strategy": "no",
    "report_to": "none",
    "use_cpu": "true",
    "seed": "0",
}


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default=str(REPO / "pretrained" / "ardm"), metadata={"help": "The ARDM."})
    codec_name_or_path: str | None = field(default=None, metadata={"help": "The latent codec (bundled one if None)."})
    value_model_name_or_path: str | None = field(default=None,
                                                 metadata={"help": "A trained value model; 'none' trains one first "
                                                                   "(Alg. 1: on corpus audio for Task A, on the "
                                                                   "ARDM's own samples otherwise); by default the "
                                                                   "bundled one of the task (pretrained/value_<task>)."})  # fmt: skip
    task: str = field(default="pitch", metadata={"help": "'pitch' (speak higher), 'ctc' (Task B) or 'f0' (Task A)."})
    corpus_utterances: int = field(default=3000, metadata={"help": "Size of the espeak corpus of the prompts "
                                                                       "(3,000: 43 high-voice test prompts)."})
    num_train_prompts: int = field(default=64, metadata={"help": "Training prompts (train split)."})
    num_eval_prompts: int = field(default=43, metadata={"help": "Held-out prompts of the table (43: every high-voice "
                                                               "test prompt of the 3,000-utterance corpus)."})
    eval_split: str = field(default="test", metadata={"help": "Split of the table's prompts: 'test' or 'validation' "
                                                              "(to choose settings without seeing the test prompts)."})
    eval_seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Sampling seeds of the table."})
    value_pretrain_steps: int = field(default=300, metadata={"help": "Steps of Alg. 1 when no value model is given."})
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters on the LM instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"],
                                           metadata={"help": "LoRA target modules."})
    num_threads: int = field(default=2, metadata={"help": "torch threads (the demo runs one process)."})
    skip_evaluation: bool = field(default=False, metadata={"help": "Train and save only (tables evaluate later)."})


def with_demo_defaults(argv: list[str]) -> list[str]:
    given = {arg.split("=")[0].lstrip("-") for arg in argv if arg.startswith("--")}
    extra = []
    for key, value in DEMO_DEFAULTS.items():
        if key not in given:
            extra += [f"--{key}", value]
    return argv + extra


def value_model_for(script_args, training_args, policy, train_rows, reward):
    """The given value model, or Alg. 1 now: on corpus audio (Task A) or the policy's own samples (Task B)."""
    path = script_args.value_model_name_or_path
    if path is None:
        path = REPO / "pretrained" / f"value_{script_args.task}"
        if not path.is_dir():
            raise FileNotFoundError(
                f"No value model is bundled for task {script_args.task!r} ({path} does not exist). Train one with "
                "examples/train_value.py and pass --value_model_name_or_path, or pass --value_model_name_or_path none "
                "to train one here first (Alg. 1)."
            )
    if str(path).lower() != "none":
        with zero3_init_disabled():  # a critic: optimised outside DeepSpeed, kept whole
            return AutoModel.from_pretrained(str(path)).eval()
    task = get_task(script_args.task)
    config = ValueConfig(output_dir=str(Path(training_args.output_dir) / "value_training"), report_to="none",
                         max_steps=script_args.value_pretrain_steps, per_device_train_batch_size=16,
                         learning_rate=3e-4, lr_scheduler_type="cosine", group_normalize=task.value_source == "samples",
                         logging_steps=25, save_strategy="no", use_cpu=training_args.use_cpu, num_draws=8)  # fmt: skip
    return train_value_model(policy, train_rows, reward, config, source=task.value_source,
                             max_patches=training_args.max_patches, temperature=training_args.temperature,
                             lm_guidance_scale=training_args.lm_guidance_scale)  # fmt: skip


def write_outputs(out_dir: Path, before, after, texts: list[str], log_history, sampling_rate: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = out_dir / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    for i, (a, b) in enumerate(zip(before.audio[: len(texts)], after.audio[: len(texts)])):
        sf.write(samples / f"{i:02d}_before.wav", a, sampling_rate)
        sf.write(samples / f"{i:02d}_after.wav", b, sampling_rate)
    # texts.tsv lets `python -m ardm_trl.listening build` pair the samples for a CMOS test (docs/listening_tests.md)
    (samples / "texts.tsv").write_text("".join(f"{i:02d}\t{text}\n" for i, text in enumerate(texts)))
    steps = [h["step"] for h in log_history if "reward" in h]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot(steps, [h["reward"] for h in log_history if "reward" in h])
    axes[0].set(xlabel="step", ylabel="mean reward of rollouts", title="Reward")
    axes[1].plot(steps, [h["kl"] for h in log_history if "reward" in h])
    axes[1].set(xlabel="step", ylabel="KL to reference (eps units)", title="KL")
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=120)
    plt.close("all")


def main() -> None:
    parser = TrlParser((ScriptArguments, VGPOConfig))
    script_args, training_args = parser.parse_args_and_config(args=with_demo_defaults(sys.argv[1:]))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    torch.set_num_threads(script_args.num_threads)
    torch.manual_seed(training_args.seed)
    out_dir = Path(training_args.output_dir)
    task = get_task(script_args.task)
    if training_args.max_patches == VGPOConfig.max_patches:  # not given: the task's length limit
        training_args.max_patches = task.max_patches

    # 1. models: the bundled ARDM (policy and, through a frozen copy or disabled adapters, the reference) and codec
    with zero3_init_disabled():  # whole: it samples before training (DeepSpeed ZeRO-3 shards it when the trainer starts)
        policy = AutoModel.from_pretrained(script_args.model_name_or_path)
    tokenizer = ARDMTextTokenizer.from_pretrained(script_args.model_name_or_path)
    codec = load_pretrained_codec(script_args.codec_name_or_path)
    reward = task.reward(codec)

    # 2. prompts: training rows from the train split; held-out test sentences (half in held-out voices)
    state = PartialState()
    with state.main_process_first():  # the first process builds and caches the corpus, the others load it
        train_rows = task_prompts(task, "train", codec, tokenizer, limit=script_args.num_train_prompts,
                                  corpus_utterances=script_args.corpus_utterances, seed=training_args.seed,
                                  include_target_latents=task.value_source == "corpus")  # fmt: skip
        eval_rows = task_prompts(task, script_args.eval_split, codec, tokenizer, limit=script_args.num_eval_prompts,
                                 corpus_utterances=script_args.corpus_utterances)  # fmt: skip
    logger.info("%d training prompts, %d held-out prompts", len(train_rows), len(eval_rows))

    # 3. the value model (Alg. 1)
    start = time.perf_counter()
    value_model = value_model_for(script_args, training_args, policy, train_rows, reward)
    value_seconds = time.perf_counter() - start

    # 4. Base on the held-out prompts, sampled the way VGPO rolls out
    sampling = dict(temperature=training_args.temperature, lm_guidance_scale=training_args.lm_guidance_scale,
                    num_inference_steps=training_args.num_inference_steps, max_patches=training_args.max_patches)
    columns = task.columns()
    metrics = [c.key for c in columns]
    before = None
    if state.is_main_process and not script_args.skip_evaluation:
        policy.eval()
        before = score_samples(policy, eval_rows, codec, script_args.eval_seeds, metrics, keep_audio=True, **sampling)

    # 5. VGPO (Alg. 3)
    peft_config = None
    if script_args.use_peft:
        from peft import LoraConfig

        peft_config = LoraConfig(r=script_args.lora_r, lora_alpha=script_args.lora_alpha,
                                 target_modules=script_args.lora_target_modules)
    train_dataset = [{k: v for k, v in row.items() if k not in ("latents", "prompt_audio")} for row in train_rows]
    policy.train()
    trainer = VGPOTrainer(policy, value_model, reward, training_args, train_dataset=train_dataset,
                          processing_class=tokenizer, audio_decoder=codec, peft_config=peft_config)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    train_seconds = time.perf_counter() - start + value_seconds

    # 6. VGPO on the same prompts and seeds (the same starting noise), paired against Base (under DeepSpeed ZeRO-3
    # on a whole copy of the sharded policy, gathered by every process)
    model = trainer.whole_policy()
    command = "accelerate launch examples/vgpo.py " + " ".join(sys.argv[1:])
    if trainer.accelerator.is_main_process and before is not None:
        model.eval()
        after = score_samples(model, eval_rows, codec, script_args.eval_seeds, metrics, reference=trainer.ref_model,
                              compute_kl=True, keep_audio=True, **sampling)  # fmt: skip
        table = ResultsTable(f"VGPO demo: {task.title}", columns, before.prompt_ids, before.seeds)
        table.add(MethodResult("Base", before.scores, sampling_seconds_per_utterance=before.generation_seconds /
                               len(before.prompt_ids)))  # fmt: skip
        table.add(MethodResult("VGPO", after.scores, kl=after.kl, train_seconds=train_seconds,
                               sampling_seconds_per_utterance=after.generation_seconds / len(after.prompt_ids)))
        table.meta["command"] = command
        table.save(out_dir / "results.json")
        print(f"\n{table.title} ({len(eval_rows)} held-out prompts x seeds {script_args.eval_seeds}; cells: mean ± "
              "SE (paired change against Base ± SE))")
        print(table.markdown())
        write_outputs(out_dir, before, after, [r["prompt"] for r in eval_rows], trainer.state.log_history,
                      codec.sampling_rate)  # fmt: skip

    # 7. save on every process (DeepSpeed gathers the weights collectively), then the files of the main one
    set_sampling_settings(trainer.accelerator.unwrap_model(trainer.model),
                          **{k: v for k, v in sampling.items() if k != "max_patches"})
    trainer.save_model(str(out_dir / "model"))
    if trainer.accelerator.is_main_process:
        write_run_info(out_dir / "model", train_seconds, command, task=task.name, sampling=sampling)
        trainer.create_model_card(dataset_name=f"espeak corpus ({script_args.corpus_utterances} utterances)")
        print(f"Samples, plots and the model are in {out_dir}/")
    if training_args.push_to_hub:
        trainer.push_to_hub()
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    main()
