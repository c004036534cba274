"""VGPO on the bundled small ARDM: the library's main demo (VGPO paper, Task A by default).

Usage:

    # the demo: bundled ARDM + codec, value model trained on corpus audio, VGPO on the F0-variance reward (Task A)
    accelerate launch examples/vgpo.py

    # Task B preset: CTC log-likelihood of hard repetitive sentences, value model trained on the ARDM's own samples,
    # group reward normalisation and online value updates
    accelerate launch examples/vgpo.py --task ctc

    # LoRA on the LM's attention (the reference is the same network with adapters disabled)
    accelerate launch examples/vgpo.py --use_peft --lora_r 16 --lora_target_modules q_proj v_proj

    # two processes (or GPUs); DeepSpeed ZeRO-2
    accelerate launch --config_file examples/accelerate_configs/multi_gpu.yaml examples/vgpo.py
    accelerate launch --config_file examples/accelerate_configs/deepspeed_zero2.yaml examples/vgpo.py

    # any VGPOConfig field on the command line or in a YAML file
    accelerate launch examples/vgpo.py --w_kl 0.5 --max_steps 60 --online_value_update true
    accelerate launch examples/vgpo.py --config my_vgpo.yaml

The demo overrides some VGPOConfig defaults for its small CPU model (see `DEMO_DEFAULTS`; any of them given on the
command line wins). It prints a before/after table in the shape of the paper's Table 1 (F0V, WER, SIM, KL) and writes
WAV samples, the reward and KL curves and F0 contours before/after into `--output_dir`.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from transformers import AutoModel
from trl import TrlParser

from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data import build_tts_corpus
from ardm_trl.data.prompts import voice_prompt_rows
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.evaluation import evaluate_ardm
from ardm_trl.rewards import CTCLogLikelihoodReward, F0VarianceReward, f0_track
from ardm_trl.trainer import ValueConfig, VGPOConfig, VGPOTrainer, train_value_model

logger = logging.getLogger("vgpo")
REPO = Path(__file__).resolve().parents[1]

DEMO_DEFAULTS = {
    "output_dir": "outputs/vgpo-demo",
    "max_steps": "40",
    "per_device_train_batch_size": "4",
    "num_generations": "2",
    "learning_rate": "5e-5",
    "w_kl": "0.25",
    "num_draws": "4",
    "max_patches": "48",  # ~4.5 s; longer samples of the small bundled ARDM drift and can overflow
    "logging_steps": "1",
    "save_strategy": "no",
    "report_to": "none",
    "use_cpu": "true",
    "seed": "0",
}


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default=str(REPO / "pretrained" / "ardm"), metadata={"help": "The ARDM."})
    codec_name_or_path: str | None = field(default=None, metadata={"help": "The latent codec (bundled one if None)."})
    value_model_name_or_path: str | None = field(default=None, metadata={"help": "A trained value model; if None, "
                                                 "one is trained first (on corpus audio for Task A, on the ARDM's "
                                                 "samples for Task B)."})
    task: str = field(default="f0", metadata={"help": "'f0' (Task A, F0 variance) or 'ctc' (Task B, CTC likelihood)."})
    corpus_utterances: int = field(default=240, metadata={"help": "Size of the espeak corpus built for prompts."})
    num_train_prompts: int = field(default=64, metadata={"help": "Training prompts (texts + voice prompts)."})
    num_eval_prompts: int = field(default=8, metadata={"help": "Held-out evaluation prompts (test split)."})
    value_pretrain_steps: int = field(default=150, metadata={"help": "Steps of the quick value-model training."})
    value_pretrain_learning_rate: float = field(default=3e-4, metadata={"help": "Learning rate of the quick value training."})
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters on the LM instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"],
                                           metadata={"help": "LoRA target modules."})
    eval_seed: int = field(default=1234, metadata={"help": "Sampling seed of the before/after evaluation."})


def with_demo_defaults(argv: list[str]) -> list[str]:
    given = {arg.split("=")[0].lstrip("-") for arg in argv if arg.startswith("--")}
    extra = []
    for key, value in DEMO_DEFAULTS.items():
        if key not in given:
            extra += [f"--{key}", value]
    return argv + extra


def make_reward(task: str, codec):
    if task == "f0":
        return F0VarianceReward(codec=codec, unvoiced_value=0.0)  # a sample with no voiced frames has no F0 movement
    if task == "ctc":
        return CTCLogLikelihoodReward(codec=codec)
    raise ValueError(f"Unknown --task {task!r}: use 'f0' or 'ctc'.")


def value_config(script_args, training_args) -> ValueConfig:
    """Alg. 1's value training: on corpus audio for Task A, on the ARDM's own samples (group-normalised) for Task B."""
    return ValueConfig(output_dir=str(Path(training_args.output_dir) / "value_training"), max_steps=
                       script_args.value_pretrain_steps, per_device_train_batch_size=16, learning_rate=
                       script_args.value_pretrain_learning_rate, group_normalize=script_args.task != "f0",
                       logging_steps=25, save_strategy="no", report_to="none", use_cpu=training_args.use_cpu,
                       num_draws=8)  # fmt: skip


def write_outputs(out_dir: Path, before, after, log_history, sampling_rate: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = out_dir / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    for i, (a, b) in enumerate(zip(before.audio, after.audio)):
        sf.write(samples / f"{i:02d}_before.wav", a, sampling_rate)
        sf.write(samples / f"{i:02d}_after.wav", b, sampling_rate)
    # texts.tsv lets `python -m ardm_trl.listening build` pair the samples for a CMOS test (docs/listening_tests.md)
    (samples / "texts.tsv").write_text("".join(f"{i:02d}\t{text}\n" for i, text in enumerate(before.texts)))
    steps = [h["step"] for h in log_history if "reward" in h]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].plot(steps, [h["reward"] for h in log_history if "reward" in h])
    axes[0].set(xlabel="step", ylabel="mean reward of rollouts", title="Reward")
    axes[1].plot(steps, [h["kl"] for h in log_history if "reward" in h])
    axes[1].set(xlabel="step", ylabel="KL to reference (eps units)", title="KL")
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=120)
    fig, axes = plt.subplots(min(4, len(before.audio)), 1, figsize=(8, 8), squeeze=False)
    for ax, a, b, text in zip(axes[:, 0], before.audio, after.audio, before.texts):
        for wav, label in ((a, "before"), (b, "after")):
            track = f0_track(wav, sampling_rate)
            t = np.arange(len(track)) / 100.0
            ax.plot(t, np.where(track > 0, track, np.nan), label=label)
        ax.set(ylabel="F0 (Hz)", title=text[:60])
        ax.legend(loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(out_dir / "f0_contours.png", dpi=120)
    plt.close("all")


def main() -> None:
    parser = TrlParser((ScriptArguments, VGPOConfig))
    script_args, training_args = parser.parse_args_and_config(args=with_demo_defaults(sys.argv[1:]))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    torch.manual_seed(training_args.seed)
    out_dir = Path(training_args.output_dir)

    # 1. models: the bundled ARDM (policy and, through a frozen copy or disabled adapters, the reference) and codec
    policy = AutoModel.from_pretrained(script_args.model_name_or_path)
    tokenizer = ARDMTextTokenizer.from_pretrained(script_args.model_name_or_path)
    codec = load_pretrained_codec(script_args.codec_name_or_path)
    reward = make_reward(script_args.task, codec)

    # 2. prompts: corpus texts with zero-shot voice prompts; evaluation on held-out sentences and voices
    corpus = build_tts_corpus(num_utterances=script_args.corpus_utterances, seed=training_args.seed,
                              hard_fraction=0.9 if script_args.task == "ctc" else 0.15)
    train_rows = voice_prompt_rows(corpus["train"], codec, tokenizer, limit=script_args.num_train_prompts,
                                   include_target_latents=True, seed=training_args.seed)
    eval_rows = voice_prompt_rows(corpus["test"], codec, tokenizer, limit=script_args.num_eval_prompts, seed=1)
    logger.info("%d training prompts, %d evaluation prompts", len(train_rows), len(eval_rows))

    # 3. value model (Alg. 1)
    if script_args.value_model_name_or_path:
        value_model = AutoModel.from_pretrained(script_args.value_model_name_or_path).eval()
    else:
        value_model = train_value_model(policy, train_rows, reward, value_config(script_args, training_args),
                                        source="corpus" if script_args.task == "f0" else "samples",
                                        max_patches=training_args.max_patches)  # fmt: skip

    generation = dict(max_patches=training_args.max_patches, lm_guidance_scale=training_args.lm_guidance_scale,
                      num_inference_steps=training_args.num_inference_steps)
    before = evaluate_ardm(policy, eval_rows, codec, seed=script_args.eval_seed, **generation)

    # 4. VGPO (Alg. 3)
    peft_config = None
    if script_args.use_peft:
        from peft import LoraConfig

        peft_config = LoraConfig(r=script_args.lora_r, lora_alpha=script_args.lora_alpha,
                                 target_modules=script_args.lora_target_modules)
    train_dataset = [{k: v for k, v in row.items() if k != "latents"} for row in train_rows]
    trainer = VGPOTrainer(policy, value_model, reward, training_args, train_dataset=train_dataset,
                          audio_decoder=codec, peft_config=peft_config)
    trainer.train()

    # 5. before / after, in the shape of the paper's Table 1
    model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.accelerator.is_main_process:
        after = evaluate_ardm(model, eval_rows, codec, reference=trainer.ref_model, compute_kl=True,
                              seed=script_args.eval_seed, **generation)
        reward_key = "f0v" if script_args.task == "f0" else "ctc_nll"
        rows = [("Base", before.metrics, None), ("VGPO", after.metrics, after.metrics.get("kl"))]
        header = f"| Method | {'F0V (Hz) ↑' if reward_key == 'f0v' else 'CTC NLL ↓'} | WER (%) ↓ | SIM ↑ | KL ↓ |"
        lines = [header, "|---|---|---|---|---|"]
        for name, metrics, kl in rows:
            lines.append(f"| {name} | {metrics.get(reward_key, float('nan')):.2f} | {metrics['wer']:.1f} | "
                         f"{metrics.get('sim', float('nan')):.3f} | {'—' if kl is None else f'{kl:.4f}'} |")
        table = "\n".join(lines)
        print(f"\nVGPO {script_args.task} demo ({len(eval_rows)} held-out prompts, seed {script_args.eval_seed}):")
        print(table)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.md").write_text(table + "\n")
        (out_dir / "results.json").write_text(json.dumps({"before": before.metrics, "after": after.metrics}))
        write_outputs(out_dir, before, after, trainer.state.log_history, codec.sampling_rate)
        trainer.save_model(str(out_dir / "model"))
        tokenizer.save_pretrained(str(out_dir / "model"))
        trainer.create_model_card(dataset_name=f"espeak corpus ({script_args.corpus_utterances} utterances)")
        print(f"Samples, plots and the model are in {out_dir}/")
        if training_args.push_to_hub:
            trainer.push_to_hub()
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()


if __name__ == "__main__":
    main()
