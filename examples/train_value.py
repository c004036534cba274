"""Train a value model (VGPO Algorithm 1) on a dataset of the policy's own samples made by
`examples/build_value_data.py`, measuring on held-out data whether it generalises (correlation of predictions and
rewards) and whether its gradient guides (the reward gain of value-guided sampling on validation prompts).

Usage:

    OMP_NUM_THREADS=1 python examples/train_value.py --data_dir outputs/value_data/ctc_t025 \
        --output_dir outputs/value_ctc --max_steps 4000 --group_normalize true --value_target reward_to_go --trainable head \
        --eval_strategy steps --eval_steps 1000 --guidance_scales 8 32 --save_steps 1000

    # resume after a kill
    python examples/train_value.py ... --resume_from_checkpoint true

The value model starts from the policy (`ARDMValueModel.from_ardm`: the policy's LM and head body, a zero-initialised
scalar output). `--trainable head` trains only the head: the LM states are then those of the policy, and the value
model cannot memorise its training prompts through them; `--trainable output` trains only the output layer. The final model is saved to `--output_dir/model` with a JSON of
its held-out measurements.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModel, HfArgumentParser

from ardm_trl import ARDMValueModel
from ardm_trl.audio import load_pretrained_codec
from ardm_trl.data.text_tokenizer import ARDMTextTokenizer
from ardm_trl.tasks import get_task, task_prompts
from ardm_trl.trainer import (
    GuidanceEvaluation,
    ValueConfig,
    ValueTrainer,
    measure_guidance_gain,
    prepare_value_rewards,
    value_reward_correlation,
)

logger = logging.getLogger("train_value")


@dataclass
class ScriptArguments:
    data_dir: list[str] = field(metadata={"help": "Folders of chunk-*.pt files from build_value_data.py."})
    model_name_or_path: str = field(default="pretrained/ardm", metadata={"help": "The policy (the value model's init)."})
    task: str = field(default="ctc", metadata={"help": "Task preset of the guidance evaluation ('ctc' or 'f0')."})
    eval_fraction: float = field(default=0.05, metadata={"help": "Share of prompts (whole groups) held out."})
    trainable: str = field(default="all", metadata={"help": "'all', 'head' (the LM stays the policy's) or 'output' "
                                                    "(only the scalar output layer: a linear probe of the policy's "
                                                    "denoiser features)."})
    guidance_scales: list[float] = field(default_factory=lambda: [8.0, 32.0],
                                         metadata={"help": "Guidance scales measured on validation prompts."})
    num_guidance_prompts: int = field(default=32, metadata={"help": "Validation prompts of the guidance evaluation."})
    guidance_seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "Sampling seeds of it."})
    final_guidance_seeds: list[int] = field(default_factory=lambda: [0, 1, 2],
                                            metadata={"help": "Sampling seeds of the final measurement."})
    num_threads: int = field(default=1, metadata={"help": "torch threads."})


def load_value_chunks(folders: list[str]) -> list[dict]:
    """The rows of every `chunk-*.pt` file of `folders`; rows without a finite reward are dropped (logged)."""
    rows = []
    for folder in folders:
        for path in sorted(Path(folder).glob("chunk-*.pt")):
            rows.extend(torch.load(path, weights_only=False))
    finite = [row for row in rows if row["reward"] is not None and math.isfinite(row["reward"])]
    logger.info("%d rows from %s (%d without a finite reward dropped)", len(finite), folders, len(rows) - len(finite))
    return finite


def split_by_group(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out whole groups (all samples of a prompt), so the evaluation measures generalisation to new prompts."""
    groups = sorted({row["group_id"] for row in rows})
    random.Random(seed).shuffle(groups)
    held_out = set(groups[: max(1, round(eval_fraction * len(groups)))])
    return [r for r in rows if r["group_id"] not in held_out], [r for r in rows if r["group_id"] in held_out]


def main() -> None:
    parser = HfArgumentParser((ScriptArguments, ValueConfig))
    script_args, args = parser.parse_args_into_dataclasses()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(script_args.num_threads)
    data_args = json.loads((Path(script_args.data_dir[0]) / "args.json").read_text())
    sampling = {k: data_args[k] for k in ("temperature", "lm_guidance_scale", "num_inference_steps", "max_patches")}

    rows = load_value_chunks(script_args.data_dir)
    if args.value_target == "reward_to_go":
        with_tokens = [row for row in rows if "token_rewards" in row]
        logger.info("%d of %d rows have per-patch rewards", len(with_tokens), len(rows))
        rows = with_tokens
    train_rows, eval_rows = split_by_group(rows, script_args.eval_fraction, args.seed)
    policy = AutoModel.from_pretrained(script_args.model_name_or_path).eval()
    value_model = ARDMValueModel.from_ardm(policy)
    if script_args.trainable not in ("all", "head", "output"):
        raise ValueError(f"`--trainable` must be 'all', 'head' or 'output', got {script_args.trainable!r}.")
    if script_args.trainable in ("head", "output"):
        value_model.backbone.requires_grad_(False)
    if script_args.trainable == "output":
        value_model.head.body.requires_grad_(False)
    codec = load_pretrained_codec()
    tokenizer = ARDMTextTokenizer.from_pretrained(script_args.model_name_or_path)
    task = get_task(script_args.task)
    prompts = task_prompts(task, "validation", codec, tokenizer, limit=script_args.num_guidance_prompts)
    reward = task.reward(codec)
    guidance = GuidanceEvaluation(policy, prompts, reward, script_args.guidance_scales, script_args.guidance_seeds,
                                  audio_decoder=codec, sampling=sampling)
    trainer = ValueTrainer(value_model, args, train_dataset=train_rows, eval_dataset=eval_rows,
                           guidance_evaluation=guidance if args.eval_strategy != "no" else None)
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)

    out = Path(args.output_dir) / "model"
    trainer.save_model(str(out))
    value_model.eval()
    normalized_eval = prepare_value_rewards(eval_rows, args.reward_column, args.group_column, args.group_normalize,
                                            args.value_target, args.value_discount)
    report = {
        "command": "python examples/train_value.py " + " ".join(sys.argv[1:]),
        "sampling": sampling,
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
        "eval_correlation": value_reward_correlation(value_model, normalized_eval, args.reward_column),
        "train_correlation": value_reward_correlation(value_model, prepare_value_rewards(
            train_rows[: len(eval_rows)], args.reward_column, args.group_column, args.group_normalize,
            args.value_target, args.value_discount)),
    }
    gain = measure_guidance_gain(policy, value_model, prompts, reward, script_args.guidance_scales,
                                 script_args.final_guidance_seeds, audio_decoder=codec, **sampling)
    report["guidance"] = {f"{s:g}": {"reward": gain["mean"][s], "gain": gain["gain"][s]} for s in gain["scales"]}
    (out / "value_evaluation.json").write_text(json.dumps(report, indent=1))
    logger.info("held-out: %s", json.dumps({k: report[k] for k in ("eval_correlation", "guidance")}))


if __name__ == "__main__":
    main()
